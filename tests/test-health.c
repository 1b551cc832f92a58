/* clink_health: the pure parts on an injected clock (check states,
 * thresholds, timeouts, aggregation, the course's grades and report,
 * histograms, the session tracker, the /proc parsers), the renderings
 * compared field by field with the seed's JSON, the Prometheus text
 * checked line by line (and by promtool: `test-health promtool`), and the
 * monitor on a real loop with short timers and the fake CLI: checks that
 * answer now, later, too late or never, a check closing the monitor, the
 * built-in checks, events for each transition, pools, clients and the
 * per-session figures.
 *
 * No sleeps: the monitor's timer is unref'd, so a test keeps the loop alive
 * with a timer of its own and counts after uv_run returns. Timing asserts
 * are lower bounds only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <claudelink.h>

#include "base/deadline.h"
#include "monitor/health.h"
#include "monitor/procfs.h"
#include "testutil.h"

/* The seed's /health/detailed example (stability-monitoring.md), verbatim. */
static const char SEED_DETAILED[] =
    "{\n"
    "  \"status\": \"healthy|degraded|unhealthy\",\n"
    "  \"service\": \"Claude Chat API\",\n"
    "  \"version\": \"1.0.0\",\n"
    "  \"uptime_seconds\": 3600,\n"
    "  \"timestamp\": \"2024-01-01T12:00:00Z\",\n"
    "  \"sessions\": {\n"
    "    \"active_count\": 15,\n"
    "    \"total_created\": 150,\n"
    "    \"active_sessions\": [\"session1\", \"session2\"],\n"
    "    \"session_configs\": 10\n"
    "  },\n"
    "  \"system\": {\n"
    "    \"cpu\": {\n"
    "      \"usage_percent\": 25.5,\n"
    "      \"count\": 8,\n"
    "      \"load_average\": [1.2, 1.1, 1.0]\n"
    "    },\n"
    "    \"memory\": {\n"
    "      \"total_gb\": 16.0,\n"
    "      \"available_gb\": 8.5,\n"
    "      \"usage_percent\": 45.2,\n"
    "      \"process_rss_mb\": 256.7,\n"
    "      \"process_vms_mb\": 512.3\n"
    "    },\n"
    "    \"disk\": {\n"
    "      \"usage_percent\": 65.8\n"
    "    }\n"
    "  },\n"
    "  \"claude_sdk\": {\n"
    "    \"status\": \"connected\",\n"
    "    \"connection_time_ms\": 125.5,\n"
    "    \"last_check\": \"2024-01-01T12:00:00Z\"\n"
    "  },\n"
    "  \"performance\": {\n"
    "    \"requests_total\": 1500,\n"
    "    \"requests_in_progress\": 3,\n"
    "    \"errors_total\": 12,\n"
    "    \"error_rate\": 0.8\n"
    "  },\n"
    "  \"stability\": {\n"
    "    \"circuit_breakers\": {\n"
    "      \"claude_sdk\": {\n"
    "        \"state\": \"closed\",\n"
    "        \"failure_count\": 0,\n"
    "        \"can_execute\": true\n"
    "      }\n"
    "    }\n"
    "  },\n"
    "  \"fallback_stats\": {\n"
    "    \"operations\": {\n"
    "      \"chat\": {\n"
    "        \"total_calls\": 100,\n"
    "        \"primary_success\": 95,\n"
    "        \"fallback_used\": 5,\n"
    "        \"cache_hits\": 3\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n";

/* The seed's /metrics example. */
static const char SEED_METRICS[] =
    "{\n"
    "  \"requests_total\": 1500,\n"
    "  \"requests_in_progress\": 3,\n"
    "  \"errors_total\": 12,\n"
    "  \"sessions_created\": 150,\n"
    "  \"sessions_active\": 15,\n"
    "  \"uptime_seconds\": 3600,\n"
    "  \"fallbacks_used\": 5,\n"
    "  \"circuit_breakers_open\": 0,\n"
    "  \"memory_usage_percent\": 45.2,\n"
    "  \"cpu_usage_percent\": 25.5\n"
    "}\n";

/* ================================================================ pure */

START_TEST(check_runs_on_schedule) {
  clink__hcheck c;
  clink__hc_init(&c, "db", 1000, 200, 1, 5000);
  ck_assert_int_eq(c.status, CLINK_CHECK_PENDING);
  ck_assert(clink__hc_due(&c, 5000)); /* the first run: at once */
  ck_assert_uint_eq(clink__hc_next_due(&c), 5000);
  clink__hc_start(&c, 5000);
  ck_assert(!clink__hc_due(&c, 5000));
  ck_assert(!clink__hc_due(&c, 9000)); /* never twice at once */
  ck_assert_uint_eq(clink__hc_next_due(&c), 5200); /* its deadline */
  int ignored = -1;
  ck_assert_int_eq(clink__hc_finish(&c, 5030, 111, CLINK_CHECK_PASS, 30, "ms", "ok", &ignored),
                   CLINK__HC_SAME); /* pending -> pass is no transition */
  ck_assert_int_eq(ignored, 0);
  ck_assert_int_eq(c.status, CLINK_CHECK_PASS);
  ck_assert_uint_eq(c.duration_ms, 30);
  ck_assert_uint_eq(c.answered_unix_ms, 111);
  ck_assert_str_eq(c.unit, "ms");
  ck_assert_str_eq(c.message, "ok");
  ck_assert(!clink__hc_due(&c, 5999));
  ck_assert(clink__hc_due(&c, 6000)); /* an interval after the start */
  ck_assert_uint_eq(clink__hc_next_due(&c), 6000);
  ck_assert_uint_eq(c.runs, 1);
  /* Truncated name; on-demand interval. */
  clink__hcheck d;
  clink__hc_init(&d, "a-name-longer-than-sixty-four-bytes-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 CLINK__NEVER, 0, 0, 0);
  ck_assert_uint_eq(strlen(d.name), CLINK__HS_NAME - 1);
  ck_assert_uint_eq(d.timeout_ms, CLINK__NEVER);
  clink__hc_start(&d, 0);
  ck_assert_uint_eq(clink__hc_next_due(&d), CLINK__NEVER); /* no timeout */
  clink__hc_finish(&d, 10, 1, CLINK_CHECK_PASS, 0, NULL, NULL, NULL);
  ck_assert_uint_eq(clink__hc_next_due(&d), CLINK__NEVER); /* on demand only */
  ck_assert(!clink__hc_due(&d, UINT64_MAX - 1));
  clink__hc_request(&d, 500);
  ck_assert(clink__hc_due(&d, 500));
}
END_TEST

START_TEST(check_transitions) {
  clink__hcheck c;
  clink__hc_init(&c, "x", 10, 0, 0, 0);
  static const struct {
    clink_check_status st;
    clink__hc_transition want;
    uint64_t consecutive;
  } steps[] = {
      {CLINK_CHECK_PASS, CLINK__HC_SAME, 0},      {CLINK_CHECK_WARN, CLINK__HC_DEGRADED, 0},
      {CLINK_CHECK_FAIL, CLINK__HC_FAILED, 1},    {CLINK_CHECK_FAIL, CLINK__HC_SAME, 2},
      {CLINK_CHECK_PASS, CLINK__HC_RECOVERED, 0}, {CLINK_CHECK_FAIL, CLINK__HC_FAILED, 1},
      {CLINK_CHECK_WARN, CLINK__HC_DEGRADED, 0},  {CLINK_CHECK_WARN, CLINK__HC_SAME, 0},
      {CLINK_CHECK_PASS, CLINK__HC_RECOVERED, 0}};
  uint64_t t = 0;
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++, t += 10) {
    ck_assert(clink__hc_due(&c, t));
    clink__hc_start(&c, t);
    ck_assert_int_eq(clink__hc_finish(&c, t + 1, t, steps[i].st, 0, NULL, NULL, NULL),
                     steps[i].want);
    ck_assert_uint_eq(c.consecutive_failures, steps[i].consecutive);
  }
  ck_assert_uint_eq(c.failures, 3);
  /* The first answer can be a failure. */
  clink__hcheck d;
  clink__hc_init(&d, "y", 10, 0, 0, 0);
  clink__hc_start(&d, 0);
  ck_assert_int_eq(clink__hc_finish(&d, 0, 0, CLINK_CHECK_FAIL, 0, NULL, NULL, NULL),
                   CLINK__HC_FAILED);
}
END_TEST

START_TEST(check_timeout_and_late_answer) {
  clink__hcheck c;
  clink__hc_init(&c, "slow", 50, 100, 1, 1000);
  clink__hc_start(&c, 1000);
  ck_assert_int_eq(clink__hc_expire(&c, 1099, 1), CLINK__HC_SAME);
  ck_assert_int_eq(c.status, CLINK_CHECK_PENDING);
  ck_assert_int_eq(clink__hc_expire(&c, 1100, 2), CLINK__HC_FAILED);
  ck_assert_int_eq(c.status, CLINK_CHECK_FAIL);
  ck_assert_str_eq(c.message, "timed out after 100 ms");
  ck_assert_uint_eq(c.timeouts, 1);
  ck_assert_uint_eq(c.answered_unix_ms, 2);
  /* Judged once; still running: no second run, no timer needed. */
  ck_assert_int_eq(clink__hc_expire(&c, 5000, 3), CLINK__HC_SAME);
  ck_assert_uint_eq(c.timeouts, 1);
  ck_assert_uint_eq(clink__hc_next_due(&c), CLINK__NEVER);
  ck_assert(!clink__hc_due(&c, 5000));
  /* The late answer is ignored; the next run may start at once. */
  int ignored = 0;
  ck_assert_int_eq(clink__hc_finish(&c, 5000, 4, CLINK_CHECK_PASS, 1, "ms", "late", &ignored),
                   CLINK__HC_SAME);
  ck_assert_int_eq(ignored, 1);
  ck_assert_int_eq(c.status, CLINK_CHECK_FAIL);
  ck_assert_str_eq(c.message, "timed out after 100 ms");
  ck_assert(clink__hc_due(&c, 5000));
  /* Next time it answers in time and recovers. */
  clink__hc_start(&c, 5000);
  ck_assert_int_eq(clink__hc_finish(&c, 5010, 5, CLINK_CHECK_PASS, 10, "ms", "ok", &ignored),
                   CLINK__HC_RECOVERED);
  ck_assert_int_eq(ignored, 0);
  ck_assert(!clink__hc_due(&c, 5049));
  ck_assert(clink__hc_due(&c, 5050));
}
END_TEST

/* A run slower than the interval: the next one starts when it answers,
 * never while it is out. */
START_TEST(slow_check_never_overlaps) {
  clink__hcheck c;
  clink__hc_init(&c, "slow", 10, 0, 0, 0);
  clink__hc_start(&c, 0);
  for (uint64_t t = 0; t < 100; t++) ck_assert(!clink__hc_due(&c, t));
  clink__hc_finish(&c, 100, 0, CLINK_CHECK_PASS, 0, NULL, NULL, NULL);
  ck_assert(clink__hc_due(&c, 100));
  ck_assert_uint_eq(clink__hc_next_due(&c), 100);
}
END_TEST

START_TEST(aggregation_rules) {
  clink__hcheck a, b;
  clink__hc_init(&a, "a", 10, 0, 1, 0);
  clink__hc_init(&b, "b", 10, 0, 0, 0);
  const clink__hcheck *v[2] = {&a, &b};
  ck_assert_int_eq(clink__health_aggregate(v, 2), CLINK_HEALTH_HEALTHY); /* pending */
  ck_assert_int_eq(clink__health_aggregate(v, 0), CLINK_HEALTH_HEALTHY);
  struct {
    clink_check_status a, b;
    clink_health_status want;
  } cases[] = {
      {CLINK_CHECK_PASS, CLINK_CHECK_PASS, CLINK_HEALTH_HEALTHY},
      {CLINK_CHECK_PASS, CLINK_CHECK_WARN, CLINK_HEALTH_DEGRADED},
      {CLINK_CHECK_PASS, CLINK_CHECK_FAIL, CLINK_HEALTH_DEGRADED}, /* non-critical */
      {CLINK_CHECK_WARN, CLINK_CHECK_PASS, CLINK_HEALTH_DEGRADED}, /* critical warns */
      {CLINK_CHECK_FAIL, CLINK_CHECK_PASS, CLINK_HEALTH_UNHEALTHY},
      {CLINK_CHECK_FAIL, CLINK_CHECK_WARN, CLINK_HEALTH_UNHEALTHY},
      {CLINK_CHECK_PENDING, CLINK_CHECK_PASS, CLINK_HEALTH_HEALTHY},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    a.status = cases[i].a;
    b.status = cases[i].b;
    ck_assert_int_eq(clink__health_aggregate(v, 2), cases[i].want);
  }
  ck_assert_str_eq(clink_health_status_name(CLINK_HEALTH_DEGRADED), "degraded");
  ck_assert_str_eq(clink_health_status_name((clink_health_status)9), "unknown");
  ck_assert_str_eq(clink_check_status_name(CLINK_CHECK_WARN), "warn");
  ck_assert_str_eq(clink_check_status_name(CLINK_CHECK_PENDING), "pending");
  ck_assert_str_eq(clink_check_status_name((clink_check_status)9), "unknown");
}
END_TEST

/* The seed's thresholds: memory warns above 90 %, sessions above 100. */
START_TEST(thresholds) {
  ck_assert_int_eq(clink__threshold(90.0, 90, 0), CLINK_CHECK_PASS);
  ck_assert_int_eq(clink__threshold(90.01, 90, 0), CLINK_CHECK_WARN);
  ck_assert_int_eq(clink__threshold(100.0, 90, 0), CLINK_CHECK_WARN);
  ck_assert_int_eq(clink__threshold(95.0, 90, 95), CLINK_CHECK_WARN);
  ck_assert_int_eq(clink__threshold(95.5, 90, 95), CLINK_CHECK_FAIL);
  ck_assert_int_eq(clink__threshold(100, 100, 0), CLINK_CHECK_PASS);
  ck_assert_int_eq(clink__threshold(101, 100, 0), CLINK_CHECK_WARN);
  ck_assert_int_eq(clink__threshold(1e9, 0, 0), CLINK_CHECK_PASS); /* disabled */
  ck_assert_int_eq(clink__threshold(3, 0, 2), CLINK_CHECK_FAIL);
}
END_TEST

static clink_session_health grade(uint64_t uptime_ms, uint64_t messages, uint64_t errors) {
  clink_session_health sh;
  memset(&sh, 0, sizeof(sh));
  sh.struct_size = sizeof(sh);
  sh.uptime_ms = uptime_ms;
  sh.messages = messages;
  sh.errors = errors;
  clink__session_grade(&sh);
  return sh;
}

