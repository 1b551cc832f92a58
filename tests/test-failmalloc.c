/* Allocation failure on every constructor and main path (c-style-anchors
 * rules 28 and 36; nghttp2's failmalloc_test, libuv's loop_init_oom).
 *
 * The test is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,
 * --wrap=free: every call to those from code linked statically (the library's
 * objects and this file) goes through the wrappers below. The shared libcjson
 * is out of --wrap's reach, so this program, as the host, routes cJSON's
 * allocations through the same wrappers with cJSON_InitHooks(): cJSON's own
 * failures are exercised too. (The library itself never calls
 * cJSON_InitHooks(): hooks are process-global and belong to the host.)
 *
 * Each case is an operation that releases everything it made. It runs with
 * allocation N failing, for N = 1, 2, ... until a run makes fewer than N
 * allocations; then once more with every allocation from N on failing
 * ("sticky", like a heap that stays exhausted). A run that hit a failure
 * must return UV_ENOMEM (NULL from the wire builders), or FM_ABSORBED when
 * the operation checked that the failure cost nothing (the transport reads
 * in smaller chunks when it cannot grow its read size), and leave nothing
 * allocated: the wrappers keep the set of live blocks made during the run,
 * so a leak fails the test even without valgrind or ASan (the suite runs
 * under both too). The last run must succeed, with a correct result.
 *
 * Checks inside a run never call Check (its asserts allocate): a run reports
 * a wrong result through fm_bad() and the harness asserts afterwards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <claudelink.h>

#include "io/transport.h"
#include "monitor/health.h"
#include "session/ctl-out.h"
#include "session/session.h"
#include "wire/framer.h"
#include "wire/message.h"
#include "spawn/options.h"
#include "testutil.h"
#include "wire/json-out.h"

/* --------------------------------------------------------------- wrappers */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

#define FM_LIVE_MAX 4096

static struct {
  int counting;          /* count calls and inject failures */
  int tracking;          /* keep the live set */
  unsigned long calls;   /* allocation calls counted in this run */
  unsigned long fail_at; /* 0: none */
  int sticky;            /* every call from fail_at on fails */
  int realloc_only;      /* count and fail realloc() only */
  unsigned long injected;
  void *live[FM_LIVE_MAX];
  size_t n_live;
  int overflow;
  const char *bad; /* a run's own verdict on its result */
} fm;

static int fm_should_fail(int is_realloc) {
  if (!fm.counting || (fm.realloc_only && !is_realloc)) return 0;
  fm.calls++;
  if (fm.fail_at != 0 && (fm.calls == fm.fail_at || (fm.sticky && fm.calls > fm.fail_at))) {
    fm.injected++;
    return 1;
  }
  return 0;
}

static void fm_add(void *p) {
  if (!fm.tracking || p == NULL) return;
  if (fm.n_live == FM_LIVE_MAX) {
    fm.overflow = 1;
    return;
  }
  fm.live[fm.n_live++] = p;
}

static void fm_remove(void *p) {
  if (!fm.tracking || p == NULL) return;
  for (size_t i = fm.n_live; i-- > 0;) {
    if (fm.live[i] == p) {
      fm.live[i] = fm.live[--fm.n_live];
      return;
    }
  }
  /* Allocated before the run: not ours to count. */
}

