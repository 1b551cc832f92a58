/* clink_events, the structured event sink: redaction of secrets (keys,
 * API keys, bearer tokens, NAME=value of secret names), the JSON line and
 * its ISO 8601 timestamp, levels (filter, names, LOG_LEVEL parsing), the
 * bounded queue and its dropped count, delivery from the loop only and in
 * order, callbacks that emit and that close, close with events pending, the
 * JSON-lines writer.
 *
 * No sleeps: the sink's timer is unref'd, so a test keeps the loop alive
 * with a timer of its own (pump()) and counts after uv_run returns. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <claudelink.h>

#include "monitor/events-int.h"
#include "monitor/events.h"
#include "testutil.h"

#define MAX_SEEN 64

static struct {
  uv_loop_t loop;
  clink_events *sink;
  uv_timer_t pump;
  int pump_fired;
  int n;
  char event[MAX_SEEN][64];
  char component[MAX_SEEN][64];
  char first_str[MAX_SEEN][256]; /* the first string field's value */
  clink_log_level level[MAX_SEEN];
  uint64_t ts[MAX_SEEN];
  int closes;
  void *close_ud;
  int close_at;      /* close the sink from the callback of this event (1-based) */
  int emit_at;       /* emit one more event from the callback of this event */
  int close_rc, emit_rc;
  int closed_before_cb; /* events delivered after the close callback */
} T;

static int in_api;
#define API(expr) (in_api++, api_rc = (expr), in_api--, api_rc)
static int api_rc;

static void on_event(clink_events *sink, const clink_event *ev, void *ud) {
  ck_assert_msg(in_api == 0, "event delivered inside an API call");
  ck_assert_ptr_eq(sink, T.sink);
  ck_assert_ptr_eq(ud, &T);
  if (T.closes) T.closed_before_cb++;
  ck_assert_int_lt(T.n, MAX_SEEN);
  int i = T.n++;
  snprintf(T.event[i], sizeof(T.event[i]), "%s", ev->event);
  snprintf(T.component[i], sizeof(T.component[i]), "%s", ev->component);
  T.level[i] = ev->level;
  T.ts[i] = ev->timestamp_ms;
  T.first_str[i][0] = '\0';
  for (size_t k = 0; k < ev->n_fields; k++) {
    if (ev->fields[k].kind == CLINK_FIELD_STRING) {
      snprintf(T.first_str[i], sizeof(T.first_str[i]), "%s", ev->fields[k].s);
      break;
    }
  }
  if (T.emit_at == T.n) {
    clink_event_field f = {"n", CLINK_FIELD_INT, NULL, 99, 0};
    T.emit_rc = API(clink_events_emit(sink, CLINK_LOG_INFO, NULL, "from_callback", &f, 1));
  }
  if (T.close_at == T.n) T.close_rc = API(clink_events_close(sink, NULL, NULL));
}

static void on_closed(clink_events *sink, void *ud) {
  ck_assert_msg(in_api == 0, "close callback inside an API call");
  T.closes++;
  T.close_ud = ud;
}

static void on_pump(uv_timer_t *t) {
  T.pump_fired = 1;
  uv_stop(t->loop);
}

/* Runs the loop for ms (a ref'd timer keeps it alive). */
static void pump(uint64_t ms) {
  T.pump_fired = 0;
  uv_timer_start(&T.pump, on_pump, ms, 0);
  while (!T.pump_fired) uv_run(&T.loop, UV_RUN_ONCE);
}

static void setup(void) {
  memset(&T, 0, sizeof(T));
  in_api = 0;
  ck_assert_int_eq(uv_loop_init(&T.loop), 0);
  uv_timer_init(&T.loop, &T.pump);
  ck_assert_int_eq(clink_events_new(&T.sink, &T.loop), 0);
  clink_events_set_cb(T.sink, on_event, &T);
}

static void teardown(void) {
  if (T.sink && T.closes == 0 && T.close_rc == 0 && T.close_at == 0) {
    ck_assert_int_eq(API(clink_events_close(T.sink, on_closed, &T)), 0);
  }
  uv_close((uv_handle_t *)&T.pump, NULL);
  CLINK_TEST_LOOP_DONE(&T.loop);
}

static int emit_str(clink_log_level level, const char *event, const char *key, const char *v) {
  clink_event_field f = {key, CLINK_FIELD_STRING, v, 0, 0};
  return API(clink_events_emit(T.sink, level, "test", event, &f, 1));
}

/* --------------------------------------------------------------- redaction */

