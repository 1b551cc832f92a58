/* The backend on today's library: one pool (and an alternative pool),
 * the breaker registry, the outbox, the event sink. See backend.h for the
 * parts that are PROVISIONAL until the health monitor and clink_ask land. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-int.h"

static uint64_t now_ms(backend *b) { return uv_now(b->loop); }

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
  if (rc == 0) rc = clink_pool_new(out, b->loop, o, pc);
  clink_options_free(o);
  clink_pool_config_free(pc);
  if (rc != 0) return rc;
  clink_pool_set_events(*out, b->events);
  /* Starting processes is a session operation (the seed's
   * session_operations breaker); the turns go through claude_sdk. Kept
   * apart, a successful spawn never hides failing turns. */
  if (!alt) clink_pool_set_breaker(*out, clink_breaker_registry_get(b->reg, "session_operations"));
  return 0;
}

/* ------------------------------------------------------------- outbox */

static void on_outbox_event(clink_outbox *ob, const char *level, const char *name,
                            const char *fields_json, void *ud) {
  backend *b = ud;
  clink_log_level lv = strcmp(level, "error") == 0     ? CLINK_LOG_ERROR
                       : strcmp(level, "warning") == 0 ? CLINK_LOG_WARNING
                                                       : CLINK_LOG_INFO;
  clink_event_field f[16];
  size_t n = 0;
  cJSON *j = fields_json ? cJSON_Parse(fields_json) : NULL;
  (void)ob;
  for (cJSON *it = j ? j->child : NULL; it && n < 16; it = it->next) {
    clink_event_field *x = &f[n];
    memset(x, 0, sizeof(*x));
    x->key = it->string;
    if (cJSON_IsString(it)) {
      x->kind = CLINK_FIELD_STRING;
      x->s = it->valuestring;
    } else if (cJSON_IsNumber(it)) {
      x->kind = CLINK_FIELD_DOUBLE;
      x->d = it->valuedouble;
      if (it->valuedouble == (double)(int64_t)it->valuedouble) {
        x->kind = CLINK_FIELD_INT;
        x->i = (int64_t)it->valuedouble;
      }
    } else if (cJSON_IsBool(it)) {
      x->kind = CLINK_FIELD_BOOL;
      x->i = cJSON_IsTrue(it);
    } else {
      continue;
    }
    n++;
  }
  clink_events_emit(b->events, lv, "outbox", name, f, n);
  cJSON_Delete(j);
}