void *__wrap_malloc(size_t n) {
  if (fm_should_fail(0)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = __real_malloc(n);
  fm_add(p);
  return p;
}

void *__wrap_calloc(size_t n, size_t s) {
  if (fm_should_fail(0)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = __real_calloc(n, s);
  fm_add(p);
  return p;
}

void *__wrap_realloc(void *p, size_t n) {
  if (n == 0) { /* glibc: a free */
    fm_remove(p);
    return __real_realloc(p, n);
  }
  if (fm_should_fail(1)) { /* p stays valid */
    errno = ENOMEM;
    return NULL;
  }
  void *q = __real_realloc(p, n);
  if (q != NULL) {
    fm_remove(p);
    fm_add(q);
  }
  return q;
}

void __wrap_free(void *p) {
  fm_remove(p);
  __real_free(p);
}

/* Marks the current run's result wrong (kept: the first reason). */
static void fm_bad(const char *why) {
  if (fm.bad == NULL) fm.bad = why;
}

/* Allocations inside hold()/release() are neither counted nor failed (still
 * tracked): for building inputs and checking results within a run. */
static int fm_hold(void) {
  int was = fm.counting;
  fm.counting = 0;
  return was;
}

static void fm_release(int was) { fm.counting = was; }

typedef int (*fm_op)(void *ctx);

/* An op's verdict on a run whose failure cost nothing: it checked that the
 * whole result is there. */
#define FM_ABSORBED 1

/* Runs op under failing allocations as described at the top; returns how
 * many allocation calls the successful run made. */
static unsigned long fm_run(const char *what, fm_op op, void *ctx) {
  unsigned long total = 0;
  for (int sticky = 0; sticky <= 1; sticky++) {
    unsigned long n;
    for (n = 1;; n++) {
      ck_assert_msg(n < 100000, "%s: no end to its allocations", what);
      memset(&fm, 0, sizeof(fm));
      fm.fail_at = n;
      fm.sticky = sticky;
      fm.tracking = 1;
      fm.counting = 1;
      int rc = op(ctx);
      fm.counting = 0;
      fm.tracking = 0;
      ck_assert_msg(fm.bad == NULL, "%s, allocation %lu%s failing: %s", what, n,
                    sticky ? " and later" : "", fm.bad);
      ck_assert_msg(!fm.overflow, "%s: more than %d live blocks", what, FM_LIVE_MAX);
      ck_assert_msg(fm.n_live == 0, "%s, allocation %lu%s failing: %zu blocks leaked", what, n,
                    sticky ? " and later" : "", fm.n_live);
      if (fm.injected == 0) {
        ck_assert_msg(rc == 0, "%s failed with %s and no allocation failure", what,
                      clink_err_name(rc));
        total = fm.calls;
        break;
      }
      ck_assert_msg(rc == UV_ENOMEM || rc == FM_ABSORBED,
                    "%s, allocation %lu of %lu%s failing: %s, want UV_ENOMEM", what, n, fm.calls,
                    sticky ? " and later" : "", clink_err_name(rc));
    }
    /* The wrappers did reach the operation's allocations. */
    ck_assert_msg(n > 1, "%s made no allocation", what);
  }
  printf("%s: %lu allocation points\n", what, total);
  return total;
}

/* ---------------------------------------------------------------- options */

static int strv_equal(char **a, char **b) {
  for (;; a++, b++) {
    if (*a == NULL || *b == NULL) return *a == *b;
    if (strcmp(*a, *b) != 0) return 0;
  }
}

/* The parallel lists stay parallel whatever failed. */
static void check_options_shape(const clink_options *o) {
  if (o->extra_flags.n != o->extra_values.n) fm_bad("extra flag/value lists differ in length");
  if (o->hook_events.n != o->hook_matchers.n || o->hook_events.n != o->hook_timeouts.n)
    fm_bad("hook lists differ in length");
}

static int fill_options(clink_options *o) {
  int rc;
  clink_retry_policy *policy = NULL;
  if ((rc = clink_options_set_cli_path(o, "/opt/claude/bin/claude")) != 0 ||
      (rc = clink_options_set_cwd(o, "/tmp")) != 0 ||
      (rc = clink_options_set_model(o, "claude-opus-4-8")) != 0)
    return rc;
  /* A setter that fails keeps the old value. */
  rc = clink_options_set_model(o, "claude-sonnet-4-5");
  if (rc != 0) {
    if (o->model == NULL || strcmp(o->model, "claude-opus-4-8") != 0)
      fm_bad("a failed setter changed the value");
    return rc;
  }
  if ((rc = clink_options_set_system_prompt(o, "Answer in one word.")) != 0 ||
      (rc = clink_options_set_fallback_model(o, "claude-haiku-4-5")) != 0 ||
      (rc = clink_options_set_permission_mode(o, CLINK_PERMISSION_ACCEPT_EDITS)) != 0 ||
      (rc = clink_options_add_tool(o, "Bash")) != 0 ||
      (rc = clink_options_add_tool(o, "Read")) != 0 ||
      (rc = clink_options_add_allowed_tool(o, "Read")) != 0 ||
      (rc = clink_options_add_disallowed_tool(o, "WebFetch")) != 0 ||
      (rc = clink_options_add_dir(o, "/srv/data")) != 0 ||
      (rc = clink_options_set_env(o, "FOO", "bar")) != 0 ||
      (rc = clink_options_set_env(o, "CLAUDECODE", NULL)) != 0 ||
      (rc = clink_options_add_extra_arg(o, "debug", NULL)) != 0 ||
      (rc = clink_options_add_extra_arg(o, "betas", "x,y")) != 0 ||
      (rc = clink_options_set_setting_sources(o, "")) != 0 ||
      (rc = clink_options_set_initialize_extra(o, "{\"agents\":{\"a\":{\"prompt\":\"p\"}}}")) != 0)
    return rc;
  if ((rc = clink_options_add_hook(o, "PreToolUse", "Bash", 30)) < 0) return rc;
  if ((rc = clink_retry_policy_new(&policy)) != 0) return rc;
  rc = clink_options_set_recovery(o, policy);
  clink_retry_policy_free(policy);
  return rc;
}

static int op_options(void *ctx) {
  (void)ctx;
  clink_options *o = (clink_options *)&fm; /* sentinel: untouched on failure */
  int rc = clink_options_new(&o);
  if (rc != 0) {
    if (o != (clink_options *)&fm) fm_bad("clink_options_new() wrote *out and failed");
    return rc;
  }
  rc = fill_options(o);
  check_options_shape(o);
  clink_options *d = (clink_options *)&fm;
  if (rc == 0) {
    rc = clink_options_dup(&d, o);
    if (rc != 0 && d != (clink_options *)&fm) fm_bad("clink_options_dup() wrote *out and failed");
  }
  if (rc == 0) {
    /* The copy is deep and whole: same command line. */
    int was = fm_hold();
    char **a = NULL, **b = NULL;
    if (clink__options_build_args(o, &a) != 0 || clink__options_build_args(d, &b) != 0 ||
        !strv_equal(a, b) || d->env_n != o->env_n || d->recovery == NULL ||
        d->recovery == o->recovery || strcmp(d->initialize_extra, o->initialize_extra) != 0)
      fm_bad("the copy differs");
    clink__strv_free(a);
    clink__strv_free(b);
    fm_release(was);
    clink_options_free(d);
  }
  clink_options_free(o);
  return rc;
}

START_TEST(options_new_set_dup) { fm_run("options", op_options, NULL); }
END_TEST

/* --------------------------------------------------------------- messages */

static const char ASSISTANT[] =
    "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_x3yxk772fs\",\"type\":\"message\","
    "\"role\":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"thinking\","
    "\"thinking\":\"The user wants a file.\",\"signature\":\"c2ln\"},{\"type\":\"text\",\"text\":"
    "\"I'll create it.\"},{\"type\":\"tool_use\",\"id\":\"toolu_fake_uvrirc7qgs\",\"name\":\"Bash\","
    "\"input\":{\"command\":\"touch made-by-tool.txt && echo created\",\"description\":"
    "\"Create a file\"}}],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
    "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1,"
    "\"service_tier\":\"standard\"},\"context_management\":null},\"parent_tool_use_id\":null,"
    "\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"uuid\":"
    "\"ce34673b-1f0e-4b7a-9d2c-5a6b7c8d9e0f\",\"request_id\":\"req_fake_mtc6nhirdw\"}";

static const char RESULT[] =
    "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"api_error_status\":500,"
    "\"duration_ms\":174153,\"duration_api_ms\":0,\"num_turns\":1,\"result\":\"API Error: 500 "
    "Internal server error (fake). This is a server-side issue, usually temporary \\u2014 try "
    "again in a moment.\",\"stop_reason\":\"stop_sequence\",\"session_id\":"
    "\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"total_cost_usd\":0.000185,\"usage\":{\"input_tokens\":"
    "12,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":5,"
    "\"server_tool_use\":{\"web_search_requests\":0,\"web_fetch_requests\":0},\"service_tier\":"
    "\"standard\",\"cache_creation\":{\"ephemeral_1h_input_tokens\":0,\"ephemeral_5m_input_tokens\":"
    "0},\"inference_geo\":\"\",\"iterations\":[],\"speed\":\"standard\"},\"modelUsage\":{\"claude-opus-"
    "4-8[1m]\":{\"inputTokens\":12,\"outputTokens\":5,\"costUSD\":0.000185,\"contextWindow\":1000000}},"
    "\"permission_denials\":[{\"tool_name\":\"Bash\",\"tool_use_id\":\"toolu_1\",\"tool_input\":{}}],"
    "\"terminal_reason\":\"completed\",\"fast_mode_state\":\"off\",\"uuid\":\"501adeb5-aaaa\"}";

static void check_assistant(const clink_msg *m) {
  if (clink_msg_get_kind(m) != CLINK_MSG_ASSISTANT || clink_msg_block_count(m) != 3 ||
      clink_msg_block_kind(m, 2) != CLINK_BLOCK_TOOL_USE ||
      strcmp(clink_msg_block_tool_name(m, 2), "Bash") != 0 ||
      strcmp(clink_msg_block_text(m, 1), "I'll create it.") != 0)
    fm_bad("wrong assistant message");
}

static void check_result(const clink_msg *m) {
  if (clink_msg_get_kind(m) != CLINK_MSG_RESULT || !clink_msg_result_is_error(m) ||
      clink_msg_result_api_error_status(m) != 500 || clink_msg_result_usage(m) == NULL ||
      strcmp(clink_msg_result_terminal_reason(m), "completed") != 0)
    fm_bad("wrong result message");
}

typedef struct {
  const char *line;
  void (*check)(const clink_msg *m);
} msg_case;

static int op_msg_parse(void *ctx) {
  const msg_case *c = ctx;
  clink_msg *m = (clink_msg *)&fm;
  int rc = clink_msg_parse(&m, c->line, strlen(c->line));
  if (rc != 0) {
    if (m != (clink_msg *)&fm) fm_bad("clink_msg_parse() wrote *out and failed");
    return rc;
  }
  c->check(m);
  clink_msg_unref(m);
  return 0;
}

static int op_msg_parse_borrowed(void *ctx) {
  const msg_case *c = ctx;
  clink_msg m;
  memset(&m, 0, sizeof(m));
  int rc = clink__msg_parse_borrowed(&m, c->line, strlen(c->line));
  if (rc != 0) {
    if (clink_msg_json(&m) != NULL) fm_bad("a failed parse left a tree");
    return rc;
  }
  c->check(&m);
  clink__msg_clear(&m);
  return 0;
}

static int op_msg_ref(void *ctx) {
  const clink_msg *borrowed = ctx;
  clink_msg *copy = clink_msg_ref(borrowed);
  if (copy == NULL) return UV_ENOMEM;
  check_assistant(copy);
  size_t a, b;
  const char *ra = clink_msg_raw(copy, &a), *rb = clink_msg_raw(borrowed, &b);
  if (a != b || ra == rb || memcmp(ra, rb, a) != 0) fm_bad("the copy's raw bytes differ");
  clink_msg_unref(copy);
  return 0;
}

START_TEST(msg_parse_assistant) {
  msg_case c = {ASSISTANT, check_assistant};
  fm_run("clink_msg_parse(assistant)", op_msg_parse, &c);
  fm_run("clink__msg_parse_borrowed(assistant)", op_msg_parse_borrowed, &c);
}
END_TEST

START_TEST(msg_parse_result) {
  msg_case c = {RESULT, check_result};
  fm_run("clink_msg_parse(result)", op_msg_parse, &c);
  fm_run("clink__msg_parse_borrowed(result)", op_msg_parse_borrowed, &c);
}
END_TEST

START_TEST(msg_ref_borrowed) {
  /* Borrowed from a buffer with no NUL after the line. */
  size_t len = strlen(ASSISTANT);
  char *line = malloc(len);
  ck_assert_ptr_nonnull(line);
  memcpy(line, ASSISTANT, len);
  clink_msg m;
  memset(&m, 0, sizeof(m));
  ck_assert_int_eq(clink__msg_parse_borrowed(&m, line, len), 0);
  fm_run("clink_msg_ref(borrowed)", op_msg_ref, &m);
  clink__msg_clear(&m);
  free(line);
}
END_TEST

/* ----------------------------------------------------------------- framer */

#define LONG_LINE ((size_t)300 * 1000) /* several doublings of the 64 KiB buffer */

typedef struct {
  size_t lines, longs;
  size_t len[2];
  int bytes_ok[2];
} framer_seen;

static void on_line(void *ud, const char *line, size_t len) {
  framer_seen *s = ud;
  if (s->lines < 2) {
    s->len[s->lines] = len;
    /* Long line: 'a'..'z' repeating; then "tail". */
    s->bytes_ok[s->lines] = s->lines == 0 ? line[0] == 'a' && line[len - 1] == (char)('a' + (len - 1) % 26)
                                          : len == 4 && memcmp(line, "tail", 4) == 0;
  }
  s->lines++;
}

static void on_long(void *ud, int err, const char *prefix, size_t prefix_len, uint64_t total) {
  framer_seen *s = ud;
  s->longs++;
}

static int op_framer(void *ctx) {
  const char *data = ctx; /* LONG_LINE bytes, '\n', "tail" */
  framer_seen seen;
  memset(&seen, 0, sizeof(seen));
  clink__framer f;
  int rc = clink__framer_init(&f, (size_t)1 << 20, on_line, on_long, &seen);
  if (rc != 0) return rc;
  /* The first half through feed(), the rest through reserve()/commit(). */
  size_t at = 0, total = LONG_LINE + 1 + 4;
  while (rc == 0 && at < total / 2) {
    size_t n = total / 2 - at < 7001 ? total / 2 - at : 7001;
    rc = clink__framer_feed(&f, data + at, n);
    at += n;
  }
  while (rc == 0 && at < total) {
    char *dst;
    size_t room;
    rc = clink__framer_reserve(&f, &dst, &room);
    if (rc != 0) break;
    size_t n = total - at < room ? total - at : room;
    if (n > 9000) n = 9000;
    memcpy(dst, data + at, n);
    rc = clink__framer_commit(&f, n);
    at += n;
  }
  if (rc == 0) {
    clink__framer_finish(&f);
    if (seen.lines != 2 || seen.longs != 0 || seen.len[0] != LONG_LINE || !seen.bytes_ok[0] ||
        !seen.bytes_ok[1])
      fm_bad("wrong lines");
  } else if (seen.lines != 0) {
    fm_bad("a line was delivered although the buffer could not grow");
  }
  clink__framer_free(&f);
  return rc;
}

START_TEST(framer_growth) {
  size_t total = LONG_LINE + 1 + 4;
  char *data = malloc(total);
  ck_assert_ptr_nonnull(data);
  for (size_t i = 0; i < LONG_LINE; i++) data[i] = (char)('a' + i % 26);
  memcpy(data + LONG_LINE, "\ntail", 5);
  fm_run("framer init + feed of a long line", op_framer, data);
  free(data);
}
END_TEST

/* ----------------------------------------------------------- retry, breaker */

static int op_retry(void *ctx) {
  (void)ctx;
  clink_retry_policy *p = NULL, *d = NULL;
  clink_retry *r = NULL;
  int rc = clink_retry_policy_new(&p);
  if (rc == 0) rc = clink_retry_policy_set_exponential(p, 100, 10000, 2.0, CLINK_JITTER_FULL);
  if (rc == 0) rc = clink_retry_policy_set_budget(p, 10.0, 0.1);
  if (rc == 0) rc = clink_retry_policy_dup(&d, p);
  if (rc == 0) rc = clink_retry_new(&r, d, 42);
  if (rc == 0) {
    uint64_t delay = UINT64_MAX;
    if (clink_retry_next(r, 0, UV_EPIPE, 0, &delay) != 0 || delay > 100) fm_bad("retry_next");
  }
  if (rc != 0 && r != NULL) fm_bad("clink_retry_new() set *out and failed");
  clink_retry_free(r);
  clink_retry_policy_free(d);
  clink_retry_policy_free(p);
  return rc;
}

START_TEST(retry_policy_and_state) { fm_run("retry policy + state", op_retry, NULL); }
END_TEST

static int op_breaker(void *ctx) {
  (void)ctx;
  clink_breaker_config *count_cfg = NULL, *time_cfg = NULL;
  clink_breaker *b1 = NULL, *b2 = NULL;
  clink_breaker_registry *reg = NULL;
  int rc = clink_breaker_config_new(&count_cfg);
  if (rc == 0)
    rc = clink_breaker_config_set_failure_rate(count_cfg, 50.0, CLINK_BREAKER_WINDOW_COUNT, 20, 5);
  if (rc == 0) rc = clink_breaker_config_new(&time_cfg);
  if (rc == 0)
    rc = clink_breaker_config_set_failure_rate(time_cfg, 50.0, CLINK_BREAKER_WINDOW_TIME, 60, 5);
  if (rc == 0) rc = clink_breaker_new(&b1, "count-window", count_cfg, 7);
  if (rc == 0) rc = clink_breaker_new(&b2, "time-window", time_cfg, 8);
  if (rc == 0) rc = clink_breaker_registry_new(&reg, 9);
  if (rc == 0) rc = clink_breaker_registry_add(reg, "extra", time_cfg, NULL);
  if (rc == 0) rc = clink_breaker_registry_add(reg, "extra-2", count_cfg, NULL);
  if (rc == 0) {
    if (strcmp(clink_breaker_name(b1), "count-window") != 0 ||
        clink_breaker_registry_count(reg) != 4 ||
        clink_breaker_registry_get(reg, "claude_sdk") == NULL)
      fm_bad("wrong breakers");
  } else if (clink_breaker_registry_count(reg) > 4) {
    fm_bad("registry grew on failure");
  }
  clink_breaker_registry_free(reg);
  clink_breaker_free(b2);
  clink_breaker_free(b1);
  clink_breaker_config_free(time_cfg);
  clink_breaker_config_free(count_cfg);
  return rc;
}

START_TEST(breaker_config_breaker_registry) {
  fm_run("breaker config + breakers + registry", op_breaker, NULL);
}
END_TEST

static int op_registry(void *ctx) {
  (void)ctx;
  clink_breaker_registry *reg = (clink_breaker_registry *)&fm;
  int rc = clink_breaker_registry_new(&reg, 0);
  if (rc != 0) {
    if (reg != NULL && reg != (clink_breaker_registry *)&fm)
      fm_bad("clink_breaker_registry_new() set *out and failed");
    return rc;
  }
  clink_breaker_registry_free(reg);
  return 0;
}

START_TEST(breaker_registry_alone) { fm_run("breaker registry", op_registry, NULL); }
END_TEST

static int op_ctl(void *ctx) {
  (void)ctx;
  clink__ctl c;
  int rc = clink__ctl_init(&c, 64, 1);
  if (rc == 0) clink__ctl_free(&c);
  return rc;
}

START_TEST(control_table) { fm_run("control table", op_ctl, NULL); }
END_TEST

/* ------------------------------------------------------------- spawn spec */

static int env_has(char **env, const char *entry) {
  for (; env && *env; env++)
    if (strcmp(*env, entry) == 0) return 1;
  return 0;
}

static int env_has_name(char **env, const char *name) {
  size_t n = strlen(name);
  for (; env && *env; env++)
    if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return 1;
  return 0;
}

static int op_spawn_spec(void *ctx) {
  const clink_options *o = ctx;
  clink__spawn_spec spec;
  char err[256];
  int rc = clink__spawn_spec_build(&spec, o, err, sizeof(err));
  if (rc != 0) {
    if (spec.argv != NULL || spec.env != NULL || spec.file != NULL || spec.cli != NULL)
      fm_bad("a failed build left memory in the spec");
    return rc;
  }
  const char *shim = o->exec_shim;
  size_t cli_at = shim ? 2 : 0;
  if (strcmp(spec.cli, o->cli_path) != 0 || strcmp(spec.file, shim ? shim : o->cli_path) != 0 ||
      strcmp(spec.argv[cli_at], o->cli_path) != 0 ||
      strcmp(spec.argv[cli_at + 1], "--output-format") != 0 ||
      !env_has(spec.env, "FOO=bar") || env_has_name(spec.env, "CLAUDECODE") ||
      !env_has(spec.env, "CLAUDE_CODE_ENTRYPOINT=sdk-c") || !env_has(spec.env, "PWD=/tmp") ||
      spec.cwd == NULL || strcmp(spec.cwd, "/tmp") != 0)
    fm_bad("wrong spec");
  clink__spawn_spec_free(&spec);
  return 0;
}

static clink_options *spec_options(const char *shim) {
  clink_options *o = NULL;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_eq(clink_options_set_cli_path(o, "/bin/sh"), 0); /* exists, executable */
  ck_assert_int_eq(clink_options_set_exec_shim(o, shim), 0);
  ck_assert_int_eq(clink_options_set_cwd(o, "/tmp"), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FOO", "bar"), 0);
  ck_assert_int_eq(clink_options_set_env(o, "CLAUDECODE", NULL), 0);
  ck_assert_int_eq(clink_options_set_system_prompt(o, "sys"), 0);
  ck_assert_int_eq(clink_options_set_append_system_prompt(o, "more"), 0);
  ck_assert_int_eq(clink_options_add_tool(o, "Bash"), 0);
  ck_assert_int_eq(clink_options_add_tool(o, "Read"), 0);
  ck_assert_int_eq(clink_options_add_allowed_tool(o, "Read"), 0);
  ck_assert_int_eq(clink_options_add_disallowed_tool(o, "WebFetch"), 0);
  ck_assert_int_eq(clink_options_set_max_turns(o, 3), 0);
  ck_assert_int_eq(clink_options_set_model(o, "claude-sonnet-4-5"), 0);
  ck_assert_int_eq(clink_options_set_fallback_model(o, "claude-haiku-4-5"), 0);
  ck_assert_int_eq(clink_options_set_permission_prompt_tool(o, "mcp__perm"), 0);
  ck_assert_int_eq(clink_options_set_permission_mode(o, CLINK_PERMISSION_PLAN), 0);
  ck_assert_int_eq(clink_options_set_continue(o, 1), 0);
  ck_assert_int_eq(clink_options_set_resume(o, "386fda4f"), 0);
  ck_assert_int_eq(clink_options_set_settings(o, "{}"), 0);
  ck_assert_int_eq(clink_options_add_dir(o, "/srv/a"), 0);
  ck_assert_int_eq(clink_options_add_dir(o, "/srv/b"), 0);
  ck_assert_int_eq(clink_options_set_mcp_config(o, "{\"mcpServers\":{}}"), 0);
  ck_assert_int_eq(clink_options_set_include_partial_messages(o, 1), 0);
  ck_assert_int_eq(clink_options_set_fork_session(o, 1), 0);
  ck_assert_int_eq(clink_options_set_setting_sources(o, "user,project"), 0);
  ck_assert_int_eq(clink_options_add_extra_arg(o, "debug", NULL), 0);
  ck_assert_int_eq(clink_options_add_extra_arg(o, "betas", "-x"), 0);
  return o;
}

START_TEST(spawn_spec_with_shim) {
  clink_options *o = spec_options("/usr/libexec/claudelink/claudelink-exec");
  fm_run("spawn spec (shim)", op_spawn_spec, o);
  clink_options_free(o);
}
END_TEST

START_TEST(spawn_spec_direct) {
  clink_options *o = spec_options(NULL);
  fm_run("spawn spec (direct)", op_spawn_spec, o);
  clink_options_free(o);
}
END_TEST

/* ------------------------------------------------------------------- wire */

/* Checks a builder's line (allocations held), then frees it. */
static int check_line(char *line, const char *type, const char *what, const char *want) {
  if (line == NULL) return UV_ENOMEM;
  int was = fm_hold();
  cJSON *j = cJSON_Parse(line);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
  if (!cJSON_IsString(t) || strcmp(t->valuestring, type) != 0 || strchr(line, '\n') != NULL)
    fm_bad("wrong line");
  if (strstr(line, want) == NULL) fm_bad(what);
  cJSON_Delete(j);
  fm_release(was);
  cJSON_free(line);
  return 0;
}

static int op_wire_user(void *ctx) {
  (void)ctx;
  int was = fm_hold();
  cJSON *content = cJSON_CreateString("hello \"quoted\"\nnewline");
  fm_release(was);
  /* The builder owns content, also when it fails. */
  return check_line(clink__wire_user("default", content), "user", "content missing",
                    "\"content\":\"hello \\\"quoted\\\"\\nnewline\"");
}

static int op_wire_user_blocks(void *ctx) {
  (void)ctx;
  int was = fm_hold();
  cJSON *blocks = cJSON_CreateArray();
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "type", "text");
  cJSON_AddStringToObject(b, "text", "hi");
  cJSON_AddItemToArray(blocks, b);
  fm_release(was);
  return check_line(clink__wire_user(NULL, blocks), "user", "blocks missing",
                    "\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]");
}

static int op_wire_control_request(void *ctx) {
  (void)ctx;
  int was = fm_hold();
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "tool_name", "Bash");
  cJSON_AddNumberToObject(fields, "timeout", 30);
  cJSON_AddItemToObject(fields, "input", cJSON_Parse("{\"command\":\"ls\"}"));
  fm_release(was);
  return check_line(clink__wire_control_request("req_1_abcd", "can_use_tool", fields),
                    "control_request", "request members missing",
                    "\"request\":{\"subtype\":\"can_use_tool\",\"tool_name\":\"Bash\","
                    "\"timeout\":30,\"input\":{\"command\":\"ls\"}}");
}

static int op_wire_control_success(void *ctx) {
  (void)ctx;
  int was = fm_hold();
  cJSON *resp = cJSON_CreateObject();
  cJSON_AddStringToObject(resp, "behavior", "allow");
  fm_release(was);
  int rc = check_line(clink__wire_control_success("11c6833d", resp), "control_response",
                      "response body missing", "\"response\":{\"behavior\":\"allow\"}");
  if (rc != 0) return rc;
  return check_line(clink__wire_control_success("req_2_x", NULL), "control_response",
                    "request_id missing", "\"request_id\":\"req_2_x\"");
}

static int op_wire_control_error(void *ctx) {
  (void)ctx;
  return check_line(clink__wire_control_error("req_7_unk", "denied \"x\""), "control_response",
                    "error missing", "\"error\":\"denied \\\"x\\\"\"");
}

START_TEST(wire_builders) {
  fm_run("wire user (string)", op_wire_user, NULL);
  fm_run("wire user (blocks)", op_wire_user_blocks, NULL);
  fm_run("wire control_request", op_wire_control_request, NULL);
  fm_run("wire control success", op_wire_control_success, NULL);
  fm_run("wire control error", op_wire_control_error, NULL);
}
END_TEST

/* ------------------------------------------------------------- renderings */

/* A snapshot whose texts outgrow the first buffer a rendering takes: ids
 * and messages all escapes. Built outside the runs. */
static clink_health_snapshot *render_snapshot(void) {
  clink_health_snapshot *s;
  ck_assert_int_eq(clink_health_snapshot_new(&s), 0);
  s->unix_ms = UINT64_C(1704110400000);
  snprintf(s->service, sizeof(s->service), "svc");
  size_t n = 8;
  ck_assert_int_eq(clink__hs_reserve((void **)&s->sess, &s->cap_sess, n, sizeof(*s->sess)), 0);
  ck_assert_int_eq(clink__hs_reserve((void **)&s->brk, &s->cap_brk, 1, sizeof(*s->brk)), 0);
  ck_assert_int_eq(clink__hs_reserve((void **)&s->fb, &s->cap_fb, 1, sizeof(*s->fb)), 0);
  ck_assert_int_eq(clink__hs_reserve((void **)&s->chk, &s->cap_chk, 2, sizeof(*s->chk)), 0);
  s->n_sess = n;
  for (size_t i = 0; i < n; i++) {
    memset(&s->sess[i], 0, sizeof(s->sess[i]));
    memset(s->sess[i].id, 1, sizeof(s->sess[i].id) - 1);
    s->sess[i].state = CLINK_CLIENT_CONNECTED;
    s->sess[i].health.throughput = 1.25 * (double)i;
  }
  s->n_brk = s->n_fb = 1;
  memset(&s->brk[0], 0, sizeof(s->brk[0]));
  snprintf(s->brk[0].name, sizeof(s->brk[0].name), "claude_sdk");
  memset(&s->fb[0], 0, sizeof(s->fb[0]));
  snprintf(s->fb[0].operation, sizeof(s->fb[0].operation), "chat");
  s->n_chk = 2;
  for (size_t i = 0; i < 2; i++) {
    clink__hc_init(&s->chk[i].c, i ? "memory" : "claude_sdk", 1000, 100, 1, 0);
    s->chk[i].c.status = CLINK_CHECK_WARN;
    memset(s->chk[i].c.message, '\t', sizeof(s->chk[i].c.message) - 1);
  }
  return s;
}

/* Every format, allocated: UV_ENOMEM (never a shorter text) when any
 * allocation fails, else the text a caller's buffer gets. */
static int op_render(void *ctx) {
  const clink_health_snapshot *s = ctx;
  static char want[1 << 16];
  for (int f = CLINK_HEALTH_FORMAT_DETAILED; f <= CLINK_HEALTH_FORMAT_SESSIONS_TEXT; f++) {
    size_t want_len = 0, len = 0;
    if (clink_health_render(s, (clink_health_format)f, want, sizeof(want), &want_len) != 0) {
      fm_bad("rendering into a buffer failed");
      return 0;
    }
    char *out = (char *)&fm; /* sentinel: untouched on failure */
    int rc = clink_health_render_alloc(s, (clink_health_format)f, &out, &len);
    if (rc != 0) {
      if (out != (char *)&fm) fm_bad("clink_health_render_alloc() wrote *out and failed");
      return rc;
    }
    if (len != want_len || memcmp(out, want, len + 1) != 0) fm_bad("a different text");
    clink_free(out);
  }
  return 0;
}

START_TEST(health_renderings) {
  clink_health_snapshot *s = render_snapshot();
  unsigned long points = fm_run("health renderings", op_render, s);
  /* More than one per format: buffers did grow. */
  ck_assert_uint_gt(points, CLINK_HEALTH_FORMAT_SESSIONS_TEXT + 1);
  clink_health_snapshot_free(s);
}
END_TEST

/* -------------------------------------------------------------- transport */

#define TP_INIT                                                                       \
  "{\"type\":\"control_request\",\"request_id\":\"req_1\",\"request\":{\"subtype\":" \
  "\"initialize\",\"hooks\":null}}"
#define TP_USER                                                                         \
  "{\"type\":\"user\",\"session_id\":\"\",\"message\":{\"role\":\"user\",\"content\":" \
  "\"hi\"},\"parent_tool_use_id\":null}"
#define TP_TEXT_BYTES 6000 /* more than the initial 4 KiB read buffer */

typedef struct {
  uv_loop_t loop;
  clink__spawn_spec spec;
  char *text; /* TP_TEXT_BYTES x's */
  clink__transport *t;
  int lines, results, texts_ok, oom_lines, other_errors, exits, closes, trim_rc;
  uint64_t oom_total;
  int64_t exit_status;
  int term_signal;
  char tail[256];
} tp;

static void tp_on_line(void *ud, const char *line, size_t len) {
  tp *c = ud;
  c->lines++;
  if (memmem(line, len, "\"type\":\"result\"", 15) != NULL) c->results++;
  if (memmem(line, len, "\"type\":\"assistant\"", 18) != NULL &&
      memmem(line, len, c->text, TP_TEXT_BYTES) != NULL)
    c->texts_ok++;
}

static void tp_on_line_error(void *ud, int err, const char *prefix, size_t plen, uint64_t total) {
  tp *c = ud;
  if (err == UV_ENOMEM) {
    c->oom_lines++;
    c->oom_total = total;
  } else {
    c->other_errors++;
  }
}

static void tp_on_closed(void *ud) { ((tp *)ud)->closes++; }

static void tp_on_exit(void *ud, int64_t status, int sig) {
  tp *c = ud;
  c->exits++;
  c->exit_status = status;
  c->term_signal = sig;
  clink__transport_stderr_tail(c->t, c->tail, sizeof(c->tail));
  c->trim_rc = clink__transport_trim(c->t); /* the shrink allocates too */
  if (clink__transport_close(c->t, tp_on_closed, c) != 0) fm_bad("close refused");
}

static const clink__transport_cbs TP_CBS = {tp_on_line, tp_on_line_error, NULL, NULL,
                                            tp_on_exit};

static void tp_init(tp *c, const char *long_line) {
  memset(c, 0, sizeof(*c));
  ck_assert_int_eq(uv_loop_init(&c->loop), 0);
  c->text = malloc(TP_TEXT_BYTES);
  ck_assert_ptr_nonnull(c->text);
  memset(c->text, 'x', TP_TEXT_BYTES);
  clink_options *o;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_eq(clink_options_set_cli_path(o, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(o, NULL), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_BYTES", "6000"), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_STDERR_TURNS", "1"), 0);
  if (long_line) ck_assert_int_eq(clink_options_set_env(o, "FAKE_LONG_LINE", long_line), 0);
  ck_assert_int_eq(clink__spawn_spec_build(&c->spec, o, NULL, 0), 0);
  clink_options_free(o);
}

static void tp_free(tp *c) {
  clink__spawn_spec_free(&c->spec);
  free(c->text);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&c->loop), 0);
}