static void expect_redact(const char *in, const char *want) {
  char out[512];
  size_t n = clink__redact(in, out, sizeof(out));
  ck_assert_msg(strcmp(out, want) == 0, "redact(%s) = %s, want %s", in, out, want);
  ck_assert_uint_eq(n, strlen(want));
}

START_TEST(redact_values) {
  expect_redact("plain text", "plain text");
  expect_redact("key sk-ant-api03-AbC_d-e.f9 here", "key [REDACTED] here");
  expect_redact("sk-ant-", "[REDACTED]");
  expect_redact("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [REDACTED]");
  expect_redact("bearer xyz,next", "bearer [REDACTED],next");
  expect_redact("ANTHROPIC_API_KEY=secret123 next", "ANTHROPIC_API_KEY=[REDACTED] next");
  expect_redact("env ANTHROPIC_BASE_URL=http://x/y", "env ANTHROPIC_BASE_URL=[REDACTED]");
  expect_redact("MY_TOKEN=t0k3n", "MY_TOKEN=[REDACTED]");
  expect_redact("DB_PASSWORD='hunter 2' next", "DB_PASSWORD='[REDACTED]' next");
  expect_redact("ANTHROPIC_API_KEY=\"k\"", "ANTHROPIC_API_KEY=\"[REDACTED]\"");
  expect_redact("ANTHROPIC_API_KEY='open", "ANTHROPIC_API_KEY='[REDACTED]");
  expect_redact("SOME_KEY=v", "SOME_KEY=[REDACTED]");
  expect_redact("PATH=/usr/bin HOME=/root", "PATH=/usr/bin HOME=/root");
  /* A name inside a word: its secret-looking tail (API_KEY) is enough. */
  expect_redact("xANTHROPIC_API_KEY=v", "xANTHROPIC_API_KEY=[REDACTED]");
  expect_redact("xANTHROPIC_MODEL=m", "xANTHROPIC_MODEL=m");
  expect_redact("[\"--x\",\"ANTHROPIC_AUTH_TOKEN=abc\"]", "[\"--x\",\"ANTHROPIC_AUTH_TOKEN=[REDACTED]\"]");
  /* snprintf-like when the buffer is short. */
  char small[8];
  size_t need = clink__redact("sk-ant-1234 tail", small, sizeof(small));
  ck_assert_uint_eq(need, strlen("[REDACTED] tail"));
  ck_assert_str_eq(small, "[REDACT");
}
END_TEST

START_TEST(redact_secret_keys) {
  ck_assert(clink__secret_key("api_key"));
  ck_assert(clink__secret_key("X-Api-Key"));
  ck_assert(clink__secret_key("Authorization"));
  ck_assert(clink__secret_key("session_token"));
  ck_assert(clink__secret_key("password"));
  ck_assert(clink__secret_key("Cookie"));
  ck_assert(clink__secret_key("client_secret"));
  ck_assert(!clink__secret_key("session_id"));
  ck_assert(!clink__secret_key("circuit_name"));
  ck_assert(!clink__secret_key(NULL));
}
END_TEST

/* Through the sink: values of secret keys are replaced whole, secrets in
 * other values in place; events are copied when emitted. */
START_TEST(events_are_redacted_and_copied) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%s", "sk-ant-live-key");
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "e1", "api_key", "anything at all"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "e2", "argv", "claude ANTHROPIC_API_KEY=abc --x"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "e3", "detail", buf), 0);
  memset(buf, 'Z', sizeof(buf) - 1); /* the sink kept its own copy */
  ck_assert_int_eq(T.n, 0);
  pump(1);
  ck_assert_int_eq(T.n, 3);
  ck_assert_str_eq(T.first_str[0], "[REDACTED]");
  ck_assert_str_eq(T.first_str[1], "claude ANTHROPIC_API_KEY=[REDACTED] --x");
  ck_assert_str_eq(T.first_str[2], "[REDACTED]");
}
END_TEST

/* ------------------------------------------------------------ JSON line */

static cJSON *line_of(const clink_event *ev) {
  char *line;
  ck_assert_int_eq(clink_event_to_json(ev, &line), 0);
  ck_assert_ptr_null(strchr(line, '\n'));
  cJSON *j = cJSON_Parse(line);
  ck_assert_ptr_nonnull(j);
  clink_free(line);
  return j;
}