/* The course's grades at their boundaries. */
START_TEST(course_grades) {
  ck_assert_int_eq(grade(1000, 10000, 99).error_rate_grade, CLINK_GRADE_EXCELLENT);
  ck_assert_int_eq(grade(1000, 10000, 100).error_rate_grade, CLINK_GRADE_GOOD); /* 1 % */
  ck_assert_int_eq(grade(1000, 10000, 499).error_rate_grade, CLINK_GRADE_GOOD);
  ck_assert_int_eq(grade(1000, 10000, 500).error_rate_grade, CLINK_GRADE_POOR); /* 5 % */
  ck_assert_int_eq(grade(1000, 0, 0).error_rate_grade, CLINK_GRADE_EXCELLENT);
  ck_assert(grade(1000, 0, 1).error_rate == 1.0); /* errors / max(messages, 1) */
  ck_assert_int_eq(grade(1000, 0, 1).error_rate_grade, CLINK_GRADE_POOR);

  ck_assert_int_eq(grade(10000, 100, 0).throughput_grade, CLINK_GRADE_GOOD);       /* 10/s */
  ck_assert_int_eq(grade(10000, 101, 0).throughput_grade, CLINK_GRADE_EXCELLENT);  /* 10.1/s */
  ck_assert_int_eq(grade(10000, 50, 0).throughput_grade, CLINK_GRADE_POOR);        /* 5/s */
  ck_assert_int_eq(grade(10000, 51, 0).throughput_grade, CLINK_GRADE_GOOD);
  ck_assert_int_eq(grade(0, 51, 0).throughput_grade, CLINK_GRADE_POOR);
  ck_assert(grade(0, 51, 0).throughput == 0.0);
  ck_assert(fabs(grade(4000, 10, 0).throughput - 2.5) < 1e-9);

  ck_assert_int_eq(grade(3600000, 0, 0).stability_grade, CLINK_GRADE_GOOD);
  ck_assert_int_eq(grade(3600001, 0, 0).stability_grade, CLINK_GRADE_EXCELLENT);
  ck_assert_int_eq(grade(600000, 0, 0).stability_grade, CLINK_GRADE_STARTING);
  ck_assert_int_eq(grade(600001, 0, 0).stability_grade, CLINK_GRADE_GOOD);
  ck_assert_str_eq(clink_grade_name(CLINK_GRADE_EXCELLENT), "Excellent");
  ck_assert_str_eq(clink_grade_name(CLINK_GRADE_STARTING), "Starting");
  ck_assert_str_eq(clink_grade_name(CLINK_GRADE_POOR), "Poor");
}
END_TEST

START_TEST(course_report_text) {
  clink_session_health sh = grade(12345, 120, 3);
  char buf[512];
  size_t len;
  ck_assert_int_eq(clink_session_health_report(&sh, buf, sizeof(buf), &len), 0);
  const char *want =
      "\xF0\x9F\x93\x8A CONNECTION HEALTH REPORT\n"
      "==============================\n"
      "Uptime: 12.3s\n"
      "Messages: 120\n"
      "Errors: 3\n"
      "Throughput: 9.72 msgs/sec\n"
      "Error Rate: Good\n"
      "Performance: Good\n"
      "Stability: Starting\n";
  ck_assert_str_eq(buf, want);
  ck_assert_uint_eq(len, strlen(want));
  /* Too small: the length needed, snprintf-like. */
  char small[16];
  ck_assert_int_eq(clink_session_health_report(&sh, small, sizeof(small), &len), UV_ENOBUFS);
  ck_assert_uint_eq(len, strlen(want));
  ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
  ck_assert_int_eq(clink_session_health_report(&sh, NULL, 0, &len), UV_ENOBUFS);
  ck_assert_int_eq(clink_session_health_report(NULL, buf, sizeof(buf), &len), UV_EINVAL);
  /* With a process and a session id. */
  sh.pid = 42;
  sh.rss_bytes = 3 * 1024 * 1024;
  sh.cpu_seconds = 1.5;
  size_t n = clink__session_report(&sh, "abc", buf, sizeof(buf));
  ck_assert_uint_eq(n, strlen(buf));
  ck_assert_ptr_nonnull(strstr(buf, "==\nSession: abc\nUptime"));
  ck_assert_ptr_nonnull(strstr(buf, "Process: pid 42, RSS 3.0 MB, CPU 1.50s\n"));
}
END_TEST

START_TEST(histogram_buckets) {
  clink__histo h;
  memset(&h, 0, sizeof(h));
  clink__histo_add(&h, 0);
  clink__histo_add(&h, 5000);     /* le 0.005 */
  clink__histo_add(&h, 5001);     /* le 0.01 */
  clink__histo_add(&h, 300000000); /* le 300 */
  clink__histo_add(&h, 300000001); /* +Inf */
  ck_assert_uint_eq(h.bucket[0], 2);
  ck_assert_uint_eq(h.bucket[1], 1);
  ck_assert_uint_eq(h.bucket[CLINK__HISTO_BUCKETS - 1], 1);
  ck_assert_uint_eq(h.bucket[CLINK__HISTO_BUCKETS], 1);
  ck_assert_uint_eq(h.count, 5);
  ck_assert_uint_eq(h.sum_us, 600010002);
  for (int i = 1; i < CLINK__HISTO_BUCKETS; i++)
    ck_assert_uint_gt(clink__histo_le_us[i], clink__histo_le_us[i - 1]);
}
END_TEST

static clink_client_metrics cm(uint64_t ok, uint64_t failed, uint64_t errors, uint64_t last,
                               uint64_t ewma, uint64_t connect, uint64_t reconnects) {
  clink_client_metrics m;
  memset(&m, 0, sizeof(m));
  m.struct_size = sizeof(m);
  m.turns_ok = ok;
  m.turns_failed = failed;
  m.errors = errors;
  m.last_turn_ms = last;
  m.turn_ms_ewma = ewma;
  m.connect_ms = connect;
  m.recovery_attempts = reconnects;
  m.messages_in = 7;
  return m;
}

/* Counters move by what changed since the last look; a session seen for
 * the first time counts its connect time once; gone sessions are
 * forgotten; one seen twice in a pass counts once. */
/* After a burst of sessions the monitor's tables shrink back. */
START_TEST(tables_shrink_after_a_burst) {
  int *arr = NULL;
  size_t cap = 0;
  ck_assert_int_eq(clink__hs_reserve((void **)&arr, &cap, 1000, sizeof(*arr)), 0);
  ck_assert_uint_ge(cap, 1000);
  for (int i = 0; i < 1000; i++) arr[i] = i;
  ck_assert_int_eq(clink__hs_reserve((void **)&arr, &cap, 10, sizeof(*arr)), 0);
  ck_assert_uint_le(cap, 20);
  ck_assert_uint_ge(cap, 10);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(arr[i], i);
  ck_assert_int_eq(clink__hs_reserve((void **)&arr, &cap, 9, sizeof(*arr)), 0);
  ck_assert_uint_le(cap, 20); /* small tables stay as they are */
  clink_free(arr);

  clink__tracker t;
  memset(&t, 0, sizeof(t));
  ck_assert_int_eq(clink__tracker_begin(&t, 5000), 0);
  clink__tracker_end(&t);
  ck_assert_int_eq(clink__tracker_begin(&t, 5000), 0);
  ck_assert_uint_ge(t.spare_cap, 10000);
  clink__tracker_end(&t);
  ck_assert_int_eq(clink__tracker_begin(&t, 3), 0);
  ck_assert_uint_le(t.spare_cap, 16);
  clink__tracker_end(&t);
  ck_assert_int_eq(clink__tracker_begin(&t, 3), 0);
  ck_assert_uint_le(t.spare_cap, 16);
  ck_assert_uint_le(t.cap, 16); /* both tables, after two passes */
  clink__tracker_end(&t);
  clink__tracker_free(&t);
}
END_TEST

START_TEST(tracker_counts_deltas) {
  clink__tracker t;
  memset(&t, 0, sizeof(t));
  clink__histo turn, conn;
  memset(&turn, 0, sizeof(turn));
  memset(&conn, 0, sizeof(conn));
  int a, b;
  clink__tcount acc = {0, 0, 0, 0, &turn, &conn};
  ck_assert_int_eq(clink__tracker_begin(&t, 2), 0);
  clink_client_metrics ma = cm(1, 0, 0, 40, 40, 9, 0), mb = cm(0, 0, 2, 0, 0, 11, 1);
  ck_assert_ptr_nonnull(clink__tracker_see(&t, &a, 100, &ma, &acc));
  ck_assert_ptr_nonnull(clink__tracker_see(&t, &b, 200, &mb, &acc));
  ck_assert_ptr_null(clink__tracker_see(&t, &b, 200, &mb, &acc)); /* twice */
  clink__tracker_end(&t);
  ck_assert_uint_eq(acc.turns_ok, 1);
  ck_assert_uint_eq(acc.errors, 2);
  ck_assert_uint_eq(acc.recovery_attempts, 1);
  ck_assert_uint_eq(turn.count, 1);
  ck_assert_uint_eq(turn.sum_us, 40000);
  ck_assert_uint_eq(conn.count, 2);
  ck_assert_uint_eq(conn.sum_us, 20000);

  /* Second pass: a ran 3 more turns (one exact, two at the average); b is
   * gone. */
  memset(&acc, 0, sizeof(acc));
  acc.turn_latency = &turn;
  acc.connect_time = &conn;
  ck_assert_int_eq(clink__tracker_begin(&t, 1), 0);
  ma = cm(3, 1, 1, 100, 60, 9, 0);
  clink__tsess *e = clink__tracker_see(&t, &a, 100, &ma, &acc);
  e->rss = 12345; /* process figures stay with the entry */
  clink__tracker_end(&t);
  ck_assert_uint_eq(acc.turns_ok, 2);
  ck_assert_uint_eq(acc.turns_failed, 1);
  ck_assert_uint_eq(acc.errors, 1);
  ck_assert_uint_eq(turn.count, 4);
  ck_assert_uint_eq(turn.sum_us, 40000 + 100000 + 2 * 60000);
  ck_assert_uint_eq(conn.count, 2);
  ck_assert_ptr_null(clink__tracker_find(&t, &b));
  ck_assert_uint_eq(clink__tracker_find(&t, &a)->rss, 12345);

  /* Third pass: a's client now runs another process: figures start over. */
  memset(&acc, 0, sizeof(acc));
  ck_assert_int_eq(clink__tracker_begin(&t, 1), 0);
  e = clink__tracker_see(&t, &a, 101, &ma, &acc);
  ck_assert_uint_eq(e->rss, 0);
  ck_assert_int_eq(e->pid, 101);
  ck_assert(e->cpu_pct < 0);
  clink__tracker_end(&t);
  ck_assert_uint_eq(acc.turns_ok, 0);
  /* Many sessions: the table grows. */
  int keys[100];
  ck_assert_int_eq(clink__tracker_begin(&t, 100), 0);
  for (int i = 0; i < 100; i++) ck_assert_ptr_nonnull(clink__tracker_see(&t, &keys[i], i, &ma, &acc));
  clink__tracker_end(&t);
  for (int i = 0; i < 100; i++) ck_assert_ptr_nonnull(clink__tracker_find(&t, &keys[i]));
  clink__tracker_free(&t);
}
END_TEST

START_TEST(procfs_parsers) {
  static const char stat[] =
      "cpu  100 5 50 800 20 3 2 10 7 0\n"
      "cpu0 50 2 25 400 10 1 1 5 3 0\n"
      "cpu1 50 3 25 400 10 2 1 5 4 0\n"
      "intr 12345 0 0\n"
      "ctxt 999\n";
  clink__cpu_times a, b;
  ck_assert_int_eq(clink__parse_proc_stat(stat, &a), 0);
  ck_assert_uint_eq(a.total, 100 + 5 + 50 + 800 + 20 + 3 + 2 + 10);
  ck_assert_uint_eq(a.busy, a.total - 800 - 20);
  ck_assert_uint_eq(a.count, 2);
  ck_assert_int_eq(clink__parse_proc_stat("intr 1\n", &a), UV_EINVAL);
  a.total = 1000;
  a.busy = 200;
  b.total = 1100;
  b.busy = 225;
  ck_assert(fabs(clink__cpu_percent(&a, &b) - 25.0) < 1e-9);
  ck_assert(clink__cpu_percent(&b, &a) < 0);
  ck_assert(clink__cpu_percent(&a, &a) < 0);

  uint64_t total, avail;
  ck_assert_int_eq(clink__parse_meminfo("MemTotal:       16000000 kB\nMemFree:  100 kB\n"
                                        "MemAvailable:    8500000 kB\n",
                                        &total, &avail),
                   0);
  ck_assert_uint_eq(total, (uint64_t)16000000 * 1024);
  ck_assert_uint_eq(avail, (uint64_t)8500000 * 1024);
  ck_assert_int_eq(clink__parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\n"
                                        "Cached: 25 kB\n",
                                        &total, &avail),
                   0);
  ck_assert_uint_eq(avail, 175 * 1024); /* before MemAvailable existed */
  ck_assert_int_eq(clink__parse_meminfo("MemFree: 1 kB\n", &total, &avail), UV_EINVAL);

  uint64_t rss, vms;
  ck_assert_int_eq(clink__parse_statm("2000 500 100 1 0 300 0\n", 4096, &rss, &vms), 0);
  ck_assert_uint_eq(vms, 2000 * 4096);
  ck_assert_uint_eq(rss, 500 * 4096);
  ck_assert_int_eq(clink__parse_statm("", 4096, &rss, &vms), UV_EINVAL);

  uint64_t ticks;
  /* A command name with spaces and parentheses. */
  ck_assert_int_eq(clink__parse_pid_stat("1234 (we(i) rd) S 1 2 3 4 5 6 7 8 9 10 111 222 13 14\n",
                                         &ticks),
                   0);
  ck_assert_uint_eq(ticks, 333);
  ck_assert_int_eq(clink__parse_pid_stat("1234 (x) S 1 2\n", &ticks), UV_EINVAL);
  ck_assert_int_eq(clink__parse_pid_stat("no paren", &ticks), UV_EINVAL);

  /* The real files. */
  char buf[65536];
  ck_assert_int_eq(clink__proc_cpu(buf, sizeof(buf), &a), 0);
  ck_assert_uint_ge(a.count, 1);
  ck_assert_int_eq(clink__proc_meminfo(&total, &avail), 0);
  ck_assert_uint_gt(total, 0);
  ck_assert_uint_le(avail, total);
  ck_assert_int_eq(clink__proc_mem(0, &rss, &vms), 0);
  ck_assert_uint_gt(rss, 0);
  ck_assert_uint_ge(vms, rss);
  ck_assert_int_eq(clink__proc_cpu_ticks(getpid(), &ticks), 0);
  ck_assert_int_eq(clink__proc_mem(0x7ffffff0, &rss, &vms), UV_ENOENT);
  double pct;
  ck_assert_int_eq(clink__disk_usage("/", &pct), 0);
  ck_assert(pct >= 0 && pct <= 100);
  ck_assert_int_eq(clink__disk_usage("/no/such/dir", &pct), UV_ENOENT);
  ck_assert_int_eq(clink__read_small("/proc/self/stat", buf, 1), 0);
}
END_TEST