/* spawn, write initialize and one turn, read the answers, exit, close. */
static int op_transport(void *ctx) {
  tp *c = ctx;
  memset(&c->t, 0, sizeof(*c) - offsetof(tp, t));
  int rc = clink__transport_spawn(&c->t, &c->loop, &c->spec, &TP_CBS, c, NULL, 0);
  if (rc != 0) {
    uv_run(&c->loop, UV_RUN_DEFAULT); /* internal handles close */
    return rc;
  }
  int wrote_init = 0, wrote_user = 0;
  rc = clink__transport_write(c->t, TP_INIT, strlen(TP_INIT), NULL, NULL);
  if (rc == 0) {
    wrote_init = 1;
    rc = clink__transport_write(c->t, TP_USER, strlen(TP_USER), NULL, NULL);
    if (rc == 0) wrote_user = 1;
  }
  if (clink__transport_end_input(c->t) != 0) fm_bad("end_input refused");
  uv_run(&c->loop, UV_RUN_DEFAULT);
  if (c->exits != 1 || c->closes != 1) fm_bad("the transport did not report the exit and close");
  /* The fake exits 1 on a line that is not JSON: nothing half-built went out. */
  if (c->exit_status != 0 || c->term_signal != 0) fm_bad("the CLI did not end cleanly");
  if (c->other_errors) fm_bad("an unexpected line error");
  int tail_lost = strstr(c->tail, "out of memory") != NULL;
  /* control_response; system/init, the assistant text, result. */
  int complete = wrote_init && wrote_user && c->lines == 4 && c->results == 1 &&
                 c->texts_ok == 1 && !tail_lost;
  int reported = rc != 0 || c->oom_lines > 0 || tail_lost || c->trim_rc == UV_ENOMEM;
  if (c->lines > 0 && !wrote_init) fm_bad("lines without input");
  if (reported) return rc != 0 ? rc : UV_ENOMEM;
  if (!complete) fm_bad("something was lost and nobody was told");
  if (c->trim_rc != 0) fm_bad("trim failed");
  return fm.injected > 0 ? FM_ABSORBED : 0;
}

