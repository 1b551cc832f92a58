/* One snapshot, many renderings, each written straight into the caller's
 * buffer or a new one by the writer (writer.c): the JSON ones streamed
 * member by member, no tree. */
#include <time.h>

#include "base/internal.h"
#include "monitor/health.h"

/* ----------------------------------------------------------------- time */

static char *two_digits(char *p, int v) {
  p[0] = (char)('0' + v / 10);
  p[1] = (char)('0' + v % 10);
  return p + 2;
}

/* Digits by hand: snprintf() was a quarter of the /health/detailed time. */
void clink__iso8601_s(uint64_t unix_ms, char out[32]) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm = {0};
  gmtime_r(&t, &tm);
  int y = (tm.tm_year + 1900) % 10000;
  char *p = two_digits(two_digits(out, y / 100), y % 100);
  *p++ = '-';
  p = two_digits(p, (tm.tm_mon + 1) % 100);
  *p++ = '-';
  p = two_digits(p, tm.tm_mday % 100);
  *p++ = 'T';
  p = two_digits(p, tm.tm_hour % 100);
  *p++ = ':';
  p = two_digits(p, tm.tm_min % 100);
  *p++ = ':';
  p = two_digits(p, tm.tm_sec % 100);
  *p++ = 'Z';
  *p = '\0';
}

/* ----------------------------------------------------------------- JSON */

/* Members of the object being written, j the writer in scope. Figures are
 * rounded to 1 or 2 decimals (F1, F2) as the seed rounds them. */
#define K(name) CLINK__JW_K(j, name)
#define U(name, v) (K(name), clink__jw_u64(j, (v)))
#define I(name, v) (K(name), clink__jw_i64(j, (v)))
#define F1(name, x) (K(name), clink__jw_fixed(j, (x), 1))
#define F2(name, x) (K(name), clink__jw_fixed(j, (x), 2))
#define S(name, str) (K(name), clink__jw_str(j, (str)))
#define B(name, v) (K(name), clink__jw_bool(j, (v)))
#define T(name, ms) (K(name), put_time(j, (ms), 1))
#define TS(name, ms) (K(name), put_time(j, (ms), 0))
#define OBJ(name) (K(name), clink__jw_open(j, '{'))
#define END() clink__jw_close(j, '}')

