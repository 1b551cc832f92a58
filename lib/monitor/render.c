/* One snapshot, many renderings: the JSON ones through cJSON, the text ones
 * through a small writer; into the caller's buffer or a new one. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/internal.h"
#include "monitor/health.h"

/* --------------------------------------------------------------- writer */

static int w_room(clink__wbuf *w, size_t n) {
  if (!w->grow) return 0;
  if (w->oom) return -1;
  if (w->len + n + 1 <= w->cap) return 0;
  size_t c = w->cap ? w->cap : 256;
  while (c < w->len + n + 1) c *= 2;
  char *p = realloc(w->buf, c);
  if (p == NULL) {
    w->oom = 1;
    return -1;
  }
  w->buf = p;
  w->cap = c;
  return 0;
}

void clink__w_put(clink__wbuf *w, const char *s, size_t n) {
  if (w_room(w, n) == 0 && w->len < w->cap) {
    size_t fit = w->cap - 1 - w->len;
    memcpy(w->buf + w->len, s, n < fit ? n : fit);
  }
  w->len += n;
}

void clink__w_str(clink__wbuf *w, const char *s) { clink__w_put(w, s, strlen(s)); }

void clink__w_u64(clink__wbuf *w, uint64_t v) {
  char tmp[24];
  char *p = tmp + sizeof(tmp);
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  clink__w_put(w, p, (size_t)(tmp + sizeof(tmp) - p));
}

void clink__w_json_str(clink__wbuf *w, const char *s) {
  static const char hex[] = "0123456789abcdef";
  clink__w_put(w, "\"", 1);
  const char *run = s;
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    clink__w_put(w, run, (size_t)(p - run));
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
    if (c == '"' || c == '\\') {
      esc[1] = (char)c;
      clink__w_put(w, esc, 2);
    } else if (c == '\n') {
      clink__w_put(w, "\\n", 2);
    } else {
      clink__w_put(w, esc, 6);
    }
    run = p + 1;
  }
  clink__w_str(w, run);
  clink__w_put(w, "\"", 1);
}

void clink__w_fmt(clink__wbuf *w, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof(tmp)) {
    clink__w_put(w, tmp, (size_t)n);
    return;
  }
  /* Longer than the scratch: format in place. */
  if (w_room(w, (size_t)n) == 0 && w->len + (size_t)n < w->cap) {
    va_start(ap, fmt);
    vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
  }
  w->len += (size_t)n;
}

/* ----------------------------------------------------------------- time */

void clink__iso8601_s(uint64_t unix_ms, char out[32]) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", (tm.tm_year + 1900) % 10000,
           (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
           tm.tm_sec % 100);
}

/* ----------------------------------------------------------------- JSON */

static double round_to(double x, double unit) {
  if (!isfinite(x)) return 0.0;
  return round(x / unit) * unit;
}
static double r1(double x) { return round_to(x, 0.1); }
static double r2(double x) { return round_to(x, 0.01); }

/* Builders that keep going after a failure and report it once at the end. */
typedef struct jb {
  int ok;
} jb;

static cJSON *add(jb *b, cJSON *o, const char *k, cJSON *v) {
  if (!b->ok || v == NULL || !cJSON_AddItemToObject(o, k, v)) {
    cJSON_Delete(v);
    b->ok = 0;
    return NULL;
  }
  return v;
}
static cJSON *add_num(jb *b, cJSON *o, const char *k, double v) {
  return add(b, o, k, b->ok ? cJSON_CreateNumber(v) : NULL);
}
static cJSON *add_str(jb *b, cJSON *o, const char *k, const char *s) {
  return add(b, o, k, b->ok ? cJSON_CreateString(s) : NULL);
}
/* s must outlive the tree (a snapshot string). */
static cJSON *add_ref(jb *b, cJSON *o, const char *k, const char *s) {
  return add(b, o, k, b->ok ? cJSON_CreateStringReference(s) : NULL);
}
static cJSON *add_bool(jb *b, cJSON *o, const char *k, int v) {
  return add(b, o, k, b->ok ? cJSON_CreateBool(v) : NULL);
}
static cJSON *add_obj(jb *b, cJSON *o, const char *k) {
  return add(b, o, k, b->ok ? cJSON_CreateObject() : NULL);
}
static cJSON *add_time(jb *b, cJSON *o, const char *k, uint64_t unix_ms) {
  if (unix_ms == 0) return add(b, o, k, b->ok ? cJSON_CreateNull() : NULL);
  char ts[32];
  clink__iso8601_s(unix_ms, ts);
  return add_str(b, o, k, ts);
}

