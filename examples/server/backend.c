/* The backend: how the server assembles the library. A pool of pre-warmed
 * CLIs (and an alternative provider's pool), the seed's breakers, the chat
 * operation's fallback chain, clink_ask() for every chat, the outbox for
 * guaranteed requests, and one health monitor whose snapshot renders every
 * health and metrics endpoint. Everything reports to one event sink. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define SERVICE_NAME "Claude Chat API"

struct backend {
  uv_loop_t *loop;
  const server_config *cfg;
  clink_events *events;
  clink_breaker_registry *reg;
  clink_breaker *sdk_breaker, *alt_breaker;
  clink_pool *pool, *alt_pool;
  clink_fallback_registry *fallbacks;
  clink_fallback *chat_fb;
  clink_ask_options *ask_opts;
  clink_outbox *outbox;
  clink_health *health;
  clink_health_snapshot *snap;
  int closing;
  unsigned closes_pending;
  backend_closed_fn closed_cb;
  void *closed_ud;
};

/* The server's own CLI profile: no tool runs on the server's machine
 * (every permission prompt is denied, and the tools that need none are
 * disallowed). */
static void deny_all(clink_client *c, clink_request *req, void *ud) {
  (void)c;
  (void)ud;
  clink_request_deny(req, "tools are disabled on this server", 0);
}

static const char *const disallowed_tools[] = {"Bash", "Read", "Write", "Edit", "Glob", "Grep",
                                               "WebFetch", "WebSearch", "NotebookEdit", "Task"};

static int make_options(clink_options **out, const server_config *cfg, int alt) {
  clink_options *o;
  int rc = clink_options_new(&o);
  if (rc != 0) return rc;
  if (cfg->cli_path) rc = clink_options_set_cli_path(o, cfg->cli_path);
  if (rc == 0) rc = clink_options_set_permission_cb(o, deny_all, NULL);
  for (size_t i = 0; rc == 0 && i < sizeof(disallowed_tools) / sizeof(disallowed_tools[0]); i++)
    rc = clink_options_add_disallowed_tool(o, disallowed_tools[i]);
  if (alt) {
    for (size_t i = 0; rc == 0 && i < cfg->n_alt_env; i++) {
      const char *kv = cfg->alt_env[i], *eq = strchr(kv, '=');
      char name[256];
      size_t n = (size_t)(eq - kv);
      if (n >= sizeof(name)) {
        rc = UV_EINVAL;
        break;
      }
      memcpy(name, kv, n);
      name[n] = '\0';
      rc = clink_options_set_env(o, name, eq + 1);
    }
    if (rc == 0 && cfg->alt_model) rc = clink_options_set_model(o, cfg->alt_model);
  }
  if (rc != 0) {
    clink_options_free(o);
    return rc;
  }
  *out = o;
  return 0;
}

static int make_pool(backend *b, clink_pool **out, int alt) {
  clink_options *o = NULL;
  clink_pool_config *pc = NULL;
  int rc = make_options(&o, b->cfg, alt);
  if (rc == 0) rc = clink_pool_config_new(&pc);
  /* The alternative starts its processes only when it is needed. */
  if (rc == 0) rc = clink_pool_config_set_size(pc, alt ? 0 : b->cfg->pool_min, b->cfg->pool_max);
  /* Chats never share a conversation they did not ask for. */
  if (rc == 0 && b->cfg->isolate) rc = clink_pool_config_set_isolation(pc, 1);
  if (rc == 0) rc = clink_pool_new(out, b->loop, o, pc);
  clink_options_free(o);
  clink_pool_config_free(pc);
  if (rc != 0) return rc;
  clink_pool_set_events(*out, b->events);
  /* Starting processes is a session operation (the seed's
   * session_operations breaker); the turns go through claude_sdk (the
   * ask's). Kept apart, a successful spawn never hides failing turns. */
  if (!alt) clink_pool_set_breaker(*out, clink_breaker_registry_get(b->reg, "session_operations"));
  return 0;
}

