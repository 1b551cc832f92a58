/* claudelink-server: the seed's "Claude Chat API" on libclaudelink.
 *
 *   claudelink-server [--cli PATH] [--host H] [--port P] [--pool-min N]
 *                     [--pool-max N] [--db PATH] [--mock-response TEXT]
 *                     [--alt-env NAME=VALUE]... [--alt-model M]
 *
 * Environment: HOST (default 127.0.0.1), PORT (default 8989), LOG_LEVEL
 * (DEBUG, INFO, WARNING, ERROR, CRITICAL; default INFO),
 * CLAUDELINK_ADMIN_TOKEN (the bearer token of the management endpoints).
 * Flags win over the environment; --port 0 picks a free port. Limits, for
 * tuning (positive integers): CLAUDELINK_MAX_BODY_BYTES (1 MiB),
 * CLAUDELINK_MAX_INFLIGHT (256 requests waiting on the pool),
 * CLAUDELINK_REQUEST_TIMEOUT_S (30: idle or slow connections are cut),
 * CLAUDELINK_MAX_CONNECTIONS (1000), CLAUDELINK_MAX_SESSIONS (10000),
 * CLAUDELINK_SHUTDOWN_TIMEOUT_S (30: in-flight requests get this long).
 * CLAUDELINK_ISOLATE=1: a CLI process serves one conversation (a new chat
 * never lands on a process holding another's turns; see README.md).
 *
 * When ready, the first line on stdout is exactly
 * `listening on http://HOST:PORT`. Events go to stderr as JSON lines.
 * SIGTERM or SIGINT: graceful shutdown (stop accepting, finish in-flight
 * requests, close the CLI sessions in batches), exit 0; a second signal
 * hurries it. Exit 2 on bad usage, 1 when it cannot start.
 *
 * The program is laid out as a model of assembling the library:
 *   main.c        configuration, start-up, signals, shutdown
 *   config.c      command line and environment
 *   http.c        libmicrohttpd on the libuv loop (external epoll)
 *   router.c      routes, 404/405, the admin token, the in-flight limit
 *   api-*.c       the endpoints
 *   backend.c     the library objects (pool, breakers, outbox, events)
 *   sessions.c    the server's sessions
 *   events.c      the recent events for the status page
 *   status.html   the status page (embedded at build time) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static void usage(const char *why) {
  if (why && strcmp(why, "help") != 0) fprintf(stderr, "claudelink-server: %s\n", why);
  fprintf(stderr,
          "usage: claudelink-server [--cli PATH] [--host H] [--port P] [--pool-min N]"
          " [--pool-max N] [--db PATH] [--mock-response TEXT] [--alt-env NAME=VALUE]..."
          " [--alt-model M]\n");
  exit(why && strcmp(why, "help") == 0 ? 0 : 2);
}

/* ------------------------------------------------------------ shutdown */

static void on_closed_handle(uv_handle_t *h) { (void)h; }

static void on_events_closed(clink_events *e, void *ud) {
  server *s = ud;
  (void)e;
  s->events = NULL;
}

static void on_http_stopped(http_server *h, void *ud) {
  server *s = ud;
  (void)h;
  s->http = NULL;
  clink_event_field f[1] = {{"exit_code", CLINK_FIELD_INT, NULL, s->exit_code, 0}};
  server_event(s, CLINK_LOG_INFO, "server_stopped", f, 1);
  uv_close((uv_handle_t *)&s->sigterm, on_closed_handle);
  uv_close((uv_handle_t *)&s->sigint, on_closed_handle);
  /* libuv restored the default actions: a late signal must not turn a
   * clean exit into a death by signal. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  uv_close((uv_handle_t *)&s->shutdown_timer, on_closed_handle);
  clink_events_close(s->events, on_events_closed, s);
  /* Nothing emits from here on (the pools and MHD are gone). */
}

static void on_backend_closed(void *ud) {
  server *s = ud;
  server_event(s, CLINK_LOG_INFO, "sessions_closed", NULL, 0);
  http_server_stop(s->http, on_http_stopped, s);
}

static int backend_stopping;

/* Phase 2 once every request is answered and sent. */
static void shutdown_progress(server *s) {
  if (!s->shutting_down || backend_stopping || s->http == NULL) return;
  if (http_server_pending(s->http) || http_server_active(s->http)) return;
  backend_stopping = 1;
  uv_timer_stop(&s->shutdown_timer);
  server_event(s, CLINK_LOG_INFO, "requests_drained", NULL, 0);
  backend_shutdown(s->be, on_backend_closed, s);
}

/* In-flight requests get 503 now; the sessions close (at once when
 * escalate: running turns fail). */
static void hurry(server *s, int escalate) {
  http_server_abort_pending(s->http);
  if (!backend_stopping) {
    backend_stopping = 1;
    uv_timer_stop(&s->shutdown_timer);
    backend_shutdown(s->be, on_backend_closed, s);
  }
  if (escalate) backend_shutdown(s->be, NULL, NULL);
}

static void on_shutdown_deadline(uv_timer_t *t) {
  server *s = t->data;
  clink_event_field f[1] = {
      {"pending", CLINK_FIELD_INT, NULL, (int64_t)http_server_pending(s->http), 0}};
  server_event(s, CLINK_LOG_WARNING, "shutdown_requests_timeout", f, 1);
  hurry(s, 0);
}