START_TEST(json_line_shape_and_timestamp) {
  clink_event_field f[6] = {{"circuit_name", CLINK_FIELD_STRING, "claude_sdk", 0, 0},
                            {"failure_count", CLINK_FIELD_INT, NULL, 3, 0},
                            {"rate", CLINK_FIELD_DOUBLE, NULL, 0, 12.5},
                            {"open", CLINK_FIELD_BOOL, NULL, 1, 0},
                            {"none", CLINK_FIELD_NULL, NULL, 0, 0},
                            {"level", CLINK_FIELD_STRING, "must not win", 0, 0}};
  /* 2024-01-01T12:00:00.123Z */
  clink__event_rec *r = clink__event_rec_make(UINT64_C(1704110400123), CLINK_LOG_INFO,
                                              "stability_monitor", "circuit_breaker_opened", f, 6);
  ck_assert_ptr_nonnull(r);
  cJSON *j = line_of(&r->ev);
  const char *keys[] = {"timestamp", "level", "event", "component", "circuit_name",
                        "failure_count", "rate", "open", "none"};
  int i = 0;
  for (cJSON *it = j->child; it; it = it->next, i++) {
    ck_assert_int_lt(i, 9);
    ck_assert_str_eq(it->string, keys[i]); /* the seed's order, fields last */
  }
  ck_assert_int_eq(i, 9);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "timestamp")->valuestring, "2024-01-01T12:00:00.123Z");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "INFO");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "event")->valuestring, "circuit_breaker_opened");
  ck_assert_str_eq(cJSON_GetObjectItem(j, "component")->valuestring, "stability_monitor");
  ck_assert_int_eq(cJSON_GetObjectItem(j, "failure_count")->valueint, 3);
  ck_assert(cJSON_GetObjectItem(j, "rate")->valuedouble == 12.5);
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "open")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "none")));
  cJSON_Delete(j);
  free(r);

  /* A live event's timestamp is ISO 8601 UTC with milliseconds, now. */
  uint64_t before = clink__wall_ms();
  ck_assert_int_eq(emit_str(CLINK_LOG_WARNING, "live", "k", "v"), 0);
  pump(1);
  ck_assert_int_eq(T.n, 1);
  ck_assert_uint_ge(T.ts[0], before);
  ck_assert_uint_le(T.ts[0], clink__wall_ms());
  char ts[32];
  clink__iso8601_ms(T.ts[0], ts);
  ck_assert_uint_eq(strlen(ts), 24);
  ck_assert(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':' &&
            ts[19] == '.' && ts[23] == 'Z');
  ck_assert_str_eq(T.component[0], "test");
  ck_assert_int_eq(clink_event_to_json(NULL, NULL), UV_EINVAL);
}
END_TEST

START_TEST(jsonl_writer_one_object_a_line) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  ck_assert_int_eq(clink_events_set_jsonl_fd(T.sink, fds[1]), 0);
  ck_assert_int_eq(clink_events_set_jsonl_fd(T.sink, -2), UV_EINVAL);
  clink_events_set_cb(T.sink, NULL, NULL); /* the writer alone enables the sink */
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "first", "detail", "Bearer tok"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_ERROR, "second", "detail", "x"), 0);
  pump(1);
  ck_assert_int_eq(clink_events_set_jsonl_fd(T.sink, -1), 0);
  close(fds[1]);
  char buf[2048];
  ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  ck_assert_int_gt(n, 0);
  buf[n] = '\0';
  char *nl = strchr(buf, '\n');
  ck_assert_ptr_nonnull(nl);
  *nl = '\0';
  cJSON *a = cJSON_Parse(buf);
  cJSON *b = cJSON_Parse(nl + 1);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_str_eq(cJSON_GetObjectItem(a, "event")->valuestring, "first");
  ck_assert_str_eq(cJSON_GetObjectItem(a, "detail")->valuestring, "Bearer [REDACTED]");
  ck_assert_str_eq(cJSON_GetObjectItem(b, "level")->valuestring, "ERROR");
  ck_assert_int_eq(buf[strlen(buf) - 1], '}');
  ck_assert_int_eq((nl + 1)[strlen(nl + 1) - 1], '\n');
  cJSON_Delete(a);
  cJSON_Delete(b);
}
END_TEST

/* ---------------------------------------------------------------- levels */

