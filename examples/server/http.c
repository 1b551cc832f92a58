/* HTTP on the host's libuv loop: libmicrohttpd in external-epoll mode.
 * See http.h for the contract. */
#include "http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Discarded past the body limit before the connection is simply cut. */
#define DISCARD_FACTOR 4
/* A stream whose client reads slower than this much piles up is cut. */
#define STREAM_BUFFER_MAX ((size_t)16 << 20)

struct http_server {
  uv_loop_t *loop;
  struct MHD_Daemon *d;
  uv_poll_t poll;
  uv_timer_t timer;
  int handles_open;
  http_limits lim;
  http_handler_fn handler;
  http_completed_fn completed;
  http_log_fn log;
  void *ud;
  int port;
  int in_run, rerun;
  int draining;
  size_t pending; /* requests the app holds */
  size_t active;  /* requests MHD has not completed */
  http_req *deferred; /* app-held requests, for abort at shutdown */
  http_stopped_fn stopped_cb;
  void *stopped_ud;
};

struct http_req {
  http_server *s;
  struct MHD_Connection *conn; /* NULL once MHD is done with it */
  char method[16];
  char *path;
  uint64_t start_us;
  char *body;
  size_t body_len, body_cap, discarded;
  int too_large;
  int in_handler, app_ref, mhd_ref;
  int answered; /* the final answer (or a stream) is queued or pending */
  int suspended;
  unsigned status;
  struct MHD_Response *pending_resp; /* queued when the handler is re-entered */
  void *data;
  /* streams */
  int streaming, stream_ended, stream_aborted;
  char *out;
  size_t out_len, out_off, out_cap;
  http_req *prev, *next; /* s->deferred */
};

/* ------------------------------------------------------------ the loop */

static void run_mhd(http_server *s);

static void on_timer(uv_timer_t *t) { run_mhd(t->data); }

static void arm(http_server *s) {
  MHD_UNSIGNED_LONG_LONG t;
  if (s->d == NULL) return;
  if (MHD_get_timeout(s->d, &t) == MHD_YES)
    uv_timer_start(&s->timer, on_timer, (uint64_t)t, 0);
  else
    uv_timer_stop(&s->timer);
}

static void run_mhd(http_server *s) {
  if (s->d == NULL) return;
  if (s->in_run) {
    s->rerun = 1;
    return;
  }
  s->in_run = 1;
  do {
    s->rerun = 0;
    MHD_run(s->d);
  } while (s->rerun && s->d);
  s->in_run = 0;
  arm(s);
}

/* Something changed outside MHD_run (a resume): run again soon, from the
 * loop (never from inside the caller's stack). */
static void kick(http_server *s) {
  if (s->d == NULL) return;
  if (s->in_run)
    s->rerun = 1;
  else
    uv_timer_start(&s->timer, on_timer, 0, 0);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  run_mhd(p->data);
}

/* ------------------------------------------------------------ requests */

static void req_link(http_req *r) {
  http_server *s = r->s;
  r->prev = NULL;
  r->next = s->deferred;
  if (s->deferred) s->deferred->prev = r;
  s->deferred = r;
  s->pending++;
}

static void req_unlink(http_req *r) {
  http_server *s = r->s;
  if (r->prev)
    r->prev->next = r->next;
  else
    s->deferred = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  s->pending--;
}

static void req_free(http_req *r) {
  if (r->pending_resp) MHD_destroy_response(r->pending_resp);
  free(r->path);
  free(r->body);
  free(r->out);
  free(r);
}

static void req_maybe_free(http_req *r) {
  if (!r->app_ref && !r->mhd_ref) req_free(r);
}

/* The app's final answer was given: drop its reference. */
static void app_release(http_req *r) {
  if (!r->app_ref) return;
  r->app_ref = 0;
  if (r->s) req_unlink(r);
  req_maybe_free(r);
}

static struct MHD_Response *make_response(const char *ctype, const char *body, size_t len,
                                          const http_header *hdrs, size_t n_hdrs) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
  if (resp == NULL) return NULL;
  if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  for (size_t i = 0; i < n_hdrs; i++) MHD_add_response_header(resp, hdrs[i].name, hdrs[i].value);
  return resp;
}