static void on_outbox_open(clink_outbox *ob, int status, void *ud) {
  backend *b = ud;
  if (status != 0) {
    clink_event_field f[2] = {{"error", CLINK_FIELD_STRING, clink_err_name(status), 0, 0},
                              {"detail", CLINK_FIELD_STRING, clink_outbox_last_error(ob), 0, 0}};
    clink_events_emit(b->events, CLINK_LOG_ERROR, "outbox", "outbox_open_failed", f, 2);
    return;
  }
  b->outbox_ready = 1;
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

/* PROVISIONAL: acquire + turn + release by hand, under the claude_sdk
 * breaker, then the alternative pool, then the mock answer. Becomes one
 * clink_ask() call (with the seed's retry schedule and the fallback
 * object's chain: cache -> mock). */
typedef struct call {
  backend *b;
  chat_text_fn on_text;
  chat_done_fn done;
  void *ud;
  char *message, *conversation;
  int alt; /* the attempt running is the alternative's */
  clink_pool *pool;
  clink_breaker *breaker;
  uint64_t permit, t0;
  int has_permit;
  sbuf text;
  char *answer_conv;
  int last_err, api_status;
  uint64_t retry_after_ms;
  chat_result res;
  uv_timer_t later; /* delivers the result from the loop */
} call;

static void call_closed(uv_handle_t *h) {
  call *c = h->data;
  free(c->message);
  free(c->conversation);
  free(c->answer_conv);
  sbuf_free(&c->text);
  free(c);
}

static void call_deliver(uv_timer_t *t) {
  call *c = t->data;
  c->done(c->ud, &c->res);
  uv_close((uv_handle_t *)&c->later, call_closed);
}

static void call_complete(call *c) { uv_timer_start(&c->later, call_deliver, 0, 0); }

static void call_fail(call *c, unsigned http_status, const char *text) {
  c->b->chat.failures++;
  c->res.status = c->last_err ? c->last_err : UV_EIO;
  c->res.http_status = http_status;
  c->res.error = text;
  c->res.api_status = c->api_status;
  c->res.retry_after_ms = c->retry_after_ms;
  call_complete(c);
}

static void attempt(call *c);

/* The attempt failed in a way a fallback may hide: next in the chain. */
static void next_in_chain(call *c) {
  backend *b = c->b;
  if (!c->alt && b->alt_pool) {
    c->alt = 1;
    attempt(c);
    return;
  }
  if (b->cfg->mock_response) {
    b->chat.fallback_used++;
    b->chat.mock_used++;
    c->res.status = 0;
    c->res.response = b->cfg->mock_response;
    c->res.source = "mock";
    c->res.conversation = NULL;
    clink_event_field f[3] = {{"operation", CLINK_FIELD_STRING, "chat", 0, 0},
                              {"strategy", CLINK_FIELD_STRING, "MOCK_RESPONSE", 0, 0},
                              {"error", CLINK_FIELD_STRING, clink_err_name(c->last_err), 0, 0}};
    clink_events_emit(b->events, CLINK_LOG_WARNING, "fallback", "fallback_used", f, 3);
    call_complete(c);
    return;
  }
  switch (c->last_err) {
    case CLINK_ECIRCUIT_OPEN:
      call_fail(c, 503, "service unavailable: circuit breaker open");
      break;
    case CLINK_EPOOL_TIMEOUT:
    case CLINK_EQUEUE_FULL:
    case CLINK_ECLOSING:
      call_fail(c, 503, "service unavailable: no session available");
      break;
    case CLINK_ETURN_FAILED:
      call_fail(c, 502, "upstream API error");
      break;
    case CLINK_ETURN_STALLED:
      call_fail(c, 504, "upstream timed out");
      break;
    default:
      call_fail(c, 503, "service unavailable");
      break;
  }
}

static void verdict(call *c, int ok, int counts) {
  if (!c->has_permit) return;
  c->has_permit = 0;
  uint64_t now = now_ms(c->b);
  if (ok)
    clink_breaker_on_success(c->breaker, c->permit, now, now - c->t0);
  else if (counts)
    clink_breaker_on_error(c->breaker, c->permit, now, now - c->t0);
  else
    clink_breaker_release(c->breaker, c->permit);
}

static void on_message(clink_client *cl, const clink_msg *m, void *ud) {
  call *c = ud;
  (void)cl;
  if (clink_msg_get_kind(m) != CLINK_MSG_ASSISTANT) return;
  for (size_t i = 0; i < clink_msg_block_count(m); i++) {
    if (clink_msg_block_kind(m, i) != CLINK_BLOCK_TEXT) continue;
    const char *t = clink_msg_block_text(m, i);
    size_t n = strlen(t);
    sbuf_add(&c->text, t, n);
    if (c->on_text) c->on_text(c->ud, t, n);
  }
}

/* CLAUDELINK_ISOLATE: the process is discarded once closed. */
static void on_isolated_closed(clink_client *cl, void *ud) { clink_pool_release(ud, cl); }

static void on_turn(clink_client *cl, int status, const clink_msg *result, void *ud) {
  call *c = ud;
  backend *b = c->b;
  const char *sid = clink_client_session_id(cl);
  free(c->answer_conv);
  c->answer_conv = sid ? strdup(sid) : NULL;
  /* A pooled process keeps its conversation: the next acquire without a
   * session may get it. With CLAUDELINK_ISOLATE=1 it serves this turn
   * only (close = release and discard; the pool starts a fresh one, and a
   * session's next turn resumes its conversation in a new process). */
  if (!b->cfg->isolate || clink_client_close(cl, on_isolated_closed, c->pool) != 0)
    clink_pool_release(c->pool, cl);
  if (status == 0) {
    verdict(c, 1, 0);
    if (c->alt) {
      b->chat.fallback_used++;
      b->chat.alternative_used++;
    } else {
      b->chat.primary_success++;
    }
    c->res.status = 0;
    c->res.response = c->text.p ? c->text.p : "";
    if (c->text.len == 0 && result && clink_msg_result_text(result))
      c->res.response = clink_msg_result_text(result);
    c->res.source = c->alt ? "alternative" : "primary";
    /* The conversation lives in the primary's profile only. */
    c->res.conversation = c->alt ? NULL : c->answer_conv;
    call_complete(c);
    return;
  }
  c->last_err = status;
  int retryable;
  if (status == CLINK_ETURN_FAILED) {
    c->api_status = result ? clink_msg_result_api_error_status(result) : 0;
    retryable = c->api_status && clink_api_status_is_retryable(c->api_status);
  } else {
    retryable = clink_err_is_retryable(status) || status == CLINK_EEXITED ||
                status == CLINK_ETURN_STALLED;
  }
  verdict(c, 0, retryable);
  if (!retryable) {
    /* A request or configuration error is never masked by a fallback. */
    call_fail(c, 502, c->api_status ? "upstream API error" : "upstream failure");
    return;
  }
  sbuf_reset(&c->text);
  next_in_chain(c);
}

static void on_acquired(clink_pool *pool, int status, clink_client *cl, uint64_t retry_after,
                        void *ud) {
  call *c = ud;
  if (status != 0) {
    c->last_err = status;
    c->retry_after_ms = retry_after;
    /* No session to be had counts against the provider, except when the
     * pool was only busy or closing. */
    verdict(c, 0, status != CLINK_EPOOL_TIMEOUT && status != CLINK_EQUEUE_FULL &&
                      status != CLINK_ECLOSING && status != CLINK_ECIRCUIT_OPEN);
    next_in_chain(c);
    return;
  }
  clink_client_metrics m;
  m.struct_size = sizeof(m);
  if (!c->alt && clink_client_get_metrics(cl, &m) == 0) {
    c->b->connection_time_ms = (double)m.connect_ms;
    c->b->last_check_ms = wall_ms();
  }
  int rc = clink_client_query(cl, c->message, on_message, on_turn, c);
  if (rc != 0) {
    clink_pool_release(pool, cl);
    c->last_err = rc;
    verdict(c, 0, 1);
    next_in_chain(c);
  }
}

static void attempt(call *c) {
  backend *b = c->b;
  c->pool = c->alt ? b->alt_pool : b->pool;
  c->breaker = c->alt ? b->alt_breaker : b->sdk_breaker;
  c->t0 = now_ms(b);
  uint64_t retry_after = 0;
  int rc = clink_breaker_acquire(c->breaker, c->t0, &c->permit, &retry_after);
  if (rc != 0) {
    c->last_err = rc;
    c->retry_after_ms = retry_after;
    next_in_chain(c);
    return;
  }
  c->has_permit = 1;
  rc = clink_pool_acquire(c->pool, c->alt ? NULL : c->conversation, "claudelink-server chat",
                          on_acquired, c);
  if (rc != 0) {
    c->last_err = rc;
    verdict(c, 0, 0);
    next_in_chain(c);
  }
}

static void on_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  call *c = ud;
  (void)ob;
  if (status != 0) {
    c->last_err = status;
    call_fail(c, 503, status == CLINK_EOUTBOX_FULL ? "outbox full" : "outbox unavailable");
    return;
  }
  c->b->chat.queued++;
  c->res.status = 0;
  c->res.source = "queued";
  c->res.queued_id = id;
  call_complete(c);
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
  c->message = strdup(req->message);
  c->conversation = req->conversation ? strdup(req->conversation) : NULL;
  if (c->message == NULL || (req->conversation && c->conversation == NULL)) {
    free(c->message);
    free(c->conversation);
    free(c);
    return UV_ENOMEM;
  }
  uv_timer_init(b->loop, &c->later);
  c->later.data = c;
  b->chat.total_calls++;
  if (req->guaranteed) {
    int rc = b->outbox ? clink_outbox_enqueue(b->outbox, c->message, "chat", c->conversation,
                                              NULL, NULL, on_enqueued, c)
                       : UV_ENOTSUP;
    if (rc != 0) {
      c->last_err = rc;
      call_fail(c, 503, "outbox unavailable");
    }
    return 0;
  }
  attempt(c);
  return 0;
}

