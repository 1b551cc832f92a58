/* The health monitor's pure parts (see health.h). */
#include "monitor/health.h"

#include <math.h>
#include <stdio.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "monitor/procfs.h"

/* ---------------------------------------------------------------- names */

const char *clink_health_status_name(clink_health_status s) {
  switch (s) {
    case CLINK_HEALTH_HEALTHY: return "healthy";
    case CLINK_HEALTH_DEGRADED: return "degraded";
    case CLINK_HEALTH_UNHEALTHY: return "unhealthy";
  }
  return "unknown";
}

const char *clink_check_status_name(clink_check_status s) {
  switch (s) {
    case CLINK_CHECK_PASS: return "pass";
    case CLINK_CHECK_WARN: return "warn";
    case CLINK_CHECK_FAIL: return "fail";
    case CLINK_CHECK_PENDING: return "pending";
  }
  return "unknown";
}

const char *clink_grade_name(clink_grade g) {
  switch (g) {
    case CLINK_GRADE_POOR: return "Poor";
    case CLINK_GRADE_STARTING: return "Starting";
    case CLINK_GRADE_GOOD: return "Good";
    case CLINK_GRADE_EXCELLENT: return "Excellent";
  }
  return "unknown";
}

const char *clink__breaker_state_lc(clink_breaker_state st) {
  switch (st) {
    case CLINK_BREAKER_CLOSED: return "closed";
    case CLINK_BREAKER_OPEN: return "open";
    case CLINK_BREAKER_HALF_OPEN: return "half_open";
    case CLINK_BREAKER_DISABLED: return "disabled";
    case CLINK_BREAKER_FORCED_OPEN: return "forced_open";
  }
  return "unknown";
}

static void copy_trunc(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) {
    n = cap - 1;
    /* Do not cut a UTF-8 sequence in two. */
    while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
  }
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
}

void clink__check_key(const clink__hcheck *c, char *out, size_t cap) {
  if (strchr(c->name, ':')) {
    snprintf(out, cap, "%s", c->name);
    return;
  }
  const char *m = "status";
  if (strcmp(c->unit, "ms") == 0 || strcmp(c->unit, "s") == 0)
    m = "responseTime";
  else if (strcmp(c->unit, "percent") == 0 || strcmp(c->unit, "%") == 0)
    m = "utilization";
  else if (strcmp(c->unit, "sessions") == 0 || strcmp(c->unit, "connections") == 0)
    m = "connections";
  snprintf(out, cap, "%s:%s", c->name, m);
}

/* --------------------------------------------------------------- checks */

void clink__hc_init(clink__hcheck *c, const char *name, uint64_t interval_ms,
                    uint64_t timeout_ms, int critical, uint64_t now_ms) {
  memset(c, 0, sizeof(*c));
  copy_trunc(c->name, sizeof(c->name), name);
  c->interval_ms = interval_ms;
  c->timeout_ms = clink__timeout_norm(timeout_ms);
  c->critical = critical != 0;
  c->status = CLINK_CHECK_PENDING;
  c->next_ms = now_ms;
  c->deadline_ms = CLINK__NEVER;
}

int clink__hc_due(const clink__hcheck *c, uint64_t now_ms) {
  return !c->running && now_ms >= c->next_ms;
}

void clink__hc_start(clink__hcheck *c, uint64_t now_ms) {
  c->running = 1;
  c->timed_out = 0;
  c->started_ms = now_ms;
  c->deadline_ms = clink__deadline(now_ms, c->timeout_ms);
  c->runs++;
}

void clink__hc_request(clink__hcheck *c, uint64_t now_ms) {
  if (!c->running) c->next_ms = now_ms;
}