/* Queues resp now (inside the handler) or after the resume. Takes resp. */
static void deliver(http_req *r, unsigned status, struct MHD_Response *resp) {
  http_server *s = r->s;
  r->answered = 1;
  r->status = status;
  if (resp == NULL) return; /* out of memory: MHD answers 500 or closes */
  if (s->draining) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  if (r->in_handler || !r->suspended) {
    MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return;
  }
  /* Suspended: resume; MHD calls the handler again, which queues it. */
  r->pending_resp = resp;
  r->suspended = 0;
  MHD_resume_connection(r->conn);
  kick(s);
}

static int parse_size(const char *v, uint64_t *out) {
  char *end;
  if (v == NULL || *v < '0' || *v > '9') return -1;
  unsigned long long n = strtoull(v, &end, 10);
  if (*end != '\0') return -1;
  *out = n;
  return 0;
}

static void answer_now(http_req *r, unsigned status, const char *json, int close_conn) {
  http_header h[1] = {{MHD_HTTP_HEADER_CONNECTION, "close"}};
  deliver(r, status, make_response("application/json", json, strlen(json), h, close_conn ? 1 : 0));
}

static const char too_large_json[] =
    "{\"error\":\"request body too large\",\"status\":413}";

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **con_cls) {
  http_server *s = cls;
  http_req *r = *con_cls;
  (void)version;
  if (r == NULL) {
    r = calloc(1, sizeof(*r));
    if (r == NULL) return MHD_NO;
    r->s = s;
    r->conn = c;
    r->mhd_ref = 1;
    s->active++;
    r->start_us = uv_hrtime() / 1000;
    snprintf(r->method, sizeof(r->method), "%s", method);
    r->path = strdup(url);
    if (r->path == NULL) {
      free(r);
      return MHD_NO;
    }
    *con_cls = r;
    if (s->draining) {
      answer_now(r, 503, "{\"error\":\"shutting down\",\"status\":503}", 1);
      return MHD_YES;
    }
    uint64_t cl;
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (v && parse_size(v, &cl) == 0 && cl > s->lim.max_body) {
      answer_now(r, 413, too_large_json, 1);
      r->too_large = 1;
    }
    return MHD_YES;
  }
  if (r->pending_resp) {
    struct MHD_Response *resp = r->pending_resp;
    r->pending_resp = NULL;
    MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return MHD_YES;
  }
  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (s->lim.body_deadline_ms && uv_hrtime() / 1000 - r->start_us > s->lim.body_deadline_ms * 1000)
      return MHD_NO; /* too slow: cut */
    if (r->too_large || r->body_len + n > s->lim.max_body) {
      r->too_large = 1;
      r->discarded += n;
      return r->discarded > DISCARD_FACTOR * s->lim.max_body ? MHD_NO : MHD_YES;
    }
    if (r->body_len + n + 1 > r->body_cap) {
      size_t cap = r->body_cap ? r->body_cap : 1024;
      while (cap < r->body_len + n + 1) cap *= 2;
      char *b = realloc(r->body, cap);
      if (b == NULL) return MHD_NO;
      r->body = b;
      r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, upload_data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return MHD_YES;
  }
  if (r->answered || r->app_ref) return MHD_YES;
  if (r->too_large) {
    answer_now(r, 413, too_large_json, 1);
    return MHD_YES;
  }
  r->in_handler = 1;
  s->handler(r, s->ud);
  r->in_handler = 0;
  if (!r->answered) {
    if (r->app_ref) {
      MHD_suspend_connection(c);
      r->suspended = 1;
    } else {
      answer_now(r, 500, "{\"error\":\"internal error\",\"status\":500}", 0);
    }
  }
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  http_server *s = cls;
  http_req *r = *con_cls;
  (void)c;
  (void)toe;
  if (r == NULL) return;
  *con_cls = NULL;
  s->active--;
  r->conn = NULL;
  r->mhd_ref = 0;
  r->suspended = 0;
  if (s->completed) s->completed(r, r->status, uv_hrtime() / 1000 - r->start_us, s->ud);
  req_maybe_free(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  http_server *s = cls;
  char buf[512];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  size_t n = strlen(buf);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
  if (s->log) s->log(buf, s->ud);
}

/* Percent-decoding of the path and query (MHD's own, except that %00
 * stays as it is: a NUL would silently cut the path short). */
static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s) {
  char *w = s;
  (void)cls;
  (void)c;
  for (const char *p = s; *p; p++) {
    int hi, lo;
    if (p[0] == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0 && (hi | lo)) {
      *w++ = (char)(hi * 16 + lo);
      p += 2;
    } else {
      *w++ = *p;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

/* ------------------------------------------------------------- streams */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  http_req *r = cls;
  (void)pos;
  if (r->stream_aborted) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (r->out_off < r->out_len) {
    size_t n = r->out_len - r->out_off;
    if (n > max) n = max;
    memcpy(buf, r->out + r->out_off, n);
    r->out_off += n;
    if (r->out_off == r->out_len) r->out_off = r->out_len = 0;
    return (ssize_t)n;
  }
  if (r->stream_ended) return MHD_CONTENT_READER_END_OF_STREAM;
  /* Nothing to send yet: park the connection until the next write. */
  MHD_suspend_connection(r->conn);
  r->suspended = 1;
  return 0;
}

static void stream_wake(http_req *r) {
  if (r->conn && r->suspended && r->pending_resp == NULL) {
    r->suspended = 0;
    MHD_resume_connection(r->conn);
    kick(r->s);
  }
}

void http_stream_begin(http_req *r, unsigned status, const char *ctype, const http_header *hdrs,
                       size_t n_hdrs) {
  if (r->answered || r->streaming) return;
  r->streaming = 1;
  if (r->conn == NULL) return;
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, r, NULL);
  if (resp) {
    if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (size_t i = 0; i < n_hdrs; i++)
      MHD_add_response_header(resp, hdrs[i].name, hdrs[i].value);
  }
  deliver(r, status, resp);
}

void http_stream_write(http_req *r, const char *data, size_t len) {
  if (!r->streaming || r->stream_ended || r->conn == NULL || r->stream_aborted) return;
  if (r->out_len - r->out_off + len > STREAM_BUFFER_MAX) {
    r->stream_aborted = 1;
    stream_wake(r);
    return;
  }
  if (r->out_len + len > r->out_cap) {
    size_t cap = r->out_cap ? r->out_cap : 4096;
    while (cap < r->out_len + len) cap *= 2;
    char *o = realloc(r->out, cap);
    if (o == NULL) {
      r->stream_aborted = 1;
      stream_wake(r);
      return;
    }
    r->out = o;
    r->out_cap = cap;
  }
  memcpy(r->out + r->out_len, data, len);
  r->out_len += len;
  stream_wake(r);
}

void http_stream_end(http_req *r) {
  if (r->streaming && !r->stream_ended) {
    r->stream_ended = 1;
    stream_wake(r);
  }
  app_release(r);
}

size_t http_stream_buffered(const http_req *r) { return r->out_len - r->out_off; }

/* --------------------------------------------------------- the request */

const char *http_req_method(const http_req *r) { return r->method; }
const char *http_req_path(const http_req *r) { return r->path; }
const char *http_req_header(const http_req *r, const char *name) {
  return r->conn ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) : NULL;
}
const char *http_req_query(const http_req *r, const char *name) {
  return r->conn ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}