START_TEST(check_keys_for_health_json) {
  clink__hcheck c;
  char key[128];
  static const struct {
    const char *name, *unit, *key;
  } cases[] = {{"claude_sdk", "ms", "claude_sdk:responseTime"},
               {"memory", "percent", "memory:utilization"},
               {"sessions", "sessions", "sessions:connections"},
               {"disk", "", "disk:status"},
               {"redis:ping", "ms", "redis:ping"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    clink__hc_init(&c, cases[i].name, 10, 0, 0, 0);
    snprintf(c.unit, sizeof(c.unit), "%s", cases[i].unit);
    clink__check_key(&c, key, sizeof(key));
    ck_assert_str_eq(key, cases[i].key);
  }
}
END_TEST

/* ========================================================== renderings */

/* A snapshot with every section filled, as the bench builds it. */
/* Not ck_assert: also used outside a test (promtool mode). */
#define MUST(x)                                              \
  do {                                                       \
    if (!(x)) {                                              \
      fprintf(stderr, "%s:%d: %s failed\n", __FILE__, __LINE__, #x); \
      abort();                                               \
    }                                                        \
  } while (0)

static void fill_snapshot(clink_health_snapshot *s, size_t n_sess, size_t n_brk, size_t n_fb) {
  s->unix_ms = UINT64_C(1704110400000); /* 2024-01-01T12:00:00Z */
  s->uptime_ms = 3600500;
  snprintf(s->service, sizeof(s->service), "Claude Chat API");
  snprintf(s->version, sizeof(s->version), "1.0.0");
  s->status = CLINK_HEALTH_HEALTHY;
  MUST(clink__hs_reserve((void **)&s->sess, &s->cap_sess, n_sess, sizeof(*s->sess)) == 0);
  s->n_sess = n_sess;
  for (size_t i = 0; i < n_sess; i++) {
    clink__hs_session *x = &s->sess[i];
    memset(x, 0, sizeof(*x));
    snprintf(x->id, sizeof(x->id), "%08zx-1b2c-4d5e-8f90-%012zx", i, i * 7919);
    x->state = CLINK_CLIENT_CONNECTED;
    x->pooled = (i & 1) != 0;
    x->health.struct_size = sizeof(x->health);
    x->health.uptime_ms = 1000 * (i + 1);
    x->health.messages = 10 * i;
    x->health.errors = i % 3;
    clink__session_grade(&x->health);
    x->health.pid = 1000 + (int)i;
    x->health.rss_bytes = (uint64_t)(60 + i % 7) << 20;
    x->cpu_pct = 1.5;
    x->turns_ok = i;
  }
  s->sessions_active = n_sess;
  s->sessions_created = n_sess + 5;
  s->session_configs = 2;
  s->cli_processes = n_sess;
  s->cli_rss_sum = (uint64_t)n_sess * (64 << 20);
  s->cli_rss_max = (uint64_t)66 << 20;
  s->cli_cpu_pct = 12.5;
  s->turns_ok = 1400;
  s->turns_failed = 12;
  for (int i = 0; i < 1412; i++) clink__histo_add(&s->turn_latency, (uint64_t)(i % 50) * 100000);
  for (size_t i = 0; i < n_sess; i++) clink__histo_add(&s->connect_time, 900000);
  s->sys.cpu_pct = 25.5;
  s->sys.cpu_count = 8;
  s->sys.load[0] = 1.2;
  s->sys.load[1] = 1.1;
  s->sys.load[2] = 1.0;
  s->sys.mem_total = (uint64_t)16 << 30;
  s->sys.mem_avail = (uint64_t)17 << 29;
  s->sys.mem_used_pct = 45.2;
  s->sys.proc_rss = (uint64_t)(256.7 * 1048576);
  s->sys.proc_vms = (uint64_t)(512.3 * 1048576);
  s->sys.disk_used_pct = 65.8;
  snprintf(s->disk_path, sizeof(s->disk_path), "/");
  s->sdk_known = 1;
  s->sdk_status = CLINK_CHECK_PASS;
  s->sdk_connection_ms = 125.5;
  s->sdk_last_unix_ms = s->unix_ms;
  s->requests_total = 1500;
  s->requests_in_progress = 3;
  s->errors_total = 12;
  for (int i = 0; i < 1500; i++) clink__histo_add(&s->request_latency, (uint64_t)i * 1000);
  s->n_pools = 1;
  memset(&s->pool, 0, sizeof(s->pool));
  s->pool.size = 10;
  s->pool.idle = 7;
  s->pool.in_use = 3;
  s->pool.created = 150;
  s->pool.closed_by_reason[CLINK_POOL_CLOSE_MEMORY] = 2;
  s->pool.wait_hist[0] = 100;
  s->pool.wait_hist[3] = 5;
  s->pool.wait_hist[CLINK_POOL_WAIT_BUCKETS - 1] = 1;
  s->pool.wait_total_us = 123456;
  MUST(clink__hs_reserve((void **)&s->brk, &s->cap_brk, n_brk, sizeof(*s->brk)) == 0);
  s->n_brk = n_brk;
  for (size_t i = 0; i < n_brk; i++) {
    clink__hs_breaker *b = &s->brk[i];
    memset(b, 0, sizeof(*b));
    snprintf(b->name, sizeof(b->name), i == 0 ? "claude_sdk" : "breaker_%zu", i);
    b->state = i == 3 ? CLINK_BREAKER_OPEN : CLINK_BREAKER_CLOSED;
    b->can_execute = i != 3;
    b->total_calls = 100 * i;
    b->failure_rate_pct = -1;
  }
  s->breakers_open = n_brk > 3;
  MUST(clink__hs_reserve((void **)&s->fb, &s->cap_fb, n_fb, sizeof(*s->fb)) == 0);
  s->n_fb = n_fb;
  s->have_fallbacks = 1;
  s->fallbacks_used = 0;
  for (size_t i = 0; i < n_fb; i++) {
    clink__hs_fallback *f = &s->fb[i];
    snprintf(f->operation, sizeof(f->operation), i == 0 ? "chat" : "operation_%zu", i);
    clink_health_fallback_op op = {sizeof(op), 100, 95, 5, 3};
    f->op = op;
    s->fallbacks_used += 5;
  }
  s->have_outbox = 1;
  memset(&s->outbox, 0, sizeof(s->outbox));
  s->outbox.pending = 4;
  s->outbox.dead = 1;
  s->outbox.oldest_pending_age_ms = 2500;
  MUST(clink__hs_reserve((void **)&s->chk, &s->cap_chk, 3, sizeof(*s->chk)) == 0);
  s->n_chk = 3;
  const char *names[] = {"claude_sdk", "memory", "sessions"};
  const char *units[] = {"ms", "percent", "sessions"};
  double values[] = {125.5, 45.2, 15};
  for (int i = 0; i < 3; i++) {
    clink__hc_init(&s->chk[i].c, names[i], 30000, 5000, i == 0, 0);
    s->chk[i].c.status = CLINK_CHECK_PASS;
    s->chk[i].c.value = values[i];
    snprintf(s->chk[i].c.unit, sizeof(s->chk[i].c.unit), "%s", units[i]);
    snprintf(s->chk[i].c.message, sizeof(s->chk[i].c.message), "fine");
    s->chk[i].c.answered_unix_ms = s->unix_ms;
  }
}

static clink_health_snapshot *synthetic(size_t n_sess, size_t n_brk, size_t n_fb) {
  clink_health_snapshot *s;
  ck_assert_int_eq(clink_health_snapshot_new(&s), 0);
  fill_snapshot(s, n_sess, n_brk, n_fb);
  return s;
}

static cJSON *render_json(const clink_health_snapshot *s, clink_health_format f) {
  char *out;
  size_t len;
  ck_assert_int_eq(clink_health_render_alloc(s, f, &out, &len), 0);
  ck_assert_uint_eq(len, strlen(out));
  cJSON *j = cJSON_Parse(out);
  ck_assert_msg(j != NULL, "not JSON: %s", out);
  /* cJSON prints the document back byte for byte: the text is what the
   * renderings printed through a cJSON tree before they streamed it. */
  char *again = cJSON_PrintUnformatted(j);
  ck_assert_str_eq(again, out);
  cJSON_free(again);
  clink_free(out);
  return j;
}

static int json_kind(const cJSON *j) {
  if (cJSON_IsBool(j)) return cJSON_True; /* true and false are one type */
  return j->type & 0xFF;
}

/* Maps whose keys are names (breakers, operations): every entry has the
 * shape of the seed's one. */
static int is_map(const char *path) {
  return strcmp(path, ".stability.circuit_breakers") == 0 ||
         strcmp(path, ".fallback_stats.operations") == 0;
}

/* The one documented addition to the seed's report: the attached pools'
 * figures, top level (checked by sdk_check_pings_a_pooled_member). */
static int is_extension(const char *path, const char *key) {
  return path[0] == '\0' && strcmp(key, "pool") == 0;
}

/* Same key set at every level, same JSON types. */
static void same_shape(const cJSON *seed, const cJSON *ours, const char *path) {
  ck_assert_msg(ours != NULL, "%s: missing", path);
  ck_assert_msg(json_kind(seed) == json_kind(ours), "%s: type %d, the seed's %d", path,
                json_kind(ours), json_kind(seed));
  char sub[256];
  if (cJSON_IsObject(seed) && is_map(path)) {
    ck_assert_msg(ours->child != NULL, "%s: empty", path);
    ck_assert_msg(cJSON_GetObjectItemCaseSensitive(ours, seed->child->string) != NULL,
                  "%s: no %s", path, seed->child->string);
    for (const cJSON *o = ours->child; o; o = o->next) {
      snprintf(sub, sizeof(sub), "%s.%s", path, o->string);
      same_shape(seed->child, o, sub);
    }
  } else if (cJSON_IsObject(seed)) {
    for (const cJSON *k = seed->child; k; k = k->next) {
      snprintf(sub, sizeof(sub), "%s.%s", path, k->string);
      same_shape(k, cJSON_GetObjectItemCaseSensitive(ours, k->string), sub);
    }
    for (const cJSON *k = ours->child; k; k = k->next)
      ck_assert_msg(cJSON_GetObjectItemCaseSensitive(seed, k->string) != NULL ||
                        is_extension(path, k->string),
                    "%s.%s: not in the seed", path, k->string);
  } else if (cJSON_IsArray(seed) && seed->child) {
    snprintf(sub, sizeof(sub), "%s[]", path);
    for (const cJSON *o = ours->child; o; o = o->next) same_shape(seed->child, o, sub);
  }
}

static cJSON *seed(const char *text) {
  cJSON *j = cJSON_Parse(text);
  ck_assert_ptr_nonnull(j);
  return j;
}

START_TEST(detailed_matches_the_seed) {
  clink_health_snapshot *s = synthetic(3, 2, 2);
  cJSON *ours = render_json(s, CLINK_HEALTH_FORMAT_DETAILED);
  cJSON *want = seed(SEED_DETAILED);
  same_shape(want, ours, "");
  /* Values in the seed's units and rounding. */
  ck_assert_str_eq(cJSON_GetObjectItem(ours, "status")->valuestring, "healthy");
  ck_assert_str_eq(cJSON_GetObjectItem(ours, "service")->valuestring, "Claude Chat API");
  ck_assert_str_eq(cJSON_GetObjectItem(ours, "version")->valuestring, "1.0.0");
  ck_assert_int_eq(cJSON_GetObjectItem(ours, "uptime_seconds")->valueint, 3600);
  ck_assert_str_eq(cJSON_GetObjectItem(ours, "timestamp")->valuestring, "2024-01-01T12:00:00Z");
  cJSON *sys = cJSON_GetObjectItem(ours, "system");
  cJSON *mem = cJSON_GetObjectItem(sys, "memory");
  ck_assert(cJSON_GetObjectItem(mem, "total_gb")->valuedouble == 16.0);
  ck_assert(cJSON_GetObjectItem(mem, "available_gb")->valuedouble == 8.5);
  ck_assert(cJSON_GetObjectItem(mem, "usage_percent")->valuedouble == 45.2);
  ck_assert(cJSON_GetObjectItem(mem, "process_rss_mb")->valuedouble == 256.7);
  ck_assert(cJSON_GetObjectItem(mem, "process_vms_mb")->valuedouble == 512.3);
  cJSON *cpu = cJSON_GetObjectItem(sys, "cpu");
  ck_assert(cJSON_GetObjectItem(cpu, "usage_percent")->valuedouble == 25.5);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cpu, "load_average")), 3);
  ck_assert(cJSON_GetArrayItem(cJSON_GetObjectItem(cpu, "load_average"), 0)->valuedouble == 1.2);
  cJSON *sdk = cJSON_GetObjectItem(ours, "claude_sdk");
  ck_assert_str_eq(cJSON_GetObjectItem(sdk, "status")->valuestring, "connected");
  ck_assert(cJSON_GetObjectItem(sdk, "connection_time_ms")->valuedouble == 125.5);
  ck_assert_str_eq(cJSON_GetObjectItem(sdk, "last_check")->valuestring, "2024-01-01T12:00:00Z");
  cJSON *perf = cJSON_GetObjectItem(ours, "performance");
  ck_assert(cJSON_GetObjectItem(perf, "error_rate")->valuedouble == 0.8);
  cJSON *sess = cJSON_GetObjectItem(ours, "sessions");
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(sess, "active_sessions")), 3);
  ck_assert_int_eq(cJSON_GetObjectItem(sess, "total_created")->valueint, 8);
  cJSON *cb = cJSON_GetObjectItem(cJSON_GetObjectItem(ours, "stability"), "circuit_breakers");
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(cb, "claude_sdk"), "can_execute")));
  cJSON *chat = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(ours, "fallback_stats"),
                                                        "operations"),
                                    "chat");
  ck_assert_int_eq(cJSON_GetObjectItem(chat, "primary_success")->valueint, 95);
  cJSON_Delete(ours);

  /* With the seed's counts exactly, the whole example comes out again
   * (but for status, which the seed writes as the list of choices). */
  s->n_sess = 2;
  snprintf(s->sess[0].id, sizeof(s->sess[0].id), "session1");
  snprintf(s->sess[1].id, sizeof(s->sess[1].id), "session2");
  s->sessions_active = 15;
  s->sessions_created = 150;
  s->session_configs = 10;
  s->n_brk = 1;
  s->n_fb = 1;
  s->n_pools = 0; /* no pool attached: no "pool" extension */
  ours = render_json(s, CLINK_HEALTH_FORMAT_DETAILED);
  cJSON_ReplaceItemInObject(want, "status", cJSON_CreateString("healthy"));
  ck_assert_msg(cJSON_Compare(want, ours, 1), "differs from the seed: %s", cJSON_PrintUnformatted(ours));
  cJSON_Delete(ours);
  cJSON_Delete(want);
  clink_health_snapshot_free(s);
}
END_TEST

/* Session ids are written by a fast path when they need no escape, by the
 * JSON escaper otherwise: both parse back to the same strings. */