START_TEST(transport_spawn_write_read_close) {
  tp c;
  tp_init(&c, NULL);
  fm_run("transport: spawn, write, read, close", op_transport, &c);
  tp_free(&c);
}
END_TEST

/* The read buffer cannot grow for a 300 kB line: that line is reported
 * (UV_ENOMEM) and skipped, and the rest of the stream arrives. It is not an
 * end of stream, and the CLI, whose stdout is still read, never blocks. */
START_TEST(transport_read_out_of_memory_is_not_eof) {
  tp c;
  tp_init(&c, "300000");
  memset(&fm, 0, sizeof(fm));
  fm.realloc_only = 1;
  fm.fail_at = 1;
  fm.sticky = 1;
  fm.counting = 1;
  ck_assert_int_eq(clink__transport_spawn(&c.t, &c.loop, &c.spec, &TP_CBS, &c, NULL, 0), 0);
  ck_assert_int_eq(clink__transport_write(c.t, TP_USER, strlen(TP_USER), NULL, NULL), 0);
  ck_assert_int_eq(clink__transport_end_input(c.t), 0);
  uv_run(&c.loop, UV_RUN_DEFAULT);
  fm.counting = 0;
  ck_assert_uint_gt(fm.injected, 0);
  ck_assert_int_eq(c.oom_lines, 2); /* the 6000-byte text and the long line */
  ck_assert_uint_eq(c.oom_total, 300000);
  ck_assert_int_eq(c.results, 1);
  ck_assert_int_eq(c.exits, 1);
  ck_assert_int_eq(c.exit_status, 0);
  ck_assert_int_eq(c.closes, 1);
  tp_free(&c);
}
END_TEST