/* The chat operation's chain (the seed's chat = cache 180 s -> mock), with
 * the alternative provider first when there is one: a fresh answer from
 * another backend beats a cached one. */
static int make_fallbacks(backend *b) {
  int rc = clink_fallback_registry_new(&b->fallbacks);
  if (rc != 0) return rc;
  clink_fallback_registry_set_events(b->fallbacks, b->events);
  clink_fallback *fb = NULL;
  /* The seed's "chat" gives way to this server's chain (same name: the
   * contract's fallback_stats key). */
  rc = clink_fallback_registry_remove(b->fallbacks, "chat");
  if (rc == 0) rc = clink_fallback_registry_add(b->fallbacks, "chat", &fb);
  if (rc >= 0 && b->alt_pool) rc = clink_fallback_add_alternative(fb, b->alt_pool, b->alt_breaker);
  if (rc >= 0) rc = clink_fallback_add_cached(fb, CLINK_FALLBACK_CHAT_CACHE_TTL_MS, 0);
  if (rc >= 0 && b->cfg->mock_response) rc = clink_fallback_add_mock(fb, b->cfg->mock_response);
  if (rc < 0) return rc;
  b->chat_fb = fb;
  return 0;
}

/* Every chat: one quick retry (an HTTP client is waiting: the seed's
 * 1, 2, 5 s schedule is for reconnecting, and three failed attempts of one
 * request would open claude_sdk by themselves), a retry budget so a failing
 * upstream is not hit twice as hard, bounded by the request timeout; then
 * the chat chain; text streamed as it comes. */
static void on_ask_message(clink_ask_call *ask, const clink_msg *m, void *ud);

static int make_ask_options(backend *b) {
  clink_retry_policy *rp = NULL;
  int rc = clink_retry_policy_new(&rp);
  if (rc == 0) rc = clink_retry_policy_set_exponential(rp, 250, 1000, 2.0, CLINK_JITTER_EQUAL);
  if (rc == 0) rc = clink_retry_policy_set_max_attempts(rp, 1);
  if (rc == 0) rc = clink_retry_policy_set_budget(rp, 10.0, 0.1);
  if (rc == 0) rc = clink_ask_options_new(&b->ask_opts);
  if (rc == 0) rc = clink_ask_options_set_retry_policy(b->ask_opts, rp);
  clink_retry_policy_free(rp);
  uint64_t budget = (uint64_t)b->cfg->request_timeout_s * 1000;
  if (rc == 0) rc = clink_ask_options_set_deadline_ms(b->ask_opts, budget > 5000 ? budget - 2000 : budget);
  if (rc == 0) rc = clink_ask_options_set_fallback(b->ask_opts, b->chat_fb);
  if (rc == 0) rc = clink_ask_options_set_breaker(b->ask_opts, b->sdk_breaker);
  if (rc == 0) rc = clink_ask_options_set_message_cb(b->ask_opts, on_ask_message);
  if (rc == 0) rc = clink_ask_options_set_events(b->ask_opts, b->events);
  return rc;
}

/* The verdict follows claude_sdk's breaker: while it is open the chat
 * dependency is failing, and a load balancer should look elsewhere. A host
 * check, run again as soon as the breaker changes state. */
#define CIRCUIT_CHECK "claude_sdk:circuit_breaker"

static void circuit_check(clink_health *h, clink_health_check *run, void *ud) {
  backend *b = ud;
  (void)h;
  clink_breaker_state st = clink_breaker_get_state(b->sdk_breaker, uv_now(b->loop));
  int open = st == CLINK_BREAKER_OPEN || st == CLINK_BREAKER_FORCED_OPEN;
  clink_health_check_done(run, open ? CLINK_CHECK_FAIL : CLINK_CHECK_PASS, open, NULL,
                          open ? "circuit breaker open" : NULL);
}