START_TEST(active_sessions_escaped) {
  static const char *const ids[] = {
      "a\"b", "c\\d", "e\nf\x01", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
      "12345678\"0", "123456789012345\x1f", "plain-uuid-like-0000", "\xc3\xa9t\xc3\xa9"};
  size_t n = sizeof(ids) / sizeof(ids[0]);
  clink_health_snapshot *s = synthetic(n + 1, 1, 1);
  for (size_t i = 0; i < n; i++) snprintf(s->sess[i].id, sizeof(s->sess[i].id), "%s", ids[i]);
  s->sess[n].state = CLINK_CLIENT_CLOSED; /* not active: not listed */
  cJSON *j = render_json(s, CLINK_HEALTH_FORMAT_DETAILED);
  cJSON *arr = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sessions"), "active_sessions");
  ck_assert_int_eq(cJSON_GetArraySize(arr), (int)n);
  for (size_t i = 0; i < n; i++)
    ck_assert_str_eq(cJSON_GetArrayItem(arr, (int)i)->valuestring, ids[i]);
  cJSON_Delete(j);
  s->n_sess = 0;
  j = render_json(s, CLINK_HEALTH_FORMAT_DETAILED);
  arr = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sessions"), "active_sessions");
  ck_assert(cJSON_IsArray(arr));
  ck_assert_int_eq(cJSON_GetArraySize(arr), 0);
  cJSON_Delete(j);
  clink_health_snapshot_free(s);
}
END_TEST

START_TEST(metrics_has_the_seeds_ten_keys) {
  clink_health_snapshot *s = synthetic(15, 3, 1);
  s->sessions_created = 150;
  cJSON *ours = render_json(s, CLINK_HEALTH_FORMAT_METRICS);
  cJSON *want = seed(SEED_METRICS);
  same_shape(want, ours, "");
  ck_assert_int_eq(cJSON_GetArraySize(ours), 10);
  ck_assert(cJSON_Compare(want, ours, 1)); /* the seed's figures, the seed's text */
  cJSON_Delete(ours);
  clink_health_snapshot_free(s);
  s = synthetic(15, 5, 1); /* breaker 3 is open */
  ours = render_json(s, CLINK_HEALTH_FORMAT_METRICS);
  ck_assert_int_eq(cJSON_GetObjectItem(ours, "circuit_breakers_open")->valueint, 1);
  cJSON_Delete(ours);
  cJSON_Delete(want);
  clink_health_snapshot_free(s);
}
END_TEST

START_TEST(stability_report) {
  clink_health_snapshot *s = synthetic(2, 4, 2);
  s->chk[1].c.status = CLINK_CHECK_WARN;
  s->status = CLINK_HEALTH_DEGRADED;
  cJSON *j = render_json(s, CLINK_HEALTH_FORMAT_STABILITY);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "degraded");
  cJSON *cb = cJSON_GetObjectItem(j, "circuit_breakers");
  ck_assert_int_eq(cJSON_GetArraySize(cb), 4);
  cJSON *b3 = cJSON_GetObjectItem(cb, "breaker_3");
  ck_assert_str_eq(cJSON_GetObjectItem(b3, "state")->valuestring, "open");
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(b3, "can_execute")));
  ck_assert_int_eq(cJSON_GetObjectItem(b3, "total_calls")->valueint, 300);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "circuit_breakers_open")->valueint, 1);
  ck_assert_int_eq(
      cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "fallback_stats"), "operations")),
      2);
  cJSON *hc = cJSON_GetObjectItem(j, "health_checks");
  ck_assert_int_eq(cJSON_GetArraySize(hc), 3);
  cJSON *m = cJSON_GetObjectItem(hc, "memory");
  ck_assert_str_eq(cJSON_GetObjectItem(m, "status")->valuestring, "warn");
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(m, "critical")));
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(hc, "claude_sdk"), "critical")));
  ck_assert_str_eq(cJSON_GetObjectItem(m, "observed_unit")->valuestring, "percent");
  ck_assert_str_eq(cJSON_GetObjectItem(m, "last_check")->valuestring, "2024-01-01T12:00:00Z");
  cJSON *ob = cJSON_GetObjectItem(j, "outbox");
  ck_assert_int_eq(cJSON_GetObjectItem(ob, "pending")->valueint, 4);
  ck_assert(cJSON_GetObjectItem(ob, "oldest_pending_age_seconds")->valuedouble == 2.5);
  cJSON_Delete(j);
  clink_health_snapshot_free(s);
}
END_TEST

/* draft-inadarei-api-health-check: status pass/warn/fail; checks keyed
 * component:measurement, each an array of objects with observedValue,
 * observedUnit, status and an ISO 8601 time. */
static void check_health_json(const cJSON *j, const char *want_status) {
  ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, want_status);
  const cJSON *checks = cJSON_GetObjectItem(j, "checks");
  ck_assert(cJSON_IsObject(checks));
  for (const cJSON *k = checks->child; k; k = k->next) {
    const char *colon = strchr(k->string, ':');
    ck_assert_msg(colon && colon != k->string && colon[1], "key %s", k->string);
    ck_assert(cJSON_IsArray(k));
    ck_assert_int_ge(cJSON_GetArraySize(k), 1);
    for (const cJSON *o = k->child; o; o = o->next) {
      ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "observedValue")));
      ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, "observedUnit")));
      const char *st = cJSON_GetObjectItem(o, "status")->valuestring;
      ck_assert(strcmp(st, "pass") == 0 || strcmp(st, "warn") == 0 || strcmp(st, "fail") == 0);
      const char *t = cJSON_GetObjectItem(o, "time")->valuestring;
      ck_assert_uint_eq(strlen(t), 20);
      ck_assert(t[4] == '-' && t[10] == 'T' && t[19] == 'Z');
      const cJSON *out = cJSON_GetObjectItem(o, "output");
      if (strcmp(st, "pass") == 0) ck_assert_ptr_null(out); /* omitted on pass */
    }
  }
}

START_TEST(health_json_draft) {
  clink_health_snapshot *s = synthetic(1, 1, 1);
  cJSON *j = render_json(s, CLINK_HEALTH_FORMAT_HEALTH_JSON);
  check_health_json(j, "pass");
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checks"), "claude_sdk:responseTime"));
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checks"), "memory:utilization"));
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checks"), "sessions:connections"));
  ck_assert_str_eq(cJSON_GetObjectItem(j, "version")->valuestring, "1.0.0");
  cJSON_Delete(j);
  s->status = CLINK_HEALTH_DEGRADED;
  s->chk[1].c.status = CLINK_CHECK_WARN;
  j = render_json(s, CLINK_HEALTH_FORMAT_HEALTH_JSON);
  check_health_json(j, "warn");
  cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checks"), "memory:utilization"), 0);
  ck_assert_str_eq(cJSON_GetObjectItem(m, "output")->valuestring, "fine");
  cJSON_Delete(j);
  s->status = CLINK_HEALTH_UNHEALTHY;
  s->chk[0].c.status = CLINK_CHECK_FAIL;
  s->chk[2].c.status = CLINK_CHECK_PENDING; /* nothing observed: left out */
  j = render_json(s, CLINK_HEALTH_FORMAT_HEALTH_JSON);
  check_health_json(j, "fail");
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "checks")), 2);
  cJSON_Delete(j);
  clink_health_snapshot_free(s);
}
END_TEST

/* Many checks, some of one key, some pending: one array per key, where the
 * key first appears, its checks in order (beyond the keys kept at hand). */
START_TEST(health_json_groups_by_key) {
  static const char *const names[] = {"memory", "sessions", "claude_sdk", "redis:ping", "disk",
                                      "memory"};
  static const char *const units[] = {"percent", "sessions", "ms", "ms", "", "%"};
  clink_health_snapshot *s = synthetic(0, 0, 0);
  size_t n = 40;
  MUST(clink__hs_reserve((void **)&s->chk, &s->cap_chk, n, sizeof(*s->chk)) == 0);
  s->n_chk = n;
  for (size_t i = 0; i < n; i++) {
    clink__hcheck *c = &s->chk[i].c;
    /* Keys first seen past the 16th check too. */
    const char *name = i < 20 ? names[i % 6] : i % 2 ? "late:key" : names[i % 6];
    clink__hc_init(c, name, 1000, 100, 0, 0);
    snprintf(c->unit, sizeof(c->unit), "%s", units[i % 6]);
    c->status = i % 7 == 3 ? CLINK_CHECK_PENDING : CLINK_CHECK_PASS;
    c->value = (double)i;
  }
  cJSON *j = render_json(s, CLINK_HEALTH_FORMAT_HEALTH_JSON);
  const cJSON *checks = cJSON_GetObjectItem(j, "checks"), *arr = checks->child;
  int written[40] = {0};
  for (size_t i = 0; i < n; i++) {
    if (s->chk[i].c.status == CLINK_CHECK_PENDING || written[i]) continue;
    char key[128], other[128];
    clink__check_key(&s->chk[i].c, key, sizeof(key));
    ck_assert_ptr_nonnull(arr);
    ck_assert_str_eq(arr->string, key);
    const cJSON *o = arr->child;
    for (size_t m = i; m < n; m++) {
      clink__check_key(&s->chk[m].c, other, sizeof(other));
      if (s->chk[m].c.status == CLINK_CHECK_PENDING || strcmp(key, other) != 0) continue;
      ck_assert_ptr_nonnull(o);
      ck_assert_double_eq(cJSON_GetObjectItem(o, "observedValue")->valuedouble, (double)m);
      written[m] = 1;
      o = o->next;
    }
    ck_assert_ptr_null(o);
    arr = arr->next;
  }
  ck_assert_ptr_null(arr);
  cJSON_Delete(j);
  clink_health_snapshot_free(s);
}
END_TEST

/* ------------------------------------------------------------ JSON writer */

/* Runs call with j, a JSON writer on buf; buf is NUL-terminated after. */
#define JW(buf, call)                                                  \
  do {                                                                 \
    clink__wbuf w_ = {(buf), sizeof(buf), 0, 0, 0};                    \
    clink__jw jw_ = {&w_, 1}, *j = &jw_;                               \
    call;                                                              \
    (buf)[w_.len < sizeof(buf) ? w_.len : sizeof(buf) - 1] = '\0';    \
  } while (0)

/* What cJSON 1.7 printed for a double: %1.15g, or %1.17g when the 15
 * digits do not read back within an ulp. The writer must spell every
 * figure so, printf-free up to 15 digits. */
static void cjson_spelling(double d, char *out, size_t cap) {
  if (!isfinite(d)) {
    snprintf(out, cap, "null");
    return;
  }
  snprintf(out, cap, "%1.15g", d);
  double back = strtod(out, NULL);
  if (!(fabs(back - d) <= fmax(fabs(back), fabs(d)) * 2.220446049250313e-16))
    snprintf(out, cap, "%1.17g", d);
}

START_TEST(json_writer_numbers_and_strings) {
  static const struct {
    double x;
    int decimals;
    const char *text;
  } fixed[] = {{45.2, 1, "45.2"},   {45.25, 2, "45.25"}, {45.0, 2, "45"},     {0.05, 1, "0.1"},
               {0.5, 2, "0.5"},     {0.07, 2, "0.07"},   {-3.14159, 2, "-3.14"}, {-0.04, 1, "-0"},
               {-0.0, 2, "-0"},     {NAN, 1, "0"},       {INFINITY, 2, "0"}, {0.00026, 4, "0.0003"},
               {1e300, 1, "1e+300"}, {2.5e14, 2, "250000000000000"},
               {12345678901234.56, 1, "12345678901234.6"}};
  char buf[64], want[64];
  for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
    JW(buf, clink__jw_fixed(j, fixed[i].x, fixed[i].decimals));
    ck_assert_str_eq(buf, fixed[i].text);
  }
  /* Against the printf spelling, on figures of every size and sign. */
  static const double unit[] = {1, 0.1, 0.01, 0.001, 0.0001};
  uint64_t r = 0x9e3779b97f4a7c15u;
  for (int i = 0; i < 200000; i++) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    int d = 1 + (int)(r % 4);
    double x = ldexp((double)(r >> 12), -(int)(r % 90)) * (r & 1 ? -1 : 1);
    JW(buf, clink__jw_fixed(j, x, d));
    cjson_spelling(round(x / unit[d]) * unit[d], want, sizeof(want));
    ck_assert_msg(strcmp(buf, want) == 0, "%.17g to %d decimals: %s, cJSON %s", x, d, buf, want);
  }
  static const struct {
    uint64_t v;
    const char *text;
  } ints[] = {{0, "0"},
              {2147483648u, "2147483648"},
              {999999999999999u, "999999999999999"},
              {1000000000000000u, "1e+15"},
              {UINT64_MAX, "1.8446744073709552e+19"}};
  for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
    JW(buf, clink__jw_u64(j, ints[i].v));
    ck_assert_str_eq(buf, ints[i].text);
  }
  JW(buf, (clink__jw_i64(j, -999999999999999), clink__jw_i64(j, INT64_MIN)));
  ck_assert_str_eq(buf, "-999999999999999-9.2233720368547758e+18");
  JW(buf, (clink__jw_double(j, NAN), clink__jw_double(j, -INFINITY), clink__jw_double(j, 0.1)));
  ck_assert_str_eq(buf, "nullnull0.1");
  /* Escapes as cJSON writes them; members and elements get their commas. */
  JW(buf, (clink__jw_open(j, '{'), clink__jw_key(j, "k\"\\"), clink__jw_str(j, "\b\f\n\r\t\x01\x7f/"),
           CLINK__JW_K(j, "a"), clink__jw_open(j, '['), clink__jw_close(j, ']'),
           CLINK__JW_K(j, "b"), clink__jw_open(j, '['), clink__jw_elem(j), clink__jw_null(j),
           clink__jw_elem(j), clink__jw_bool(j, 2), clink__jw_close(j, ']'), clink__jw_close(j, '}')));
  ck_assert_str_eq(buf, "{\"k\\\"\\\\\":\"\\b\\f\\n\\r\\t\\u0001\x7f/\",\"a\":[],\"b\":[null,true]}");
  /* Short of room: counted on, cut, still NUL-terminated. */
  char tiny[4];
  JW(tiny, clink__jw_str(j, "abcdef"));
  ck_assert_str_eq(tiny, "\"ab");
}
END_TEST

/* -------------------------------------------------------- Prometheus text */

typedef struct prom_family {
  char name[128];
  char type[16];
  int help;
} prom_family;