static clink__hc_transition apply(clink__hcheck *c, uint64_t now_ms, uint64_t unix_ms,
                                  clink_check_status st, double value, const char *unit,
                                  const char *message) {
  clink_check_status prev = c->status;
  c->status = st;
  c->value = value;
  copy_trunc(c->unit, sizeof(c->unit), unit);
  copy_trunc(c->message, sizeof(c->message), message);
  c->answered_unix_ms = unix_ms;
  c->duration_ms = now_ms - c->started_ms;
  if (st == CLINK_CHECK_FAIL) {
    c->failures++;
    c->consecutive_failures++;
  } else {
    c->consecutive_failures = 0;
  }
  if (st == prev) return CLINK__HC_SAME;
  if (st == CLINK_CHECK_FAIL) return CLINK__HC_FAILED;
  if (st == CLINK_CHECK_WARN) return CLINK__HC_DEGRADED;
  if (prev == CLINK_CHECK_WARN || prev == CLINK_CHECK_FAIL) return CLINK__HC_RECOVERED;
  return CLINK__HC_SAME; /* pending -> pass */
}

/* The next start: an interval after the last one began, never before now. */
static void schedule_next(clink__hcheck *c, uint64_t now_ms) {
  uint64_t next = clink__deadline(c->started_ms, c->interval_ms);
  c->next_ms = next == CLINK__NEVER ? CLINK__NEVER : next > now_ms ? next : now_ms;
}

clink__hc_transition clink__hc_expire(clink__hcheck *c, uint64_t now_ms, uint64_t unix_ms) {
  if (!c->running || c->timed_out || now_ms < c->deadline_ms) return CLINK__HC_SAME;
  c->timed_out = 1;
  c->timeouts++;
  char msg[64];
  snprintf(msg, sizeof(msg), "timed out after %llu ms",
           (unsigned long long)(now_ms - c->started_ms));
  /* The observed value of a timed-out run is the time it was given. */
  return apply(c, now_ms, unix_ms, CLINK_CHECK_FAIL, (double)(now_ms - c->started_ms),
               c->unit[0] ? c->unit : "ms", msg);
}

clink__hc_transition clink__hc_finish(clink__hcheck *c, uint64_t now_ms, uint64_t unix_ms,
                                      clink_check_status st, double value, const char *unit,
                                      const char *message, int *ignored) {
  int late = c->timed_out;
  c->running = 0;
  c->timed_out = 0;
  c->deadline_ms = CLINK__NEVER;
  schedule_next(c, now_ms);
  if (ignored) *ignored = late;
  if (late) return CLINK__HC_SAME;
  return apply(c, now_ms, unix_ms, st, value, unit, message);
}

uint64_t clink__hc_next_due(const clink__hcheck *c) {
  if (c->running) return c->timed_out ? CLINK__NEVER : c->deadline_ms;
  return c->next_ms;
}

clink_health_status clink__health_aggregate(const clink__hcheck *const *checks, size_t n) {
  clink_health_status st = CLINK_HEALTH_HEALTHY;
  for (size_t i = 0; i < n; i++) {
    const clink__hcheck *c = checks[i];
    if (c->status == CLINK_CHECK_FAIL && c->critical) return CLINK_HEALTH_UNHEALTHY;
    if (c->status == CLINK_CHECK_FAIL || c->status == CLINK_CHECK_WARN)
      st = CLINK_HEALTH_DEGRADED;
  }
  return st;
}

clink_check_status clink__threshold(double value, double warn, double fail) {
  if (fail > 0 && value > fail) return CLINK_CHECK_FAIL;
  if (warn > 0 && value > warn) return CLINK_CHECK_WARN;
  return CLINK_CHECK_PASS;
}

/* --------------------------------------------------------------- grades */

void clink__session_grade(clink_session_health *sh) {
  double up_s = (double)sh->uptime_ms / 1000.0;
  sh->throughput = up_s > 0 ? (double)sh->messages / up_s : 0.0;
  sh->error_rate = (double)sh->errors / (double)(sh->messages ? sh->messages : 1);
  sh->error_rate_grade = sh->error_rate < 0.01   ? CLINK_GRADE_EXCELLENT
                         : sh->error_rate < 0.05 ? CLINK_GRADE_GOOD
                                                 : CLINK_GRADE_POOR;
  sh->throughput_grade = sh->throughput > 10  ? CLINK_GRADE_EXCELLENT
                         : sh->throughput > 5 ? CLINK_GRADE_GOOD
                                              : CLINK_GRADE_POOR;
  sh->stability_grade = up_s > 3600  ? CLINK_GRADE_EXCELLENT
                        : up_s > 600 ? CLINK_GRADE_GOOD
                                     : CLINK_GRADE_STARTING;
}

