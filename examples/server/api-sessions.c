/* Sessions (POST/GET /sessions, DELETE /sessions/{id}) and the outbox
 * read-back (GET /outbox/{id}). */
#include <stdlib.h>
#include <string.h>

#include "server.h"

void api_sessions_create(server *s, http_req *r, const char *param) {
  (void)param;
  session *se = session_create(s->sessions, wall_ms());
  if (se == NULL) {
    http_header h[1] = {{"Retry-After", "1"}};
    reply_error_hdr(r, 503, "too many sessions", h, 1);
    return;
  }
  sbuf b = {0};
  sbuf_str(&b, "{\"session_id\":");
  sbuf_json_str(&b, session_id(se));
  sbuf_str(&b, "}");
  reply_json(r, 201, &b);
  sbuf_free(&b);
}

void api_sessions_list(server *s, http_req *r, const char *param) {
  (void)param;
  sbuf b = {0};
  session_render_list(s->sessions, &b, 1000);
  reply_json(r, 200, &b);
  sbuf_free(&b);
}

void api_sessions_delete(server *s, http_req *r, const char *param) {
  if (session_delete(s->sessions, param) != 0) {
    reply_error(r, 404, "unknown session_id");
    return;
  }
  sbuf b = {0};
  sbuf_str(&b, "{\"session_id\":");
  sbuf_json_str(&b, param);
  sbuf_str(&b, ",\"deleted\":true}");
  reply_json(r, 200, &b);
  sbuf_free(&b);
}

typedef struct outbox_ctx {
  server *s;
  http_req *r;
} outbox_ctx;

static void on_outbox(void *ud, int status, const outbox_view *v) {
  outbox_ctx *c = ud;
  c->s->inflight--;
  if (status == UV_ENOENT) {
    reply_error(c->r, 404, "unknown outbox id");
  } else if (status != 0) {
    reply_error(c->r, 503, "outbox unavailable");
  } else {
    char created[32], updated[32];
    iso8601(created, v->created_ms);
    iso8601(updated, v->updated_ms);
    sbuf b = {0};
    sbuf_printf(&b, "{\"id\":%lld,\"state\":", (long long)v->id);
    sbuf_json_str(&b, v->state);
    sbuf_printf(&b, ",\"attempts\":%u,\"response\":", v->attempts);
    sbuf_json_str(&b, v->response);
    sbuf_str(&b, ",\"last_error\":");
    sbuf_json_str(&b, v->last_error);
    sbuf_printf(&b, ",\"created\":\"%s\",\"updated\":\"%s\"}", created, updated);
    reply_json(c->r, 200, &b);
    sbuf_free(&b);
  }
  free(c);
}

void api_outbox_get(server *s, http_req *r, const char *param) {
  char *end;
  long long id = strtoll(param, &end, 10);
  if (*param < '0' || *param > '9' || *end != '\0' || id <= 0) {
    reply_error(r, 404, "unknown outbox id");
    return;
  }
  if (!backend_has_outbox(s->be)) {
    reply_error(r, 404, "the outbox is not enabled on this server (--db)");
    return;
  }
  outbox_ctx *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    reply_error(r, 500, "out of memory");
    return;
  }
  c->s = s;
  c->r = r;
  http_defer(r);
  s->inflight++;
  if (backend_outbox_get(s->be, id, on_outbox, c) != 0) {
    s->inflight--;
    reply_error(r, 503, "outbox unavailable");
    free(c);
  }
}
