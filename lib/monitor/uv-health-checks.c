/* clink_health's checks: the scheduler on the timer (starts, deadlines,
 * status aggregation and notification, transition events), the check API,
 * and the built-in checks (the claude_sdk probe, memory, sessions). */
#include <math.h>
#include <stdio.h>

#include "monitor/events-int.h"
#include "monitor/events.h"
#include "monitor/uv-health-int.h"

#define COMPONENT "health_monitor"

/* ---------------------------------------------------------------- events */

static void emit_transition(clink_health *h, const hcheck *k, clink__hc_transition tr) {
  static const char *const names[] = {NULL, "health_check_failed", "health_check_degraded",
                                      "health_check_recovered"};
  clink_log_level level = tr == CLINK__HC_FAILED   ? (k->c.critical ? CLINK_LOG_ERROR
                                                                      : CLINK_LOG_WARNING)
                          : tr == CLINK__HC_DEGRADED ? CLINK_LOG_WARNING
                                                     : CLINK_LOG_INFO;
  if (tr == CLINK__HC_SAME || !clink__events_enabled(h->sink, level)) return;
  clink_event_field f[8] = {
      clink__f_str("check_name", k->c.name),
      clink__f_str("status", clink_check_status_name(k->c.status)),
      clink__f_bool("critical", k->c.critical),
      clink__f_dbl("observed_value", k->c.value),
      clink__f_str("observed_unit", k->c.unit),
      clink__f_str("message", k->c.message),
      clink__f_int("consecutive_failures", (int64_t)k->c.consecutive_failures),
      clink__f_int("duration_ms", (int64_t)k->c.duration_ms)};
  clink__events_emit(h->sink, level, COMPONENT, names[tr], f, 8);
}

static void update_status(clink_health *h) {
  const clink__hcheck *list[64];
  const clink__hcheck **v = h->n_checks <= 64 ? list : NULL;
  clink_health_status st = CLINK_HEALTH_HEALTHY;
  if (v) {
    size_t n = 0;
    for (size_t i = 0; i < h->n_checks; i++)
      if (!h->checks[i]->removed) v[n++] = &h->checks[i]->c;
    st = clink__health_aggregate(v, n);
  } else {
    for (size_t i = 0; i < h->n_checks; i++) {
      const clink__hcheck *c = &h->checks[i]->c;
      if (h->checks[i]->removed) continue;
      clink_health_status one = clink__health_aggregate(&c, 1);
      if (one > st) st = one;
    }
  }
  if (st == h->status) return;
  clink_health_status from = h->status;
  h->status = st;
  h->notify_pending = 1;
  clink_log_level level = st == CLINK_HEALTH_HEALTHY    ? CLINK_LOG_INFO
                          : st == CLINK_HEALTH_DEGRADED ? CLINK_LOG_WARNING
                                                        : CLINK_LOG_ERROR;
  if (clink__events_enabled(h->sink, level)) {
    clink_event_field f[2] = {clink__f_str("from_status", clink_health_status_name(from)),
                              clink__f_str("status", clink_health_status_name(st))};
    clink__events_emit(h->sink, level, COMPONENT, "health_status_changed", f, 2);
  }
}

/* --------------------------------------------------------------- checks */

static hcheck *find_check(const clink_health *h, const char *name) {
  if (name == NULL) return NULL;
  for (size_t i = 0; i < h->n_checks; i++)
    if (!h->checks[i]->removed && strcmp(h->checks[i]->c.name, name) == 0) return h->checks[i];
  return NULL;
}

static void start_run(clink_health *h, hcheck *k, uint64_t now) {
  clink_health_check *run = clink__calloc(1, sizeof(*run));
  if (run == NULL) {
    /* No memory for a run: that is a failure of the check, now. */
    clink__hc_start(&k->c, now);
    clink__hc_transition tr = clink__hc_finish(&k->c, now, clink__wall_ms(), CLINK_CHECK_FAIL,
                                               0, NULL, "out of memory", NULL);
    emit_transition(h, k, tr);
    update_status(h);
    return;
  }
  run->h = h;
  run->chk = k;
  memcpy(run->name, k->c.name, sizeof(run->name));
  k->run = run;
  clink__hc_start(&k->c, now);
  k->fn(h, run, k->ud);
}

