/* POST /chat: {"message", "session_id"?, "guaranteed"?} -> the answer,
 * as JSON, or as Server-Sent Events with Accept: text/event-stream
 * ("event: message" per piece of text, then "event: result"). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct chat_ctx {
  server *s;
  http_req *r;
  session *se;
  char *message;
  int guaranteed, sse, streaming;
};

static void chat_start(chat_ctx *c);

static void chat_finish(chat_ctx *c) {
  server *s = c->s;
  session *se = c->se;
  s->inflight--;
  chat_ctx *next = session_leave(se, wall_ms());
  session_unref(se);
  free(c->message);
  free(c);
  if (next) chat_start(next);
}

static void chat_fail(chat_ctx *c, unsigned status, const char *message) {
  if (c->streaming) {
    sbuf b = {0};
    sbuf_str(&b, "event: error\ndata: {\"error\":");
    sbuf_json_str(&b, message);
    sbuf_printf(&b, ",\"status\":%u}\n\n", status);
    if (!b.oom) http_stream_write(c->r, b.p, b.len);
    sbuf_free(&b);
    http_stream_end(c->r);
  } else {
    reply_error(c->r, status, message);
  }
  chat_finish(c);
}

static const http_header sse_headers[] = {
    {"Cache-Control", "no-cache"},
    {"X-Accel-Buffering", "no"},
};

static void stream_begin(chat_ctx *c) {
  if (c->streaming) return;
  c->streaming = 1;
  http_stream_begin(c->r, 200, "text/event-stream", sse_headers, 2);
}

static void on_text(void *ud, const char *text, size_t len) {
  chat_ctx *c = ud;
  if (!c->sse || len == 0) return;
  stream_begin(c);
  sbuf b = {0};
  sbuf_str(&b, "event: message\ndata: {\"text\":");
  sbuf_json_strn(&b, text, len);
  sbuf_str(&b, "}\n\n");
  if (!b.oom) http_stream_write(c->r, b.p, b.len);
  sbuf_free(&b);
}

static void on_done(void *ud, const chat_result *res) {
  chat_ctx *c = ud;
  if (res->status != 0) {
    unsigned code = res->http_status ? res->http_status : 502;
    if (code == 503 && !c->streaming) {
      char ra[24];
      snprintf(ra, sizeof(ra), "%llu",
               (unsigned long long)(res->retry_after_ms ? (res->retry_after_ms + 999) / 1000 : 1));
      http_header h[1] = {{"Retry-After", ra}};
      reply_error_hdr(c->r, code, res->error ? res->error : "service unavailable", h, 1);
      chat_finish(c);
      return;
    }
    chat_fail(c, code, res->error ? res->error : "upstream error");
    return;
  }
  int queued = res->source && strcmp(res->source, "queued") == 0;
  if (!queued) session_set_conversation(c->se, res->conversation);
  sbuf b = {0};
  if (queued) {
    sbuf_printf(&b, "{\"queued\":%lld,\"source\":\"queued\",\"session_id\":",
                (long long)res->queued_id);
    sbuf_json_str(&b, session_id(c->se));
    sbuf_str(&b, "}");
  } else {
    sbuf_str(&b, "{\"response\":");
    sbuf_json_str(&b, res->response ? res->response : "");
    sbuf_str(&b, ",\"session_id\":");
    sbuf_json_str(&b, session_id(c->se));
    sbuf_str(&b, ",\"source\":");
    sbuf_json_str(&b, res->source ? res->source : "primary");
    sbuf_str(&b, "}");
  }
  if (c->sse && !queued && !b.oom) {
    stream_begin(c);
    sbuf e = {0};
    sbuf_str(&e, "event: result\ndata: ");
    sbuf_add(&e, b.p, b.len);
    sbuf_str(&e, "\n\n");
    if (!e.oom) http_stream_write(c->r, e.p, e.len);
    sbuf_free(&e);
    http_stream_end(c->r);
  } else {
    reply_json(c->r, queued ? 202 : 200, &b);
  }
  sbuf_free(&b);
  chat_finish(c);
}

static void chat_start(chat_ctx *c) {
  if (session_deleted(c->se)) {
    chat_fail(c, 404, "session deleted");
    return;
  }
  chat_request req = {c->message, session_conversation(c->se), c->guaranteed};
  int rc = backend_chat(c->s->be, &req, on_text, on_done, c);
  if (rc != 0) chat_fail(c, 503, "service unavailable");
}

void api_chat(server *s, http_req *r, const char *param) {
  size_t len;
  const char *body = http_req_body(r, &len);
  (void)param;
  cJSON *j = cJSON_ParseWithLength(body, len);
  if (j == NULL || !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    reply_error(r, 400, "the body must be a JSON object");
    return;
  }
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
  const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "session_id");
  const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "guaranteed");
  const char *why = NULL;
  if (msg == NULL) why = "missing field: message";
  else if (!cJSON_IsString(msg)) why = "message must be a string";
  else if (msg->valuestring[0] == '\0') why = "message must not be empty";
  else if (!utf8_valid(msg->valuestring)) why = "message must be valid UTF-8";
  else if (sid && !cJSON_IsNull(sid) && !cJSON_IsString(sid)) why = "session_id must be a string";
  else if (g && !cJSON_IsNull(g) && !cJSON_IsBool(g)) why = "guaranteed must be a boolean";
  if (why) {
    cJSON_Delete(j);
    reply_error(r, 400, why);
    return;
  }
  int guaranteed = g && cJSON_IsTrue(g);
  if (guaranteed && !backend_has_outbox(s->be)) {
    cJSON_Delete(j);
    reply_error(r, 400, "guaranteed delivery is not enabled on this server (--db)");
    return;
  }
  session *se;
  if (sid && cJSON_IsString(sid)) {
    se = session_find(s->sessions, sid->valuestring);
    if (se == NULL) {
      cJSON_Delete(j);
      reply_error(r, 404, "unknown session_id");
      return;
    }
  } else {
    se = session_create(s->sessions, wall_ms());
    if (se == NULL) {
      cJSON_Delete(j);
      http_header h[1] = {{"Retry-After", "1"}};
      reply_error_hdr(r, 503, "too many sessions", h, 1);
      return;
    }
  }
  chat_ctx *c = calloc(1, sizeof(*c));
  char *m = strdup(msg->valuestring);
  cJSON_Delete(j);
  if (c == NULL || m == NULL) {
    free(c);
    free(m);
    reply_error(r, 500, "out of memory");
    return;
  }
  const char *accept = http_req_header(r, "Accept");
  c->s = s;
  c->r = r;
  c->se = se;
  c->message = m;
  c->guaranteed = guaranteed;
  c->sse = !guaranteed && accept && strstr(accept, "text/event-stream") != NULL;
  session_ref(se);
  s->inflight++;
  http_defer(r);
  int go = session_enter(se, c);
  if (go == 1) {
    chat_start(c);
  } else if (go < 0) {
    /* Not entered: undo by hand (chat_finish would leave the session). */
    http_header h[1] = {{"Retry-After", "1"}};
    reply_error_hdr(r, 503, "too many requests waiting on this session", h, 1);
    s->inflight--;
    session_unref(se);
    free(c->message);
    free(c);
  }
}
