/* clink_ask and the fallback chain against the real `claude` CLI talking to
 * loopback Messages API stubs (tests/stub/messages_stub.py), as
 * test-real-cli.c does: primary success, then the API answering 529 -> the
 * cached answer for the same prompt and the mock for a new one; a 400 is not
 * masked; an alternative provider (a second pool whose CLI talks to a second
 * stub) answers when the first fails.
 *
 * Env: CLINK_TEST_REAL_CLI (the binary; unset -> exit 77, meson's SKIP),
 *      CLINK_TEST_STUB (the stub script, set by meson). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <claudelink.h>

#include "testutil.h"

#define SKIP_EXIT 77
#define STUBS 2

static const char *cli_path;
static const char *stub_path;
static char base_dir[PATH_MAX];

typedef struct stub {
  pid_t pid;
  int in; /* closing it stops the stub */
  int port;
  char script[PATH_MAX], log[PATH_MAX];
} stub;

typedef struct call {
  int done, status, api_status;
  clink_source source;
  clink_failure_class klass;
  int primary_err;
  char answer[512];
} call;

static struct {
  uv_loop_t loop;
  char dir[PATH_MAX], home[PATH_MAX], cwd[PATH_MAX], tmp[PATH_MAX];
  stub stubs[STUBS];
  clink_pool *pool[STUBS];
  int pools_closed;
  clink_fallback *fb;
  clink_ask_options *ao;
} F;