/* ---------------------------------------------------------------- session */

/* What the session wrote: lines are checked as they come (allocations
 * held), never half-built. */
static struct {
  int lines;
  int bad_lines;
  char last[4096];
} fs;

static int fm_send(void *ud, const char *line, size_t len) {
  (void)ud;
  int was = fm_hold();
  cJSON *j = cJSON_ParseWithLength(line, len);
  if (!cJSON_IsObject(j) || memchr(line, '\n', len) != NULL) fs.bad_lines++;
  cJSON_Delete(j);
  fm_release(was);
  size_t n = len < sizeof(fs.last) - 1 ? len : sizeof(fs.last) - 1;
  memcpy(fs.last, line, n);
  fs.last[n] = '\0';
  fs.lines++;
  return 0;
}

static void fm_on_message(clink_client *c, const clink_msg *m, void *ud) {
  (void)c;
  (void)m;
  (void)ud;
}

/* Pops every event; an error or a kill caused by a failed allocation makes
 * the run's result UV_ENOMEM; requests go to *held. */
static int fm_drain(clink__session *s, clink_request **held, uint64_t now) {
  int rc = 0;
  clink__ev_out e;
  while (clink__session_next_event(s, &e)) {
    if ((e.kind == CLINK__EV_ERROR || e.kind == CLINK__ACT_KILL) && e.status == UV_ENOMEM)
      rc = UV_ENOMEM;
    if (e.kind == CLINK__EV_CONNECT && e.status == UV_ENOMEM) rc = UV_ENOMEM;
    if (e.kind == CLINK__EV_TURN_DONE && e.status == UV_ENOMEM) rc = UV_ENOMEM;
    if (e.kind == CLINK__EV_REQUEST && held) *held = e.req;
    if (e.kind == CLINK__ACT_PUMP) clink__session_pump(s, now);
  }
  clink__session_line_done(s);
  return rc;
}