static void on_sdk_breaker(clink_breaker *br, clink_breaker_event ev, clink_breaker_state from,
                           clink_breaker_state to, void *ud) {
  backend *b = ud;
  (void)br;
  (void)from;
  (void)to;
  if (ev == CLINK_BREAKER_EVENT_STATE && b->health) clink_health_run_checks(b->health, CIRCUIT_CHECK);
}

static int make_health(backend *b) {
  int rc = clink_health_new(&b->health, b->loop);
  if (rc == 0) rc = clink_health_set_service(b->health, SERVICE_NAME, clink_version_string());
  /* The claude_sdk check pings an idle member; with none idle it starts a
   * CLI of the server's own profile. */
  if (rc == 0) rc = clink_health_set_sdk_options(b->health, clink_pool_get_options(b->pool));
  if (rc == 0) rc = clink_health_attach_pool(b->health, b->pool);
  if (rc == 0 && b->alt_pool) rc = clink_health_attach_pool(b->health, b->alt_pool);
  if (rc == 0) rc = clink_health_attach_breakers(b->health, b->reg);
  if (rc == 0) rc = clink_health_attach_fallbacks(b->health, b->fallbacks);
  if (rc == 0) rc = clink_health_add_check(b->health, CIRCUIT_CHECK, 5000, 0, 1, circuit_check, b);
  if (rc == 0) clink_breaker_set_event_cb(b->sdk_breaker, on_sdk_breaker, b);
  if (rc == 0) rc = clink_health_snapshot_new(&b->snap);
  if (rc == 0) clink_health_set_events(b->health, b->events);
  return rc;
}

/* ------------------------------------------------------------- outbox */

static void on_outbox_open(clink_outbox *ob, int status, void *ud) {
  backend *b = ud;
  if (status != 0) {
    clink_event_field f[2] = {{"error", CLINK_FIELD_STRING, clink_err_name(status), 0, 0},
                              {"detail", CLINK_FIELD_STRING, clink_outbox_last_error(ob), 0, 0}};
    clink_events_emit(b->events, CLINK_LOG_ERROR, "outbox", "outbox_open_failed", f, 2);
    return;
  }
  if (b->closing) return;
  clink_outbox_deliver_via_pool(ob, b->pool);
  clink_outbox_start(ob);
}

int backend_has_outbox(const backend *b) { return b->outbox != NULL; }

typedef struct ob_get {
  outbox_get_fn done;
  void *ud;
} ob_get;

static void on_outbox_get(clink_outbox *ob, int status, const clink_outbox_msg *m, void *ud) {
  ob_get *g = ud;
  (void)ob;
  if (status != 0 || m == NULL) {
    g->done(g->ud, status ? status : UV_ENOENT, NULL);
  } else {
    outbox_view v;
    v.id = clink_outbox_msg_id(m);
    v.state = clink_outbox_state_name(clink_outbox_msg_state(m));
    v.attempts = clink_outbox_msg_attempts(m);
    v.response = clink_outbox_msg_response(m);
    v.last_error = clink_outbox_msg_last_error_text(m);
    v.session_id = clink_outbox_msg_session_id(m);
    v.created_ms = clink_outbox_msg_created_ms(m);
    v.updated_ms = clink_outbox_msg_updated_ms(m);
    g->done(g->ud, 0, &v);
  }
  free(g);
}

int backend_outbox_get(backend *b, int64_t id, outbox_get_fn done, void *ud) {
  if (b->outbox == NULL) return UV_ENOTSUP;
  ob_get *g = malloc(sizeof(*g));
  if (g == NULL) return UV_ENOMEM;
  g->done = done;
  g->ud = ud;
  int rc = clink_outbox_get(b->outbox, id, on_outbox_get, g);
  if (rc != 0) free(g);
  return rc;
}

/* --------------------------------------------------------------- chat */

typedef struct call {
  backend *b;
  chat_text_fn on_text;
  chat_done_fn done;
  void *ud;
  chat_result res;
} call;