#define RUN_UNTIL(cond)                                                        \
  do {                                                                         \
    while (!(cond))                                                            \
      ck_assert_msg(uv_run(&F.loop, UV_RUN_ONCE) != 0 || (cond),               \
                    "loop ended before: " #cond);                              \
  } while (0)

/* Starts stub i with script_json; its first stdout line is "PORT <n>". */
static void start_stub(int i, const char *script_json) {
  stub *s = &F.stubs[i];
  char name[32];
  snprintf(name, sizeof(name), "script%d.json", i);
  clink_test_join(s->script, F.dir, name);
  snprintf(name, sizeof(name), "requests%d.jsonl", i);
  clink_test_join(s->log, F.dir, name);
  clink_test_write_file(s->script, script_json);
  int in[2], out[2];
  ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0) _exit(126);
    execlp("python3", "python3", stub_path, "--script", s->script, "--log", s->log,
           (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  s->pid = pid;
  s->in = in[1];
  char buf[64];
  size_t n = 0;
  while (n < sizeof(buf) - 1) {
    ssize_t r = read(out[0], buf + n, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || buf[n] == '\n') break;
    n++;
  }
  buf[n] = '\0';
  close(out[0]);
  ck_assert_msg(sscanf(buf, "PORT %d", &s->port) == 1 && s->port > 0, "stub said '%s'", buf);
}

static void stop_stubs(void) {
  for (int i = 0; i < STUBS; i++) {
    stub *s = &F.stubs[i];
    if (s->in >= 0) close(s->in);
    s->in = -1;
    if (s->pid > 0) {
      int st;
      while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
      }
      s->pid = 0;
    }
  }
}

static void on_stderr(clink_client *c, const char *line, size_t len, void *ud) {
  (void)c;
  (void)ud;
  fprintf(stderr, "claude stderr: %.*s\n", (int)len, line);
}

/* A pool of one real CLI talking to stub i. */
static void make_pool(int i) {
  clink_options *o;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_eq(clink_options_set_cli_path(o, cli_path), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(o, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_cwd(o, F.cwd), 0);
  ck_assert_int_eq(clink_options_set_connect_timeout_ms(o, 30000), 0);
  ck_assert_int_eq(clink_options_set_control_timeout_ms(o, 30000), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(o, 5000, 2000), 0);
  ck_assert_int_eq(clink_options_set_close_turn_wait_ms(o, 2000), 0);
  ck_assert_int_eq(clink_options_set_stderr_cb(o, on_stderr, NULL), 0);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", F.stubs[i].port);
  const char *const set[][2] = {{"HOME", F.home},
                                {"ANTHROPIC_API_KEY", "sk-test-dummy"},
                                {"ANTHROPIC_BASE_URL", url},
                                {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"},
                                {"DISABLE_TELEMETRY", "1"},
                                {"DISABLE_AUTOUPDATER", "1"},
                                {"CLAUDE_CODE_MAX_RETRIES", "0"},
                                {"NO_PROXY", "127.0.0.1"},
                                {"TMPDIR", F.tmp}};
  for (size_t k = 0; k < sizeof(set) / sizeof(set[0]); k++)
    ck_assert_int_eq(clink_options_set_env(o, set[k][0], set[k][1]), 0);
  static const char *const drop[] = {
      "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL", "ANTHROPIC_CUSTOM_HEADERS",
      "CLAUDE_CONFIG_DIR",    "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX",
      "HTTP_PROXY",           "HTTPS_PROXY",     "ALL_PROXY",
      "http_proxy",           "https_proxy",     "all_proxy"};
  for (size_t k = 0; k < sizeof(drop) / sizeof(drop[0]); k++)
    ck_assert_int_eq(clink_options_set_env(o, drop[k], NULL), 0);
  clink_pool_config *cfg;
  ck_assert_int_eq(clink_pool_config_new(&cfg), 0);
  ck_assert_int_eq(clink_pool_config_set_size(cfg, 1, 1), 0);
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(cfg, 60000), 0);
  ck_assert_int_eq(clink_pool_config_set_validation(cfg, 0, 0), 0);
  ck_assert_int_eq(clink_pool_new(&F.pool[i], &F.loop, o, cfg), 0);
  clink_pool_config_free(cfg);
  clink_options_free(o);
}

static void on_pool_closed(clink_pool *p, void *ud) {
  (void)p;
  (void)ud;
  F.pools_closed++;
}

static void setup(void) {
  memset(&F, 0, sizeof(F));
  for (int i = 0; i < STUBS; i++) F.stubs[i].in = -1;
  ck_assert_int_eq(uv_loop_init(&F.loop), 0);
  clink_test_join(F.dir, base_dir, "t.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(F.dir));
  clink_test_join(F.home, F.dir, "home");
  clink_test_join(F.cwd, F.dir, "cwd");
  clink_test_join(F.tmp, F.dir, "tmp");
  ck_assert_int_eq(mkdir(F.home, 0700), 0);
  ck_assert_int_eq(mkdir(F.cwd, 0700), 0);
  ck_assert_int_eq(mkdir(F.tmp, 0700), 0);
  ck_assert_int_eq(clink_fallback_new_seed(&F.fb, "chat"), 0);
  ck_assert_int_eq(clink_ask_options_new(&F.ao), 0);
  ck_assert_int_eq(clink_ask_options_set_fallback(F.ao, F.fb), 0);
  ck_assert_int_eq(clink_ask_options_set_retry_policy(F.ao, NULL), 0);
}

static void teardown(void) {
  int n = 0;
  for (int i = 0; i < STUBS; i++)
    if (F.pool[i]) {
      clink_pool_shutdown(F.pool[i], CLINK_POOL_IMMEDIATE, on_pool_closed, NULL);
      n++;
    }
  RUN_UNTIL(F.pools_closed == n);
  stop_stubs();
  CLINK_TEST_LOOP_DONE(&F.loop);
  clink_test_rm_rf(F.dir);
  clink_fallback_free(F.fb);
  clink_ask_options_free(F.ao);
}

static void on_done(clink_ask_call *a, int status, void *ud) {
  call *c = ud;
  c->done++;
  c->status = status;
  c->source = clink_ask_source(a);
  c->klass = clink_ask_failure(a);
  c->primary_err = clink_ask_primary_error(a);
  const clink_msg *r = clink_ask_result(a);
  c->api_status = r ? clink_msg_result_api_error_status(r) : 0;
  snprintf(c->answer, sizeof(c->answer), "%s", clink_ask_answer(a, NULL));
  fprintf(stderr, "ask: status %s source %s class %s answer '%.80s' (%llu ms)\n",
          clink_err_name(status), clink_source_name(c->source),
          clink_failure_class_name(c->klass), c->answer,
          (unsigned long long)clink_ask_latency_us(a) / 1000);
}

static call ask(int pool, const char *prompt) {
  call c;
  memset(&c, 0, sizeof(c));
  ck_assert_int_eq(clink_ask(NULL, F.pool[pool], NULL, prompt, F.ao, on_done, &c), 0);
  RUN_UNTIL(c.done);
  return c;
}

/* ------------------------------------------------------------------ tests */

START_TEST(api_529_gets_cache_then_mock) {
  start_stub(0, "[{\"text\": \"four\"}, {\"error\": 529, \"message\": \"Overloaded\"}]");
  make_pool(0);
  call p = ask(0, "What is 2+2?");
  ck_assert_int_eq(p.status, 0);
  ck_assert_int_eq(p.source, CLINK_SOURCE_PRIMARY);
  ck_assert_str_eq(p.answer, "four");
  call c = ask(0, "  What is 2+2?\n");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_str_eq(c.answer, "four");
  ck_assert_int_eq(c.primary_err, CLINK_ETURN_FAILED);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_API_RETRYABLE);
  ck_assert_int_eq(c.api_status, 529);
  call m = ask(0, "Tell me something new");
  ck_assert_int_eq(m.status, 0);
  ck_assert_int_eq(m.source, CLINK_SOURCE_MOCK);
  ck_assert_str_eq(m.answer, CLINK_FALLBACK_DEFAULT_MOCK_TEXT);
  clink_fallback_stats s;
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_fallback_get_stats(F.fb, &s), 0);
  ck_assert_uint_eq(s.total_calls, 3);
  ck_assert_uint_eq(s.primary_success, 1);
  ck_assert_uint_eq(s.fallback_used, 2);
  ck_assert_uint_eq(s.cache_hits, 1);
  ck_assert_uint_eq(s.cache_misses, 1);
}
END_TEST

START_TEST(api_400_is_not_masked) {
  start_stub(0, "[{\"text\": \"fine\"}, {\"error\": 400, \"message\": \"bad request\"}]");
  make_pool(0);
  call p = ask(0, "Hello");
  ck_assert_int_eq(p.source, CLINK_SOURCE_PRIMARY);
  call c = ask(0, "Hello"); /* cached, yet the 400 comes back */
  ck_assert_int_eq(c.status, CLINK_ETURN_FAILED);
  ck_assert_int_eq(c.source, CLINK_SOURCE_NONE);
  ck_assert_int_eq(c.api_status, 400);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_API_REJECTED);
  ck_assert_str_eq(c.answer, "");
  clink_fallback_stats s;
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_fallback_get_stats(F.fb, &s), 0);
  ck_assert_uint_eq(s.failed_fast, 1);
  ck_assert_uint_eq(s.cache_hits, 0);
}
END_TEST