/* ISO 8601; 0 is null (never) when zero_null. */
static void put_time(clink__jw *j, uint64_t unix_ms, int zero_null) {
  if (unix_ms == 0 && zero_null) {
    clink__jw_null(j);
    return;
  }
  char ts[32];
  clink__iso8601_s(unix_ms, ts);
  clink__jw_str(j, ts);
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

/* Names are object keys: a repeated one is written once, its first entry
 * (few entries: a scan back). */
static int breaker_seen(const clink_health_snapshot *s, size_t i) {
  for (size_t h = 0; h < i; h++)
    if (strcmp(s->brk[h].name, s->brk[i].name) == 0) return 1;
  return 0;
}
static int fallback_seen(const clink_health_snapshot *s, size_t i) {
  for (size_t h = 0; h < i; h++)
    if (strcmp(s->fb[h].operation, s->fb[i].operation) == 0) return 1;
  return 0;
}

static void breakers_json(clink__jw *j, const clink_health_snapshot *s, int full) {
  OBJ("circuit_breakers");
  for (size_t i = 0; i < s->n_brk; i++) {
    const clink__hs_breaker *k = &s->brk[i];
    if (breaker_seen(s, i)) continue;
    clink__jw_key(j, k->name);
    clink__jw_open(j, '{');
    S("state", clink__breaker_state_lc(k->state));
    U("failure_count", k->failure_count);
    B("can_execute", k->can_execute);
    if (full) {
      U("total_calls", k->total_calls);
      U("total_successes", k->total_successes);
      U("total_failures", k->total_failures);
      U("total_rejected", k->total_rejected);
      U("opened_count", k->opened_count);
      F2("failure_rate", k->failure_rate_pct < 0 ? 0.0 : k->failure_rate_pct);
    }
    END();
  }
  END();
}

static void fallbacks_json(clink__jw *j, const clink_health_snapshot *s) {
  OBJ("fallback_stats");
  OBJ("operations");
  for (size_t i = 0; i < s->n_fb; i++) {
    const clink__hs_fallback *f = &s->fb[i];
    if (fallback_seen(s, i)) continue;
    clink__jw_key(j, f->operation);
    clink__jw_open(j, '{');
    U("total_calls", f->op.total_calls);
    U("primary_success", f->op.primary_success);
    U("fallback_used", f->op.fallback_used);
    U("cache_hits", f->op.cache_hits);
    END();
  }
  END();
  END();
}

static void detailed(clink__jw *j, const clink_health_snapshot *s) {
  S("status", clink_health_status_name(s->status));
  S("service", s->service);
  S("version", s->version);
  U("uptime_seconds", s->uptime_ms / 1000);
  TS("timestamp", s->unix_ms);

  OBJ("sessions");
  U("active_count", s->sessions_active);
  U("total_created", s->sessions_created);
  K("active_sessions");
  clink__jw_open(j, '[');
  for (size_t i = 0; i < s->n_sess; i++) {
    const clink__hs_session *x = &s->sess[i];
    if (x->id[0] == '\0' ||
        (x->state != CLINK_CLIENT_CONNECTED && x->state != CLINK_CLIENT_RECOVERING))
      continue;
    clink__jw_elem(j);
    clink__jw_str(j, x->id);
  }
  clink__jw_close(j, ']');
  U("session_configs", s->session_configs);
  END();

  OBJ("system");
  OBJ("cpu");
  F1("usage_percent", s->sys.cpu_pct < 0 ? 0.0 : s->sys.cpu_pct);
  U("count", s->sys.cpu_count);
  K("load_average");
  clink__jw_open(j, '[');
  for (int i = 0; i < 3; i++) {
    clink__jw_elem(j);
    clink__jw_fixed(j, s->sys.load[i], 2);
  }
  clink__jw_close(j, ']');
  END();
  OBJ("memory");
  F1("total_gb", (double)s->sys.mem_total / GB);
  F1("available_gb", (double)s->sys.mem_avail / GB);
  F1("usage_percent", s->sys.mem_used_pct);
  F1("process_rss_mb", (double)s->sys.proc_rss / MB);
  F1("process_vms_mb", (double)s->sys.proc_vms / MB);
  END();
  OBJ("disk");
  F1("usage_percent", s->sys.disk_used_pct < 0 ? 0.0 : s->sys.disk_used_pct);
  END();
  END();

  OBJ("claude_sdk");
  S("status", sdk_status(s));
  F1("connection_time_ms", s->sdk_connection_ms);
  T("last_check", s->sdk_last_unix_ms);
  END();

  OBJ("performance");
  U("requests_total", s->requests_total);
  U("requests_in_progress", s->requests_in_progress);
  U("errors_total", s->errors_total);
  F2("error_rate", error_rate_pct(s));
  END();

  OBJ("stability");
  breakers_json(j, s, 0);
  END();
  fallbacks_json(j, s);

  /* Beyond the seed's fields: the attached pools, summed. */
  if (s->n_pools) {
    OBJ("pool");
    U("size", s->pool.size);
    U("idle", s->pool.idle);
    U("in_use", s->pool.in_use);
    U("starting", s->pool.starting);
    U("pending_acquires", s->pool.pending_acquires);
    U("created", s->pool.created);
    U("closed", s->pool.closed);
    U("acquired", s->pool.acquired);
    U("timeouts", s->pool.timeouts);
    END();
  }
}

static void metrics(clink__jw *j, const clink_health_snapshot *s) {
  U("requests_total", s->requests_total);
  U("requests_in_progress", s->requests_in_progress);
  U("errors_total", s->errors_total);
  U("sessions_created", s->sessions_created);
  U("sessions_active", s->sessions_active);
  U("uptime_seconds", s->uptime_ms / 1000);
  U("fallbacks_used", s->fallbacks_used);
  U("circuit_breakers_open", s->breakers_open);
  F1("memory_usage_percent", s->sys.mem_used_pct);
  F1("cpu_usage_percent", s->sys.cpu_pct < 0 ? 0.0 : s->sys.cpu_pct);
}

static void check_json(clink__jw *j, const clink__hcheck *c) {
  clink__jw_open(j, '{');
  S("status", clink_check_status_name(c->status));
  B("critical", c->critical);
  F2("observed_value", c->value);
  S("observed_unit", c->unit);
  S("message", c->message);
  T("last_check", c->answered_unix_ms);
  U("duration_ms", c->duration_ms);
  U("consecutive_failures", c->consecutive_failures);
  U("runs", c->runs);
  U("failures", c->failures);
  U("timeouts", c->timeouts);
  END();
}

static void stability(clink__jw *j, const clink_health_snapshot *s) {
  S("status", clink_health_status_name(s->status));
  TS("timestamp", s->unix_ms);
  breakers_json(j, s, 1);
  U("circuit_breakers_open", s->breakers_open);
  fallbacks_json(j, s);
  /* Keyed by name; a repeated name is repeated, as it always was. */
  OBJ("health_checks");
  for (size_t i = 0; i < s->n_chk; i++) {
    clink__jw_key(j, s->chk[i].c.name);
    check_json(j, &s->chk[i].c);
  }
  END();
  if (s->have_outbox) {
    OBJ("outbox");
    U("pending", s->outbox.pending);
    U("in_flight", s->outbox.in_flight);
    U("delivered", s->outbox.delivered);
    U("dead", s->outbox.dead);
    F1("oldest_pending_age_seconds", (double)s->outbox.oldest_pending_age_ms / 1000.0);
    END();
  }
}

static const char *ietf_status(clink_check_status st) {
  return st == CLINK_CHECK_FAIL ? "fail" : st == CLINK_CHECK_WARN ? "warn" : "pass";
}

static void ietf_check(clink__jw *j, const clink__hcheck *c) {
  clink__jw_open(j, '{');
  S("componentId", c->name);
  S("componentType", strcmp(c->name, CLINK_HEALTH_CHECK_SDK) == 0 ? "component" : "system");
  F2("observedValue", c->value);
  S("observedUnit", c->unit);
  S("status", ietf_status(c->status));
  T("time", c->answered_unix_ms);
  if (c->status != CLINK_CHECK_PASS && c->message[0]) S("output", c->message);
  END();
}

/* The checks' health+json keys, made once: the first KEYS_KEPT kept, the
 * others made again when compared (a monitor has a handful of checks). */
#define KEY_CAP (CLINK__HS_NAME + 32)
#define KEYS_KEPT 16
typedef char check_key[KEY_CAP];

static const char *key_of(const clink_health_snapshot *s, check_key *kept, size_t i,
                          char *scratch) {
  if (i < KEYS_KEPT) return kept[i];
  clink__check_key(&s->chk[i].c, scratch, KEY_CAP);
  return scratch;
}

static void health_json(clink__jw *j, const clink_health_snapshot *s) {
  static const char *const top[] = {"pass", "warn", "fail"};
  S("status", top[s->status <= CLINK_HEALTH_UNHEALTHY ? s->status : 2]);
  S("version", s->version);
  S("serviceId", s->service);
  S("description", s->service);
  OBJ("checks");
  check_key kept[KEYS_KEPT], mine, other;
  for (size_t i = 0; i < s->n_chk && i < KEYS_KEPT; i++)
    clink__check_key(&s->chk[i].c, kept[i], KEY_CAP);
  /* One array per key, where the key first appears, holding every check
   * (not pending: nothing observed yet) of that key in order. */
  for (size_t i = 0; i < s->n_chk; i++) {
    if (s->chk[i].c.status == CLINK_CHECK_PENDING) continue;
    const char *key = key_of(s, kept, i, mine);
    size_t h = 0;
    while (h < i && (s->chk[h].c.status == CLINK_CHECK_PENDING ||
                     strcmp(key_of(s, kept, h, other), key) != 0))
      h++;
    if (h < i) continue; /* written with an earlier check */
    clink__jw_key(j, key);
    clink__jw_open(j, '[');
    for (size_t m = i; m < s->n_chk; m++) {
      if (s->chk[m].c.status == CLINK_CHECK_PENDING) continue;
      if (m > i && strcmp(key_of(s, kept, m, other), key) != 0) continue;
      clink__jw_elem(j);
      ietf_check(j, &s->chk[m].c);
    }
    clink__jw_close(j, ']');
  }
  END();
}

static void sessions(clink__jw *j, const clink_health_snapshot *s) {
  U("count", s->n_sess);
  K("sessions");
  clink__jw_open(j, '[');
  for (size_t i = 0; i < s->n_sess; i++) {
    const clink__hs_session *x = &s->sess[i];
    const clink_session_health *h = &x->health;
    clink__jw_elem(j);
    clink__jw_open(j, '{');
    K("session_id");
    if (x->id[0])
      clink__jw_str(j, x->id);
    else
      clink__jw_null(j);
    I("pid", h->pid);
    S("state", clink_client_state_name(x->state));
    B("pooled", x->pooled);
    F1("uptime_seconds", (double)h->uptime_ms / 1000.0);
    U("messages", h->messages);
    U("errors", h->errors);
    F2("throughput", h->throughput);
    K("error_rate");
    clink__jw_fixed(j, h->error_rate, 4);
    OBJ("grades");
    S("error_rate", clink_grade_name(h->error_rate_grade));
    S("throughput", clink_grade_name(h->throughput_grade));
    S("stability", clink_grade_name(h->stability_grade));
    END();
    F1("rss_mb", (double)h->rss_bytes / MB);
    F1("vms_mb", (double)h->vms_bytes / MB);
    F1("cpu_percent", x->cpu_pct < 0 ? 0.0 : x->cpu_pct);
    U("connect_ms", x->connect_ms);
    U("turns_ok", x->turns_ok);
    U("turns_failed", x->turns_failed);
    U("last_turn_ms", x->last_turn_ms);
    U("turn_ms_ewma", x->turn_ms_ewma);
    END();
  }
  clink__jw_close(j, ']');
}

int clink__render_json(const clink_health_snapshot *s, clink_health_format f, clink__wbuf *w) {
  clink__jw jw = {w, 1}, *j = &jw;
  void (*body)(clink__jw *, const clink_health_snapshot *);
  switch (f) {
    case CLINK_HEALTH_FORMAT_DETAILED: body = detailed; break;
    case CLINK_HEALTH_FORMAT_METRICS: body = metrics; break;
    case CLINK_HEALTH_FORMAT_STABILITY: body = stability; break;
    case CLINK_HEALTH_FORMAT_HEALTH_JSON: body = health_json; break;
    case CLINK_HEALTH_FORMAT_SESSIONS: body = sessions; break;
    default: return UV_EINVAL;
  }
  clink__jw_open(j, '{');
  body(j, s);
  clink__jw_close(j, '}');
  return 0;
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
    if (clink__w_room(w, need) == 0 && before < w->cap)
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

static int render(const clink_health_snapshot *s, clink_health_format f, clink__wbuf *w) {
  switch (f) {
    case CLINK_HEALTH_FORMAT_PROMETHEUS: clink__render_prometheus(s, w); return 0;
    case CLINK_HEALTH_FORMAT_VERBOSE: clink__render_verbose(s, w); return 0;
    case CLINK_HEALTH_FORMAT_SESSIONS_TEXT: clink__render_sessions_text(s, w); return 0;
    default: return clink__render_json(s, f, w);
  }
}

int clink_health_render(const clink_health_snapshot *s, clink_health_format f, char *buf,
                        size_t cap, size_t *len) {
  if (s == NULL || len == NULL || (buf == NULL && cap > 0)) return UV_EINVAL;
  char one;
  clink__wbuf w = {cap ? buf : &one, cap ? cap : 1, 0, 0, 0};
  int rc = render(s, f, &w);
  if (rc != 0) return rc;
  w.buf[w.len < w.cap ? w.len : w.cap - 1] = '\0';
  *len = w.len;
  return w.len < cap ? 0 : UV_ENOBUFS;
}

/* Room for what such a snapshot usually takes: one allocation, seldom a
 * second (the text is ~8 KB of Prometheus headers before any figure). */
static size_t first_cap(const clink_health_snapshot *s, clink_health_format f) {
  size_t base = f == CLINK_HEALTH_FORMAT_PROMETHEUS ? 16384 : 1024;
  size_t per_session = f == CLINK_HEALTH_FORMAT_SESSIONS || f == CLINK_HEALTH_FORMAT_SESSIONS_TEXT
                           ? 640
                           : 48;
  return base + per_session * s->n_sess + 320 * (s->n_brk + s->n_fb + s->n_chk);
}

int clink_health_render_alloc(const clink_health_snapshot *s, clink_health_format f, char **out,
                              size_t *len) {
  if (s == NULL || out == NULL) return UV_EINVAL;
  size_t cap = first_cap(s, f);
  clink__wbuf w = {malloc(cap), cap, 0, 1, 0};
  if (w.buf == NULL) return UV_ENOMEM;
  int rc = render(s, f, &w);
  /* A failed growth left the text short: never handed out. */
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