static int feed(clink__session *s, const char *line, clink_request **held) {
  clink__session_recv_line(s, line, strlen(line), 2000);
  return fm_drain(s, held, 2000);
}

/* connect: the initialize goes out whole (hooks and extra members) or not
 * at all. */
static int op_session_connect(void *ctx) {
  const clink_options *o = ctx;
  memset(&fs, 0, sizeof(fs));
  clink__session *s;
  int rc = clink__session_new(&s, o, fm_send, NULL, NULL);
  if (rc != 0) return rc;
  rc = clink__session_connect(s, NULL, NULL, 1000);
  if (rc != 0 && fs.lines) fm_bad("a line was written by a failed connect");
  if (rc == 0 && (fs.lines != 1 || strstr(fs.last, "\"hookCallbackIds\":[\"hook_0\"]") == NULL ||
                  strstr(fs.last, "\"agents\"") == NULL))
    fm_bad("initialize without its hooks or extra members");
  fm_drain(s, NULL, 1000);
  clink__session_free(s);
  if (fs.bad_lines) fm_bad("a half-built line was written");
  return rc;
}

#define INIT_OK(id) \
  "{\"type\":\"control_response\",\"response\":{\"subtype\":\"success\",\"request_id\":\"" id \
  "\",\"response\":{\"commands\":[],\"pid\":1}}}"

