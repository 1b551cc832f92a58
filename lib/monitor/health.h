/* The health monitor's pure parts: the check state machine on an injected
 * clock, aggregation, thresholds, the course's session grades, latency
 * histograms, the per-session tracker, and the snapshot every rendering
 * reads. No libuv, no I/O; internal. uv-health*.c drive them. */
#ifndef CLINK_HEALTH_H
#define CLINK_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "claudelink.h"

#define CLINK__HS_NAME 64   /* names and ids kept in a snapshot (truncated) */
#define CLINK__HS_UNIT 16
#define CLINK__HS_MSG 160

/* ------------------------------------------------------------- checks */

/* What a check's answer changed, for events. */
typedef enum clink__hc_transition {
  CLINK__HC_SAME = 0,
  CLINK__HC_FAILED = 1,    /* to FAIL from anything else */
  CLINK__HC_DEGRADED = 2,  /* to WARN from anything else */
  CLINK__HC_RECOVERED = 3  /* to PASS from WARN or FAIL */
} clink__hc_transition;

typedef struct clink__hcheck {
  char name[CLINK__HS_NAME];
  int critical;
  uint64_t interval_ms; /* CLINK__NEVER: on demand only */
  uint64_t timeout_ms;  /* CLINK__NEVER: none */
  /* The latest answer. */
  clink_check_status status;
  double value;
  char unit[CLINK__HS_UNIT];
  char message[CLINK__HS_MSG];
  uint64_t answered_unix_ms; /* 0: never */
  uint64_t duration_ms;      /* of the latest answered run */
  /* Schedule. */
  uint64_t next_ms;     /* when the next run may start */
  uint64_t started_ms, deadline_ms;
  unsigned running : 1;   /* a run is out */
  unsigned timed_out : 1; /* ... and was judged already */
  uint64_t runs, failures, consecutive_failures, timeouts;
} clink__hcheck;

/* A new check, its first run due at now. name is truncated to fit. */
void clink__hc_init(clink__hcheck *c, const char *name, uint64_t interval_ms,
                    uint64_t timeout_ms, int critical, uint64_t now_ms);
/* Whether a run should start now. */
int clink__hc_due(const clink__hcheck *c, uint64_t now_ms);
/* A run starts. */
void clink__hc_start(clink__hcheck *c, uint64_t now_ms);
/* A run out past its deadline fails ("timed out after N ms"); the check
 * stays running (no new run) until the answer comes. */
clink__hc_transition clink__hc_expire(clink__hcheck *c, uint64_t now_ms, uint64_t unix_ms);
/* The run's answer. *ignored is set when it came after the timeout. */
clink__hc_transition clink__hc_finish(clink__hcheck *c, uint64_t now_ms, uint64_t unix_ms,
                                      clink_check_status status, double value,
                                      const char *unit, const char *message, int *ignored);
/* The next time the check needs the timer: its deadline while a run is out,
 * its next start otherwise; CLINK__NEVER. */
uint64_t clink__hc_next_due(const clink__hcheck *c);
/* Asks for a run as soon as possible (unless one is out). */
void clink__hc_request(clink__hcheck *c, uint64_t now_ms);

/* A failing critical check: UNHEALTHY; any other fail or warn: DEGRADED. */
clink_health_status clink__health_aggregate(const clink__hcheck *const *checks, size_t n);

/* Above a threshold: fail when fail > 0 and value > fail, warn when warn > 0
 * and value > warn, pass otherwise. */
clink_check_status clink__threshold(double value, double warn, double fail);

/* ------------------------------------------------------------- grades */

/* Fills uptime, messages, errors -> throughput, error rate, grades. */
void clink__session_grade(clink_session_health *sh);
/* The course's report, NUL-terminated in buf when it fits; returns the
 * length needed (snprintf-like). */
size_t clink__session_report(const clink_session_health *sh, const char *session_id,
                             char *buf, size_t cap);

/* --------------------------------------------------------- histograms */

/* Latency buckets, upper bounds in microseconds (Prometheus le in seconds):
 * 5 ms .. 300 s; +Inf is implicit. */
#define CLINK__HISTO_BUCKETS 15
extern const uint64_t clink__histo_le_us[CLINK__HISTO_BUCKETS];

typedef struct clink__histo {
  uint64_t bucket[CLINK__HISTO_BUCKETS + 1]; /* not cumulative; last: +Inf */
  uint64_t count;
  uint64_t sum_us;
} clink__histo;