/* Whether s (n bytes) needs no JSON escape: no control character, quote
 * or backslash. Eight bytes at a time ("has a byte less than" tricks: any
 * match is found, never a false one). */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
static int json_plain(const char *s, size_t n) {
  uint64_t hit = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v, q, b;
    memcpy(&v, s + i, 8);
    q = v ^ (ONES * '"');
    b = v ^ (ONES * '\\');
    hit |= ((v - ONES * 0x20) & ~v) | ((q - ONES) & ~q) | ((b - ONES) & ~b);
  }
  if (hit & HIGHS) return 0;
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == '"' || c == '\\') return 0;
  }
  return 1;
}

static const char *sdk_status(const clink_health_snapshot *s) {
  if (!s->sdk_known) return "unknown";
  switch (s->sdk_status) {
    case CLINK_CHECK_PASS: return "connected";
    case CLINK_CHECK_WARN: return "degraded";
    case CLINK_CHECK_FAIL: return "disconnected";
    default: return "unknown";
  }
}

static double error_rate_pct(const clink_health_snapshot *s) {
  return s->requests_total ? 100.0 * (double)s->errors_total / (double)s->requests_total : 0.0;
}

#define GB (1024.0 * 1024.0 * 1024.0)
#define MB (1024.0 * 1024.0)

static void breakers_json(jb *b, cJSON *parent, const clink_health_snapshot *s, int full) {
  cJSON *cb = add_obj(b, parent, "circuit_breakers");
  for (size_t i = 0; b->ok && i < s->n_brk; i++) {
    const clink__hs_breaker *k = &s->brk[i];
    if (cJSON_GetObjectItemCaseSensitive(cb, k->name)) continue; /* names are unique */
    cJSON *o = add_obj(b, cb, k->name);
    add_ref(b, o, "state", clink__breaker_state_lc(k->state));
    add_num(b, o, "failure_count", k->failure_count);
    add_bool(b, o, "can_execute", k->can_execute);
    if (!full) continue;
    add_num(b, o, "total_calls", (double)k->total_calls);
    add_num(b, o, "total_successes", (double)k->total_successes);
    add_num(b, o, "total_failures", (double)k->total_failures);
    add_num(b, o, "total_rejected", (double)k->total_rejected);
    add_num(b, o, "opened_count", (double)k->opened_count);
    add_num(b, o, "failure_rate", k->failure_rate_pct < 0 ? 0.0 : r2(k->failure_rate_pct));
  }
}

static void fallbacks_json(jb *b, cJSON *parent, const clink_health_snapshot *s) {
  cJSON *fs = add_obj(b, parent, "fallback_stats");
  cJSON *ops = add_obj(b, fs, "operations");
  for (size_t i = 0; b->ok && i < s->n_fb; i++) {
    const clink__hs_fallback *f = &s->fb[i];
    if (cJSON_GetObjectItemCaseSensitive(ops, f->operation)) continue;
    cJSON *o = add_obj(b, ops, f->operation);
    add_num(b, o, "total_calls", (double)f->op.total_calls);
    add_num(b, o, "primary_success", (double)f->op.primary_success);
    add_num(b, o, "fallback_used", (double)f->op.fallback_used);
    add_num(b, o, "cache_hits", (double)f->op.cache_hits);
  }
}