/* A whole turn with a permission prompt answered with an updated input. */
static int op_session_turn(void *ctx) {
  const clink_options *o = ctx;
  memset(&fs, 0, sizeof(fs));
  clink__session *s;
  int rc = clink__session_new(&s, o, fm_send, NULL, NULL);
  if (rc != 0) return rc;
  clink_request *held = NULL;
  rc = clink__session_connect(s, NULL, NULL, 1000);
  if (rc == 0) {
    /* Answer the initialize with the id it went out with. */
    char line[512];
    const char *p = strstr(fs.last, "\"request_id\":\"");
    char id[64] = "";
    if (p) sscanf(p + 14, "%63[^\"]", id);
    int n = snprintf(line, sizeof(line), INIT_OK("%s"), id);
    (void)n;
    rc = feed(s, line, NULL);
  }
  if (rc == 0) {
    int was = fm_hold();
    cJSON *content = cJSON_CreateString("use a tool");
    fm_release(was);
    rc = clink__session_query(s, content, fm_on_message, NULL, NULL, 2000);
  }
  if (rc == 0)
    rc = feed(s, "{\"type\":\"control_request\",\"request_id\":\"11c6833d\",\"request\":"
                 "{\"subtype\":\"can_use_tool\",\"tool_name\":\"Bash\",\"input\":"
                 "{\"command\":\"ls\"}}}", &held);
  if (rc == 0 && held == NULL) fm_bad("no request event");
  if (rc == 0 && held) {
    int before = fs.lines;
    rc = clink_request_allow(held, "{\"command\":\"ls -l\"}", "[{\"type\":\"setMode\"}]");
    if (rc == UV_ENOMEM) {
      if (fs.lines != before) fm_bad("a failed answer wrote a line");
      int was = fm_hold();
      clink_request_fail(held, "give up"); /* still pending: answer it */
      fm_release(was);
    } else if (strstr(fs.last, "\"updatedInput\":{\"command\":\"ls -l\"}") == NULL ||
               strstr(fs.last, "\"updatedPermissions\"") == NULL) {
      fm_bad("permission answer without its members");
    }
  }
  if (rc == 0)
    rc = feed(s, "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,"
                 "\"result\":\"ok\",\"session_id\":\"abc\"}", NULL);
  fm_drain(s, NULL, 2000);
  clink__session_free(s);
  if (fs.bad_lines) fm_bad("a half-built line was written");
  return rc;
}

static clink_options *session_opts(void) {
  clink_options *o;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_ge(clink_options_add_hook(o, "PreToolUse", "Bash", 30), 0);
  ck_assert_int_eq(clink_options_set_initialize_extra(o, "{\"agents\":{\"a\":{\"description\":\"d\"}}}"), 0);
  ck_assert_int_eq(clink_options_set_permission_cb(o, (clink_request_cb)fm_on_message, NULL), 0);
  return o;
}

START_TEST(session_connect) {
  clink_options *o = session_opts();
  fm_run("session connect (initialize with hooks)", op_session_connect, o);
  clink_options_free(o);
}
END_TEST

START_TEST(session_turn_with_permission) {
  clink_options *o = session_opts();
  fm_run("session turn + permission answer", op_session_turn, o);
  clink_options_free(o);
}
END_TEST

/* ------------------------------------------------- client and pool (I/O) */