START_TEST(levels_filter_names_and_parse) {
  ck_assert_int_eq(clink_events_get_level(T.sink), CLINK_LOG_INFO);
  ck_assert_int_eq(emit_str(CLINK_LOG_DEBUG, "dropped", "k", "v"), 0); /* below INFO */
  ck_assert_int_eq(clink_events_set_level(T.sink, CLINK_LOG_WARNING), 0);
  ck_assert_int_eq(clink_events_set_level(T.sink, (clink_log_level)5), UV_EINVAL);
  ck_assert_int_eq(clink_events_set_level(T.sink, (clink_log_level)60), UV_EINVAL);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "dropped", "k", "v"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_WARNING, "kept1", "k", "v"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_CRITICAL, "kept2", "k", "v"), 0);
  ck_assert(!clink__events_enabled(T.sink, CLINK_LOG_INFO));
  ck_assert(clink__events_enabled(T.sink, CLINK_LOG_ERROR));
  pump(1);
  ck_assert_int_eq(T.n, 2);
  ck_assert_str_eq(T.event[0], "kept1");
  ck_assert_str_eq(T.event[1], "kept2");
  ck_assert_uint_eq(clink_events_dropped(T.sink), 0); /* filtered is not dropped */

  static const struct {
    const char *name;
    clink_log_level level;
  } ok[] = {{"DEBUG", CLINK_LOG_DEBUG},       {"info", CLINK_LOG_INFO},
            {"Warning", CLINK_LOG_WARNING},   {"WARN", CLINK_LOG_WARNING},
            {"error", CLINK_LOG_ERROR},       {"CRITICAL", CLINK_LOG_CRITICAL},
            {"fatal", CLINK_LOG_CRITICAL}};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    clink_log_level l = (clink_log_level)0;
    ck_assert_int_eq(clink_log_level_parse(ok[i].name, &l), 0);
    ck_assert_int_eq(l, ok[i].level);
  }
  clink_log_level l;
  ck_assert_int_eq(clink_log_level_parse("verbose", &l), UV_EINVAL);
  ck_assert_int_eq(clink_log_level_parse("", &l), UV_EINVAL);
  ck_assert_int_eq(clink_log_level_parse(NULL, &l), UV_EINVAL);
  ck_assert_str_eq(clink_log_level_name(CLINK_LOG_DEBUG), "DEBUG");
  ck_assert_str_eq(clink_log_level_name(CLINK_LOG_WARNING), "WARNING");
  ck_assert_str_eq(clink_log_level_name(CLINK_LOG_CRITICAL), "CRITICAL");
  ck_assert_str_eq(clink_log_level_name((clink_log_level)11), "UNKNOWN");
}
END_TEST

START_TEST(no_listener_no_work) {
  clink_events_set_cb(T.sink, NULL, NULL);
  ck_assert(!clink__events_enabled(T.sink, CLINK_LOG_CRITICAL));
  ck_assert(!clink__events_enabled(NULL, CLINK_LOG_CRITICAL));
  ck_assert_int_eq(emit_str(CLINK_LOG_CRITICAL, "nobody", "k", "v"), 0);
  clink_events_set_cb(T.sink, on_event, &T);
  pump(1);
  ck_assert_int_eq(T.n, 0);
  ck_assert_int_eq(clink_events_emit(NULL, CLINK_LOG_INFO, NULL, "x", NULL, 0), UV_EINVAL);
  ck_assert_int_eq(clink_events_emit(T.sink, CLINK_LOG_INFO, NULL, "x", NULL, 1), UV_EINVAL);
  /* No fields, no component: "app". */
  ck_assert_int_eq(API(clink_events_emit(T.sink, CLINK_LOG_INFO, NULL, "bare", NULL, 0)), 0);
  pump(1);
  ck_assert_int_eq(T.n, 1);
  ck_assert_str_eq(T.component[0], "app");
}
END_TEST

/* ------------------------------------------------------- queue, delivery */

START_TEST(bounded_queue_counts_drops) {
  ck_assert_int_eq(clink_events_set_max_pending(T.sink, 0), UV_EINVAL);
  ck_assert_int_eq(clink_events_set_max_pending(T.sink, 3), 0);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "q", "k", "v"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "q", "k", "v"), CLINK_EQUEUE_FULL);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "q", "k", "v"), CLINK_EQUEUE_FULL);
  ck_assert_uint_eq(clink_events_dropped(T.sink), 2);
  pump(1);
  ck_assert_int_eq(T.n, 3);
  /* Room again once delivered. */
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "q", "k", "v"), 0);
  pump(1);
  ck_assert_int_eq(T.n, 4);
  ck_assert_uint_eq(clink_events_dropped(T.sink), 2);
  ck_assert_uint_eq(clink_events_dropped(NULL), 0);
}
END_TEST

START_TEST(delivered_from_the_loop_in_order) {
  char name[16];
  for (int i = 0; i < 20; i++) {
    snprintf(name, sizeof(name), "e%02d", i);
    ck_assert_int_eq(emit_str(CLINK_LOG_INFO, name, "k", "v"), 0);
  }
  ck_assert_int_eq(T.n, 0); /* never inside emit */
  pump(1);
  ck_assert_int_eq(T.n, 20);
  for (int i = 0; i < 20; i++) {
    snprintf(name, sizeof(name), "e%02d", i);
    ck_assert_str_eq(T.event[i], name);
    if (i) ck_assert_uint_ge(T.ts[i], T.ts[i - 1]);
  }
}
END_TEST