/* A line-by-line check of the 0.0.4 text format as we write it. */
static void check_prometheus(const char *text) {
  prom_family fam[256];
  int n_fam = 0, cur = -1;
  char line[4096];
  uint64_t last_bucket = 0;
  int in_hist = 0;
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    ck_assert_msg(nl != NULL, "the text ends with a line feed");
    size_t n = (size_t)(nl - p);
    ck_assert_uint_lt(n, sizeof(line));
    memcpy(line, p, n);
    line[n] = '\0';
    p = nl + 1;
    char name[128];
    if (strncmp(line, "# HELP ", 7) == 0) {
      ck_assert_int_eq(sscanf(line + 7, "%127s", name), 1);
      for (int i = 0; i < n_fam; i++) ck_assert_msg(strcmp(fam[i].name, name), "%s twice", name);
      ck_assert_int_lt(n_fam, 256);
      cur = n_fam++;
      snprintf(fam[cur].name, sizeof(fam[cur].name), "%s", name);
      fam[cur].help = 1;
      fam[cur].type[0] = '\0';
      continue;
    }
    if (strncmp(line, "# TYPE ", 7) == 0) {
      char type[16];
      ck_assert_int_eq(sscanf(line + 7, "%127s %15s", name, type), 2);
      ck_assert_int_ge(cur, 0);
      ck_assert_str_eq(name, fam[cur].name); /* TYPE right after its HELP */
      snprintf(fam[cur].type, sizeof(fam[cur].type), "%s", type);
      ck_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                strcmp(type, "histogram") == 0);
      if (strcmp(type, "counter") == 0) {
        size_t l = strlen(name);
        ck_assert_msg(l > 6 && strcmp(name + l - 6, "_total") == 0, "counter %s", name);
      }
      in_hist = strcmp(type, "histogram") == 0;
      last_bucket = 0;
      continue;
    }
    ck_assert_msg(line[0] != '#', "stray comment %s", line);
    /* A sample of the current family. */
    ck_assert_int_ge(cur, 0);
    ck_assert_msg(fam[cur].type[0], "sample before TYPE: %s", line);
    size_t fl = strlen(fam[cur].name);
    ck_assert_msg(strncmp(line, fam[cur].name, fl) == 0, "%s outside its family %s", line,
                  fam[cur].name);
    const char *rest = line + fl;
    if (in_hist) {
      ck_assert(strncmp(rest, "_bucket{le=\"", 12) == 0 || strncmp(rest, "_sum ", 5) == 0 ||
                strncmp(rest, "_count ", 7) == 0);
      if (strncmp(rest, "_bucket", 7) == 0) {
        const char *v = strrchr(rest, ' ');
        uint64_t c = strtoull(v + 1, NULL, 10);
        ck_assert_uint_ge(c, last_bucket); /* cumulative */
        last_bucket = c;
      } else if (strncmp(rest, "_count ", 7) == 0) {
        ck_assert_uint_eq(strtoull(rest + 7, NULL, 10), last_bucket); /* == +Inf */
      }
    } else {
      ck_assert(rest[0] == ' ' || rest[0] == '{');
    }
    if (strstr(line, "le=\"+Inf\"")) ck_assert(in_hist);
    /* Label values: no raw quote, backslash or line feed inside. */
    const char *lb = strchr(line, '{');
    if (lb) {
      const char *q = lb + 1;
      while (*q && *q != '}') {
        while (*q && *q != '=') q++;
        ck_assert_int_eq(q[1], '"');
        q += 2;
        while (*q != '"') {
          if (*q == '\\') {
            ck_assert(q[1] == '\\' || q[1] == '"' || q[1] == 'n');
            q++;
          }
          ck_assert(*q != '\0');
          q++;
        }
        q++;
        if (*q == ',') q++;
      }
      ck_assert_int_eq(*q, '}');
    }
    char *end;
    const char *val = strrchr(line, ' ') + 1;
    double v = strtod(val, &end);
    ck_assert_msg(*end == '\0' && !isnan(v), "value of %s", line);
  }
  for (int i = 0; i < n_fam; i++) ck_assert(fam[i].help && fam[i].type[0]);
}

START_TEST(prometheus_text) {
  clink_health_snapshot *s = synthetic(5, 4, 3);
  snprintf(s->service, sizeof(s->service), "we \"quote\" \\ and\nbreak");
  snprintf(s->fb[1].operation, sizeof(s->fb[1].operation), "op\"x");
  snprintf(s->fb[2].operation, sizeof(s->fb[2].operation), "op\"x"); /* a duplicate */
  char *out;
  size_t len;
  ck_assert_int_eq(clink_health_render_alloc(s, CLINK_HEALTH_FORMAT_PROMETHEUS, &out, &len), 0);
  check_prometheus(out);
  ck_assert_ptr_nonnull(
      strstr(out, "claudelink_build_info{service=\"we \\\"quote\\\" \\\\ and\\nbreak\",version=\"1.0.0\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_requests_total 1500\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_request_duration_seconds_bucket{le=\"+Inf\"} 1500\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_request_duration_seconds_count 1500\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_health_status{status=\"healthy\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_circuit_breaker_state{name=\"breaker_3\",state=\"open\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_pool_sessions_closed_total{reason=\"memory\"} 2\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_pool_acquire_wait_seconds_bucket{le=\"1e-06\"} 100\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_pool_acquire_wait_seconds_count 106\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_fallback_used_total{operation=\"op\\\"x\"} 5\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_turns_total{outcome=\"failed\"} 12\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_outbox_messages{state=\"dead\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_health_check_status{check=\"memory\",status=\"pass\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_system_memory_usage_ratio 0.452\n"));
  /* The duplicate operation is written once. */
  const char *first = strstr(out, "claudelink_fallback_calls_total{operation=\"op\\\"x\"}");
  ck_assert_ptr_nonnull(first);
  ck_assert_ptr_null(strstr(first + 1, "claudelink_fallback_calls_total{operation=\"op\\\"x\"}"));
  clink_free(out);
  clink_health_snapshot_free(s);
}
END_TEST

/* Into the caller's buffer: UV_ENOBUFS and the size needed when short,
 * the same bytes as the allocated rendering when it fits. */
START_TEST(render_into_callers_buffer) {
  clink_health_snapshot *s = synthetic(20, 3, 2);
  for (int f = CLINK_HEALTH_FORMAT_DETAILED; f <= CLINK_HEALTH_FORMAT_SESSIONS_TEXT; f++) {
    char *want;
    size_t want_len, len = 0;
    ck_assert_int_eq(clink_health_render_alloc(s, (clink_health_format)f, &want, &want_len), 0);
    ck_assert_uint_gt(want_len, 0);
    char small[8];
    ck_assert_int_eq(clink_health_render(s, (clink_health_format)f, small, sizeof(small), &len),
                     UV_ENOBUFS);
    ck_assert_uint_eq(len, want_len);
    ck_assert_int_eq(clink_health_render(s, (clink_health_format)f, NULL, 0, &len), UV_ENOBUFS);
    ck_assert_uint_eq(len, want_len);
    char *buf = malloc(want_len + 1);
    ck_assert_int_eq(clink_health_render(s, (clink_health_format)f, buf, want_len, &len),
                     UV_ENOBUFS); /* no room for the NUL */
    ck_assert_int_eq(clink_health_render(s, (clink_health_format)f, buf, want_len + 1, &len), 0);
    ck_assert_uint_eq(len, want_len);
    ck_assert_str_eq(buf, want);
    free(buf);
    clink_free(want);
    ck_assert_ptr_nonnull(clink_health_format_content_type((clink_health_format)f));
  }
  size_t len;
  char buf[4];
  ck_assert_int_eq(clink_health_render(s, (clink_health_format)99, buf, sizeof(buf), &len), UV_EINVAL);
  ck_assert_int_eq(clink_health_render(NULL, CLINK_HEALTH_FORMAT_DETAILED, buf, 4, &len), UV_EINVAL);
  ck_assert_str_eq(clink_health_format_content_type(CLINK_HEALTH_FORMAT_HEALTH_JSON),
                   "application/health+json");
  ck_assert_str_eq(clink_health_format_content_type(CLINK_HEALTH_FORMAT_PROMETHEUS),
                   "text/plain; version=0.0.4; charset=utf-8");
  clink_health_snapshot_free(s);
}
END_TEST

START_TEST(verbose_and_sessions_renderings) {
  clink_health_snapshot *s = synthetic(2, 1, 1);
  s->chk[1].c.status = CLINK_CHECK_WARN;
  s->chk[2].c.status = CLINK_CHECK_FAIL;
  snprintf(s->chk[2].c.message, sizeof(s->chk[2].c.message), "too many");
  s->status = CLINK_HEALTH_DEGRADED;
  char buf[8192];
  size_t len;
  ck_assert_int_eq(clink_health_render(s, CLINK_HEALTH_FORMAT_VERBOSE, buf, sizeof(buf), &len), 0);
  ck_assert_str_eq(buf, "[+]claude_sdk ok\n[+]memory warn: fine\n[-]sessions failed: too many\n"
                        "health check passed (degraded)\n");
  ck_assert_int_eq(
      clink_health_render(s, CLINK_HEALTH_FORMAT_SESSIONS_TEXT, buf, sizeof(buf), &len), 0);
  ck_assert_ptr_nonnull(strstr(buf, "CONNECTION HEALTH REPORT\n===="));
  ck_assert_ptr_nonnull(strstr(buf, "Session: 00000001-1b2c"));
  ck_assert_ptr_nonnull(strstr(buf, "\n\n\xF0\x9F\x93\x8A")); /* reports apart */
  cJSON *j = render_json(s, CLINK_HEALTH_FORMAT_SESSIONS);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "count")->valueint, 2);
  cJSON *x = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "sessions"), 1);
  ck_assert_str_eq(cJSON_GetObjectItem(x, "state")->valuestring, "CONNECTED");
  ck_assert_int_eq(cJSON_GetObjectItem(x, "pid")->valueint, 1001);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(x, "pooled")));
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(x, "grades"), "stability")->valuestring,
                   "Starting");
  ck_assert(cJSON_GetObjectItem(x, "rss_mb")->valuedouble == 61.0);
  cJSON_Delete(j);
  ck_assert_uint_eq(clink_health_snapshot_check_count(s), 3);
  const char *name;
  clink_check_status st;
  int critical;
  ck_assert_int_eq(clink_health_snapshot_check(s, 2, &name, &st, &critical), 0);
  ck_assert_str_eq(name, "sessions");
  ck_assert_int_eq(st, CLINK_CHECK_FAIL);
  ck_assert_int_eq(critical, 0);
  ck_assert_int_eq(clink_health_snapshot_check(s, 3, &name, &st, &critical), UV_EINVAL);
  ck_assert_int_eq(clink_health_snapshot_status(s), CLINK_HEALTH_DEGRADED);
  clink_health_snapshot_free(s);
  clink_health_snapshot_free(NULL);
}
END_TEST

/* ======================================================= on a real loop */

#define MAX_EVENTS 128

typedef struct ucheck {
  int calls;
  uint64_t at[64]; /* loop time of each call */
  int mode; /* 0 pass now, 1 keep the run, 2 close the monitor then answer,
             * 3 fail now, 4 warn now, 5 keep it and answer 20 ms later,
             * 6 fail now with a secret in the message */
  clink_health_check *kept;
  uv_timer_t *later;
  int done_rc;
} ucheck;

static struct {
  uv_loop_t loop;
  clink_health *h;
  clink_events *sink;
  clink_options *opts;
  clink_pool *pool;
  int pool_closed;
  clink_health_snapshot *snap;
  uv_timer_t timer, keepalive, later;
  int timer_fired;
  int closes;
  int status_changes;
  clink_health_status from[16], to[16];
  int n_ev;
  char ev[MAX_EVENTS][48];
  char ev_check[MAX_EVENTS][48];
  char ev_message[MAX_EVENTS][160];
  clink_log_level ev_level[MAX_EVENTS];
} T;

static int in_api, api_rc;
#define API(expr) (in_api++, api_rc = (expr), in_api--, api_rc)
#define NOT_IN_API() ck_assert_msg(in_api == 0, "callback inside an API call")

static void on_keepalive(uv_timer_t *t) { (void)t; }

/* The keep-alive ticks every millisecond: UV_RUN_ONCE returns after one
 * poll, which would otherwise last until the monitor's next timer. */
#define RUN_UNTIL(cond)                                                               \
  do {                                                                                \
    uv_timer_start(&T.keepalive, on_keepalive, 1, 1);                                 \
    while (!(cond))                                                                   \
      ck_assert_msg(uv_run(&T.loop, UV_RUN_ONCE) != 0 || (cond), "loop ended before: " #cond); \
    uv_timer_stop(&T.keepalive);                                                      \
  } while (0)

static void on_timer(uv_timer_t *t) {
  T.timer_fired = 1;
  uv_stop(t->loop);
}

static void wait_ms(uint64_t ms) {
  T.timer_fired = 0;
  uv_timer_start(&T.timer, on_timer, ms, 0);
  RUN_UNTIL(T.timer_fired);
}

static void on_sink_event(clink_events *sink, const clink_event *e, void *ud) {
  (void)sink;
  (void)ud;
  if (T.n_ev >= MAX_EVENTS || strcmp(e->component, "health_monitor") != 0) return;
  int i = T.n_ev++;
  snprintf(T.ev[i], sizeof(T.ev[i]), "%s", e->event);
  T.ev_level[i] = e->level;
  T.ev_check[i][0] = T.ev_message[i][0] = '\0';
  for (size_t k = 0; k < e->n_fields; k++) {
    if (strcmp(e->fields[k].key, "check_name") == 0)
      snprintf(T.ev_check[i], sizeof(T.ev_check[i]), "%s", e->fields[k].s);
    if (strcmp(e->fields[k].key, "message") == 0 && e->fields[k].s)
      snprintf(T.ev_message[i], sizeof(T.ev_message[i]), "%s", e->fields[k].s);
  }
}

static int count_events(const char *name, const char *check) {
  int n = 0;
  for (int i = 0; i < T.n_ev; i++)
    if (strcmp(T.ev[i], name) == 0 && (check == NULL || strcmp(T.ev_check[i], check) == 0)) n++;
  return n;
}

static int find_event(const char *name, const char *check) {
  for (int i = 0; i < T.n_ev; i++)
    if (strcmp(T.ev[i], name) == 0 && (check == NULL || strcmp(T.ev_check[i], check) == 0))
      return i;
  return -1;
}

static void on_status(clink_health *h, clink_health_status from, clink_health_status to, void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(h, T.h);
  ck_assert_ptr_eq(ud, &T);
  ck_assert_int_lt(T.status_changes, 16);
  T.from[T.status_changes] = from;
  T.to[T.status_changes] = to;
  T.status_changes++;
}

static void on_health_closed(clink_health *h, void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(ud, &T);
  T.closes++;
}

static void on_pool_closed(clink_pool *p, void *ud) {
  (void)p;
  (void)ud;
  T.pool_closed++;
}

/* Builds the monitor: built-in checks kept or not (keep_sdk: the temporary
 * CLI is the fake). */
static void make_monitor(int keep_builtins, int keep_sdk) {
  ck_assert_int_eq(API(clink_health_new(&T.h, &T.loop)), 0);
  clink_health_set_events(T.h, T.sink);
  clink_health_set_status_cb(T.h, on_status, &T);
  ck_assert_int_eq(API(clink_health_set_sdk_options(T.h, T.opts)), 0);
  if (!keep_sdk) ck_assert_int_eq(API(clink_health_remove_check(T.h, CLINK_HEALTH_CHECK_SDK)), 0);
  if (!keep_builtins) {
    ck_assert_int_eq(API(clink_health_remove_check(T.h, CLINK_HEALTH_CHECK_MEMORY)), 0);
    ck_assert_int_eq(API(clink_health_remove_check(T.h, CLINK_HEALTH_CHECK_SESSIONS)), 0);
  }
}

static void close_monitor(void) {
  if (T.h == NULL || T.closes) return;
  ck_assert_int_eq(API(clink_health_close(T.h, on_health_closed, &T)), 0);
  RUN_UNTIL(T.closes == 1);
}

/* The named check in a fresh snapshot (NULL when absent). */
static const clink__hcheck *check_now(const char *name) {
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, T.snap)), 0);
  for (size_t i = 0; i < T.snap->n_chk; i++)
    if (strcmp(T.snap->chk[i].c.name, name) == 0) return &T.snap->chk[i].c;
  return NULL;
}