static inline void clink__histo_add(clink__histo *h, uint64_t us) {
  unsigned i = 0;
  while (i < CLINK__HISTO_BUCKETS && us > clink__histo_le_us[i]) i++;
  h->bucket[i]++;
  h->count++;
  h->sum_us += us;
}

/* ------------------------------------------------------------ tracker */

/* Per-session memory of the monitor, keyed by the client: what was counted
 * already (so counters stay monotonic across samples) and the latest
 * process figures. An open-addressing table rebuilt at each observation
 * (two tables, swapped: no allocation once grown). */
typedef struct clink__tsess {
  const void *key; /* the client; NULL: empty slot */
  int pid;
  uint64_t turns_ok, turns_failed, errors, recovery_attempts, messages;
  unsigned connect_counted : 1;
  unsigned proc_known : 1;
  unsigned cpu_known : 1;
  uint64_t cpu_ticks, cpu_at_ms;
  double cpu_pct;
  uint64_t rss, vms;
} clink__tsess;

typedef struct clink__tracker {
  clink__tsess *slots, *spare;
  size_t cap, spare_cap, n;
  size_t proc_cursor; /* round robin of /proc reads */
} clink__tracker;

/* What an observation adds to the monitor's counters. */
typedef struct clink__tcount {
  uint64_t turns_ok, turns_failed, errors, recovery_attempts;
  clink__histo *turn_latency, *connect_time;
} clink__tcount;

/* Starts a pass expecting up to n sessions: 0 or UV_ENOMEM. */
int clink__tracker_begin(clink__tracker *t, size_t n);
/* One session of the pass: carries its entry over (a new pid is a new
 * process: its figures restart) and counts what changed. Returns the entry,
 * or NULL when the session was seen already in this pass. */
clink__tsess *clink__tracker_see(clink__tracker *t, const void *key, int pid,
                                 const clink_client_metrics *m, clink__tcount *acc);
/* Ends the pass: sessions not seen are forgotten. */
void clink__tracker_end(clink__tracker *t);
clink__tsess *clink__tracker_find(const clink__tracker *t, const void *key);
void clink__tracker_free(clink__tracker *t);

/* ----------------------------------------------------------- snapshot */

/* System and process figures, sampled on the monitor's timer (-1 / 0 when
 * unknown); a snapshot copies the latest. */
typedef struct clink__sys_sample {
  double cpu_pct;
  unsigned cpu_count;
  double load[3];
  uint64_t mem_total, mem_avail;
  double mem_used_pct;
  uint64_t proc_rss, proc_vms;
  double disk_used_pct;
} clink__sys_sample;

typedef struct clink__hs_session {
  char id[CLINK__HS_NAME]; /* "" until the CLI reported one */
  clink_session_health health;
  clink_client_state state;
  int pooled;
  uint64_t connect_ms, turns_ok, turns_failed, last_turn_ms, turn_ms_ewma;
  double cpu_pct; /* -1: unknown */
} clink__hs_session;

typedef struct clink__hs_breaker {
  char name[CLINK__HS_NAME];
  clink_breaker_state state;
  uint32_t failure_count; /* consecutive failures */
  int can_execute;
  uint64_t total_calls, total_successes, total_failures, total_rejected, opened_count;
  double failure_rate_pct;
} clink__hs_breaker;

typedef struct clink__hs_fallback {
  char operation[CLINK__HS_NAME];
  clink_health_fallback_op op;
} clink__hs_fallback;

typedef struct clink__hs_check {
  clink__hcheck c;
} clink__hs_check;

struct clink_health_snapshot {
  uint64_t unix_ms, uptime_ms;
  char service[128], version[64];
  clink_health_status status;

  /* sessions */
  uint64_t sessions_active, sessions_created, session_configs;
  clink__hs_session *sess;
  size_t n_sess, cap_sess;
  /* the CLI processes, summed */
  uint64_t cli_processes, cli_rss_sum, cli_rss_max;
  double cli_cpu_pct;
  /* counted by the monitor as it observed sessions */
  uint64_t turns_ok, turns_failed, session_errors, reconnection_attempts;
  clink__histo turn_latency, connect_time;

  clink__sys_sample sys; /* the latest sample */
  char disk_path[128];

  /* claude_sdk */
  int sdk_known;
  clink_check_status sdk_status;
  double sdk_connection_ms;
  uint64_t sdk_last_unix_ms;

  /* the request meter */
  uint64_t requests_total, requests_in_progress, errors_total;
  clink__histo request_latency;

  /* pools, summed */
  uint32_t n_pools;
  clink_pool_stats pool;

