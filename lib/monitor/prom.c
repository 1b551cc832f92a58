/* The Prometheus text exposition format 0.0.4 of a snapshot: # HELP and
 * # TYPE per family, counters named *_total, histograms with cumulative
 * buckets ending in le="+Inf" plus _sum and _count, label values escaped.
 * Aggregates only: no label takes a session id (unbounded cardinality). */
#include <math.h>
#include <stdio.h>

#include "base/internal.h"
#include "monitor/health.h"

#define P "claudelink_"

static void family(clink__wbuf *w, const char *name, const char *type, const char *help) {
  clink__w_str(w, "# HELP " P);
  clink__w_str(w, name);
  clink__w_put(w, " ", 1);
  clink__w_str(w, help);
  clink__w_str(w, "\n# TYPE " P);
  clink__w_str(w, name);
  clink__w_put(w, " ", 1);
  clink__w_str(w, type);
  clink__w_put(w, "\n", 1);
}

static void w_num(clink__wbuf *w, double v) {
  if (isnan(v)) {
    clink__w_str(w, "NaN");
  } else if (isinf(v)) {
    clink__w_str(w, v > 0 ? "+Inf" : "-Inf");
  } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    if (v < 0) clink__w_put(w, "-", 1);
    clink__w_u64(w, (uint64_t)fabs(v));
  } else {
    clink__w_fmt(w, "%.9g", v);
  }
}

/* A label value, escaped: backslash, double quote and line feed. */
static void w_escaped(clink__wbuf *w, const char *v) {
  const char *run = v;
  for (const char *p = v; *p; p++) {
    const char *rep = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
    if (rep == NULL) continue;
    clink__w_put(w, run, (size_t)(p - run));
    clink__w_str(w, rep);
    run = p + 1;
  }
  clink__w_str(w, run);
}

/* name{k1="v1",k2="v2"} value; k2 may be NULL. */
static void sample2(clink__wbuf *w, const char *name, const char *k1, const char *v1,
                    const char *k2, const char *v2, double value) {
  clink__w_str(w, P);
  clink__w_str(w, name);
  if (k1) {
    clink__w_put(w, "{", 1);
    clink__w_str(w, k1);
    clink__w_put(w, "=\"", 2);
    w_escaped(w, v1);
    if (k2) {
      clink__w_put(w, "\",", 2);
      clink__w_str(w, k2);
      clink__w_put(w, "=\"", 2);
      w_escaped(w, v2);
    }
    clink__w_str(w, "\"}");
  }
  clink__w_str(w, " ");
  w_num(w, value);
  clink__w_str(w, "\n");
}

static void sample(clink__wbuf *w, const char *name, double value) {
  sample2(w, name, NULL, NULL, NULL, NULL, value);
}

static void sample1(clink__wbuf *w, const char *name, const char *k, const char *v,
                    double value) {
  sample2(w, name, k, v, NULL, NULL, value);
}

static void gauge(clink__wbuf *w, const char *name, const char *help, double v) {
  family(w, name, "gauge", help);
  sample(w, name, v);
}

static void counter(clink__wbuf *w, const char *name, const char *help, double v) {
  family(w, name, "counter", help);
  sample(w, name, v);
}

/* Buckets given as upper bounds in seconds, counts not cumulative (the last
 * one is +Inf). */
static void histogram(clink__wbuf *w, const char *name, const char *help, const double *le,
                      const uint64_t *counts, size_t n, double sum_s) {
  family(w, name, "histogram", help);
  uint64_t cum = 0;
  char bound[32];
  for (size_t i = 0; i <= n; i++) {
    cum += counts[i];
    if (i < n)
      snprintf(bound, sizeof(bound), "%.6g", le[i]);
    else
      memcpy(bound, "+Inf", 5);
    clink__w_str(w, P);
    clink__w_str(w, name);
    clink__w_str(w, "_bucket{le=\"");
    clink__w_str(w, bound);
    clink__w_str(w, "\"} ");
    clink__w_u64(w, cum);
    clink__w_put(w, "\n", 1);
  }
  clink__w_str(w, P);
  clink__w_str(w, name);
  clink__w_str(w, "_sum ");
  w_num(w, sum_s);
  clink__w_str(w, "\n" P);
  clink__w_str(w, name);
  clink__w_str(w, "_count ");
  clink__w_u64(w, cum);
  clink__w_put(w, "\n", 1);
}