/* Frees removed checks (never while a tick walks the list). */
static void compact_checks(clink_health *h) {
  size_t w = 0;
  for (size_t i = 0; i < h->n_checks; i++) {
    if (h->checks[i]->removed)
      clink__free(h->checks[i]);
    else
      h->checks[w++] = h->checks[i];
  }
  h->n_checks = w;
}

static void notify(clink_health *h) {
  while (h->notify_pending && !h->closing) {
    h->notify_pending = 0;
    clink_health_status from = h->notified, to = h->status;
    if (from == to) continue;
    h->notified = to;
    if (h->status_cb) h->status_cb(h, from, to, h->status_ud);
  }
}

static void on_tick(uv_timer_t *t) {
  clink_health *h = t->data;
  uint64_t now = now_ms(h);
  h->in_tick = 1;
  uint64_t unix_ms = clink__wall_ms();
  for (size_t i = 0; i < h->n_checks; i++) {
    hcheck *k = h->checks[i];
    if (k->removed) continue;
    emit_transition(h, k, clink__hc_expire(&k->c, now, unix_ms));
  }
  update_status(h);
  if (now >= h->next_sample_ms) {
    clink__health_sample(h, now);
    h->next_sample_ms = clink__deadline(now, h->sample_ms);
  }
  /* Starts, by index: a check may add, remove or close anything. */
  for (size_t i = 0; i < h->n_checks && !h->closing; i++) {
    hcheck *k = h->checks[i];
    if (!k->removed && clink__hc_due(&k->c, now)) start_run(h, k, now);
  }
  notify(h);
  h->in_tick = 0;
  compact_checks(h);
  if (!h->closing) clink__health_arm(h);
}

void clink__health_arm(clink_health *h) {
  if (!h->ready || h->closing || h->in_tick) return;
  uint64_t now = now_ms(h), due = h->next_sample_ms;
  for (size_t i = 0; i < h->n_checks; i++)
    if (!h->checks[i]->removed) due = clink__earliest(due, clink__hc_next_due(&h->checks[i]->c));
  if (h->notify_pending) due = now;
  if (due == CLINK__NEVER) {
    uv_timer_stop(&h->tick);
    return;
  }
  uv_timer_start(&h->tick, on_tick, clink__until(due, now), 0);
}

int clink_health_add_check(clink_health *h, const char *name, uint64_t interval_ms,
                           uint64_t timeout_ms, int critical, clink_health_check_fn fn,
                           void *ud) {
  if (h == NULL || name == NULL || name[0] == '\0' || fn == NULL || interval_ms == 0 ||
      strlen(name) >= CLINK__HS_NAME)
    return UV_EINVAL;
  if (h->closing) return CLINK_ECLOSING;
  if (find_check(h, name)) return UV_EEXIST;
  if (clink__hs_reserve((void **)&h->checks, &h->cap_checks, h->n_checks + 1,
                        sizeof(*h->checks)) != 0)
    return UV_ENOMEM;
  hcheck *k = clink__calloc(1, sizeof(*k));
  if (k == NULL) return UV_ENOMEM;
  clink__hc_init(&k->c, name, interval_ms, timeout_ms, critical, now_ms(h));
  k->fn = fn;
  k->ud = ud;
  h->checks[h->n_checks++] = k;
  clink__health_arm(h);
  return 0;
}