static void detailed(jb *b, cJSON *root, const clink_health_snapshot *s) {
  char ts[32];
  clink__iso8601_s(s->unix_ms, ts);
  add_ref(b, root, "status", clink_health_status_name(s->status));
  add_ref(b, root, "service", s->service);
  add_ref(b, root, "version", s->version);
  add_num(b, root, "uptime_seconds", (double)(s->uptime_ms / 1000));
  add_str(b, root, "timestamp", ts);

  cJSON *se = add_obj(b, root, "sessions");
  add_num(b, se, "active_count", (double)s->sessions_active);
  add_num(b, se, "total_created", (double)s->sessions_created);
  /* Thousands of ids: one raw node written here, not a node each. */
  if (b->ok) {
    /* Room for every id unescaped; an id that needs escapes goes through
     * the writer's slow path. */
    clink__wbuf w = {malloc(s->n_sess * (CLINK__HS_NAME + 3) + 3),
                     s->n_sess * (CLINK__HS_NAME + 3) + 3, 0, 1, 0};
    if (w.buf == NULL) w.cap = 0;
    clink__w_put(&w, "[", 1);
    for (size_t i = 0; i < s->n_sess; i++) {
      const clink__hs_session *x = &s->sess[i];
      if (x->id[0] == '\0' || (x->state != CLINK_CLIENT_CONNECTED &&
                               x->state != CLINK_CLIENT_RECOVERING))
        continue;
      size_t n = strlen(x->id);
      int plain = json_plain(x->id, n);
      if (w.len > 1) clink__w_put(&w, ",", 1);
      if (plain && w.len + n + 3 <= w.cap) {
        w.buf[w.len] = '"';
        memcpy(w.buf + w.len + 1, x->id, n);
        w.buf[w.len + 1 + n] = '"';
        w.len += n + 2;
      } else {
        clink__w_json_str(&w, x->id);
      }
    }
    clink__w_put(&w, "]", 1);
    cJSON *raw = w.oom ? NULL : (w.buf[w.len] = '\0', cJSON_CreateRaw(w.buf));
    clink__free(w.buf);
    add(b, se, "active_sessions", raw);
  }
  add_num(b, se, "session_configs", (double)s->session_configs);

  cJSON *sys = add_obj(b, root, "system");
  cJSON *cpu = add_obj(b, sys, "cpu");
  add_num(b, cpu, "usage_percent", s->sys.cpu_pct < 0 ? 0.0 : r1(s->sys.cpu_pct));
  add_num(b, cpu, "count", s->sys.cpu_count);
  double load[3] = {r2(s->sys.load[0]), r2(s->sys.load[1]), r2(s->sys.load[2])};
  add(b, cpu, "load_average", b->ok ? cJSON_CreateDoubleArray(load, 3) : NULL);
  cJSON *mem = add_obj(b, sys, "memory");
  add_num(b, mem, "total_gb", r1((double)s->sys.mem_total / GB));
  add_num(b, mem, "available_gb", r1((double)s->sys.mem_avail / GB));
  add_num(b, mem, "usage_percent", r1(s->sys.mem_used_pct));
  add_num(b, mem, "process_rss_mb", r1((double)s->sys.proc_rss / MB));
  add_num(b, mem, "process_vms_mb", r1((double)s->sys.proc_vms / MB));
  cJSON *disk = add_obj(b, sys, "disk");
  add_num(b, disk, "usage_percent", s->sys.disk_used_pct < 0 ? 0.0 : r1(s->sys.disk_used_pct));

  cJSON *sdk = add_obj(b, root, "claude_sdk");
  add_ref(b, sdk, "status", sdk_status(s));
  add_num(b, sdk, "connection_time_ms", r1(s->sdk_connection_ms));
  add_time(b, sdk, "last_check", s->sdk_last_unix_ms);

  cJSON *perf = add_obj(b, root, "performance");
  add_num(b, perf, "requests_total", (double)s->requests_total);
  add_num(b, perf, "requests_in_progress", (double)s->requests_in_progress);
  add_num(b, perf, "errors_total", (double)s->errors_total);
  add_num(b, perf, "error_rate", r2(error_rate_pct(s)));

  cJSON *stab = add_obj(b, root, "stability");
  breakers_json(b, stab, s, 0);
  fallbacks_json(b, root, s);

  /* Beyond the seed's fields: the attached pools, summed. */
  if (s->n_pools) {
    cJSON *pool = add_obj(b, root, "pool");
    add_num(b, pool, "size", (double)s->pool.size);
    add_num(b, pool, "idle", (double)s->pool.idle);
    add_num(b, pool, "in_use", (double)s->pool.in_use);
    add_num(b, pool, "starting", (double)s->pool.starting);
    add_num(b, pool, "pending_acquires", (double)s->pool.pending_acquires);
    add_num(b, pool, "created", (double)s->pool.created);
    add_num(b, pool, "closed", (double)s->pool.closed);
    add_num(b, pool, "acquired", (double)s->pool.acquired);
    add_num(b, pool, "timeouts", (double)s->pool.timeouts);
  }
}