/* -------------------------------------------------------- management */

int backend_reset_breaker(backend *b, const char *name) {
  clink_breaker *br = clink_breaker_registry_get(b->reg, name);
  if (br == NULL) return UV_ENOENT;
  clink_breaker_reset(br, now_ms(b));
  return 0;
}

/* PROVISIONAL: no cache yet (the fallback object brings it). */
uint64_t backend_clear_cache(backend *b) {
  (void)b;
  return 0;
}

int backend_ready(backend *b) {
  clink_pool_stats st;
  st.struct_size = sizeof(st);
  if (b->closing || clink_pool_get_stats(b->pool, &st) != 0) return 0;
  if (st.idle + st.in_use > 0) return 1;
  return b->cfg->pool_min == 0 &&
         clink_breaker_get_state(b->sdk_breaker, now_ms(b)) != CLINK_BREAKER_OPEN;
}

/* ---------------------------------------------------------- lifecycle */

int backend_new(backend **out, uv_loop_t *loop, const server_config *cfg, clink_events *events,
                const server_view *view, char *err, size_t errlen) {
  backend *b = calloc(1, sizeof(*b));
  if (b == NULL) {
    snprintf(err, errlen, "out of memory");
    return UV_ENOMEM;
  }
  b->loop = loop;
  b->cfg = cfg;
  b->events = events;
  b->view = *view;
  b->start_wall_ms = wall_ms();
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
    clink_outbox_set_event_cb(b->outbox, on_outbox_event, b);
  }
  sysinfo_start(&b->sys, loop);
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

static void on_sys_closed(uv_handle_t *h) {
  sysinfo *si = h->data;
  close_step((backend *)((char *)si - offsetof(backend, sys)));
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
  sysinfo_stop(&b->sys, on_sys_closed);
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
  clink_breaker_registry_free(b->reg);
  free(b);
}
