/* Health, metrics, management endpoints, recent events, the status page. */
#include <stdlib.h>
#include <string.h>

#include "server.h"

void api_health_detailed(server *s, http_req *r, const char *param) {
  (void)param;
  sbuf b = {0};
  backend_health_detailed(s->be, &b);
  reply_json(r, 200, &b);
  sbuf_free(&b);
}

void api_health_stability(server *s, http_req *r, const char *param) {
  (void)param;
  sbuf b = {0};
  backend_health_stability(s->be, &b);
  reply_json(r, 200, &b);
  sbuf_free(&b);
}

static int wants_prometheus(http_req *r) {
  const char *f = http_req_query(r, "format");
  if (f) return strcmp(f, "prometheus") == 0;
  const char *a = http_req_header(r, "Accept");
  /* text/plain (Prometheus' own scrapes send it), unless JSON comes first. */
  if (a == NULL) return 0;
  const char *tp = strstr(a, "text/plain"), *js = strstr(a, "application/json");
  return tp && (js == NULL || tp < js);
}

void api_metrics(server *s, http_req *r, const char *param) {
  (void)param;
  sbuf b = {0};
  if (wants_prometheus(r)) {
    backend_metrics_prometheus(s->be, &b);
    if (b.oom) {
      reply_error(r, 500, "out of memory");
    } else {
      http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "", b.len,
                   NULL, 0);
    }
  } else {
    backend_metrics_json(s->be, &b);
    reply_json(r, 200, &b);
  }
  sbuf_free(&b);
}

void api_health(server *s, http_req *r, const char *param) {
  (void)param;
  sbuf b = {0};
  int failing = 0;
  backend_health_json(s->be, &b, &failing);
  if (b.oom) {
    reply_error(r, 500, "out of memory");
  } else {
    http_header h[1] = {{"Cache-Control", "no-cache"}};
    http_respond(r, failing ? 503 : 200, "application/health+json", b.p, b.len, h, 1);
  }
  sbuf_free(&b);
}

void api_livez(server *s, http_req *r, const char *param) {
  (void)s;
  (void)param;
  reply_json_str(r, 200, "{\"status\":\"ok\"}");
}

void api_readyz(server *s, http_req *r, const char *param) {
  (void)param;
  if (s->shutting_down)
    reply_json_str(r, 503, "{\"status\":\"shutting_down\"}");
  else if (!backend_ready(s->be))
    reply_json_str(r, 503, "{\"status\":\"not_ready\"}");
  else
    reply_json_str(r, 200, "{\"status\":\"ready\"}");
}

void api_breaker_reset(server *s, http_req *r, const char *param) {
  if (backend_reset_breaker(s->be, param) != 0) {
    reply_error(r, 404, "unknown circuit breaker");
    return;
  }
  clink_event_field f[1] = {{"circuit_name", CLINK_FIELD_STRING, param, 0, 0}};
  server_event(s, CLINK_LOG_WARNING, "circuit_breaker_reset", f, 1);
  sbuf b = {0};
  sbuf_str(&b, "{\"circuit_breaker\":");
  sbuf_json_str(&b, param);
  sbuf_str(&b, ",\"state\":\"closed\"}");
  reply_json(r, 200, &b);
  sbuf_free(&b);
}

void api_cache_clear(server *s, http_req *r, const char *param) {
  (void)param;
  uint64_t n = backend_clear_cache(s->be);
  clink_event_field f[1] = {{"cleared", CLINK_FIELD_INT, NULL, (int64_t)n, 0}};
  server_event(s, CLINK_LOG_WARNING, "fallback_cache_cleared", f, 1);
  sbuf b = {0};
  sbuf_printf(&b, "{\"cleared\":%llu}", (unsigned long long)n);
  reply_json(r, 200, &b);
  sbuf_free(&b);
}

void api_events(server *s, http_req *r, const char *param) {
  (void)param;
  const char *since = http_req_query(r, "since");
  uint64_t from = since ? strtoull(since, NULL, 10) : 0;
  sbuf b = {0};
  event_ring_render(s->ring, from, &b);
  reply_json(r, 200, &b);
  sbuf_free(&b);
}

void api_status_page(server *s, http_req *r, const char *param) {
  (void)s;
  (void)param;
  http_header h[2] = {{"Cache-Control", "no-cache"},
                      {"Content-Security-Policy",
                       "default-src 'none'; script-src 'unsafe-inline'; style-src "
                       "'unsafe-inline'; connect-src 'self'; img-src data:"}};
  http_respond(r, 200, "text/html; charset=utf-8", server_status_html, server_status_html_len, h,
               2);
}