static void metrics(jb *b, cJSON *root, const clink_health_snapshot *s) {
  add_num(b, root, "requests_total", (double)s->requests_total);
  add_num(b, root, "requests_in_progress", (double)s->requests_in_progress);
  add_num(b, root, "errors_total", (double)s->errors_total);
  add_num(b, root, "sessions_created", (double)s->sessions_created);
  add_num(b, root, "sessions_active", (double)s->sessions_active);
  add_num(b, root, "uptime_seconds", (double)(s->uptime_ms / 1000));
  add_num(b, root, "fallbacks_used", (double)s->fallbacks_used);
  add_num(b, root, "circuit_breakers_open", (double)s->breakers_open);
  add_num(b, root, "memory_usage_percent", r1(s->sys.mem_used_pct));
  add_num(b, root, "cpu_usage_percent", s->sys.cpu_pct < 0 ? 0.0 : r1(s->sys.cpu_pct));
}

static void check_json(jb *b, cJSON *o, const clink__hcheck *c) {
  add_ref(b, o, "status", clink_check_status_name(c->status));
  add_bool(b, o, "critical", c->critical);
  add_num(b, o, "observed_value", r2(c->value));
  add_ref(b, o, "observed_unit", c->unit);
  add_ref(b, o, "message", c->message);
  add_time(b, o, "last_check", c->answered_unix_ms);
  add_num(b, o, "duration_ms", (double)c->duration_ms);
  add_num(b, o, "consecutive_failures", (double)c->consecutive_failures);
  add_num(b, o, "runs", (double)c->runs);
  add_num(b, o, "failures", (double)c->failures);
  add_num(b, o, "timeouts", (double)c->timeouts);
}

static void stability(jb *b, cJSON *root, const clink_health_snapshot *s) {
  char ts[32];
  clink__iso8601_s(s->unix_ms, ts);
  add_ref(b, root, "status", clink_health_status_name(s->status));
  add_str(b, root, "timestamp", ts);
  breakers_json(b, root, s, 1);
  add_num(b, root, "circuit_breakers_open", (double)s->breakers_open);
  fallbacks_json(b, root, s);
  cJSON *hc = add_obj(b, root, "health_checks");
  for (size_t i = 0; b->ok && i < s->n_chk; i++)
    check_json(b, add_obj(b, hc, s->chk[i].c.name), &s->chk[i].c);
  if (s->have_outbox) {
    cJSON *ob = add_obj(b, root, "outbox");
    add_num(b, ob, "pending", (double)s->outbox.pending);
    add_num(b, ob, "in_flight", (double)s->outbox.in_flight);
    add_num(b, ob, "delivered", (double)s->outbox.delivered);
    add_num(b, ob, "dead", (double)s->outbox.dead);
    add_num(b, ob, "oldest_pending_age_seconds",
            r1((double)s->outbox.oldest_pending_age_ms / 1000.0));
  }
}