static void on_ask_message(clink_ask_call *ask, const clink_msg *m, void *ud) {
  call *c = ud;
  (void)ask;
  if (c->on_text == NULL || clink_msg_get_kind(m) != CLINK_MSG_ASSISTANT) return;
  for (size_t i = 0; i < clink_msg_block_count(m); i++) {
    if (clink_msg_block_kind(m, i) != CLINK_BLOCK_TEXT) continue;
    const char *t = clink_msg_block_text(m, i);
    c->on_text(c->ud, t, strlen(t));
  }
}

/* A failure as an HTTP answer: a public text, never an internal one. */
static void fail_status(call *c, clink_ask_call *ask, int status) {
  clink_failure_class k = clink_ask_failure(ask);
  const clink_msg *r = clink_ask_result(ask);
  c->res.status = status;
  c->res.api_status = r ? clink_msg_result_api_error_status(r) : 0;
  switch (k) {
    case CLINK_FAILURE_CIRCUIT_OPEN: {
      clink_breaker_stats bs;
      bs.struct_size = sizeof(bs);
      if (clink_breaker_get_stats(c->b->sdk_breaker, uv_now(c->b->loop), &bs) == 0)
        c->res.retry_after_ms = bs.until_half_open_ms;
      c->res.http_status = 503;
      c->res.error = "service unavailable: circuit breaker open";
      break;
    }
    case CLINK_FAILURE_POOL_TIMEOUT:
      c->res.http_status = 503;
      c->res.error = "service unavailable: no session available";
      break;
    case CLINK_FAILURE_API_REJECTED:
    case CLINK_FAILURE_CONTEXT_OVERFLOW:
    case CLINK_FAILURE_API_RETRYABLE:
    case CLINK_FAILURE_TURN:
      c->res.http_status = 502;
      c->res.error = "upstream API error";
      break;
    case CLINK_FAILURE_STALLED:
    case CLINK_FAILURE_DEADLINE:
      c->res.http_status = 504;
      c->res.error = "upstream timed out";
      break;
    default:
      c->res.http_status = 503;
      c->res.error = status == CLINK_ECLOSING ? "service unavailable: shutting down"
                                              : "service unavailable";
      break;
  }
}

static void on_answer(clink_ask_call *ask, int status, void *ud) {
  call *c = ud;
  if (status == 0) {
    clink_source src = clink_ask_source(ask);
    c->res.status = 0;
    c->res.response = clink_ask_answer(ask, NULL);
    c->res.source = clink_source_name(src);
    /* The conversation lives in the primary pool's profile only. */
    c->res.conversation = src == CLINK_SOURCE_PRIMARY ? clink_ask_session_id(ask) : NULL;
  } else {
    fail_status(c, ask, status);
  }
  c->done(c->ud, &c->res);
  free(c);
}

static void on_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  call *c = ud;
  (void)ob;
  if (status != 0) {
    c->res.status = status;
    c->res.http_status = 503;
    c->res.error = status == CLINK_EOUTBOX_FULL ? "outbox full" : "outbox unavailable";
  } else {
    c->res.source = "queued";
    c->res.queued_id = id;
  }
  c->done(c->ud, &c->res);
  free(c);
}

int backend_chat(backend *b, const chat_request *req, chat_text_fn on_text, chat_done_fn done,
                 void *ud) {
  if (b->closing) return CLINK_ECLOSING;
  call *c = calloc(1, sizeof(*c));
  if (c == NULL) return UV_ENOMEM;
  c->b = b;
  c->on_text = on_text;
  c->done = done;
  c->ud = ud;
  int rc;
  if (req->guaranteed) {
    rc = b->outbox ? clink_outbox_enqueue(b->outbox, req->message, "chat", req->conversation,
                                          NULL, NULL, on_enqueued, c)
                   : UV_ENOTSUP;
  } else {
    rc = clink_ask(NULL, b->pool, req->conversation, req->message, b->ask_opts, on_answer, c);
  }
  if (rc != 0) free(c);
  return rc;
}