int clink_health_set_check_schedule(clink_health *h, const char *name, uint64_t interval_ms,
                                    uint64_t timeout_ms) {
  if (h == NULL || interval_ms == 0) return UV_EINVAL;
  hcheck *k = find_check(h, name);
  if (k == NULL) return UV_ENOENT;
  k->c.interval_ms = interval_ms;
  k->c.timeout_ms = clink__timeout_norm(timeout_ms);
  if (k->c.running && !k->c.timed_out)
    k->c.deadline_ms = clink__deadline(k->c.started_ms, k->c.timeout_ms);
  if (!k->c.running) {
    uint64_t next = clink__deadline(k->c.started_ms, interval_ms);
    if (k->c.runs == 0) next = k->c.next_ms;
    k->c.next_ms = next;
  }
  clink__health_arm(h);
  return 0;
}

int clink_health_set_check_critical(clink_health *h, const char *name, int critical) {
  if (h == NULL) return UV_EINVAL;
  hcheck *k = find_check(h, name);
  if (k == NULL) return UV_ENOENT;
  k->c.critical = critical != 0;
  update_status(h);
  clink__health_arm(h);
  return 0;
}

int clink_health_remove_check(clink_health *h, const char *name) {
  if (h == NULL) return UV_EINVAL;
  hcheck *k = find_check(h, name);
  if (k == NULL) return UV_ENOENT;
  if (k->run) {
    k->run->chk = NULL;
    k->run = NULL;
  }
  k->removed = 1;
  if (!h->in_tick) compact_checks(h);
  update_status(h);
  clink__health_arm(h);
  return 0;
}

int clink_health_run_checks(clink_health *h, const char *name) {
  if (h == NULL) return UV_EINVAL;
  if (h->closing) return CLINK_ECLOSING;
  uint64_t now = now_ms(h);
  if (name) {
    hcheck *k = find_check(h, name);
    if (k == NULL) return UV_ENOENT;
    clink__hc_request(&k->c, now);
  } else {
    for (size_t i = 0; i < h->n_checks; i++) clink__hc_request(&h->checks[i]->c, now);
  }
  clink__health_arm(h);
  return 0;
}

const char *clink_health_check_name(const clink_health_check *run) {
  return run ? run->name : NULL;
}

int clink_health_check_done(clink_health_check *run, clink_check_status status,
                            double value, const char *unit, const char *message) {
  if (run == NULL || (status != CLINK_CHECK_PASS && status != CLINK_CHECK_WARN &&
                      status != CLINK_CHECK_FAIL))
    return UV_EINVAL;
  clink_health *h = run->h;
  hcheck *k = run->chk;
  clink__free(run);
  if (h == NULL) return CLINK_ECLOSING;
  if (k == NULL) return UV_ECANCELED;
  k->run = NULL;
  int ignored = 0;
  clink__hc_transition tr = clink__hc_finish(&k->c, now_ms(h), clink__wall_ms(), status,
                                             isfinite(value) ? value : 0.0, unit, message,
                                             &ignored);
  emit_transition(h, k, tr);
  update_status(h);
  clink__health_arm(h);
  return ignored ? UV_ETIMEDOUT : 0;
}

/* ------------------------------------------------------- built-in checks */

static double probe_ms(const clink_health *h) {
  return (double)(uv_hrtime() - h->probe.start_ns) / 1e6;
}

static void probe_answer(clink_health *h, clink_check_status st, double ms, const char *msg) {
  clink_health_check *run = h->probe.run;
  h->probe.run = NULL;
  if (run) (void)clink_health_check_done(run, st, ms, "ms", msg);
}

static void on_temp_closed(clink_client *c, void *ud) {
  clink_health *h = ud;
  h->temp_closing--;
  if (h->probe.client == c) {
    /* Closed before it connected (the monitor closed it). */
    probe_answer(h, CLINK_CHECK_FAIL, probe_ms(h), "closed before it connected");
    h->probe.active = 0;
    h->probe.client = NULL;
  }
  clink__health_maybe_finish(h);
}