/* Answered at least runs times, no run out. */
static int answered(const char *name, uint64_t runs) {
  const clink__hcheck *c = check_now(name);
  return c && c->status != CLINK_CHECK_PENDING && !c->running && c->runs >= runs;
}

static uint64_t runs_of(const char *name) {
  const clink__hcheck *c = check_now(name);
  return c ? c->runs : 0;
}

static int pool_idle(uint32_t n) {
  clink_pool_stats ps;
  memset(&ps, 0, sizeof(ps));
  ps.struct_size = sizeof(ps);
  ck_assert_int_eq(clink_pool_get_stats(T.pool, &ps), 0);
  return ps.idle == n && ps.starting == 0;
}

static void setup(void) {
  memset(&T, 0, sizeof(T));
  in_api = 0;
  ck_assert_int_eq(uv_loop_init(&T.loop), 0);
  uv_timer_init(&T.loop, &T.timer);
  uv_timer_init(&T.loop, &T.keepalive);
  uv_timer_init(&T.loop, &T.later);
  ck_assert_int_eq(clink_events_new(&T.sink, &T.loop), 0);
  ck_assert_int_eq(clink_events_set_level(T.sink, CLINK_LOG_DEBUG), 0);
  clink_events_set_cb(T.sink, on_sink_event, &T);
  ck_assert_int_eq(clink_options_new(&T.opts), 0);
  ck_assert_int_eq(clink_options_set_cli_path(T.opts, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(T.opts, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(T.opts, 50, 50), 0);
  ck_assert_int_eq(clink_health_snapshot_new(&T.snap), 0);
}

static void teardown(void) {
  clink_health_snapshot_free(T.snap);
  close_monitor();
  if (T.pool && !T.pool_closed) {
    ck_assert_int_eq(clink_pool_shutdown(T.pool, CLINK_POOL_IMMEDIATE, on_pool_closed, &T), 0);
    RUN_UNTIL(T.pool_closed == 1);
  }
  ck_assert_int_eq(clink_events_close(T.sink, NULL, NULL), 0);
  clink_options_free(T.opts);
  uv_close((uv_handle_t *)&T.timer, NULL);
  uv_close((uv_handle_t *)&T.keepalive, NULL);
  uv_close((uv_handle_t *)&T.later, NULL);
  CLINK_TEST_LOOP_DONE(&T.loop);
}

/* An answer that comes later (from another callback) counts. */
static void answer_later(uv_timer_t *t) {
  ucheck *u = t->data;
  clink_health_check *run = u->kept;
  u->kept = NULL;
  u->done_rc = API(clink_health_check_done(run, CLINK_CHECK_WARN, 3, "things", "later"));
}

static void ucheck_fn(clink_health *h, clink_health_check *run, void *ud) {
  NOT_IN_API();
  ucheck *u = ud;
  ck_assert_ptr_eq(h, T.h);
  if (u->calls < 64) u->at[u->calls] = uv_now(&T.loop);
  u->calls++;
  ck_assert_ptr_nonnull(clink_health_check_name(run));
  switch (u->mode) {
    case 0: u->done_rc = API(clink_health_check_done(run, CLINK_CHECK_PASS, 1.5, "ms", "ok")); break;
    case 1: u->kept = run; break;
    case 2:
      ck_assert_int_eq(API(clink_health_close(h, on_health_closed, &T)), 0);
      ck_assert_int_eq(API(clink_health_close(h, on_health_closed, &T)), UV_EBUSY);
      u->done_rc = API(clink_health_check_done(run, CLINK_CHECK_PASS, 0, NULL, NULL));
      break;
    case 3:
      u->done_rc = API(clink_health_check_done(run, CLINK_CHECK_FAIL, 0, "", "broken"));
      break;
    case 6:
      u->done_rc = API(clink_health_check_done(
          run, CLINK_CHECK_FAIL, 0, NULL, "auth failed with ANTHROPIC_API_KEY=sk-ant-abc123 set"));
      break;
    case 5:
      u->kept = run;
      uv_timer_start(u->later, answer_later, 20, 0);
      break;
    default:
      u->done_rc = API(clink_health_check_done(run, CLINK_CHECK_WARN, 7, "items", "meh"));
      break;
  }
}

START_TEST(idle_monitor_does_not_hold_the_loop) {
  make_monitor(1, 0);
  ucheck u = {0};
  ck_assert_int_eq(API(clink_health_add_check(T.h, "c", 10, 0, 0, ucheck_fn, &u)), 0);
  ck_assert_int_eq(uv_run(&T.loop, UV_RUN_DEFAULT), 0); /* returns at once */
  ck_assert_int_eq(u.calls, 0);
  ck_assert_int_eq(T.closes, 0);
}
END_TEST

START_TEST(add_remove_and_validation) {
  make_monitor(1, 1);
  ucheck u = {0};
  ck_assert_int_eq(clink_health_new(NULL, &T.loop), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_add_check(T.h, "c", 0, 0, 0, ucheck_fn, &u)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_add_check(T.h, "", 10, 0, 0, ucheck_fn, &u)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_add_check(T.h, "c", 10, 0, 0, NULL, &u)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_add_check(T.h, "c", 10, 0, 0, ucheck_fn, &u)), 0);
  ck_assert_int_eq(API(clink_health_add_check(T.h, "c", 10, 0, 0, ucheck_fn, &u)), UV_EEXIST);
  ck_assert_int_eq(API(clink_health_add_check(T.h, CLINK_HEALTH_CHECK_MEMORY, 10, 0, 0, ucheck_fn, &u)),
                   UV_EEXIST);
  ck_assert_int_eq(API(clink_health_remove_check(T.h, "nope")), UV_ENOENT);
  ck_assert_int_eq(API(clink_health_set_check_schedule(T.h, "nope", 1, 1)), UV_ENOENT);
  ck_assert_int_eq(API(clink_health_set_check_schedule(T.h, "c", 0, 1)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_set_check_critical(T.h, "nope", 1)), UV_ENOENT);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, "nope")), UV_ENOENT);
  ck_assert_int_eq(API(clink_health_set_memory_thresholds(T.h, 101, 0)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_set_memory_thresholds(T.h, -1, 0)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_set_sample_interval_ms(T.h, 5)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_set_disk_path(T.h, "")), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_set_service(T.h, NULL, "1")), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_attach_pool(T.h, NULL)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_detach(T.h, &u)), UV_ENOENT);
  ck_assert_int_eq(clink_health_check_done(NULL, CLINK_CHECK_PASS, 0, NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_health_get_status(NULL), CLINK_HEALTH_UNHEALTHY);
  /* Removing every check, built-ins included. */
  ck_assert_int_eq(API(clink_health_remove_check(T.h, CLINK_HEALTH_CHECK_SDK)), 0);
  ck_assert_int_eq(API(clink_health_remove_check(T.h, CLINK_HEALTH_CHECK_MEMORY)), 0);
  ck_assert_int_eq(API(clink_health_remove_check(T.h, CLINK_HEALTH_CHECK_SESSIONS)), 0);
  ck_assert_int_eq(API(clink_health_remove_check(T.h, "c")), 0);
  wait_ms(30);
  ck_assert_int_eq(u.calls, 0);
  clink_health_snapshot *s;
  ck_assert_int_eq(clink_health_snapshot_new(&s), 0);
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_uint_eq(clink_health_snapshot_check_count(s), 0);
  ck_assert_int_eq(clink_health_snapshot_status(s), CLINK_HEALTH_HEALTHY);
  clink_health_snapshot_free(s);
}
END_TEST

/* Answered at once, every interval; the status callback comes from the
 * loop; a failing critical check makes the monitor unhealthy and back. */
START_TEST(checks_run_and_status_follows) {
  make_monitor(0, 0);
  ucheck u = {0};
  ck_assert_int_eq(API(clink_health_add_check(T.h, "db", 20, 1000, 1, ucheck_fn, &u)), 0);
  ck_assert_int_eq(u.calls, 0); /* first run from the loop */
  RUN_UNTIL(u.calls >= 1);
  ck_assert_int_eq(u.done_rc, 0);
  RUN_UNTIL(u.calls >= 4);
  ck_assert_uint_ge(u.at[3] - u.at[0], 3 * 20);
  ck_assert_int_eq(T.status_changes, 0);
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_HEALTHY);
  /* Fails: unhealthy (critical), events failed + status changed. */
  u.mode = 3;
  int calls = u.calls;
  RUN_UNTIL(u.calls > calls);
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_UNHEALTHY);
  RUN_UNTIL(T.status_changes == 1);
  ck_assert_int_eq(T.from[0], CLINK_HEALTH_HEALTHY);
  ck_assert_int_eq(T.to[0], CLINK_HEALTH_UNHEALTHY);
  RUN_UNTIL(count_events("health_check_failed", "db") == 1);
  int i = find_event("health_check_failed", "db");
  ck_assert_int_eq(T.ev_level[i], CLINK_LOG_ERROR); /* critical */
  ck_assert_str_eq(T.ev_message[i], "broken");
  RUN_UNTIL(count_events("health_status_changed", NULL) == 1);
  /* Failing again is no new transition. */
  calls = u.calls;
  RUN_UNTIL(u.calls > calls + 1);
  /* Warns: degraded. */
  u.mode = 4;
  calls = u.calls;
  RUN_UNTIL(u.calls > calls);
  RUN_UNTIL(T.status_changes == 2);
  ck_assert_int_eq(T.to[1], CLINK_HEALTH_DEGRADED);
  RUN_UNTIL(count_events("health_check_degraded", "db") == 1);
  /* Passes: healthy again, recovered. */
  u.mode = 0;
  calls = u.calls;
  RUN_UNTIL(u.calls > calls);
  RUN_UNTIL(T.status_changes == 3);
  ck_assert_int_eq(T.to[2], CLINK_HEALTH_HEALTHY);
  RUN_UNTIL(count_events("health_check_recovered", "db") == 1);
  ck_assert_int_eq(count_events("health_check_failed", "db"), 1);
  ck_assert_int_eq(count_events("health_status_changed", NULL), 3);
  /* Not critical any more: a failure only degrades. */
  ck_assert_int_eq(API(clink_health_set_check_critical(T.h, "db", 0)), 0);
  u.mode = 3;
  calls = u.calls;
  RUN_UNTIL(u.calls > calls);
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_DEGRADED);
  RUN_UNTIL(count_events("health_check_failed", "db") == 2);
  for (i = T.n_ev - 1; i >= 0 && strcmp(T.ev[i], "health_check_failed"); i--) {
  }
  ck_assert_int_eq(T.ev_level[i], CLINK_LOG_WARNING);
}
END_TEST

/* A secret in a check's message never reaches the events. */
START_TEST(check_events_are_redacted) {
  make_monitor(0, 0);
  ucheck u = {0};
  u.mode = 6;
  ck_assert_int_eq(API(clink_health_add_check(T.h, "auth", 10, 0, 0, ucheck_fn, &u)), 0);
  RUN_UNTIL(count_events("health_check_failed", "auth") == 1);
  int i = find_event("health_check_failed", "auth");
  ck_assert_str_eq(T.ev_message[i], "auth failed with ANTHROPIC_API_KEY=[REDACTED] set");
  ck_assert_ptr_null(strstr(T.ev_message[i], "sk-ant"));
}
END_TEST

/* A run kept past its timeout fails; the check never starts again while
 * the run is out; the late answer is ignored (UV_ETIMEDOUT) and the next
 * run follows. */
START_TEST(check_timeout_on_the_loop) {
  make_monitor(0, 0);
  ucheck u = {0};
  u.mode = 1;
  ck_assert_int_eq(API(clink_health_add_check(T.h, "slow", 5, 40, 0, ucheck_fn, &u)), 0);
  RUN_UNTIL(u.calls == 1);
  RUN_UNTIL(count_events("health_check_failed", "slow") == 1);
  ck_assert_uint_ge(uv_now(&T.loop) - u.at[0], 40);
  int i = find_event("health_check_failed", "slow");
  ck_assert_ptr_nonnull(strstr(T.ev_message[i], "timed out after"));
  ck_assert_int_eq(T.ev_level[i], CLINK_LOG_WARNING);
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_DEGRADED);
  wait_ms(50);
  ck_assert_int_eq(u.calls, 1); /* interval 5 ms, but the run is still out */
  clink_health_check *run = u.kept;
  u.kept = NULL;
  u.mode = 0;
  ck_assert_int_eq(API(clink_health_check_done(run, CLINK_CHECK_PASS, 0, NULL, NULL)), UV_ETIMEDOUT);
  RUN_UNTIL(u.calls >= 2);
  RUN_UNTIL(count_events("health_check_recovered", "slow") == 1);
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_HEALTHY);
  clink_health_snapshot *s;
  ck_assert_int_eq(clink_health_snapshot_new(&s), 0);
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  char *out;
  ck_assert_int_eq(clink_health_render_alloc(s, CLINK_HEALTH_FORMAT_STABILITY, &out, NULL), 0);
  cJSON *j = cJSON_Parse(out);
  cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "health_checks"), "slow");
  ck_assert_int_eq(cJSON_GetObjectItem(c, "timeouts")->valueint, 1);
  ck_assert_int_ge(cJSON_GetObjectItem(c, "runs")->valueint, 2);
  cJSON_Delete(j);
  clink_free(out);
  clink_health_snapshot_free(s);
}
END_TEST

START_TEST(check_answered_later) {
  make_monitor(0, 0);
  ucheck u = {0};
  u.mode = 5;
  T.later.data = &u;
  u.later = &T.later;
  ck_assert_int_eq(API(clink_health_add_check(T.h, "later", CLINK_NEVER, 1000, 0, ucheck_fn, &u)), 0);
  RUN_UNTIL(u.calls == 1 && u.kept == NULL);
  ck_assert_int_eq(u.done_rc, 0);
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_DEGRADED);
  RUN_UNTIL(T.status_changes == 1);
  /* On demand only (interval CLINK_NEVER). */
  wait_ms(30);
  ck_assert_int_eq(u.calls, 1);
  u.mode = 0;
  ck_assert_int_eq(API(clink_health_run_checks(T.h, "later")), 0);
  ck_assert_int_eq(u.calls, 1); /* from the loop */
  RUN_UNTIL(u.calls == 2);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, NULL)), 0);
  RUN_UNTIL(u.calls == 3);
}
END_TEST

/* A check closes the monitor from its own callback: its answer is in vain,
 * the close callback runs once, from the loop. */
START_TEST(check_closes_the_monitor) {
  make_monitor(1, 0);
  ucheck u = {0};
  u.mode = 2;
  ck_assert_int_eq(API(clink_health_add_check(T.h, "closer", 10, 0, 0, ucheck_fn, &u)), 0);
  RUN_UNTIL(u.calls == 1);
  ck_assert_int_eq(u.done_rc, CLINK_ECLOSING);
  RUN_UNTIL(T.closes == 1); /* from the loop (on_health_closed checks) */
  wait_ms(20);
  ck_assert_int_eq(u.calls, 1);
  ck_assert_int_eq(T.closes, 1);
}
END_TEST

/* A run out when the monitor closes, or when its check is removed: the
 * answer frees it and says why. */