/* -------------------------------------------------- health and metrics */

/* One snapshot, rendered into out. */
static void render(backend *b, clink_health_format f, sbuf *out) {
  char *text = NULL;
  size_t len = 0;
  if (clink_health_snapshot_take(b->health, b->snap) == 0 &&
      clink_health_render_alloc(b->snap, f, &text, &len) == 0) {
    sbuf_add(out, text, len);
  } else {
    sbuf_str(out, "{\"error\":\"health snapshot unavailable\"}");
  }
  clink_free(text);
}

void backend_health_detailed(backend *b, sbuf *out) { render(b, CLINK_HEALTH_FORMAT_DETAILED, out); }
void backend_health_stability(backend *b, sbuf *out) {
  render(b, CLINK_HEALTH_FORMAT_STABILITY, out);
}
void backend_metrics_json(backend *b, sbuf *out) { render(b, CLINK_HEALTH_FORMAT_METRICS, out); }
void backend_metrics_prometheus(backend *b, sbuf *out) {
  render(b, CLINK_HEALTH_FORMAT_PROMETHEUS, out);
}

void backend_health_json(backend *b, sbuf *out, int *failing) {
  render(b, CLINK_HEALTH_FORMAT_HEALTH_JSON, out);
  *failing = clink_health_snapshot_status(b->snap) == CLINK_HEALTH_UNHEALTHY;
}

int backend_ready(backend *b) {
  clink_pool_stats st;
  st.struct_size = sizeof(st);
  if (b->closing || clink_pool_get_stats(b->pool, &st) != 0) return 0;
  if (st.idle + st.in_use > 0) return 1;
  return b->cfg->pool_min == 0 &&
         clink_breaker_get_state(b->sdk_breaker, uv_now(b->loop)) != CLINK_BREAKER_OPEN;
}

/* The request meter: the monitor's (requests_total, in progress, errors,
 * the duration histogram). */
void backend_request_started(backend *b) { clink_health_request_begin(b->health); }

void backend_observe_request(backend *b, const char *route, unsigned status,
                             uint64_t duration_us) {
  /* Answered before routing: never counted as started. */
  if (route == NULL) clink_health_request_begin(b->health);
  /* 503 from the probes is their answer, not a failure of the server. */
  int probe = route && (strcmp(route, "readyz") == 0 || strcmp(route, "health") == 0);
  clink_health_request_end(b->health, (status >= 500 || status == 0) && !probe, duration_us);
}

/* -------------------------------------------------------- management */

int backend_reset_breaker(backend *b, const char *name) {
  clink_breaker *br = clink_breaker_registry_get(b->reg, name);
  if (br == NULL) return UV_ENOENT;
  clink_breaker_reset(br, uv_now(b->loop));
  return 0;
}

uint64_t backend_clear_cache(backend *b) {
  int n = clink_fallback_registry_clear_cache(b->fallbacks);
  return n > 0 ? (uint64_t)n : 0;
}

/* ---------------------------------------------------------- lifecycle */