/* Closes a temporary CLI; the monitor's close waits for it. */
void clink__health_close_temp(clink_health *h, clink_client *c) {
  if (clink_client_close(c, on_temp_closed, h) == 0) h->temp_closing++;
}

static void on_temp_connect(clink_client *c, int status, void *ud) {
  clink_health *h = ud;
  double ms = probe_ms(h);
  char msg[CLINK__HS_MSG];
  if (status == 0)
    snprintf(msg, sizeof(msg), "connected in %.1f ms", ms);
  else
    snprintf(msg, sizeof(msg), "%s: %s", clink_err_name(status), clink_client_last_error(c));
  h->probe.active = 0;
  h->probe.client = NULL;
  probe_answer(h, status == 0 ? CLINK_CHECK_PASS : CLINK_CHECK_FAIL, ms, msg);
  clink__health_close_temp(h, c); /* no-op when the monitor's close closed it already */
}

static void on_probe_ping(clink_client *c, int status, const clink_msg *response, void *ud) {
  clink_health *h = ud;
  (void)response;
  double ms = probe_ms(h);
  char msg[CLINK__HS_MSG];
  if (status == 0)
    snprintf(msg, sizeof(msg), "pooled session answered in %.1f ms", ms);
  else
    snprintf(msg, sizeof(msg), "pooled session did not answer: %s", clink_err_name(status));
  clink_pool *pool = h->probe.pool;
  h->probe.client = NULL;
  h->probe.pool = NULL;
  (void)clink_pool_release(pool, c);
  probe_answer(h, status == 0 ? CLINK_CHECK_PASS : CLINK_CHECK_FAIL, ms, msg);
  h->probe.active = 0;
  clink__health_maybe_finish(h);
}

/* An idle pooled member, pinged; 1 when a probe is out (or answered). */
static int probe_pool(clink_health *h, clink_health_check *run, uint64_t timeout) {
  for (size_t i = 0; i < h->n_att; i++) {
    if (h->att[i].kind != ATT_POOL) continue;
    clink_pool *p = h->att[i].obj;
    clink_client *c;
    if (clink_pool_try_acquire(p, &c) != 0) continue;
    h->probe.run = run;
    h->probe.pool = p;
    h->probe.client = c;
    h->probe.start_ns = uv_hrtime();
    int rc = clink_client_ping(c, timeout == CLINK__NEVER ? 0 : timeout, on_probe_ping, h);
    if (rc != 0) {
      h->probe.pool = NULL;
      h->probe.client = NULL;
      (void)clink_pool_release(p, c);
      char msg[CLINK__HS_MSG];
      snprintf(msg, sizeof(msg), "ping refused: %s", clink_err_name(rc));
      probe_answer(h, CLINK_CHECK_FAIL, 0, msg);
      return 1;
    }
    h->probe.active = 1;
    return 1;
  }
  return 0;
}