typedef struct io_run {
  int connected, connect_status, done, turn_status, closed, msgs, oom_errors;
  int acquired, acquire_status;
  clink_client *c;
  clink_pool *pool;
} io_run;

static void io_on_connect(clink_client *c, int status, void *ud) {
  io_run *r = ud;
  (void)c;
  r->connected = 1;
  r->connect_status = status;
}

static void io_on_msg(clink_client *c, const clink_msg *m, void *ud) {
  (void)c;
  (void)m;
  ((io_run *)ud)->msgs++;
}

static void io_on_error(clink_client *c, int err, const char *detail, void *ud) {
  (void)c;
  (void)detail;
  if (err == UV_ENOMEM) ((io_run *)ud)->oom_errors++;
}

static void io_on_done(clink_client *c, int status, const clink_msg *res, void *ud) {
  io_run *r = ud;
  (void)c;
  (void)res;
  r->done = 1;
  r->turn_status = status;
}

static void io_on_closed(clink_client *c, void *ud) {
  (void)c;
  ((io_run *)ud)->closed = 1;
}

static clink_options *io_opts(void) {
  clink_options *o;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_eq(clink_options_set_cli_path(o, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(o, NULL), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(o, 200, 200), 0);
  ck_assert_int_eq(clink_options_set_connect_timeout_ms(o, 2000), 0);
  ck_assert_int_eq(clink_options_set_turn_inactivity_ms(o, 2000), 0);
  ck_assert_int_eq(clink_options_set_idle_probe(o, 0, 1000), 0);
  return o;
}

/* connect, one turn, close: a failure anywhere is the caller's error (a
 * return, or a callback's status), never a hang nor a leak. */
static int op_client_turn(void *ctx) {
  const clink_options *o = ctx;
  uv_loop_t loop;
  int was = fm_hold();
  uv_loop_init(&loop);
  fm_release(was);
  io_run r;
  memset(&r, 0, sizeof(r));
  int rc = clink_client_new(&r.c, &loop, o);
  if (rc != 0) {
    uv_loop_close(&loop);
    return rc;
  }
  clink_client_set_error_cb(r.c, io_on_error, &r);
  rc = clink_client_connect(r.c, io_on_connect, &r);
  if (rc == 0) {
    while (!r.connected && uv_run(&loop, UV_RUN_ONCE)) {
    }
    rc = r.connect_status;
  }
  if (rc == 0) rc = clink_client_query(r.c, "hello", io_on_msg, io_on_done, &r);
  if (rc == 0) {
    while (!r.done && uv_run(&loop, UV_RUN_ONCE)) {
    }
    rc = r.turn_status;
  }
  if (rc == 0 && r.oom_errors) rc = UV_ENOMEM; /* reported, not returned */
  /* A failure the transport absorbs (a read buffer that could not grow is
   * read in smaller chunks) costs nothing: the whole turn is there. */
  if (rc == 0 && fm.injected) rc = r.msgs == 3 ? FM_ABSORBED : (fm_bad("a message was lost"), 0);
  clink_client_close(r.c, io_on_closed, &r);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (!r.closed) fm_bad("close callback missing");
  if (uv_loop_close(&loop) != 0) fm_bad("handles left open");
  return rc;
}

static void io_on_acquire(clink_pool *p, int status, clink_client *c, uint64_t ra, void *ud) {
  io_run *r = ud;
  (void)p;
  (void)ra;
  r->acquired = 1;
  r->acquire_status = status;
  r->c = c;
}

static void io_on_pool_closed(clink_pool *p, void *ud) {
  (void)p;
  ((io_run *)ud)->closed = 1;
}

/* A pool of one: acquire (a spawn), release, shutdown. */
static int op_pool_acquire_release(void *ctx) {
  const clink_options *o = ctx;
  uv_loop_t loop;
  int was = fm_hold();
  uv_loop_init(&loop);
  fm_release(was);
  io_run r;
  memset(&r, 0, sizeof(r));
  clink_pool_config *cfg = NULL;
  int rc = clink_pool_config_new(&cfg);
  if (rc == 0) rc = clink_pool_config_set_size(cfg, 0, 1);
  if (rc == 0) rc = clink_pool_new(&r.pool, &loop, o, cfg);
  clink_pool_config_free(cfg);
  if (rc != 0) {
    uv_loop_close(&loop);
    return rc;
  }
  rc = clink_pool_acquire(r.pool, NULL, "failmalloc.c", io_on_acquire, &r);
  if (rc == 0) {
    while (!r.acquired && uv_run(&loop, UV_RUN_ONCE)) {
    }
    rc = r.acquire_status;
  }
  if (rc == 0 && clink_pool_release(r.pool, r.c) != 0) fm_bad("release refused");
  /* Absorbed by the transport (smaller reads): the member came, connected. */
  if (rc == 0 && fm.injected) rc = FM_ABSORBED;
  clink_pool_shutdown(r.pool, CLINK_POOL_DRAIN, io_on_pool_closed, &r);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (!r.closed) fm_bad("shutdown callback missing");
  if (uv_loop_close(&loop) != 0) fm_bad("handles left open");
  return rc;
}

START_TEST(client_connect_and_turn) {
  clink_options *o = io_opts();
  fm_run("client connect + turn + close", op_client_turn, o);
  clink_options_free(o);
}
END_TEST

START_TEST(pool_acquire_release) {
  clink_options *o = io_opts();
  fm_run("pool acquire + release + shutdown", op_pool_acquire_release, o);
  clink_options_free(o);
}
END_TEST

int main(void) {
  cJSON_Hooks hooks = {__wrap_malloc, __wrap_free};
  cJSON_InitHooks(&hooks);
  Suite *s = suite_create("failmalloc");
  TCase *tc = tcase_create("constructors");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, options_new_set_dup);
  tcase_add_test(tc, retry_policy_and_state);
  tcase_add_test(tc, breaker_config_breaker_registry);
  tcase_add_test(tc, breaker_registry_alone);
  tcase_add_test(tc, control_table);
  tcase_add_test(tc, spawn_spec_with_shim);
  tcase_add_test(tc, spawn_spec_direct);
  suite_add_tcase(s, tc);
  tc = tcase_create("parsing");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, msg_parse_assistant);
  tcase_add_test(tc, msg_parse_result);
  tcase_add_test(tc, msg_ref_borrowed);
  tcase_add_test(tc, framer_growth);
  suite_add_tcase(s, tc);
  tc = tcase_create("wire");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, wire_builders);
  tcase_add_test(tc, health_renderings);
  suite_add_tcase(s, tc);
  tc = tcase_create("transport");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, transport_spawn_write_read_close);
  tcase_add_test(tc, transport_read_out_of_memory_is_not_eof);
  suite_add_tcase(s, tc);
  tc = tcase_create("session");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, session_connect);
  tcase_add_test(tc, session_turn_with_permission);
  suite_add_tcase(s, tc);
  tc = tcase_create("io");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, client_connect_and_turn);
  tcase_add_test(tc, pool_acquire_release);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