START_TEST(alternative_provider_answers) {
  start_stub(0, "[{\"error\": 529, \"message\": \"Overloaded\"}]");
  start_stub(1, "[{}]"); /* echo */
  make_pool(0);
  make_pool(1);
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new(&fb, "chat"), 0);
  clink_breaker *b;
  ck_assert_int_eq(clink_breaker_new(&b, "alternative", NULL, 1), 0);
  ck_assert_int_eq(clink_fallback_add_alternative(fb, F.pool[1], b), 0);
  ck_assert_int_eq(clink_fallback_add_mock(fb, NULL), 1);
  ck_assert_int_eq(clink_ask_options_set_fallback(F.ao, fb), 0);
  call c = ask(0, "Which provider answers?");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_ALTERNATIVE);
  ck_assert_str_eq(c.answer, "echo: Which provider answers?");
  ck_assert_int_eq(c.klass, CLINK_FAILURE_API_RETRYABLE);
  ck_assert_int_eq(c.api_status, 0); /* the alternative's result: no error */
  clink_breaker_stats bs;
  bs.struct_size = sizeof(bs);
  ck_assert_int_eq(clink_breaker_get_stats(b, 0, &bs), 0);
  ck_assert_uint_eq(bs.total_successes, 1);
  clink_fallback_stats s;
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_fallback_get_stats(fb, &s), 0);
  ck_assert_uint_eq(s.fallback_by_strategy[CLINK_FALLBACK_ALTERNATIVE_PROVIDER], 1);
  ck_assert_int_eq(clink_ask_options_set_fallback(F.ao, F.fb), 0);
  clink_fallback_free(fb);
  clink_breaker_free(b);
}
END_TEST

static int usable(const char *path) { return path && path[0] && access(path, X_OK) == 0; }

int main(void) {
  cli_path = getenv("CLINK_TEST_REAL_CLI");
  if (!usable(cli_path)) {
    printf("SKIP: real claude CLI not installed (set CLINK_TEST_REAL_CLI; "
           "tests/real-cli/install.sh installs it)\n");
    return SKIP_EXIT;
  }
  stub_path = getenv("CLINK_TEST_STUB");
  if (stub_path == NULL || access(stub_path, R_OK) != 0) {
    fprintf(stderr, "CLINK_TEST_STUB is not set or unreadable: run the tests through "
                    "`meson test`\n");
    return EXIT_FAILURE;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(base_dir, sizeof(base_dir), "%s/clink-real-fallback.XXXXXX",
           tmp && tmp[0] ? tmp : "/tmp");
  if (mkdtemp(base_dir) == NULL) {
    perror("mkdtemp");
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("real-fallback");
  TCase *tc = tcase_create("fallback");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, api_529_gets_cache_then_mock);
  tcase_add_test(tc, api_400_is_not_masked);
  tcase_add_test(tc, alternative_provider_answers);
  suite_add_tcase(s, tc);
  int rc = clink_test_run(s);
  clink_test_rm_rf(base_dir);
  return rc;
}