static void on_signal(uv_signal_t *h, int signum) {
  server *s = h->data;
  clink_event_field f[1] = {
      {"signal", CLINK_FIELD_STRING, signum == SIGTERM ? "SIGTERM" : "SIGINT", 0, 0}};
  if (s->shutting_down) {
    server_event(s, CLINK_LOG_WARNING, "shutdown_hurried", f, 1);
    hurry(s, 1);
    return;
  }
  s->shutting_down = 1;
  server_event(s, CLINK_LOG_INFO, "shutdown_started", f, 1);
  http_server_quiesce(s->http);
  uv_timer_start(&s->shutdown_timer, on_shutdown_deadline, s->cfg.shutdown_timeout_ms, 0);
  shutdown_progress(s);
}

/* ---------------------------------------------------------------- HTTP */

static void on_request(http_req *r, void *ud) {
  server *s = ud;
  backend_request_started(s->be);
  router_dispatch(s, r);
}

static void on_completed(http_req *r, unsigned status, uint64_t duration_us, void *ud) {
  server *s = ud;
  const char *route = http_req_get_data(r); /* NULL: answered before routing */
  backend_observe_request(s->be, route, status, duration_us);
  if (route == NULL) route = "none";
  if (clink_events_get_level(s->events) <= CLINK_LOG_DEBUG) {
    clink_event_field f[5] = {
        {"method", CLINK_FIELD_STRING, http_req_method(r), 0, 0},
        {"path", CLINK_FIELD_STRING, http_req_path(r), 0, 0},
        {"route", CLINK_FIELD_STRING, route, 0, 0},
        {"status", CLINK_FIELD_INT, NULL, status, 0},
        {"duration_ms", CLINK_FIELD_DOUBLE, NULL, 0, (double)duration_us / 1000.0}};
    server_event(s, CLINK_LOG_DEBUG, "http_request", f, 5);
  }
  shutdown_progress(s);
}

static void on_http_log(const char *msg, void *ud) {
  server *s = ud;
  clink_event_field f[1] = {{"message", CLINK_FIELD_STRING, msg, 0, 0}};
  server_event(s, CLINK_LOG_DEBUG, "http_daemon", f, 1);
}

int main(int argc, char **argv) {
  static server srv;
  server *s = &srv;
  char err[512];
  if (server_config_load(&s->cfg, argc, argv, err, sizeof(err)) != 0) usage(err);
  if (!server_host_is_loopback(s->cfg.host) && s->cfg.admin_token == NULL) {
    fprintf(stderr,
            "claudelink-server: refusing to listen on %s (not loopback) without "
            "CLAUDELINK_ADMIN_TOKEN\n",
            s->cfg.host);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  s->loop = uv_default_loop();

  if (clink_events_new(&s->events, s->loop) != 0 || event_ring_new(&s->ring, 200) != 0 ||
      session_table_new(&s->sessions, s->cfg.max_sessions) != 0) {
    fprintf(stderr, "claudelink-server: out of memory\n");
    return 1;
  }
  clink_events_set_level(s->events, s->cfg.log_level);
  clink_events_set_jsonl_fd(s->events, 2);
  clink_events_set_cb(s->events, event_ring_on_event, s->ring);

  if (backend_new(&s->be, s->loop, &s->cfg, s->events, err, sizeof(err)) != 0) {
    fprintf(stderr, "claudelink-server: %s\n", err);
    return 1;
  }
  /* MHD's per-connection memory bounds the request headers (431 past it);
   * it is cleared for every request, so more than needed costs throughput
   * (64 KiB halved the requests/s of /health/detailed). */
  http_limits lim = {s->cfg.max_body, s->cfg.request_timeout_s,
                     (uint64_t)s->cfg.request_timeout_s * 1000, s->cfg.max_connections,
                     32 * 1024};
  if (http_server_start(&s->http, s->loop, s->cfg.host, s->cfg.port, &lim, on_request,
                        on_completed, on_http_log, s, err, sizeof(err)) != 0) {
    fprintf(stderr, "claudelink-server: %s\n", err);
    return 1;
  }
  uv_signal_init(s->loop, &s->sigterm);
  uv_signal_init(s->loop, &s->sigint);
  s->sigterm.data = s->sigint.data = s;
  uv_signal_start(&s->sigterm, on_signal, SIGTERM);
  uv_signal_start(&s->sigint, on_signal, SIGINT);
  uv_timer_init(s->loop, &s->shutdown_timer);
  s->shutdown_timer.data = s;

  int v6 = strchr(s->cfg.host, ':') != NULL;
  snprintf(s->listen_url, sizeof(s->listen_url), "http://%s%s%s:%d", v6 ? "[" : "", s->cfg.host,
           v6 ? "]" : "", http_server_port(s->http));
  printf("listening on %s\n", s->listen_url);
  fflush(stdout);
  clink_event_field f[4] = {
      {"url", CLINK_FIELD_STRING, s->listen_url, 0, 0},
      {"pool_min", CLINK_FIELD_INT, NULL, s->cfg.pool_min, 0},
      {"pool_max", CLINK_FIELD_INT, NULL, s->cfg.pool_max, 0},
      {"admin_token", CLINK_FIELD_BOOL, NULL, s->cfg.admin_token != NULL, 0}};
  server_event(s, CLINK_LOG_INFO, "server_started", f, 4);

  uv_run(s->loop, UV_RUN_DEFAULT);
  backend_free(s->be);
  session_table_free(s->sessions);
  event_ring_free(s->ring);
  int rc = uv_loop_close(s->loop);
  if (rc != 0) {
    /* Something still open: say what, and fail (a test catches it). */
    uv_print_all_handles(s->loop, stderr);
    return 1;
  }
  return s->exit_code;
}
