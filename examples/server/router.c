/* Routing: path patterns with at most one {parameter} segment, methods,
 * 404 / 405 (with Allow), the admin token, and the in-flight limit. */
#include <stdio.h>
#include <string.h>

#include "server.h"

enum { M_GET = 1, M_POST = 2, M_DELETE = 4 };
enum {
  R_ADMIN = 1,  /* needs the bearer token when one is set */
  R_LIMITED = 2 /* waits on the backend: counted against the in-flight limit */
};

typedef void (*route_fn)(server *s, http_req *r, const char *param);

typedef struct route {
  const char *pattern; /* "{}" stands for one segment */
  unsigned method;
  route_fn fn;
  unsigned flags;
  const char *name; /* for the request meter */
} route;

static const route routes[] = {
    {"/", M_GET, api_status_page, 0, "status_page"},
    {"/chat", M_POST, api_chat, R_LIMITED, "chat"},
    {"/sessions", M_POST, api_sessions_create, 0, "sessions_create"},
    {"/sessions", M_GET, api_sessions_list, 0, "sessions_list"},
    {"/sessions/{}", M_DELETE, api_sessions_delete, R_ADMIN, "sessions_delete"},
    {"/outbox/{}", M_GET, api_outbox_get, R_LIMITED, "outbox_get"},
    {"/health", M_GET, api_health, 0, "health"},
    {"/health/detailed", M_GET, api_health_detailed, 0, "health_detailed"},
    {"/health/stability", M_GET, api_health_stability, 0, "health_stability"},
    {"/metrics", M_GET, api_metrics, 0, "metrics"},
    {"/livez", M_GET, api_livez, 0, "livez"},
    {"/readyz", M_GET, api_readyz, 0, "readyz"},
    {"/health/circuit-breaker/{}/reset", M_POST, api_breaker_reset, R_ADMIN, "breaker_reset"},
    {"/health/fallback-cache/clear", M_POST, api_cache_clear, R_ADMIN, "cache_clear"},
    {"/events", M_GET, api_events, 0, "events"},
};

#define PARAM_MAX 256

/* 1 when path matches pattern; the {} segment is copied to param. */
static int match(const char *pattern, const char *path, char param[PARAM_MAX]) {
  param[0] = '\0';
  while (*pattern && *path) {
    if (pattern[0] == '{' && pattern[1] == '}') {
      const char *end = strchr(path, '/');
      size_t n = end ? (size_t)(end - path) : strlen(path);
      if (n == 0 || n >= PARAM_MAX) return 0;
      memcpy(param, path, n);
      param[n] = '\0';
      path += n;
      pattern += 2;
      continue;
    }
    if (*pattern != *path) return 0;
    pattern++;
    path++;
  }
  return *pattern == '\0' && *path == '\0';
}

static unsigned method_bit(const char *m) {
  if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) return M_GET;
  if (strcmp(m, "POST") == 0) return M_POST;
  if (strcmp(m, "DELETE") == 0) return M_DELETE;
  return 0;
}

/* Constant time in the token's length: the comparison never stops early. */
static int ct_equal(const char *given, size_t glen, const char *secret, size_t slen) {
  volatile unsigned char diff = (unsigned char)(glen != slen);
  for (size_t i = 0; i < slen; i++) {
    unsigned char g = glen ? (unsigned char)given[i % glen] : 0;
    diff |= (unsigned char)(g ^ (unsigned char)secret[i]);
  }
  return diff == 0;
}

int admin_allowed(server *s, http_req *r) {
  const char *token = s->cfg.admin_token;
  if (token == NULL || *token == '\0') return 1;
  const char *h = http_req_header(r, "Authorization");
  if (h == NULL || strncmp(h, "Bearer ", 7) != 0) return 0;
  h += 7;
  return ct_equal(h, strlen(h), token, strlen(token));
}

void router_dispatch(server *s, http_req *r) {
  const char *path = http_req_path(r);
  unsigned m = method_bit(http_req_method(r));
  unsigned allowed = 0;
  char param[PARAM_MAX];
  const route *hit = NULL;
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
    if (!match(routes[i].pattern, path, param)) continue;
    allowed |= routes[i].method;
    if (routes[i].method == m) {
      hit = &routes[i];
      break;
    }
  }
  if (hit == NULL && allowed == 0) {
    http_req_set_data(r, (void *)"not_found");
    reply_error(r, 404, "not found");
    return;
  }
  if (hit == NULL) {
    char allow[64] = "";
    if (allowed & M_GET) strcat(allow, "GET, HEAD");
    if (allowed & M_POST) strcat(allow, *allow ? ", POST" : "POST");
    if (allowed & M_DELETE) strcat(allow, *allow ? ", DELETE" : "DELETE");
    http_header h[1] = {{"Allow", allow}};
    http_req_set_data(r, (void *)"method_not_allowed");
    reply_error_hdr(r, 405, "method not allowed", h, 1);
    return;
  }
  /* Re-match to get this route's parameter (the loop may have moved on). */
  match(hit->pattern, path, param);
  http_req_set_data(r, (void *)hit->name);
  if ((hit->flags & R_ADMIN) && !admin_allowed(s, r)) {
    http_header h[1] = {{"WWW-Authenticate", "Bearer realm=\"claudelink-server\""}};
    reply_error_hdr(r, 401, "unauthorized: this endpoint needs the admin token", h, 1);
    return;
  }
  if ((hit->flags & R_LIMITED) && s->inflight >= s->cfg.max_inflight) {
    http_header h[1] = {{"Retry-After", "1"}};
    reply_error_hdr(r, 503, "too many requests in flight", h, 1);
    return;
  }
  hit->fn(s, r, param);
}

/* ---------------------------------------------------------- JSON answers */

void reply_json(http_req *r, unsigned status, const sbuf *body) {
  if (body->oom) {
    http_respond(r, 500, "application/json", "{\"error\":\"out of memory\",\"status\":500}", 39,
                 NULL, 0);
    return;
  }
  http_respond(r, status, "application/json", body->p ? body->p : "", body->len, NULL, 0);
}

void reply_json_str(http_req *r, unsigned status, const char *json) {
  http_respond(r, status, "application/json", json, strlen(json), NULL, 0);
}

void reply_error_hdr(http_req *r, unsigned status, const char *message, const http_header *hdrs,
                     size_t n) {
  sbuf b = {0};
  sbuf_str(&b, "{\"error\":");
  sbuf_json_str(&b, message);
  sbuf_printf(&b, ",\"status\":%u}", status);
  http_respond(r, status, "application/json", b.p ? b.p : "{}", b.p ? b.len : 2, hdrs, n);
  sbuf_free(&b);
}

void reply_error(http_req *r, unsigned status, const char *message) {
  reply_error_hdr(r, status, message, NULL, 0);
}