static const char *ietf_status(clink_check_status st) {
  return st == CLINK_CHECK_FAIL ? "fail" : st == CLINK_CHECK_WARN ? "warn" : "pass";
}

static void health_json(jb *b, cJSON *root, const clink_health_snapshot *s) {
  static const char *const top[] = {"pass", "warn", "fail"};
  add_ref(b, root, "status", top[s->status <= CLINK_HEALTH_UNHEALTHY ? s->status : 2]);
  add_ref(b, root, "version", s->version);
  add_ref(b, root, "serviceId", s->service);
  add_ref(b, root, "description", s->service);
  cJSON *checks = add_obj(b, root, "checks");
  for (size_t i = 0; b->ok && i < s->n_chk; i++) {
    const clink__hcheck *c = &s->chk[i].c;
    if (c->status == CLINK_CHECK_PENDING) continue; /* nothing observed yet */
    char key[CLINK__HS_NAME + 32];
    clink__check_key(c, key, sizeof(key));
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(checks, key);
    if (arr == NULL) arr = add(b, checks, key, b->ok ? cJSON_CreateArray() : NULL);
    cJSON *o = b->ok ? cJSON_CreateObject() : NULL;
    if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
      cJSON_Delete(o);
      b->ok = 0;
      break;
    }
    add_ref(b, o, "componentId", c->name);
    add_ref(b, o, "componentType",
            strcmp(c->name, CLINK_HEALTH_CHECK_SDK) == 0 ? "component" : "system");
    add_num(b, o, "observedValue", r2(c->value));
    add_ref(b, o, "observedUnit", c->unit);
    add_ref(b, o, "status", ietf_status(c->status));
    add_time(b, o, "time", c->answered_unix_ms);
    if (c->status != CLINK_CHECK_PASS && c->message[0]) add_ref(b, o, "output", c->message);
  }
}

static void sessions(jb *b, cJSON *root, const clink_health_snapshot *s) {
  add_num(b, root, "count", (double)s->n_sess);
  cJSON *arr = add(b, root, "sessions", b->ok ? cJSON_CreateArray() : NULL);
  for (size_t i = 0; b->ok && i < s->n_sess; i++) {
    const clink__hs_session *x = &s->sess[i];
    const clink_session_health *h = &x->health;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
      cJSON_Delete(o);
      b->ok = 0;
      break;
    }
    if (x->id[0])
      add_ref(b, o, "session_id", x->id);
    else
      add(b, o, "session_id", cJSON_CreateNull());
    add_num(b, o, "pid", h->pid);
    add_ref(b, o, "state", clink_client_state_name(x->state));
    add_bool(b, o, "pooled", x->pooled);
    add_num(b, o, "uptime_seconds", r1((double)h->uptime_ms / 1000.0));
    add_num(b, o, "messages", (double)h->messages);
    add_num(b, o, "errors", (double)h->errors);
    add_num(b, o, "throughput", r2(h->throughput));
    add_num(b, o, "error_rate", round_to(h->error_rate, 0.0001));
    cJSON *g = add_obj(b, o, "grades");
    add_ref(b, g, "error_rate", clink_grade_name(h->error_rate_grade));
    add_ref(b, g, "throughput", clink_grade_name(h->throughput_grade));
    add_ref(b, g, "stability", clink_grade_name(h->stability_grade));
    add_num(b, o, "rss_mb", r1((double)h->rss_bytes / MB));
    add_num(b, o, "vms_mb", r1((double)h->vms_bytes / MB));
    add_num(b, o, "cpu_percent", x->cpu_pct < 0 ? 0.0 : r1(x->cpu_pct));
    add_num(b, o, "connect_ms", (double)x->connect_ms);
    add_num(b, o, "turns_ok", (double)x->turns_ok);
    add_num(b, o, "turns_failed", (double)x->turns_failed);
    add_num(b, o, "last_turn_ms", (double)x->last_turn_ms);
    add_num(b, o, "turn_ms_ewma", (double)x->turn_ms_ewma);
  }
}