static void latency(clink__wbuf *w, const char *name, const char *help, const clink__histo *h) {
  double le[CLINK__HISTO_BUCKETS];
  for (size_t i = 0; i < CLINK__HISTO_BUCKETS; i++) le[i] = (double)clink__histo_le_us[i] / 1e6;
  histogram(w, name, help, le, h->bucket, CLINK__HISTO_BUCKETS, (double)h->sum_us / 1e6);
}

static int seen_before(const clink__hs_fallback *fb, size_t i) {
  for (size_t j = 0; j < i; j++)
    if (strcmp(fb[j].operation, fb[i].operation) == 0) return 1;
  return 0;
}

static void fallback_family(clink__wbuf *w, const clink_health_snapshot *s, const char *name,
                            const char *help, size_t field) {
  family(w, name, "counter", help);
  for (size_t i = 0; i < s->n_fb; i++) {
    if (seen_before(s->fb, i)) continue;
    const uint64_t *v = (const uint64_t *)((const char *)&s->fb[i].op + field);
    sample1(w, name, "operation", s->fb[i].operation, (double)*v);
  }
}

void clink__render_prometheus(const clink_health_snapshot *s, clink__wbuf *w) {
  /* Service */
  family(w, "build_info", "gauge", "The monitored service and its version.");
  sample2(w, "build_info", "service", s->service, "version", s->version, 1);
  family(w, "health_status", "gauge", "The monitor's verdict (one series per status, 1 for the current one).");
  for (int st = CLINK_HEALTH_HEALTHY; st <= CLINK_HEALTH_UNHEALTHY; st++)
    sample1(w, "health_status", "status", clink_health_status_name((clink_health_status)st),
            s->status == (clink_health_status)st);
  gauge(w, "uptime_seconds", "Seconds since the monitor started.", (double)s->uptime_ms / 1000.0);

  /* Requests */
  counter(w, "requests_total", "Requests served (the request meter).", (double)s->requests_total);
  gauge(w, "requests_in_progress", "Requests being served.", (double)s->requests_in_progress);
  counter(w, "request_errors_total", "Requests that failed.", (double)s->errors_total);
  latency(w, "request_duration_seconds", "Time to serve a request.", &s->request_latency);

  /* Sessions */
  counter(w, "sessions_created_total", "Sessions created (pool members started, clients attached).",
          (double)s->sessions_created);
  gauge(w, "sessions_active", "Sessions connected, connecting or recovering.", (double)s->sessions_active);
  gauge(w, "session_configs", "Spawn profiles in use (pools and clients attached).",
        (double)s->session_configs);
  family(w, "turns_total", "counter", "Turns ended, by outcome.");
  sample1(w, "turns_total", "outcome", "ok", (double)s->turns_ok);
  sample1(w, "turns_total", "outcome", "failed", (double)s->turns_failed);
  counter(w, "session_errors_total", "Errors reported by the sessions.", (double)s->session_errors);
  counter(w, "reconnection_attempts_total", "Reconnection attempts of recovering sessions.",
          (double)s->reconnection_attempts);
  latency(w, "turn_duration_seconds", "Time from a query to its result.", &s->turn_latency);
  latency(w, "session_connect_duration_seconds", "Time from spawn to the initialize response.",
          &s->connect_time);

  /* The CLI processes */
  gauge(w, "cli_processes", "CLI processes running.", (double)s->cli_processes);
  gauge(w, "cli_resident_memory_bytes", "Resident memory of all CLI processes.",
        (double)s->cli_rss_sum);
  gauge(w, "cli_resident_memory_max_bytes", "Resident memory of the largest CLI process.",
        (double)s->cli_rss_max);
  gauge(w, "cli_cpu_usage_ratio", "CPU used by the CLI processes (1 = one core).",
        s->cli_cpu_pct / 100.0);

  /* Pools */
  if (s->n_pools) {
    const clink_pool_stats *p = &s->pool;
    family(w, "pool_sessions", "gauge", "Pool members by state.");
    sample1(w, "pool_sessions", "state", "idle", p->idle);
    sample1(w, "pool_sessions", "state", "in_use", p->in_use);
    sample1(w, "pool_sessions", "state", "starting", p->starting);
    gauge(w, "pool_pending_acquires", "Acquires waiting for a member.", p->pending_acquires);
    family(w, "pool_sessions_closed_total", "counter", "Pool members closed, by reason.");
    for (int r = 0; r < CLINK_POOL_CLOSE_REASONS_; r++)
      sample1(w, "pool_sessions_closed_total", "reason",
              clink_pool_close_reason_name((clink_pool_close_reason)r),
              (double)p->closed_by_reason[r]);
    family(w, "pool_acquires_total", "counter", "Acquires, by result.");
    sample1(w, "pool_acquires_total", "result", "idle", (double)p->acquired_idle);
    sample1(w, "pool_acquires_total", "result", "waited", (double)p->acquired_waited);
    sample1(w, "pool_acquires_total", "result", "timeout", (double)p->timeouts);
    sample1(w, "pool_acquires_total", "result", "rejected", (double)p->rejected);
    counter(w, "pool_leaks_total", "Checkouts held past the leak threshold.", (double)p->leaks);
    double le[CLINK_POOL_WAIT_BUCKETS - 1];
    for (int i = 0; i < CLINK_POOL_WAIT_BUCKETS - 1; i++) le[i] = pow(10.0, i) / 1e6;
    histogram(w, "pool_acquire_wait_seconds", "Time an acquire waited for its member.", le,
              p->wait_hist, CLINK_POOL_WAIT_BUCKETS - 1, (double)p->wait_total_us / 1e6);
  }

  /* Breakers */
  gauge(w, "circuit_breakers_open", "Circuit breakers open (or forced open).",
        (double)s->breakers_open);
  if (s->n_brk) {
    family(w, "circuit_breaker_state", "gauge", "Breaker state (one series per state, 1 for the current one).");
    for (size_t i = 0; i < s->n_brk; i++)
      for (int st = CLINK_BREAKER_CLOSED; st <= CLINK_BREAKER_FORCED_OPEN; st++)
        sample2(w, "circuit_breaker_state", "name", s->brk[i].name, "state",
                clink__breaker_state_lc((clink_breaker_state)st),
                s->brk[i].state == (clink_breaker_state)st);
    family(w, "circuit_breaker_consecutive_failures", "gauge", "Failures in a row.");
    for (size_t i = 0; i < s->n_brk; i++)
      sample1(w, "circuit_breaker_consecutive_failures", "name", s->brk[i].name,
              s->brk[i].failure_count);
    family(w, "circuit_breaker_calls_total", "counter", "Calls through the breaker, by outcome.");
    for (size_t i = 0; i < s->n_brk; i++) {
      sample2(w, "circuit_breaker_calls_total", "name", s->brk[i].name, "outcome", "success",
              (double)s->brk[i].total_successes);
      sample2(w, "circuit_breaker_calls_total", "name", s->brk[i].name, "outcome", "failure",
              (double)s->brk[i].total_failures);
      sample2(w, "circuit_breaker_calls_total", "name", s->brk[i].name, "outcome", "rejected",
              (double)s->brk[i].total_rejected);
    }
    family(w, "circuit_breaker_opened_total", "counter", "Times the breaker opened.");
    for (size_t i = 0; i < s->n_brk; i++)
      sample1(w, "circuit_breaker_opened_total", "name", s->brk[i].name,
              (double)s->brk[i].opened_count);
  }

  /* Fallbacks */
  counter(w, "fallbacks_used_total", "Calls answered by a fallback, all operations.",
          (double)s->fallbacks_used);
  if (s->n_fb) {
    fallback_family(w, s, "fallback_calls_total", "Calls of the operation.",
                    offsetof(clink_health_fallback_op, total_calls));
    fallback_family(w, s, "fallback_primary_success_total", "Calls answered by the primary path.",
                    offsetof(clink_health_fallback_op, primary_success));
    fallback_family(w, s, "fallback_used_total", "Calls answered by a fallback.",
                    offsetof(clink_health_fallback_op, fallback_used));
    fallback_family(w, s, "fallback_cache_hits_total", "Fallback answers from the cache.",
                    offsetof(clink_health_fallback_op, cache_hits));
  }

  /* Outbox */
  if (s->have_outbox) {
    family(w, "outbox_messages", "gauge", "Outbox messages by state.");
    sample1(w, "outbox_messages", "state", "pending", (double)s->outbox.pending);
    sample1(w, "outbox_messages", "state", "in_flight", (double)s->outbox.in_flight);
    sample1(w, "outbox_messages", "state", "delivered", (double)s->outbox.delivered);
    sample1(w, "outbox_messages", "state", "dead", (double)s->outbox.dead);
    gauge(w, "outbox_oldest_pending_age_seconds", "Age of the oldest pending message.",
          (double)s->outbox.oldest_pending_age_ms / 1000.0);
  }

  /* System */
  gauge(w, "system_cpu_usage_ratio", "Busy share of all CPUs between the last two samples.",
        s->sys.cpu_pct < 0 ? 0.0 : s->sys.cpu_pct / 100.0);
  gauge(w, "system_cpus", "CPUs online.", s->sys.cpu_count);
  gauge(w, "system_load1", "Load average over 1 minute.", s->sys.load[0]);
  gauge(w, "system_load5", "Load average over 5 minutes.", s->sys.load[1]);
  gauge(w, "system_load15", "Load average over 15 minutes.", s->sys.load[2]);
  gauge(w, "system_memory_total_bytes", "Physical memory.", (double)s->sys.mem_total);
  gauge(w, "system_memory_available_bytes", "Memory available (MemAvailable).",
        (double)s->sys.mem_avail);
  gauge(w, "system_memory_usage_ratio", "Share of memory used.", s->sys.mem_used_pct / 100.0);
  gauge(w, "process_resident_memory_bytes", "Resident memory of this process.",
        (double)s->sys.proc_rss);
  gauge(w, "process_virtual_memory_bytes", "Virtual memory of this process.",
        (double)s->sys.proc_vms);
  family(w, "system_disk_usage_ratio", "gauge", "Share of the file system used.");
  sample1(w, "system_disk_usage_ratio", "path", s->disk_path,
          s->sys.disk_used_pct < 0 ? 0.0 : s->sys.disk_used_pct / 100.0);

  /* Checks */
  gauge(w, "sdk_connection_duration_seconds", "Time the latest claude_sdk check took.",
        s->sdk_connection_ms / 1000.0);
  if (s->n_chk) {
    static const clink_check_status states[] = {CLINK_CHECK_PASS, CLINK_CHECK_WARN,
                                                CLINK_CHECK_FAIL, CLINK_CHECK_PENDING};
    family(w, "health_check_status", "gauge", "Check result (one series per status, 1 for the current one).");
    for (size_t i = 0; i < s->n_chk; i++)
      for (size_t k = 0; k < CLINK__ARRAY_SIZE(states); k++)
        sample2(w, "health_check_status", "check", s->chk[i].c.name, "status",
                clink_check_status_name(states[k]), s->chk[i].c.status == states[k]);
    family(w, "health_check_duration_seconds", "gauge", "Time the check's latest answered run took.");
    for (size_t i = 0; i < s->n_chk; i++)
      sample1(w, "health_check_duration_seconds", "check", s->chk[i].c.name,
              (double)s->chk[i].c.duration_ms / 1000.0);
    family(w, "health_check_runs_total", "counter", "Runs started.");
    for (size_t i = 0; i < s->n_chk; i++)
      sample1(w, "health_check_runs_total", "check", s->chk[i].c.name, (double)s->chk[i].c.runs);
    family(w, "health_check_failures_total", "counter", "Runs that failed (timeouts included).");
    for (size_t i = 0; i < s->n_chk; i++)
      sample1(w, "health_check_failures_total", "check", s->chk[i].c.name,
              (double)s->chk[i].c.failures);
    family(w, "health_check_timeouts_total", "counter", "Runs that timed out.");
    for (size_t i = 0; i < s->n_chk; i++)
      sample1(w, "health_check_timeouts_total", "check", s->chk[i].c.name,
              (double)s->chk[i].c.timeouts);
  }
}
