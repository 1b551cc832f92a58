/* HTTP on the host's libuv loop, with libmicrohttpd in external-epoll mode.
 *
 * MHD parses HTTP; this file only drives it from the loop: a uv_poll on
 * MHD's epoll fd, a uv_timer armed from MHD_get_timeout(), MHD_run() when
 * either fires. No MHD thread exists. A request whose answer waits on
 * something else (the pool) is deferred: its connection is suspended
 * (MHD_suspend_connection) and resumed when the answer is ready, then MHD
 * runs again at once. Streams (Server-Sent Events) are callback responses
 * whose reader suspends the connection while it has nothing to send.
 *
 * Lifetime: the request handler runs once per request, when its headers and
 * whole body are in. It answers at once (http_respond) or calls
 * http_defer() and answers later, exactly once, with http_respond() or a
 * stream (http_stream_begin ... http_stream_end). Until that final answer
 * the request stays allocated even if its client went away (every call is
 * then a no-op). Every call is made on the loop's thread. */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_server http_server;
typedef struct http_req http_req;

typedef struct http_header {
  const char *name, *value;
} http_header;

typedef struct http_limits {
  size_t max_body;           /* bytes; more is 413 */
  unsigned conn_timeout_s;   /* idle connection / slow client cut (MHD) */
  uint64_t body_deadline_ms; /* a body must arrive within this */
  unsigned max_connections;
  size_t header_memory; /* MHD's per-connection memory: bounds the headers */
} http_limits;

/* The request is complete (headers and body). */
typedef void (*http_handler_fn)(http_req *r, void *ud);
/* The request is over (answered and sent, or the client went away):
 * status is what was queued (0 when nothing was), for the request meter. */
typedef void (*http_completed_fn)(http_req *r, unsigned status, uint64_t duration_us,
                                  void *ud);
/* A line for the log (MHD's own messages). */
typedef void (*http_log_fn)(const char *msg, void *ud);
typedef void (*http_stopped_fn)(http_server *s, void *ud);

/* Binds host:port (port 0: any free port) and starts serving on loop.
 * err gets a one-line reason on failure. */
int http_server_start(http_server **out, uv_loop_t *loop, const char *host, int port,
                      const http_limits *limits, http_handler_fn handler,
                      http_completed_fn completed, http_log_fn log, void *ud, char *err,
                      size_t errlen);
/* The port really bound. */
int http_server_port(const http_server *s);
/* Stops accepting: the listening socket is closed; requests that arrive
 * on open connections get 503 with Connection: close. */
void http_server_quiesce(http_server *s);
/* Requests deferred and not yet finally answered by the app. */
size_t http_server_pending(const http_server *s);
/* Requests not yet completed by MHD (their answer not fully sent). */
size_t http_server_active(const http_server *s);
/* Answers every deferred request that has no answer yet with 503 and ends
 * every open stream (their app calls become no-ops). */
void http_server_abort_pending(http_server *s);
/* Stops MHD (every connection closed) and closes the uv handles; cb runs
 * from the loop, then s is freed. Call after the pending requests ended
 * (or were aborted). */
void http_server_stop(http_server *s, http_stopped_fn cb, void *ud);

/* ---- the request (valid until its final answer; see above) */
const char *http_req_method(const http_req *r);
const char *http_req_path(const http_req *r);
/* A request header, a query argument (only inside the handler). */
const char *http_req_header(const http_req *r, const char *name);
const char *http_req_query(const http_req *r, const char *name);
const char *http_req_body(const http_req *r, size_t *len);
/* The client is gone (its answer would go nowhere). */
int http_req_gone(const http_req *r);
void http_req_set_data(http_req *r, void *data);
void *http_req_get_data(const http_req *r);

/* Answer later: the app owns one reference until its final answer. Only
 * inside the handler. */
void http_defer(http_req *r);
/* The final answer: status, content type, body (copied), extra headers. */
void http_respond(http_req *r, unsigned status, const char *ctype, const char *body,
                  size_t len, const http_header *hdrs, size_t n_hdrs);
/* Streams: begin (status and headers now), write chunks, end (the final
 * answer). Writes are buffered and sent as the client reads. */
void http_stream_begin(http_req *r, unsigned status, const char *ctype, const http_header *hdrs,
                       size_t n_hdrs);
void http_stream_write(http_req *r, const char *data, size_t len);
void http_stream_end(http_req *r);
/* Bytes written to the stream and not yet sent. */
size_t http_stream_buffered(const http_req *r);

#endif