cJSON *clink__render_json(const clink_health_snapshot *s, clink_health_format f) {
  jb b = {1};
  cJSON *root = cJSON_CreateObject();
  if (root == NULL) return NULL;
  switch (f) {
    case CLINK_HEALTH_FORMAT_DETAILED: detailed(&b, root, s); break;
    case CLINK_HEALTH_FORMAT_METRICS: metrics(&b, root, s); break;
    case CLINK_HEALTH_FORMAT_STABILITY: stability(&b, root, s); break;
    case CLINK_HEALTH_FORMAT_HEALTH_JSON: health_json(&b, root, s); break;
    case CLINK_HEALTH_FORMAT_SESSIONS: sessions(&b, root, s); break;
    default: b.ok = 0; break;
  }
  if (!b.ok) {
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

/* ----------------------------------------------------------------- text */

void clink__render_verbose(const clink_health_snapshot *s, clink__wbuf *w) {
  for (size_t i = 0; i < s->n_chk; i++) {
    const clink__hcheck *c = &s->chk[i].c;
    switch (c->status) {
      case CLINK_CHECK_PASS: clink__w_fmt(w, "[+]%s ok\n", c->name); break;
      case CLINK_CHECK_PENDING: clink__w_fmt(w, "[+]%s pending\n", c->name); break;
      case CLINK_CHECK_WARN: clink__w_fmt(w, "[+]%s warn: %s\n", c->name, c->message); break;
      default: clink__w_fmt(w, "[-]%s failed: %s\n", c->name, c->message); break;
    }
  }
  clink__w_fmt(w, "health check %s (%s)\n",
               s->status == CLINK_HEALTH_UNHEALTHY ? "failed" : "passed",
               clink_health_status_name(s->status));
}

void clink__render_sessions_text(const clink_health_snapshot *s, clink__wbuf *w) {
  for (size_t i = 0; i < s->n_sess; i++) {
    const clink__hs_session *x = &s->sess[i];
    if (i) clink__w_str(w, "\n");
    size_t before = w->len;
    char one;
    size_t need = clink__session_report(&x->health, x->id, &one, 1);
    /* Straight into the writer's space (snprintf-like when it is short). */
    if (w_room(w, need) == 0 && before < w->cap)
      clink__session_report(&x->health, x->id, w->buf + before, w->cap - before);
    w->len = before + need;
  }
}

/* -------------------------------------------------------------- dispatch */

const char *clink_health_format_content_type(clink_health_format f) {
  switch (f) {
    case CLINK_HEALTH_FORMAT_DETAILED:
    case CLINK_HEALTH_FORMAT_METRICS:
    case CLINK_HEALTH_FORMAT_STABILITY:
    case CLINK_HEALTH_FORMAT_SESSIONS: return "application/json";
    case CLINK_HEALTH_FORMAT_HEALTH_JSON: return "application/health+json";
    case CLINK_HEALTH_FORMAT_PROMETHEUS: return "text/plain; version=0.0.4; charset=utf-8";
    case CLINK_HEALTH_FORMAT_VERBOSE:
    case CLINK_HEALTH_FORMAT_SESSIONS_TEXT: return "text/plain; charset=utf-8";
  }
  return "application/octet-stream";
}

static int is_json(clink_health_format f) {
  return f == CLINK_HEALTH_FORMAT_DETAILED || f == CLINK_HEALTH_FORMAT_METRICS ||
         f == CLINK_HEALTH_FORMAT_STABILITY || f == CLINK_HEALTH_FORMAT_HEALTH_JSON ||
         f == CLINK_HEALTH_FORMAT_SESSIONS;
}

static int text(const clink_health_snapshot *s, clink_health_format f, clink__wbuf *w) {
  switch (f) {
    case CLINK_HEALTH_FORMAT_PROMETHEUS: clink__render_prometheus(s, w); return 0;
    case CLINK_HEALTH_FORMAT_VERBOSE: clink__render_verbose(s, w); return 0;
    case CLINK_HEALTH_FORMAT_SESSIONS_TEXT: clink__render_sessions_text(s, w); return 0;
    default: return UV_EINVAL;
  }
}

/* cJSON may need up to 5 bytes more than it prints (cJSON.h). */
#define CJSON_SLACK 5

int clink_health_render(const clink_health_snapshot *s, clink_health_format f, char *buf,
                        size_t cap, size_t *len) {
  if (s == NULL || len == NULL || (buf == NULL && cap > 0)) return UV_EINVAL;
  if (is_json(f)) {
    cJSON *root = clink__render_json(s, f);
    if (root == NULL) return UV_ENOMEM;
    int rc = 0;
    if (cap > CJSON_SLACK && cap <= INT32_MAX &&
        cJSON_PrintPreallocated(root, buf, (int)(cap - CJSON_SLACK), 0)) {
      *len = strlen(buf);
    } else {
      char *p = cJSON_PrintUnformatted(root);
      if (p == NULL) {
        rc = UV_ENOMEM;
      } else {
        *len = strlen(p);
        rc = *len < cap ? 0 : UV_ENOBUFS;
        if (rc == 0) memcpy(buf, p, *len + 1);
        cJSON_free(p);
      }
    }
    cJSON_Delete(root);
    return rc;
  }
  char one;
  clink__wbuf w = {cap ? buf : &one, cap ? cap : 1, 0, 0, 0};
  int rc = text(s, f, &w);
  if (rc != 0) return rc;
  w.buf[w.len < w.cap ? w.len : w.cap - 1] = '\0';
  *len = w.len;
  return w.len < cap ? 0 : UV_ENOBUFS;
}

int clink_health_render_alloc(const clink_health_snapshot *s, clink_health_format f, char **out,
                              size_t *len) {
  if (s == NULL || out == NULL) return UV_EINVAL;
  if (is_json(f)) {
    cJSON *root = clink__render_json(s, f);
    if (root == NULL) return UV_ENOMEM;
    /* Printed into our own buffer (clink_free()), whatever hooks cJSON has. */
    size_t per_session = f == CLINK_HEALTH_FORMAT_SESSIONS ? 640 : 48;
    size_t cap = 1024 + per_session * s->n_sess + 320 * (s->n_brk + s->n_fb + s->n_chk);
    int rc = UV_ENOMEM;
    for (int tries = 0; tries < 8 && cap <= INT32_MAX; tries++, cap *= 2) {
      char *p = malloc(cap);
      if (p == NULL) break;
      if (cJSON_PrintPreallocated(root, p, (int)(cap - CJSON_SLACK), 0)) {
        if (len) *len = strlen(p);
        *out = p;
        rc = 0;
        break;
      }
      clink__free(p);
    }
    cJSON_Delete(root);
    return rc;
  }
  clink__wbuf w = {NULL, 0, 0, 1, 0};
  int rc = text(s, f, &w);
  if (rc == 0 && w_room(&w, 0) != 0) rc = UV_ENOMEM;
  if (rc == 0 && w.oom) rc = UV_ENOMEM;
  if (rc != 0) {
    clink__free(w.buf);
    return rc;
  }
  w.buf[w.len] = '\0';
  if (len) *len = w.len;
  *out = w.buf;
  return 0;
}