size_t clink__session_report(const clink_session_health *sh, const char *session_id,
                             char *buf, size_t cap) {
  clink__wbuf w = {buf, cap, 0, 0, 0};
  clink__w_str(&w, "\xF0\x9F\x93\x8A CONNECTION HEALTH REPORT\n");
  clink__w_str(&w, "==============================\n");
  if (session_id) clink__w_fmt(&w, "Session: %s\n", session_id[0] ? session_id : "(none yet)");
  clink__w_fmt(&w, "Uptime: %.1fs\n", (double)sh->uptime_ms / 1000.0);
  clink__w_fmt(&w, "Messages: %llu\n", (unsigned long long)sh->messages);
  clink__w_fmt(&w, "Errors: %llu\n", (unsigned long long)sh->errors);
  clink__w_fmt(&w, "Throughput: %.2f msgs/sec\n", sh->throughput);
  clink__w_fmt(&w, "Error Rate: %s\n", clink_grade_name(sh->error_rate_grade));
  clink__w_fmt(&w, "Performance: %s\n", clink_grade_name(sh->throughput_grade));
  clink__w_fmt(&w, "Stability: %s\n", clink_grade_name(sh->stability_grade));
  if (sh->pid)
    clink__w_fmt(&w, "Process: pid %d, RSS %.1f MB, CPU %.2fs\n", sh->pid,
                 (double)sh->rss_bytes / (1024.0 * 1024.0), sh->cpu_seconds);
  if (cap > 0) buf[w.len < cap ? w.len : cap - 1] = '\0';
  return w.len;
}

int clink_session_health_get(const clink_client *client, clink_session_health *out) {
  if (client == NULL || out == NULL || out->struct_size < sizeof(size_t)) return UV_EINVAL;
  clink_client_metrics m;
  m.struct_size = sizeof(m);
  int rc = clink_client_get_metrics(client, &m);
  if (rc != 0) return rc;
  clink_session_health sh;
  memset(&sh, 0, sizeof(sh));
  clink_client_state st = clink_client_get_state(client);
  sh.uptime_ms = st == CLINK_CLIENT_CONNECTED || st == CLINK_CLIENT_RECOVERING ? m.uptime_ms : 0;
  sh.messages = m.messages_in + m.messages_out;
  sh.errors = m.errors;
  clink__session_grade(&sh);
  sh.pid = clink_client_pid(client);
  if (sh.pid > 0) {
    uint64_t ticks;
    if (clink__proc_mem(sh.pid, &sh.rss_bytes, &sh.vms_bytes) != 0) sh.rss_bytes = sh.vms_bytes = 0;
    if (clink__proc_cpu_ticks(sh.pid, &ticks) == 0)
      sh.cpu_seconds = (double)ticks / (double)clink__clock_ticks();
  }
  size_t n = out->struct_size < sizeof(sh) ? out->struct_size : sizeof(sh);
  sh.struct_size = n;
  memcpy(out, &sh, n);
  return 0;
}

int clink_session_health_report(const clink_session_health *sh, char *buf, size_t cap,
                                size_t *len) {
  if (sh == NULL || len == NULL || (buf == NULL && cap > 0)) return UV_EINVAL;
  clink_session_health full;
  memset(&full, 0, sizeof(full));
  memcpy(&full, sh, sh->struct_size < sizeof(full) ? sh->struct_size : sizeof(full));
  char one;
  size_t need = clink__session_report(&full, NULL, cap ? buf : &one, cap ? cap : 1);
  *len = need;
  return need < cap ? 0 : UV_ENOBUFS;
}

/* ----------------------------------------------------------- histograms */