START_TEST(answers_after_close_and_remove) {
  make_monitor(0, 0);
  ucheck a = {0}, b = {0};
  a.mode = b.mode = 1;
  ck_assert_int_eq(API(clink_health_add_check(T.h, "a", 10, 0, 0, ucheck_fn, &a)), 0);
  ck_assert_int_eq(API(clink_health_add_check(T.h, "b", 10, 0, 0, ucheck_fn, &b)), 0);
  RUN_UNTIL(a.calls == 1 && b.calls == 1);
  ck_assert_int_eq(API(clink_health_remove_check(T.h, "b")), 0);
  ck_assert_int_eq(API(clink_health_check_done(b.kept, CLINK_CHECK_PASS, 0, NULL, NULL)), UV_ECANCELED);
  ck_assert_int_eq(API(clink_health_check_done(a.kept, (clink_check_status)7, 0, NULL, NULL)), UV_EINVAL);
  ck_assert_int_eq(API(clink_health_close(T.h, on_health_closed, &T)), 0);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, NULL)), CLINK_ECLOSING);
  ck_assert_int_eq(API(clink_health_check_done(a.kept, CLINK_CHECK_PASS, 0, NULL, NULL)), CLINK_ECLOSING);
  RUN_UNTIL(T.closes == 1);
}
END_TEST

/* The built-in memory and sessions checks with their thresholds. */
START_TEST(memory_and_sessions_thresholds) {
  make_monitor(1, 0);
  ck_assert_int_eq(API(clink_health_set_check_schedule(T.h, CLINK_HEALTH_CHECK_MEMORY, CLINK_NEVER, 0)), 0);
  ck_assert_int_eq(API(clink_health_set_check_schedule(T.h, CLINK_HEALTH_CHECK_SESSIONS, CLINK_NEVER, 0)), 0);
  RUN_UNTIL(answered(CLINK_HEALTH_CHECK_MEMORY, 1) && answered(CLINK_HEALTH_CHECK_SESSIONS, 1));
  ck_assert_int_eq(T.n_ev, 0);
  clink_health_snapshot *s = T.snap;
  ck_assert_uint_eq(clink_health_snapshot_check_count(s), 2);
  clink_check_status st;
  ck_assert_int_eq(clink_health_snapshot_check(s, 0, NULL, &st, NULL), 0);
  ck_assert_int_eq(st, CLINK_CHECK_PASS); /* this machine is under 90 % */
  /* Any memory use warns above 0.001 %. */
  ck_assert_int_eq(API(clink_health_set_memory_thresholds(T.h, 0.001, 0)), 0);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, CLINK_HEALTH_CHECK_MEMORY)), 0);
  RUN_UNTIL(count_events("health_check_degraded", CLINK_HEALTH_CHECK_MEMORY) == 1);
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_DEGRADED);
  /* ... and fails above 0.002 %; made critical: unhealthy. */
  ck_assert_int_eq(API(clink_health_set_memory_thresholds(T.h, 0, 0.002)), 0);
  ck_assert_int_eq(API(clink_health_set_check_critical(T.h, CLINK_HEALTH_CHECK_MEMORY, 1)), 0);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, CLINK_HEALTH_CHECK_MEMORY)), 0);
  RUN_UNTIL(count_events("health_check_failed", CLINK_HEALTH_CHECK_MEMORY) == 1);
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_UNHEALTHY);
  ck_assert_int_eq(API(clink_health_set_memory_thresholds(T.h, 90, 0)), 0);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, CLINK_HEALTH_CHECK_MEMORY)), 0);
  RUN_UNTIL(count_events("health_check_recovered", CLINK_HEALTH_CHECK_MEMORY) == 1);
  /* Sessions: two attached clients that are not connected count as none;
   * one connected warns above 0. */
  clink_client *c1, *c2;
  ck_assert_int_eq(clink_client_new(&c1, &T.loop, T.opts), 0);
  ck_assert_int_eq(clink_client_new(&c2, &T.loop, T.opts), 0);
  ck_assert_int_eq(API(clink_health_attach_client(T.h, c1)), 0);
  ck_assert_int_eq(API(clink_health_attach_client(T.h, c2)), 0);
  ck_assert_int_eq(API(clink_health_attach_client(T.h, c2)), UV_EEXIST);
  ck_assert_int_eq(clink_client_connect(c1, NULL, NULL), 0);
  ck_assert_int_eq(API(clink_health_set_session_thresholds(T.h, 1, 3)), 0);
  RUN_UNTIL(clink_client_get_state(c1) == CLINK_CLIENT_CONNECTED);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, CLINK_HEALTH_CHECK_SESSIONS)), 0);
  RUN_UNTIL(answered(CLINK_HEALTH_CHECK_SESSIONS, 2));
  ck_assert(check_now(CLINK_HEALTH_CHECK_SESSIONS)->value == 1.0);
  ck_assert_int_eq(check_now(CLINK_HEALTH_CHECK_SESSIONS)->status, CLINK_CHECK_PASS); /* 1 is not above 1 */
  ck_assert_int_eq(clink_client_connect(c2, NULL, NULL), 0);
  RUN_UNTIL(clink_client_get_state(c2) == CLINK_CLIENT_CONNECTED);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, CLINK_HEALTH_CHECK_SESSIONS)), 0);
  RUN_UNTIL(count_events("health_check_degraded", CLINK_HEALTH_CHECK_SESSIONS) == 1);
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_uint_eq(s->sessions_active, 2);
  ck_assert_uint_eq(s->sessions_created, 2);
  ck_assert_uint_eq(s->session_configs, 2);
  ck_assert_uint_eq(s->connect_time.count, 2);
  ck_assert_uint_eq(s->cli_processes, 2);
  ck_assert_int_eq(API(clink_health_detach(T.h, c1)), 0);
  ck_assert_int_eq(API(clink_health_detach(T.h, c2)), 0);
  ck_assert_int_eq(clink_client_close(c1, NULL, NULL), 0);
  ck_assert_int_eq(clink_client_close(c2, NULL, NULL), 0);
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_uint_eq(s->sessions_active, 0);
  ck_assert_uint_eq(s->sessions_created, 2); /* created stays */
}
END_TEST

/* The seed's claude_sdk check: a temporary CLI connects (pass, its
 * connection time reported), a missing CLI fails the critical check. */
START_TEST(sdk_check_spawns_a_temporary_cli) {
  make_monitor(0, 1);
  RUN_UNTIL(answered(CLINK_HEALTH_CHECK_SDK, 1));
  clink_health_snapshot *s = T.snap;
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_int_eq(s->sdk_status, CLINK_CHECK_PASS);
  ck_assert(s->sdk_connection_ms > 0);
  cJSON *j;
  char *out;
  ck_assert_int_eq(clink_health_render_alloc(s, CLINK_HEALTH_FORMAT_DETAILED, &out, NULL), 0);
  j = cJSON_Parse(out);
  clink_free(out);
  cJSON *sdk = cJSON_GetObjectItem(j, "claude_sdk");
  ck_assert_str_eq(cJSON_GetObjectItem(sdk, "status")->valuestring, "connected");
  ck_assert(cJSON_GetObjectItem(sdk, "connection_time_ms")->valuedouble > 0);
  ck_assert(cJSON_IsString(cJSON_GetObjectItem(sdk, "last_check")));
  cJSON *want = seed(SEED_DETAILED);
  /* A live snapshot without breakers or fallbacks attached has empty maps:
   * the rest has the seed's shape. */
  cJSON_DeleteItemFromObject(want, "stability");
  cJSON_DeleteItemFromObject(want, "fallback_stats");
  cJSON_DeleteItemFromObject(j, "stability");
  cJSON_DeleteItemFromObject(j, "fallback_stats");
  cJSON_DeleteItemFromObject(cJSON_GetObjectItem(want, "sessions"), "active_sessions");
  cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "sessions"), "active_sessions");
  same_shape(want, j, "");
  cJSON_Delete(want);
  cJSON_Delete(j);
  /* The probe's CLI is not a session of the monitor. */
  ck_assert_uint_eq(s->sessions_active, 0);

  /* A CLI that cannot be found: fail, critical, unhealthy, an ERROR event. */
  clink_options *bad;
  ck_assert_int_eq(clink_options_dup(&bad, T.opts), 0);
  ck_assert_int_eq(clink_options_set_cli_path(bad, "/no/such/claude"), 0);
  ck_assert_int_eq(API(clink_health_set_sdk_options(T.h, bad)), 0);
  clink_options_free(bad);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, CLINK_HEALTH_CHECK_SDK)), 0);
  RUN_UNTIL(count_events("health_check_failed", CLINK_HEALTH_CHECK_SDK) == 1);
  int i = find_event("health_check_failed", CLINK_HEALTH_CHECK_SDK);
  ck_assert_int_eq(T.ev_level[i], CLINK_LOG_ERROR);
  ck_assert_ptr_nonnull(strstr(T.ev_message[i], "CLINK_ECLI_NOT_FOUND"));
  ck_assert_int_eq(clink_health_get_status(T.h), CLINK_HEALTH_UNHEALTHY);
}
END_TEST

/* With a pool attached, an idle member is pinged instead: nothing spawns. */
START_TEST(sdk_check_pings_a_pooled_member) {
  clink_pool_config *cfg;
  ck_assert_int_eq(clink_pool_config_new(&cfg), 0);
  ck_assert_int_eq(clink_pool_config_set_size(cfg, 2, 2), 0);
  ck_assert_int_eq(clink_pool_config_set_validation(cfg, 0, 0), 0);
  ck_assert_int_eq(clink_pool_new(&T.pool, &T.loop, T.opts, cfg), 0);
  clink_pool_config_free(cfg);
  clink_pool_stats ps;
  memset(&ps, 0, sizeof(ps));
  ps.struct_size = sizeof(ps);
  RUN_UNTIL(pool_idle(2));
  make_monitor(0, 1);
  ck_assert_int_eq(API(clink_health_attach_pool(T.h, T.pool)), 0);
  ck_assert_int_eq(API(clink_health_attach_pool(T.h, T.pool)), UV_EEXIST);
  RUN_UNTIL(answered(CLINK_HEALTH_CHECK_SDK, 1));
  clink_health_snapshot *s = T.snap;
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_int_eq(s->sdk_status, CLINK_CHECK_PASS);
  ck_assert_int_eq(clink_pool_get_stats(T.pool, &ps), 0);
  ck_assert_uint_eq(ps.created, 2); /* no process started for the check */
  ck_assert_uint_eq(ps.acquired, 1);
  RUN_UNTIL(pool_idle(2)); /* released */
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_uint_eq(s->sessions_active, 2);
  ck_assert_uint_eq(s->n_pools, 1);
  ck_assert_ptr_nonnull(strstr(s->chk[0].c.message, "pooled session answered"));
  /* The detailed report carries the pools' figures. */
  cJSON *dj = render_json(s, CLINK_HEALTH_FORMAT_DETAILED);
  const cJSON *pj = cJSON_GetObjectItemCaseSensitive(dj, "pool");
  ck_assert_ptr_nonnull(pj);
  ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(pj, "idle")->valueint, 2);
  ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(pj, "created")->valueint, 2);
  ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(pj, "acquired")->valueint, 1);
  cJSON_Delete(dj);
  /* Every member busy: the check passes without spawning. */
  clink_client *a, *b;
  ck_assert_int_eq(clink_pool_try_acquire(T.pool, &a), 0);
  ck_assert_int_eq(clink_pool_try_acquire(T.pool, &b), 0);
  ck_assert_int_eq(API(clink_health_set_sdk_options(T.h, NULL)), 0);
  ck_assert_int_eq(API(clink_health_run_checks(T.h, CLINK_HEALTH_CHECK_SDK)), 0);
  uint64_t runs = runs_of(CLINK_HEALTH_CHECK_SDK);
  RUN_UNTIL(answered(CLINK_HEALTH_CHECK_SDK, runs + 1));
  ck_assert_int_eq(s->chk[0].c.status, CLINK_CHECK_PASS);
  ck_assert_ptr_nonnull(strstr(s->chk[0].c.message, "no idle pooled session"));
  ck_assert_int_eq(clink_pool_get_stats(T.pool, &ps), 0);
  ck_assert_uint_eq(ps.created, 2);
  ck_assert_int_eq(clink_pool_release(T.pool, a), 0);
  ck_assert_int_eq(clink_pool_release(T.pool, b), 0);
  close_monitor();
}
END_TEST

/* Closing while the temporary CLI is still starting: the close waits for
 * it, then completes once. */
START_TEST(close_during_sdk_probe) {
  ck_assert_int_eq(clink_options_set_env(T.opts, "FAKE_INIT_DELAY_MS", "300"), 0);
  make_monitor(0, 1);
  wait_ms(20); /* the probe is out */
  ck_assert_int_eq(API(clink_health_close(T.h, on_health_closed, &T)), 0);
  ck_assert_int_eq(T.closes, 0);
  RUN_UNTIL(T.closes == 1);
}
END_TEST

static void turn_done(clink_client *c, int status, const clink_msg *result, void *ud) {
  (void)c;
  (void)result;
  *(int *)ud = status == 0 ? 1 : -1;
}

/* Sessions, processes, turns and the request meter in one snapshot. */

/* A fallback registry attached: fallback_stats lists its operations with
 * their public stats, in the seed's names. */
START_TEST(fallback_registry_attached) {
  make_monitor(0, 0);
  clink_fallback_registry *reg;
  ck_assert_int_eq(clink_fallback_registry_new(&reg), 0);
  ck_assert_int_eq(API(clink_health_attach_fallbacks(T.h, reg)), 0);
  clink_health_snapshot *s;
  ck_assert_int_eq(clink_health_snapshot_new(&s), 0);
  ck_assert_int_eq(clink_health_snapshot_take(T.h, s), 0);
  cJSON *j = render_json(s, CLINK_HEALTH_FORMAT_DETAILED);
  const cJSON *ops = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(j, "fallback_stats"), "operations");
  const cJSON *chat = cJSON_GetObjectItemCaseSensitive(ops, "chat");
  ck_assert_ptr_nonnull(chat);
  ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(ops, "create_session"));
  static const char *const keys[] = {"total_calls", "primary_success", "fallback_used",
                                     "cache_hits"};
  for (int i = 0; i < 4; i++)
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(chat, keys[i])));
  cJSON_Delete(j);
  clink_health_snapshot_free(s);
  ck_assert_int_eq(API(clink_health_attach_fallbacks(T.h, NULL)), 0);
  clink_fallback_registry_free(reg);
}
END_TEST

