/* claudelink-server: the pieces and the one struct that ties them. */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <claudelink.h>

#include "backend.h"
#include "config.h"
#include "http.h"
#include "sbuf.h"

typedef struct session session;
typedef struct session_table session_table;
typedef struct event_ring event_ring;

typedef struct server {
  uv_loop_t *loop;
  server_config cfg;
  http_server *http;
  backend *be;
  clink_events *events;
  event_ring *ring;
  session_table *sessions;
  unsigned inflight; /* requests waiting on the backend */
  int shutting_down;
  uv_signal_t sigterm, sigint;
  uv_timer_t shutdown_timer;
  int exit_code;
  char listen_url[300];
} server;

/* ---- events: a bounded ring of the last events, for the status page */
int event_ring_new(event_ring **out, size_t capacity);
void event_ring_free(event_ring *ring);
/* The sink's callback (ud: the ring). */
void event_ring_on_event(clink_events *sink, const clink_event *ev, void *ud);
/* {"next":SEQ,"dropped":N,"events":[...]}: events with seq >= since. */
void event_ring_render(const event_ring *ring, uint64_t since, sbuf *out);
/* An event of the server's own (component "http_server"). */
void server_event(server *s, clink_log_level level, const char *event,
                  const clink_event_field *fields, size_t n);

/* ---- sessions: the server's conversations (id -> CLI conversation) */
#define SESSION_ID_MAX 64
typedef struct chat_ctx chat_ctx;
int session_table_new(session_table **out, unsigned max_sessions);
void session_table_free(session_table *t);
/* A new session with a fresh id; NULL when full of busy sessions. */
session *session_create(session_table *t, uint64_t now_ms);
session *session_find(session_table *t, const char *id);
/* Removes it (the chats waiting on it fail with 404 as they come up). */
int session_delete(session_table *t, const char *id);
const char *session_id(const session *se);
const char *session_conversation(const session *se);
void session_set_conversation(session *se, const char *conversation);
/* {"session_id","created","last_used","turns","busy"} */
void session_render(const session *se, sbuf *out);
/* Every session, most recent first, up to max. */
void session_render_list(const session_table *t, sbuf *out, size_t max);
/* One chat at a time per session: returns 1 when the caller may run now,
 * 0 when queued (session_next() hands it over later), -1 when the queue
 * is full. */
int session_enter(session *se, chat_ctx *c);
/* The running chat ended: the next one waiting, or NULL. */
chat_ctx *session_leave(session *se, uint64_t now_ms);
/* A reference for a chat in flight. */
void session_ref(session *se);
void session_unref(session *se);
int session_deleted(const session *se);

/* ---- routing and the endpoints */
void router_dispatch(server *s, http_req *r);
/* Constant-time check of the bearer token (1: allowed). */
int admin_allowed(server *s, http_req *r);

/* JSON answers. */
void reply_json(http_req *r, unsigned status, const sbuf *body);
void reply_json_str(http_req *r, unsigned status, const char *json);
void reply_error(http_req *r, unsigned status, const char *message);
void reply_error_hdr(http_req *r, unsigned status, const char *message, const http_header *hdrs,
                     size_t n);

void api_chat(server *s, http_req *r, const char *param);
void api_sessions_create(server *s, http_req *r, const char *param);
void api_sessions_list(server *s, http_req *r, const char *param);
void api_sessions_delete(server *s, http_req *r, const char *param);
void api_outbox_get(server *s, http_req *r, const char *param);
void api_health(server *s, http_req *r, const char *param);
void api_health_detailed(server *s, http_req *r, const char *param);
void api_health_stability(server *s, http_req *r, const char *param);
void api_metrics(server *s, http_req *r, const char *param);
void api_livez(server *s, http_req *r, const char *param);
void api_readyz(server *s, http_req *r, const char *param);
void api_breaker_reset(server *s, http_req *r, const char *param);
void api_cache_clear(server *s, http_req *r, const char *param);
void api_events(server *s, http_req *r, const char *param);
void api_status_page(server *s, http_req *r, const char *param);

/* The status page, embedded at build time (status-page.c is generated). */
extern const char server_status_html[];
extern const size_t server_status_html_len;

#endif