const uint64_t clink__histo_le_us[CLINK__HISTO_BUCKETS] = {
    5000,    10000,   25000,    50000,    100000,   250000,   500000,   1000000,
    2500000, 5000000, 10000000, 30000000, 60000000, 120000000, 300000000};

/* -------------------------------------------------------------- tracker */

static size_t hash_ptr(const void *p, size_t cap) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= UINT64_C(0xff51afd7ed558ccd);
  x ^= x >> 33;
  return (size_t)(x & (cap - 1));
}

clink__tsess *clink__tracker_find(const clink__tracker *t, const void *key) {
  if (t->cap == 0 || key == NULL) return NULL;
  for (size_t i = hash_ptr(key, t->cap);; i = (i + 1) & (t->cap - 1)) {
    if (t->slots[i].key == key) return &t->slots[i];
    if (t->slots[i].key == NULL) return NULL;
  }
}

int clink__tracker_begin(clink__tracker *t, size_t n) {
  /* Load factor <= 1/2, a power of two. */
  size_t cap = 16;
  while (cap < 2 * (n + 1)) cap *= 2;
  /* A table far above what is needed (a burst of sessions ended) is
   * replaced by one of the right size: memory and the clearing below go
   * back down with the sessions. */
  if (t->spare_cap < cap || t->spare_cap > 4 * cap) {
    clink__tsess *s = clink__calloc(cap, sizeof(*s));
    if (s == NULL) return UV_ENOMEM;
    clink__free(t->spare);
    t->spare = s;
    t->spare_cap = cap;
  } else {
    cap = t->spare_cap;
    memset(t->spare, 0, cap * sizeof(*t->spare));
  }
  return 0;
}

/* Counts a turn latency per turn that ended since the last look: exact when
 * one did (last_turn_ms), the moving average for the others. */
static void count_turns(clink__tcount *acc, uint64_t delta, const clink_client_metrics *m) {
  if (acc->turn_latency == NULL || delta == 0) return;
  clink__histo_add(acc->turn_latency, m->last_turn_ms * 1000u);
  for (uint64_t k = 1; k < delta && k < 1024; k++)
    clink__histo_add(acc->turn_latency, m->turn_ms_ewma * 1000u);
}