const char *http_req_body(const http_req *r, size_t *len) {
  *len = r->body_len;
  return r->body ? r->body : "";
}
int http_req_gone(const http_req *r) { return r->conn == NULL; }
void http_req_set_data(http_req *r, void *data) { r->data = data; }
void *http_req_get_data(const http_req *r) { return r->data; }

void http_defer(http_req *r) {
  if (r->app_ref || r->answered) return;
  r->app_ref = 1;
  req_link(r);
}

void http_respond(http_req *r, unsigned status, const char *ctype, const char *body, size_t len,
                  const http_header *hdrs, size_t n_hdrs) {
  if (!r->answered && !r->streaming && r->conn)
    deliver(r, status, make_response(ctype, body, len, hdrs, n_hdrs));
  else
    r->answered = 1;
  app_release(r);
}

/* -------------------------------------------------------------- server */

int http_server_start(http_server **out, uv_loop_t *loop, const char *host, int port,
                      const http_limits *limits, http_handler_fn handler,
                      http_completed_fn completed, http_log_fn log, void *ud, char *err,
                      size_t errlen) {
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  char portstr[16];
  snprintf(portstr, sizeof(portstr), "%d", port);
  int gai = getaddrinfo(host, portstr, &hints, &ai);
  if (gai != 0 || ai == NULL) {
    snprintf(err, errlen, "cannot resolve host %s: %s", host, gai_strerror(gai));
    return -1;
  }
  http_server *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    freeaddrinfo(ai);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  s->loop = loop;
  s->lim = *limits;
  s->handler = handler;
  s->completed = completed;
  s->log = log;
  s->ud = ud;
  unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                       MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_access, s,
                          MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)limits->conn_timeout_s,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned int)limits->max_connections,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)limits->header_memory,
                          MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                          MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                          MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL,
                          MHD_OPTION_END);
  freeaddrinfo(ai);
  if (s->d == NULL) {
    snprintf(err, errlen, "cannot listen on %s:%d (address in use, or not available)", host,
             port);
    free(s);
    return -1;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
  int efd = info ? info->epoll_fd : -1;
  info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : port;
  if (efd < 0 || uv_poll_init(loop, &s->poll, efd) != 0) {
    snprintf(err, errlen, "cannot watch the HTTP daemon's epoll fd");
    MHD_stop_daemon(s->d);
    free(s);
    return -1;
  }
  uv_timer_init(loop, &s->timer);
  s->poll.data = s;
  s->timer.data = s;
  s->handles_open = 2;
  uv_poll_start(&s->poll, UV_READABLE, on_poll);
  arm(s);
  *out = s;
  return 0;
}