  /* breakers */
  clink__hs_breaker *brk;
  size_t n_brk, cap_brk;
  uint64_t breakers_open;

  /* fallbacks */
  int have_fallbacks;
  clink__hs_fallback *fb;
  size_t n_fb, cap_fb;
  uint64_t fallbacks_used;

  /* outbox */
  int have_outbox;
  clink_outbox_stats outbox;

  /* checks */
  clink__hs_check *chk;
  size_t n_chk, cap_chk;
};

/* Runs a fallback provider into the snapshot's fallback section. */
int clink__hs_collect_fallbacks(clink_health_snapshot *s, clink_health_fallback_fn fn, void *ud);

/* Sizes an array of the snapshot (or the monitor) to hold n: grows by
 * doubling, and shrinks back once n falls under a quarter of a capacity
 * above 64. The first n elements are kept. */
int clink__hs_reserve(void **arr, size_t *cap, size_t n, size_t elem);

/* The renderings (render.c, prom.c) and their writer (writer.c). The
 * writer appends into the caller's buffer (counting past its end,
 * snprintf-like) or into a growing one. */
typedef struct clink__wbuf {
  char *buf;
  size_t cap, len;
  int grow; /* realloc as needed (buf is ours) */
  int oom;
} clink__wbuf;
/* Makes room for n more bytes and a NUL when growing: 0, or -1 (oom set). */
int clink__w_room(clink__wbuf *w, size_t n);
void clink__w_put(clink__wbuf *w, const char *s, size_t n);
void clink__w_str(clink__wbuf *w, const char *s);
void clink__w_u64(clink__wbuf *w, uint64_t v);
/* A JSON string literal, quoted and escaped (RFC 8259) as cJSON does; NULL
 * is "". */
void clink__w_json_str(clink__wbuf *w, const char *s);
void clink__w_fmt(clink__wbuf *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Streaming JSON on a writer: the caller writes members and elements in
 * order, the writer places the commas. */
typedef struct clink__jw {
  clink__wbuf *w;
  int first; /* nothing yet in the innermost open object or array */
} clink__jw;
/* c: '{' or '[' (as a value), '}' or ']'. */
void clink__jw_open(clink__jw *j, char c);
void clink__jw_close(clink__jw *j, char c);
/* A member's key, given as the literal text "\"name\":" (see CLINK__JW_K). */
void clink__jw_keylit(clink__jw *j, const char *quoted, size_t n);
#define CLINK__JW_K(j, name) clink__jw_keylit((j), "\"" name "\":", sizeof(name) + 2)
/* A member's key, escaped. */
void clink__jw_key(clink__jw *j, const char *name);
/* Before each element of an array. */
void clink__jw_elem(clink__jw *j);
/* Integers: their digits below 10^15, beyond as clink__jw_double(). */
void clink__jw_u64(clink__jw *j, uint64_t v);
void clink__jw_i64(clink__jw *j, int64_t v);
void clink__jw_bool(clink__jw *j, int v);
void clink__jw_null(clink__jw *j);
void clink__jw_str(clink__jw *j, const char *s);
/* d as cJSON spells it (%1.15g, or %1.17g when that would not read back
 * within an ulp); null when not finite. */
void clink__jw_double(clink__jw *j, double d);
/* x rounded to 0..4 decimals as round(x / 0.1) * 0.1 does (non-finite x:
 * 0), spelled as cJSON spells that double (no trailing zero, -0 is "-0")
 * without printf up to 15 digits. */
void clink__jw_fixed(clink__jw *j, double x, int decimals);

void clink__render_prometheus(const clink_health_snapshot *s, clink__wbuf *w);
void clink__render_verbose(const clink_health_snapshot *s, clink__wbuf *w);
void clink__render_sessions_text(const clink_health_snapshot *s, clink__wbuf *w);
/* The JSON ones; UV_EINVAL for another format. */
int clink__render_json(const clink_health_snapshot *s, clink_health_format f, clink__wbuf *w);

/* "2024-01-01T12:00:00Z". */
void clink__iso8601_s(uint64_t unix_ms, char out[32]);
/* The lower-case state name the seed uses ("closed", "half_open"...). */
const char *clink__breaker_state_lc(clink_breaker_state st);
/* health+json key of a check: its name when it holds ':', else
 * name:measurement with the measurement its unit suggests (ms, s:
 * responseTime; percent: utilization; sessions, connections: connections;
 * else status). */
void clink__check_key(const clink__hcheck *c, char *out, size_t cap);

#endif