int backend_new(backend **out, uv_loop_t *loop, const server_config *cfg, clink_events *events,
                char *err, size_t errlen) {
  backend *b = calloc(1, sizeof(*b));
  if (b == NULL) {
    snprintf(err, errlen, "out of memory");
    return UV_ENOMEM;
  }
  b->loop = loop;
  b->cfg = cfg;
  b->events = events;
  int rc = clink_breaker_registry_new(&b->reg, 0);
  if (rc == 0) {
    clink_breaker_registry_set_events(b->reg, events);
    b->sdk_breaker = clink_breaker_registry_get(b->reg, "claude_sdk");
  }
  if (rc == 0 && server_config_has_alt(cfg)) {
    /* The alternative provider has a breaker of its own, as claude_sdk's. */
    clink_breaker_config *bc;
    rc = clink_breaker_config_new(&bc);
    if (rc == 0) rc = clink_breaker_config_set_consecutive_failures(bc, 3);
    if (rc == 0) rc = clink_breaker_config_set_open_duration(bc, 30000, 30000, 1.0, 0);
    if (rc == 0) rc = clink_breaker_config_set_half_open(bc, 1, 2, 60000);
    if (rc == 0) rc = clink_breaker_registry_add(b->reg, "alternative_provider", bc, &b->alt_breaker);
    clink_breaker_config_free(bc);
  }
  if (rc == 0) rc = make_pool(b, &b->pool, 0);
  if (rc == 0 && server_config_has_alt(cfg)) rc = make_pool(b, &b->alt_pool, 1);
  if (rc == 0) rc = make_fallbacks(b);
  if (rc == 0) rc = make_ask_options(b);
  if (rc == 0) rc = make_health(b);
  if (rc != 0) {
    snprintf(err, errlen, "cannot start the session pool: %s", clink_strerror(rc));
    /* The process exits: what was started dies with it. */
    return rc;
  }
  if (cfg->db_path) {
    rc = clink_outbox_open(&b->outbox, loop, cfg->db_path, NULL, on_outbox_open, b);
    if (rc != 0) {
      snprintf(err, errlen, "cannot open the outbox %s: %s", cfg->db_path, clink_strerror(rc));
      b->outbox = NULL;
      return rc; /* the process exits */
    }
    clink_outbox_set_events(b->outbox, events);
    clink_health_attach_outbox(b->health, b->outbox);
  }
  *out = b;
  return 0;
}

static void close_step(backend *b) {
  if (--b->closes_pending) return;
  if (b->closed_cb) b->closed_cb(b->closed_ud);
}

static void on_pool_closed(clink_pool *p, void *ud) {
  backend *b = ud;
  if (p == b->pool) b->pool = NULL;
  if (p == b->alt_pool) b->alt_pool = NULL;
  close_step(b);
}

static void on_outbox_closed(clink_outbox *ob, void *ud) {
  backend *b = ud;
  (void)ob;
  b->outbox = NULL;
  /* The pool it delivered through can go now. */
  if (b->pool) clink_pool_shutdown(b->pool, CLINK_POOL_DRAIN, on_pool_closed, b);
  close_step(b);
}

static void on_health_closed(clink_health *h, void *ud) {
  backend *b = ud;
  (void)h;
  b->health = NULL;
  clink_breaker_set_event_cb(b->sdk_breaker, NULL, NULL);
  close_step(b);
}

void backend_shutdown(backend *b, backend_closed_fn cb, void *ud) {
  if (b->closing) {
    /* Escalate: pools close their members at once. */
    if (b->pool && !b->outbox) clink_pool_shutdown(b->pool, CLINK_POOL_IMMEDIATE, NULL, NULL);
    if (b->alt_pool) clink_pool_shutdown(b->alt_pool, CLINK_POOL_IMMEDIATE, NULL, NULL);
    return;
  }
  b->closing = 1;
  b->closed_cb = cb;
  b->closed_ud = ud;
  b->closes_pending = 1; /* this function's own step */
  b->closes_pending++;
  clink_health_close(b->health, on_health_closed, b);
  if (b->alt_pool) {
    b->closes_pending++;
    clink_pool_shutdown(b->alt_pool, CLINK_POOL_DRAIN, on_pool_closed, b);
  }
  b->closes_pending++; /* the pool */
  if (b->outbox) {
    b->closes_pending++;
    clink_outbox_close(b->outbox, on_outbox_closed, b);
  } else {
    clink_pool_shutdown(b->pool, CLINK_POOL_DRAIN, on_pool_closed, b);
  }
  close_step(b);
}

void backend_free(backend *b) {
  if (b == NULL) return;
  clink_health_snapshot_free(b->snap);
  clink_ask_options_free(b->ask_opts);
  clink_fallback_registry_free(b->fallbacks);
  clink_breaker_registry_free(b->reg);
  free(b);
}