int http_server_port(const http_server *s) { return s->port; }

void http_server_quiesce(http_server *s) {
  if (s->draining || s->d == NULL) return;
  s->draining = 1;
  MHD_socket fd = MHD_quiesce_daemon(s->d);
  if (fd != MHD_INVALID_SOCKET) close(fd);
  kick(s);
}

size_t http_server_pending(const http_server *s) { return s->pending; }
size_t http_server_active(const http_server *s) { return s->active; }

void http_server_abort_pending(http_server *s) {
  for (http_req *r = s->deferred; r; r = r->next) {
    if (r->streaming) {
      if (!r->stream_ended) {
        r->stream_aborted = 1;
        stream_wake(r);
      }
    } else if (!r->answered && r->conn) {
      answer_now(r, 503, "{\"error\":\"shutting down\",\"status\":503}", 1);
    }
  }
}

static void on_handle_closed(uv_handle_t *h) {
  http_server *s = h->data;
  if (--s->handles_open) return;
  if (s->stopped_cb) s->stopped_cb(s, s->stopped_ud);
  /* Requests the app still holds keep their memory until their answer. */
  for (http_req *r = s->deferred; r; r = r->next) r->s = NULL;
  free(s);
}

void http_server_stop(http_server *s, http_stopped_fn cb, void *ud) {
  s->stopped_cb = cb;
  s->stopped_ud = ud;
  /* MHD must never be stopped with suspended connections: resume them. */
  for (http_req *r = s->deferred; r; r = r->next)
    if (r->suspended && r->conn) {
      r->suspended = 0;
      MHD_resume_connection(r->conn);
    }
  if (s->d) {
    MHD_run(s->d);
    struct MHD_Daemon *d = s->d;
    s->d = NULL;
    MHD_stop_daemon(d);
  }
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
  uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}