/* An event emitted from the callback is delivered after the ones before it,
 * in the same drain (never recursively inside the callback). */
START_TEST(callback_that_emits) {
  T.emit_at = 1;
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "a", "k", "v"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "b", "k", "v"), 0);
  pump(1);
  ck_assert_int_eq(T.emit_rc, 0);
  ck_assert_int_eq(T.n, 3);
  ck_assert_str_eq(T.event[0], "a");
  ck_assert_str_eq(T.event[1], "b");
  ck_assert_str_eq(T.event[2], "from_callback");
  ck_assert_str_eq(T.component[2], "app");
}
END_TEST

/* Closing from the callback: what was pending still goes out, nothing new
 * is accepted, the close completes once. Both in the middle of a drain and
 * at its last event. */
START_TEST(callback_that_closes_mid_drain) {
  T.close_at = 2;
  for (int i = 0; i < 4; i++) ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "c", "k", "v"), 0);
  pump(5);
  ck_assert_int_eq(T.close_rc, 0);
  ck_assert_int_eq(T.n, 4);
}
END_TEST

START_TEST(callback_that_closes_at_the_last_event) {
  T.close_at = 2;
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "c", "k", "v"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "c", "k", "v"), 0);
  pump(5);
  ck_assert_int_eq(T.close_rc, 0);
  ck_assert_int_eq(T.n, 2);
}
END_TEST

/* Emits, then closes, in one callback: the new event still goes out. */
START_TEST(callback_that_emits_then_closes) {
  T.close_at = 2;
  T.emit_at = 2;
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "c", "k", "v"), 0);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "c", "k", "v"), 0);
  pump(5);
  ck_assert_int_eq(T.close_rc, 0);
  ck_assert_int_eq(T.emit_rc, 0);
  ck_assert_int_eq(T.n, 3);
  ck_assert_str_eq(T.event[2], "from_callback");
}
END_TEST

START_TEST(close_with_pending_events) {
  for (int i = 0; i < 3; i++) ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "p", "k", "v"), 0);
  ck_assert_int_eq(API(clink_events_close(T.sink, on_closed, &T)), 0);
  ck_assert_int_eq(API(clink_events_close(T.sink, on_closed, &T)), UV_EBUSY);
  ck_assert_int_eq(emit_str(CLINK_LOG_INFO, "late", "k", "v"), CLINK_ECLOSING);
  ck_assert_int_eq(T.n, 0);
  ck_assert_int_eq(T.closes, 0); /* from the loop */
  /* The pending events hold the loop until delivered. */
  uv_run(&T.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(T.n, 3);
  ck_assert_int_eq(T.closes, 1);
  ck_assert_ptr_eq(T.close_ud, &T);
  ck_assert_int_eq(T.closed_before_cb, 0);
}
END_TEST

START_TEST(idle_sink_does_not_hold_the_loop) {
  uv_timer_stop(&T.pump);
  ck_assert_int_eq(uv_run(&T.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(clink_events_close(NULL, NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(API(clink_events_close(T.sink, on_closed, &T)), 0);
  uv_run(&T.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(T.closes, 1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("events");
  TCase *tc;
#define TC(name)                                  \
  tc = tcase_create(name);                        \
  tcase_add_checked_fixture(tc, setup, teardown); \
  suite_add_tcase(s, tc)
  TC("redaction");
  tcase_add_test(tc, redact_values);
  tcase_add_test(tc, redact_secret_keys);
  tcase_add_test(tc, events_are_redacted_and_copied);
  TC("json");
  tcase_add_test(tc, json_line_shape_and_timestamp);
  tcase_add_test(tc, jsonl_writer_one_object_a_line);
  TC("levels");
  tcase_add_test(tc, levels_filter_names_and_parse);
  tcase_add_test(tc, no_listener_no_work);
  TC("delivery");
  tcase_add_test(tc, bounded_queue_counts_drops);
  tcase_add_test(tc, delivered_from_the_loop_in_order);
  tcase_add_test(tc, callback_that_emits);
  tcase_add_test(tc, callback_that_closes_mid_drain);
  tcase_add_test(tc, callback_that_closes_at_the_last_event);
  tcase_add_test(tc, callback_that_emits_then_closes);
  tcase_add_test(tc, close_with_pending_events);
  tcase_add_test(tc, idle_sink_does_not_hold_the_loop);
#undef TC
  return clink_test_run(s);
}