static uint64_t delta(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

clink__tsess *clink__tracker_see(clink__tracker *t, const void *key, int pid,
                                 const clink_client_metrics *m, clink__tcount *acc) {
  size_t cap = t->spare_cap;
  size_t i = hash_ptr(key, cap);
  while (t->spare[i].key != NULL) {
    if (t->spare[i].key == key) return NULL; /* seen twice in a pass */
    i = (i + 1) & (cap - 1);
  }
  clink__tsess *e = &t->spare[i];
  const clink__tsess *old = clink__tracker_find(t, key);
  if (old) *e = *old;
  e->key = key;
  if (!old || pid != e->pid) {
    /* New, or another process of the same client (recovery): its process
     * figures start over. */
    e->pid = pid;
    e->proc_known = e->cpu_known = 0;
    e->cpu_pct = -1;
    e->rss = e->vms = 0;
  }
  uint64_t turns = delta(m->turns_ok, e->turns_ok) + delta(m->turns_failed, e->turns_failed);
  acc->turns_ok += delta(m->turns_ok, e->turns_ok);
  acc->turns_failed += delta(m->turns_failed, e->turns_failed);
  acc->errors += delta(m->errors, e->errors);
  acc->recovery_attempts += delta(m->recovery_attempts, e->recovery_attempts);
  count_turns(acc, turns, m);
  if (!e->connect_counted && m->connect_ms > 0 && acc->connect_time) {
    clink__histo_add(acc->connect_time, m->connect_ms * 1000u);
    e->connect_counted = 1;
  }
  e->turns_ok = m->turns_ok;
  e->turns_failed = m->turns_failed;
  e->errors = m->errors;
  e->recovery_attempts = m->recovery_attempts;
  e->messages = m->messages_in + m->messages_out;
  t->n++;
  return e;
}

void clink__tracker_end(clink__tracker *t) {
  clink__tsess *s = t->slots;
  size_t c = t->cap;
  t->slots = t->spare;
  t->cap = t->spare_cap;
  t->spare = s;
  t->spare_cap = c;
  if (t->cap && t->proc_cursor >= t->cap) t->proc_cursor = 0;
}

void clink__tracker_free(clink__tracker *t) {
  clink__free(t->slots);
  clink__free(t->spare);
  memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------- snapshot */

int clink__hs_reserve(void **arr, size_t *cap, size_t n, size_t elem) {
  if (n <= *cap) {
    /* Far below its peak (a burst ended): give the memory back. A failed
     * shrink keeps the larger block. */
    if (*cap > 64 && n < *cap / 4) {
      size_t c = n < 4 ? 8 : 2 * n;
      void *p = realloc(*arr, c * elem);
      if (p != NULL) {
        *arr = p;
        *cap = c;
      }
    }
    return 0;
  }
  size_t c = *cap ? *cap : 8;
  while (c < n) c *= 2;
  if (c > SIZE_MAX / elem) return UV_ENOMEM;
  void *p = realloc(*arr, c * elem);
  if (p == NULL) return UV_ENOMEM;
  *arr = p;
  *cap = c;
  return 0;
}

int clink_health_snapshot_new(clink_health_snapshot **out) {
  if (out == NULL) return UV_EINVAL;
  clink_health_snapshot *s = clink__calloc(1, sizeof(*s));
  if (s == NULL) return UV_ENOMEM;
  *out = s;
  return 0;
}

void clink_health_snapshot_free(clink_health_snapshot *s) {
  if (s == NULL) return;
  clink__free(s->sess);
  clink__free(s->brk);
  clink__free(s->fb);
  clink__free(s->chk);
  clink__free(s);
}

clink_health_status clink_health_snapshot_status(const clink_health_snapshot *s) {
  return s ? s->status : CLINK_HEALTH_UNHEALTHY;
}

size_t clink_health_snapshot_check_count(const clink_health_snapshot *s) {
  return s ? s->n_chk : 0;
}

int clink_health_snapshot_check(const clink_health_snapshot *s, size_t i, const char **name,
                                clink_check_status *status, int *critical) {
  if (s == NULL || i >= s->n_chk) return UV_EINVAL;
  const clink__hcheck *c = &s->chk[i].c;
  if (name) *name = c->name;
  if (status) *status = c->status;
  if (critical) *critical = c->critical;
  return 0;
}

struct clink_health_fallbacks {
  clink_health_snapshot *snap;
  int err;
};

int clink_health_fallbacks_add(clink_health_fallbacks *out, const char *operation,
                               const clink_health_fallback_op *op) {
  if (out == NULL || operation == NULL || op == NULL || op->struct_size < sizeof(size_t))
    return UV_EINVAL;
  clink_health_snapshot *s = out->snap;
  if (clink__hs_reserve((void **)&s->fb, &s->cap_fb, s->n_fb + 1, sizeof(*s->fb)) != 0) {
    out->err = UV_ENOMEM;
    return UV_ENOMEM;
  }
  clink__hs_fallback *f = &s->fb[s->n_fb++];
  copy_trunc(f->operation, sizeof(f->operation), operation);
  memset(&f->op, 0, sizeof(f->op));
  memcpy(&f->op, op, op->struct_size < sizeof(f->op) ? op->struct_size : sizeof(f->op));
  f->op.struct_size = sizeof(f->op);
  s->fallbacks_used += f->op.fallback_used;
  return 0;
}

int clink__hs_collect_fallbacks(clink_health_snapshot *s, clink_health_fallback_fn fn, void *ud) {
  s->n_fb = 0;
  s->fallbacks_used = 0;
  s->have_fallbacks = fn != NULL;
  if (fn == NULL) return 0;
  clink_health_fallbacks out = {s, 0};
  fn(&out, ud);
  return out.err;
}