static void sdk_check(clink_health *h, clink_health_check *run, void *ud) {
  hcheck *k = ud;
  uint64_t timeout = k->c.timeout_ms;
  if (h->probe.active) {
    /* Cannot happen (a run out blocks the next one); never two probes. */
    (void)clink_health_check_done(run, CLINK_CHECK_FAIL, 0, "ms", "a probe is still out");
    return;
  }
  if (probe_pool(h, run, timeout)) return;
  /* Pools attached but every member busy: they are serving, a spawn would
   * only add load. */
  if (h->sdk_opts == NULL) {
    for (size_t i = 0; i < h->n_att; i++) {
      if (h->att[i].kind != ATT_POOL) continue;
      clink_pool_stats ps;
      memset(&ps, 0, sizeof(ps));
      ps.struct_size = sizeof(ps);
      if (clink_pool_get_stats(h->att[i].obj, &ps) == 0 && ps.in_use > 0) {
        char msg[CLINK__HS_MSG];
        snprintf(msg, sizeof(msg), "no idle pooled session: %u in use", (unsigned)ps.in_use);
        (void)clink_health_check_done(run, CLINK_CHECK_PASS, k->c.value, "ms", msg);
        return;
      }
    }
  }
  /* A temporary CLI: spawn and initialize, as the seed's check does. */
  clink_options *o = NULL;
  int rc = h->sdk_opts ? clink_options_dup(&o, h->sdk_opts) : clink_options_new(&o);
  if (rc == 0 && timeout != CLINK__NEVER) rc = clink_options_set_connect_timeout_ms(o, timeout);
  clink_client *c = NULL;
  if (rc == 0) rc = clink_client_new(&c, h->loop, o);
  clink_options_free(o);
  if (rc != 0) {
    (void)clink_health_check_done(run, CLINK_CHECK_FAIL, 0, "ms", clink_strerror(rc));
    return;
  }
  h->probe.run = run;
  h->probe.start_ns = uv_hrtime();
  rc = clink_client_connect(c, on_temp_connect, h);
  if (rc != 0) {
    char msg[CLINK__HS_MSG];
    snprintf(msg, sizeof(msg), "%s: %s", clink_err_name(rc), clink_client_last_error(c));
    probe_answer(h, CLINK_CHECK_FAIL, 0, msg);
    clink__health_close_temp(h, c);
    return;
  }
  h->probe.client = c;
  h->probe.pool = NULL;
  h->probe.active = 1;
}

static void memory_check(clink_health *h, clink_health_check *run, void *ud) {
  (void)ud;
  uint64_t total, avail;
  if (clink__proc_meminfo(&total, &avail) == 0) {
    h->sys.mem_total = total;
    h->sys.mem_avail = avail;
    h->sys.mem_used_pct = total ? 100.0 * (double)(total - avail) / (double)total : 0.0;
  }
  double pct = h->sys.mem_used_pct;
  clink_check_status st = clink__threshold(pct, h->mem_warn, h->mem_fail);
  char msg[CLINK__HS_MSG];
  snprintf(msg, sizeof(msg), "memory %.1f %% used", pct);
  (void)clink_health_check_done(run, st, pct, "percent", msg);
}

static void sessions_check(clink_health *h, clink_health_check *run, void *ud) {
  (void)ud;
  (void)clink__health_observe(h, NULL);
  double n = (double)h->sessions_active;
  clink_check_status st = clink__threshold(n, h->sess_warn, h->sess_fail);
  char msg[CLINK__HS_MSG];
  snprintf(msg, sizeof(msg), "%llu active sessions", (unsigned long long)h->sessions_active);
  (void)clink_health_check_done(run, st, n, "sessions", msg);
}

/* A built-in check's ud is its own check (sdk_check reads its timeout). */
static int add_builtin(clink_health *h, const char *name, uint64_t interval, uint64_t timeout,
                       int critical, clink_health_check_fn fn) {
  int rc = clink_health_add_check(h, name, interval, timeout, critical, fn, NULL);
  if (rc == 0) h->checks[h->n_checks - 1]->ud = h->checks[h->n_checks - 1];
  return rc;
}

int clink__health_add_builtins(clink_health *h) {
  int rc = add_builtin(h, CLINK_HEALTH_CHECK_SDK, CLINK_HEALTH_DEFAULT_SDK_INTERVAL_MS,
                       CLINK_HEALTH_DEFAULT_SDK_TIMEOUT_MS, 1, sdk_check);
  if (rc == 0)
    rc = add_builtin(h, CLINK_HEALTH_CHECK_MEMORY, CLINK_HEALTH_DEFAULT_INTERVAL_MS,
                     CLINK_HEALTH_DEFAULT_TIMEOUT_MS, 0, memory_check);
  if (rc == 0)
    rc = add_builtin(h, CLINK_HEALTH_CHECK_SESSIONS, CLINK_HEALTH_DEFAULT_INTERVAL_MS,
                     CLINK_HEALTH_DEFAULT_TIMEOUT_MS, 0, sessions_check);
  return rc;
}