START_TEST(sessions_processes_and_meter) {
  clink_pool_config *cfg;
  ck_assert_int_eq(clink_options_set_env(T.opts, "FAKE_ALLOC_MB", "8"), 0);
  ck_assert_int_eq(clink_pool_config_new(&cfg), 0);
  ck_assert_int_eq(clink_pool_config_set_size(cfg, 2, 2), 0);
  ck_assert_int_eq(clink_pool_config_set_validation(cfg, 0, 0), 0);
  ck_assert_int_eq(clink_pool_new(&T.pool, &T.loop, T.opts, cfg), 0);
  clink_pool_config_free(cfg);
  make_monitor(0, 0);
  ck_assert_int_eq(API(clink_health_set_sample_interval_ms(T.h, 10)), 0);
  ck_assert_int_eq(API(clink_health_set_service(T.h, "svc", "9.9.9")), 0);
  ck_assert_int_eq(API(clink_health_set_disk_path(T.h, "/tmp")), 0);
  ck_assert_int_eq(API(clink_health_attach_pool(T.h, T.pool)), 0);
  clink_breaker_registry *reg;
  ck_assert_int_eq(clink_breaker_registry_new(&reg, 1), 0);
  ck_assert_int_eq(API(clink_health_attach_breakers(T.h, reg)), 0);
  RUN_UNTIL(pool_idle(2));
  clink_client *c;
  ck_assert_int_eq(clink_pool_try_acquire(T.pool, &c), 0);
  int done = 0;
  ck_assert_int_eq(clink_client_query(c, "hello", NULL, turn_done, &done), 0);
  RUN_UNTIL(done != 0);
  ck_assert_int_eq(done, 1);
  ck_assert_int_eq(clink_pool_release(T.pool, c), 0);
  /* The request meter. */
  clink_health_request_begin(T.h);
  clink_health_request_begin(T.h);
  clink_health_request_end(T.h, 0, 2000);
  clink_health_request_begin(T.h);
  clink_health_request_end(T.h, 1, 70000);
  clink_health_request_begin(NULL);
  clink_health_request_end(NULL, 0, 0);
  /* Two samples at least: processes read, CPU has deltas. */
  wait_ms(40);
  clink_health_snapshot *s = T.snap;
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_str_eq(s->service, "svc");
  ck_assert_str_eq(s->disk_path, "/tmp");
  ck_assert_uint_eq(s->n_sess, 2);
  ck_assert_uint_eq(s->sessions_active, 2);
  ck_assert_uint_eq(s->sessions_created, 2);
  ck_assert_uint_eq(s->turns_ok, 1);
  ck_assert_uint_eq(s->turn_latency.count, 1);
  ck_assert_uint_eq(s->connect_time.count, 2);
  ck_assert_uint_eq(s->cli_processes, 2);
  ck_assert_uint_ge(s->cli_rss_max, (uint64_t)8 << 20);
  ck_assert_uint_ge(s->cli_rss_sum, (uint64_t)16 << 20);
  int with_id = 0;
  for (size_t i = 0; i < s->n_sess; i++) {
    ck_assert_int_gt(s->sess[i].health.pid, 0);
    ck_assert(s->sess[i].pooled);
    ck_assert_uint_ge(s->sess[i].health.rss_bytes, (uint64_t)8 << 20);
    ck_assert_uint_gt(s->sess[i].health.messages, 0);
    ck_assert_int_eq(s->sess[i].health.stability_grade, CLINK_GRADE_STARTING);
    with_id += s->sess[i].id[0] != '\0';
  }
  ck_assert_int_eq(with_id, 1); /* the one that ran a turn */
  ck_assert_uint_eq(s->requests_total, 3);
  ck_assert_uint_eq(s->requests_in_progress, 1);
  ck_assert_uint_eq(s->errors_total, 1);
  ck_assert_uint_eq(s->request_latency.count, 2);
  ck_assert_uint_eq(s->n_brk, 2);
  ck_assert_uint_eq(s->n_pools, 1);
  ck_assert_uint_eq(s->pool.size, 2);
  ck_assert_uint_gt(s->sys.mem_total, 0);
  ck_assert_uint_gt(s->sys.proc_rss, 0);
  ck_assert_uint_ge(s->sys.cpu_count, 1);
  ck_assert(s->sys.disk_used_pct >= 0);
  ck_assert(s->sys.cpu_pct >= 0);
  char *out;
  ck_assert_int_eq(clink_health_render_alloc(s, CLINK_HEALTH_FORMAT_DETAILED, &out, NULL), 0);
  cJSON *j = cJSON_Parse(out);
  clink_free(out);
  cJSON *want = seed(SEED_DETAILED);
  cJSON_DeleteItemFromObject(want, "fallback_stats"); /* no provider attached */
  cJSON_DeleteItemFromObject(j, "fallback_stats");
  /* The claude_sdk check is not registered here: last_check is null. */
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "claude_sdk"), "last_check")));
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "claude_sdk"), "status")->valuestring,
                   "unknown");
  cJSON_DeleteItemFromObject(want, "claude_sdk");
  cJSON_DeleteItemFromObject(j, "claude_sdk");
  same_shape(want, j, "");
  cJSON *perf = cJSON_GetObjectItem(j, "performance");
  ck_assert(fabs(cJSON_GetObjectItem(perf, "error_rate")->valuedouble - 33.33) < 1e-9);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sessions"),
                                                          "active_sessions")),
                   1);
  cJSON_Delete(want);
  cJSON_Delete(j);
  ck_assert_int_eq(clink_health_render_alloc(s, CLINK_HEALTH_FORMAT_PROMETHEUS, &out, NULL), 0);
  check_prometheus(out);
  ck_assert_ptr_nonnull(strstr(out, "claudelink_turns_total{outcome=\"ok\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(out, "claudelink_cli_processes 2\n"));
  clink_free(out);
  ck_assert_int_eq(clink_health_render_alloc(s, CLINK_HEALTH_FORMAT_SESSIONS_TEXT, &out, NULL), 0);
  ck_assert_ptr_nonnull(strstr(out, "Process: pid "));
  clink_free(out);
  /* The public per-session read-out. */
  clink_client *members[4];
  ck_assert_uint_eq(clink_pool_clients(T.pool, members, 4), 2);
  ck_assert_uint_eq(clink_pool_clients(T.pool, NULL, 0), 2);
  clink_session_health sh;
  sh.struct_size = sizeof(sh);
  ck_assert_int_eq(clink_session_health_get(members[0], &sh), 0);
  ck_assert_int_gt(sh.pid, 0);
  ck_assert_uint_ge(sh.rss_bytes, (uint64_t)8 << 20);
  ck_assert_uint_gt(sh.messages, 0);
  ck_assert_int_eq(clink_session_health_get(NULL, &sh), UV_EINVAL);
  /* Counters stay monotonic when the pool is detached. */
  ck_assert_int_eq(API(clink_health_detach(T.h, T.pool)), 0);
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_uint_eq(s->turns_ok, 1);
  ck_assert_uint_eq(s->n_sess, 0);
  ck_assert_int_eq(API(clink_health_detach(T.h, reg)), 0);
  close_monitor();
  clink_breaker_registry_free(reg);
}
END_TEST

static void on_ob_open(clink_outbox *ob, int status, void *ud) {
  (void)ob;
  *(int *)ud = status == 0 ? 1 : -1;
}

static void on_ob_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  (void)ob;
  (void)id;
  *(int *)ud = status == 0 ? 1 : -1;
}

static void on_ob_closed(clink_outbox *ob, void *ud) {
  (void)ob;
  *(int *)ud = 1;
}

/* An attached outbox shows up in /health/stability and Prometheus (an
 * outbox built without SQLite cannot open: nothing to attach). */
START_TEST(outbox_attached) {
  char dir[] = "/tmp/clink-health-XXXXXX", db[64];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(db, sizeof(db), "%s/outbox.db", dir);
  clink_outbox *ob = NULL;
  int opened = 0, enq = 0, closed = 0;
  int rc = clink_outbox_open(&ob, &T.loop, db, NULL, on_ob_open, &opened);
#ifndef CLINK__HAVE_SQLITE
  ck_assert_int_eq(rc, UV_ENOTSUP);
  rmdir(dir);
  return;
#endif
  ck_assert_int_eq(rc, 0);
  RUN_UNTIL(opened != 0);
  ck_assert_int_eq(opened, 1);
  make_monitor(0, 0);
  ck_assert_int_eq(API(clink_health_attach_outbox(T.h, ob)), 0);
  ck_assert_int_eq(clink_outbox_enqueue(ob, "hello", NULL, NULL, NULL, NULL, on_ob_enqueued, &enq), 0);
  RUN_UNTIL(enq != 0);
  ck_assert_int_eq(enq, 1);
  RUN_UNTIL(check_now("nothing") == NULL && T.snap->have_outbox && T.snap->outbox.pending == 1);
  char *out;
  ck_assert_int_eq(clink_health_render_alloc(T.snap, CLINK_HEALTH_FORMAT_STABILITY, &out, NULL), 0);
  cJSON *j = cJSON_Parse(out);
  clink_free(out);
  ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "outbox"), "pending")->valueint, 1);
  cJSON_Delete(j);
  ck_assert_int_eq(clink_health_render_alloc(T.snap, CLINK_HEALTH_FORMAT_PROMETHEUS, &out, NULL), 0);
  ck_assert_ptr_nonnull(strstr(out, "claudelink_outbox_messages{state=\"pending\"} 1\n"));
  clink_free(out);
  ck_assert_int_eq(API(clink_health_detach(T.h, ob)), 0);
  ck_assert_int_eq(clink_outbox_close(ob, on_ob_closed, &closed), 0);
  RUN_UNTIL(closed);
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
  char p[96];
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof(p), "%s%s", db, sfx[i]);
    unlink(p);
  }
  rmdir(dir);
}
END_TEST

static void provide(clink_health_fallbacks *out, void *ud) {
  int *calls = ud;
  (*calls)++;
  clink_health_fallback_op op = {sizeof(op), 100, 95, 5, 3};
  ck_assert_int_eq(clink_health_fallbacks_add(out, "chat", &op), 0);
  clink_health_fallback_op small = {offsetof(clink_health_fallback_op, fallback_used), 7, 6, 99, 99};
  ck_assert_int_eq(clink_health_fallbacks_add(out, "create_session", &small), 0);
  ck_assert_int_eq(clink_health_fallbacks_add(out, NULL, &op), UV_EINVAL);
  ck_assert_int_eq(clink_health_fallbacks_add(NULL, "x", &op), UV_EINVAL);
}

/* The fallback hook: a provider fills the section at each snapshot; an
 * older, shorter struct reads as zeros past its size. */
START_TEST(fallback_provider) {
  make_monitor(0, 0);
  int calls = 0;
  ck_assert_int_eq(API(clink_health_set_fallback_provider(T.h, provide, &calls)), 0);
  clink_health_snapshot *s;
  ck_assert_int_eq(clink_health_snapshot_new(&s), 0);
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0); /* reused */
  ck_assert_int_eq(calls, 2);
  ck_assert_uint_eq(s->n_fb, 2);
  ck_assert_uint_eq(s->fallbacks_used, 5);
  ck_assert_uint_eq(s->fb[1].op.primary_success, 6);
  ck_assert_uint_eq(s->fb[1].op.fallback_used, 0);
  cJSON *j = render_json(s, CLINK_HEALTH_FORMAT_METRICS);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "fallbacks_used")->valueint, 5);
  cJSON_Delete(j);
  ck_assert_int_eq(API(clink_health_set_fallback_provider(T.h, NULL, NULL)), 0);
  ck_assert_int_eq(API(clink_health_snapshot_take(T.h, s)), 0);
  ck_assert_uint_eq(s->n_fb, 0);
  clink_health_snapshot_free(s);
}
END_TEST

/* ======================================================== promtool mode */

/* `test-health promtool`: the Prometheus rendering of a full snapshot
 * through `promtool check metrics`. 77 (skipped) without promtool, unless
 * CI=true, where it is required. */
static int promtool_mode(void) {
  const char *ci = getenv("CI");
  int required = ci && strcmp(ci, "true") == 0;
  if (system("command -v promtool >/dev/null 2>&1") != 0) {
    fprintf(stderr, "SKIP: promtool not found (Debian package prometheus)%s\n",
            required ? " but CI=true requires it" : "");
    return required ? 1 : 77;
  }
  clink_health_snapshot *s;
  if (clink_health_snapshot_new(&s) != 0) return 1;
  fill_snapshot(s, 50, 10, 10);
  snprintf(s->service, sizeof(s->service), "svc \"x\" \\ y\nz");
  int rc = 1;
  char *out;
  size_t len;
  if (clink_health_render_alloc(s, CLINK_HEALTH_FORMAT_PROMETHEUS, &out, &len) == 0) {
    FILE *p = popen("promtool check metrics", "w");
    if (p) {
      fwrite(out, 1, len, p);
      int st = pclose(p);
      rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
      fprintf(stderr, "promtool check metrics: exit %d over %zu bytes\n", rc, len);
    }
    clink_free(out);
  }
  clink_health_snapshot_free(s);
  return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "promtool") == 0) return promtool_mode();
  Suite *s = suite_create("health");
  TCase *tc;
#define TC(name, timeout)                         \
  tc = tcase_create(name);                        \
  tcase_set_timeout(tc, timeout);                 \
  tcase_add_checked_fixture(tc, setup, teardown); \
  suite_add_tcase(s, tc)
  TC("checks", 10);
  tcase_add_test(tc, check_runs_on_schedule);
  tcase_add_test(tc, check_transitions);
  tcase_add_test(tc, check_timeout_and_late_answer);
  tcase_add_test(tc, slow_check_never_overlaps);
  tcase_add_test(tc, aggregation_rules);
  tcase_add_test(tc, thresholds);
  tcase_add_test(tc, check_keys_for_health_json);
  TC("sessions", 10);
  tcase_add_test(tc, course_grades);
  tcase_add_test(tc, course_report_text);
  tcase_add_test(tc, histogram_buckets);
  tcase_add_test(tc, tracker_counts_deltas);
  tcase_add_test(tc, tables_shrink_after_a_burst);
  tcase_add_test(tc, procfs_parsers);
  TC("render", 10);
  tcase_add_test(tc, detailed_matches_the_seed);
  tcase_add_test(tc, active_sessions_escaped);
  tcase_add_test(tc, metrics_has_the_seeds_ten_keys);
  tcase_add_test(tc, stability_report);
  tcase_add_test(tc, health_json_draft);
  tcase_add_test(tc, health_json_groups_by_key);
  tcase_add_test(tc, json_writer_numbers_and_strings);
  tcase_add_test(tc, prometheus_text);
  tcase_add_test(tc, render_into_callers_buffer);
  tcase_add_test(tc, verbose_and_sessions_renderings);
  TC("monitor", 20);
  tcase_add_test(tc, idle_monitor_does_not_hold_the_loop);
  tcase_add_test(tc, add_remove_and_validation);
  tcase_add_test(tc, checks_run_and_status_follows);
  tcase_add_test(tc, check_timeout_on_the_loop);
  tcase_add_test(tc, check_events_are_redacted);
  tcase_add_test(tc, check_answered_later);
  tcase_add_test(tc, check_closes_the_monitor);
  tcase_add_test(tc, answers_after_close_and_remove);
  tcase_add_test(tc, fallback_provider);
  TC("integration", 30);
  tcase_add_test(tc, memory_and_sessions_thresholds);
  tcase_add_test(tc, sdk_check_spawns_a_temporary_cli);
  tcase_add_test(tc, sdk_check_pings_a_pooled_member);
  tcase_add_test(tc, close_during_sdk_probe);
  tcase_add_test(tc, sessions_processes_and_meter);
  tcase_add_test(tc, fallback_registry_attached);
  tcase_add_test(tc, outbox_attached);
#undef TC
  return clink_test_run(s);
}
