/* The client against the real `claude` CLI (real-cli.md), talking to a
 * loopback Messages API stub (tests/stub/messages_stub.py). Every test starts
 * its own stub, HOME and cwd, drives the CLI only through the public client
 * API, runs the loop until nothing is left and then counts what happened.
 *
 * Env: CLINK_TEST_REAL_CLI (the binary; unset -> exit 77, meson's SKIP),
 *      CLINK_TEST_STUB (the stub script, set by meson). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <claudelink.h>

#include "testutil.h"

#define SKIP_EXIT 77
#define MAX_TURNS 4

/* Paths fixed by main() before any test runs (inherited by forked tests). */
static const char *cli_path;
static const char *stub_path;
static char base_dir[PATH_MAX]; /* removed by main(), even after a failed test */
static int trace;               /* CLINK_TEST_TRACE=1: print every message */

typedef struct turn_rec {
  const char *prompt;
  int done, status;
  int messages, assistant, text_blocks, tool_use_blocks, stream_events, system_inits, users;
  char first_text[256];
  char result_subtype[64], result_text[512];
  int have_result, is_error, api_status, denials;
  uint64_t t_query, t_first_assistant, t_first_delta; /* uv_hrtime() */
} turn_rec;

typedef struct fixture {
  uv_loop_t loop;
  uv_timer_t timer; /* deferred permission answers, the kill */
  char dir[PATH_MAX], home[PATH_MAX], cwd[PATH_MAX], script[PATH_MAX], log[PATH_MAX];
  pid_t stub_pid;
  int stub_in; /* write end of the stub's stdin: closing it stops the stub */
  int port;
  clink_options *opts;
  clink_client *c;

  /* what the test wants */
  int queue_all;          /* query every prompt at connect time */
  int interrupt_on_delta; /* interrupt at the first text delta of turn 0 */
  int kill_on_delta;      /* SIGKILL the CLI from a timer after the first delta */
  int deny;               /* answer can_use_tool with deny (deferred) */

  /* what happened */
  turn_rec turns[MAX_TURNS];
  int nturns, started;
  int connects, connect_status;
  int server_info, server_info_pid, pid_at_connect;
  int closes, errors, stderr_lines, unsolicited;
  int states[16], nstates;
  char error_text[1024]; /* last_error when the client went to ERROR */
  int perm_calls, perm_answer_rc;
  char perm_tool[64], perm_command[256];
  clink_request *pending_req;
  int ctl_calls, ctl_status;
  int killed, kill_rc;
  clink_client_metrics m; /* snapshot when the last turn ended */
  uint64_t t_connect_called;
  int tearing_down; /* callbacks check nothing more */
} fixture;

static fixture F;

/* -------------------------------------------------------------- helpers */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void rm_rf(const char *path) {
  if (path[0]) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void join(char *out, const char *dir, const char *name) {
  int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
  ck_assert(n > 0 && n < PATH_MAX);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fputs(text, f) >= 0, 1);
  ck_assert_int_eq(fclose(f), 0);
}

static double ms_between(uint64_t from, uint64_t to) {
  return from && to && to >= from ? (double)(to - from) / 1e6 : -1.0;
}

/* Starts the stub with a pipe on stdin and stdout and reads its port. */
static void start_stub(const char *script_json) {
  write_file(F.script, script_json);
  int in[2], out[2];
  ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* dup2 clears close-on-exec on 0 and 1; everything else closes at exec. */
    if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0) _exit(126);
    execlp("python3", "python3", stub_path, "--script", F.script, "--log", F.log,
           (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  F.stub_pid = pid;
  F.stub_in = in[1];
  /* The first line is "PORT <n>\n": a blocking read is the handshake. */
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
  ck_assert_msg(sscanf(buf, "PORT %d", &F.port) == 1 && F.port > 0, "stub said '%s'", buf);
}

static void stop_stub(void) {
  if (F.stub_in >= 0) close(F.stub_in);
  F.stub_in = -1;
  if (F.stub_pid > 0) {
    int st;
    while (waitpid(F.stub_pid, &st, 0) < 0 && errno == EINTR) {
    }
    F.stub_pid = 0;
  }
}

/* One JSON line of the stub log per request: the /v1/messages POSTs, in
 * order, as (number of messages, body text). Returns how many. */
static int stub_requests(int *nmsgs, char **bodies, int max) {
  FILE *f = fopen(F.log, "r");
  if (f == NULL) return 0;
  int n = 0;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    cJSON *j = cJSON_Parse(line);
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(j, "method");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(j, "path");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(j, "body");
    if (cJSON_IsString(method) && strcmp(method->valuestring, "POST") == 0 &&
        cJSON_IsString(path) && strncmp(path->valuestring, "/v1/messages", 12) == 0 &&
        (path->valuestring[12] == '\0' || path->valuestring[12] == '?') && n < max) {
      nmsgs[n] = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "messages"));
      if (bodies) bodies[n] = cJSON_PrintUnformatted(body);
      n++;
    }
    cJSON_Delete(j);
  }
  free(line);
  fclose(f);
  return n;
}

/* ------------------------------------------------------------ callbacks */

static void on_close(clink_client *c, void *ud) {
  (void)c;
  ((fixture *)ud)->closes++;
}

static void close_client(void) {
  int rc = clink_client_close(F.c, on_close, &F);
  if (!F.tearing_down) ck_assert_int_eq(rc, 0);
}

static void on_state(clink_client *c, clink_client_state from, clink_client_state to,
                     void *ud) {
  (void)from;
  fixture *f = ud;
  if (f->nstates < 16) f->states[f->nstates++] = (int)to;
  if (to == CLINK_CLIENT_ERROR) {
    snprintf(f->error_text, sizeof(f->error_text), "%s", clink_client_last_error(c));
    close_client();
  }
}

static void on_error(clink_client *c, int err, const char *detail, void *ud) {
  (void)c;
  ((fixture *)ud)->errors++;
  fprintf(stderr, "client error %s: %s\n", clink_err_name(err), detail ? detail : "");
}

static void on_stderr(clink_client *c, const char *line, size_t len, void *ud) {
  (void)c;
  ((fixture *)ud)->stderr_lines++;
  fprintf(stderr, "claude stderr: %.*s\n", (int)len, line);
}

static void on_unsolicited(clink_client *c, const clink_msg *msg, void *ud) {
  (void)c;
  ((fixture *)ud)->unsolicited++;
  fprintf(stderr, "unsolicited %s/%s\n", clink_msg_type(msg),
          clink_msg_subtype(msg) ? clink_msg_subtype(msg) : "-");
}

static void on_ctl(clink_client *c, int status, const clink_msg *response, void *ud) {
  (void)c;
  (void)response;
  fixture *f = ud;
  f->ctl_calls++;
  f->ctl_status = status;
}

static void on_kill_timer(uv_timer_t *t) {
  fixture *f = t->data;
  int pid = clink_client_pid(f->c);
  f->killed++;
  f->kill_rc = pid > 0 ? kill(pid, SIGKILL) : -1;
}

static int is_text_delta(const clink_msg *m) {
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "event");
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
  return cJSON_IsString(type) && strcmp(type->valuestring, "content_block_delta") == 0;
}

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  turn_rec *t = ud;
  if (F.tearing_down) return;
  t->messages++;
  if (trace) {
    size_t len;
    const char *raw = clink_msg_raw(m, &len);
    fprintf(stderr, "turn %d: %.*s%s\n", (int)(t - F.turns), (int)(len < 300 ? len : 300), raw,
            len > 300 ? "..." : "");
  }
  switch (clink_msg_get_kind(m)) {
    case CLINK_MSG_ASSISTANT:
      if (t->assistant++ == 0) t->t_first_assistant = uv_hrtime();
      for (size_t i = 0; i < clink_msg_block_count(m); i++) {
        clink_block_kind k = clink_msg_block_kind(m, i);
        if (k == CLINK_BLOCK_TEXT && t->text_blocks++ == 0)
          snprintf(t->first_text, sizeof(t->first_text), "%s", clink_msg_block_text(m, i));
        if (k == CLINK_BLOCK_TOOL_USE) t->tool_use_blocks++;
      }
      break;
    case CLINK_MSG_STREAM_EVENT:
      t->stream_events++;
      if (is_text_delta(m) && t->t_first_delta == 0) {
        t->t_first_delta = uv_hrtime();
        /* The stub holds the stream right after this delta. */
        if (t == &F.turns[0] && F.interrupt_on_delta)
          ck_assert_int_eq(clink_client_interrupt(c, on_ctl, &F), 0);
        if (t == &F.turns[0] && F.kill_on_delta)
          ck_assert_int_eq(uv_timer_start(&F.timer, on_kill_timer, 20, 0), 0);
      }
      break;
    case CLINK_MSG_SYSTEM:
      if (clink_msg_subtype(m) && strcmp(clink_msg_subtype(m), "init") == 0) t->system_inits++;
      break;
    case CLINK_MSG_USER:
      t->users++;
      break;
    default:
      break;
  }
}

static void start_turn(int i);

static void on_done(clink_client *c, int status, const clink_msg *result, void *ud) {
  turn_rec *t = ud;
  if (F.tearing_down) return;
  t->done++;
  t->status = status;
  if (result) {
    t->have_result = 1;
    const char *st = clink_msg_subtype(result);
    const char *text = clink_msg_result_text(result);
    snprintf(t->result_subtype, sizeof(t->result_subtype), "%s", st ? st : "");
    snprintf(t->result_text, sizeof(t->result_text), "%s", text ? text : "");
    t->is_error = clink_msg_result_is_error(result);
    t->api_status = clink_msg_result_api_error_status(result);
    t->denials = cJSON_GetArraySize(clink_msg_result_permission_denials(result));
  }
  int idx = (int)(t - F.turns);
  if (idx + 1 < F.nturns) {
    if (!F.queue_all) start_turn(idx + 1);
    return;
  }
  F.m.struct_size = sizeof(F.m);
  ck_assert_int_eq(clink_client_get_metrics(c, &F.m), 0);
  /* A dead process: the client goes to ERROR next and on_state closes it. */
  if (status != CLINK_EEXITED) close_client();
}

static void start_turn(int i) {
  turn_rec *t = &F.turns[i];
  t->t_query = uv_hrtime();
  ck_assert_int_eq(clink_client_query(F.c, t->prompt, on_message, on_done, t), 0);
  F.started++;
}

static void on_connect(clink_client *c, int status, void *ud) {
  fixture *f = ud;
  f->connects++;
  f->connect_status = status;
  if (status != 0) return; /* on_state closed it */
  const clink_msg *info = clink_client_server_info(c);
  f->server_info = info != NULL;
  const cJSON *resp = cJSON_GetObjectItemCaseSensitive(clink_msg_json(info), "response");
  const cJSON *pid =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp, "response"), "pid");
  f->server_info_pid = cJSON_IsNumber(pid) ? pid->valueint : -1;
  f->pid_at_connect = clink_client_pid(c);
  if (f->queue_all)
    for (int i = 0; i < f->nturns; i++) start_turn(i);
  else
    start_turn(0);
}

static void on_deny_timer(uv_timer_t *t) {
  fixture *f = t->data;
  clink_request *r = f->pending_req;
  f->pending_req = NULL;
  f->perm_answer_rc = clink_request_deny(r, "denied by test", 0);
}

static void on_permission(clink_client *c, clink_request *req, void *ud) {
  (void)c;
  fixture *f = ud;
  if (f->tearing_down) {
    clink_request_deny(req, "test over", 1);
    return;
  }
  f->perm_calls++;
  ck_assert_str_eq(clink_request_subtype(req), "can_use_tool");
  const cJSON *name = clink_request_field(req, "tool_name");
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(clink_request_field(req, "input"), "command");
  snprintf(f->perm_tool, sizeof(f->perm_tool), "%s",
           cJSON_IsString(name) ? name->valuestring : "");
  snprintf(f->perm_command, sizeof(f->perm_command), "%s",
           cJSON_IsString(cmd) ? cmd->valuestring : "");
  if (f->deny) {
    /* Answered later, from the loop, as a real host would after asking. */
    f->pending_req = req;
    ck_assert_int_eq(uv_timer_start(&f->timer, on_deny_timer, 0, 0), 0);
  } else {
    f->perm_answer_rc = clink_request_allow(req, NULL, NULL);
  }
}

/* -------------------------------------------------------------- fixture */

static void env(const char *name, const char *value) {
  ck_assert_int_eq(clink_options_set_env(F.opts, name, value), 0);
}

static void setup(void) {
  memset(&F, 0, sizeof(F));
  F.stub_in = -1;
  ck_assert_int_eq(uv_loop_init(&F.loop), 0);
  ck_assert_int_eq(uv_timer_init(&F.loop, &F.timer), 0);
  F.timer.data = &F;
  join(F.dir, base_dir, "t.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(F.dir));
  join(F.home, F.dir, "home");
  join(F.cwd, F.dir, "cwd");
  join(F.script, F.dir, "script.json");
  join(F.log, F.dir, "requests.jsonl");
  ck_assert_int_eq(mkdir(F.home, 0700), 0);
  ck_assert_int_eq(mkdir(F.cwd, 0700), 0);

  ck_assert_int_eq(clink_options_new(&F.opts), 0);
  ck_assert_int_eq(clink_options_set_cli_path(F.opts, cli_path), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(F.opts, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_cwd(F.opts, F.cwd), 0);
  /* initialize takes 1-2 s here; give slow machines room. */
  ck_assert_int_eq(clink_options_set_connect_timeout_ms(F.opts, 30000), 0);
  ck_assert_int_eq(clink_options_set_control_timeout_ms(F.opts, 30000), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(F.opts, 5000, 2000), 0);
  /* Only a failed test closes mid-turn: do not wait long for it. */
  ck_assert_int_eq(clink_options_set_close_turn_wait_ms(F.opts, 2000), 0);
  ck_assert_int_eq(clink_options_set_stderr_cb(F.opts, on_stderr, &F), 0);
  /* real-cli.md §2 and §9: loopback only, nothing from the host. */
  env("HOME", F.home);
  env("ANTHROPIC_API_KEY", "sk-test-dummy");
  env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
  env("DISABLE_TELEMETRY", "1");
  env("DISABLE_AUTOUPDATER", "1");
  env("CLAUDE_CODE_MAX_RETRIES", "0");
  env("NO_PROXY", "127.0.0.1");
  static const char *const drop[] = {
      "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_MODEL", "ANTHROPIC_CUSTOM_HEADERS",
      "CLAUDE_CONFIG_DIR",    "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX",
      "HTTP_PROXY",           "HTTPS_PROXY",     "ALL_PROXY",
      "http_proxy",           "https_proxy",     "all_proxy"};
  for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) env(drop[i], NULL);
}

static void teardown(void) {
  /* Only after a failed check without fork mode (valgrind) is the client
   * still open here: close it so the loop can end. */
  F.tearing_down = 1;
  if (F.c && F.closes == 0) close_client();
  stop_stub();
  uv_close((uv_handle_t *)&F.timer, NULL);
  uv_run(&F.loop, UV_RUN_DEFAULT);
  rm_rf(F.dir); /* the CLI is reaped: nothing writes there any more */
  clink_options_free(F.opts);
  CLINK_TEST_LOOP_DONE(&F.loop);
}

/* Starts the stub, then the client with prompts[0..n), and runs the loop
 * until the client is closed and everything is reaped. */
static void run(const char *script_json, const char *const *prompts, int n) {
  start_stub(script_json);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", F.port);
  env("ANTHROPIC_BASE_URL", url);
  ck_assert_int_le(n, MAX_TURNS);
  F.nturns = n;
  for (int i = 0; i < n; i++) F.turns[i].prompt = prompts[i];

  ck_assert_int_eq(clink_client_new(&F.c, &F.loop, F.opts), 0);
  clink_client_set_state_cb(F.c, on_state, &F);
  clink_client_set_error_cb(F.c, on_error, &F);
  clink_client_set_unsolicited_cb(F.c, on_unsolicited, &F);
  F.t_connect_called = uv_hrtime();
  ck_assert_int_eq(clink_client_connect(F.c, on_connect, &F), 0);
  uv_run(&F.loop, UV_RUN_DEFAULT);

  ck_assert_int_eq(F.closes, 1);
  ck_assert_int_eq(F.connects, 1);
  ck_assert_int_eq(F.errors, 0);
  ck_assert_msg(F.connect_status == 0, "connect: %s (%s)", clink_err_name(F.connect_status),
                F.error_text);
}

static void info(const char *test, const turn_rec *t, const char *first_what, uint64_t first) {
  printf("INFO real-cli %s: connect_ms=%llu query->first_%s_ms=%.1f turns_ok=%llu "
         "turns_failed=%llu messages_in=%llu\n",
         test, (unsigned long long)F.m.connect_ms, first_what, ms_between(t->t_query, first),
         (unsigned long long)F.m.turns_ok, (unsigned long long)F.m.turns_failed,
         (unsigned long long)F.m.messages_in);
  fflush(stdout);
}

static void assert_turn_ok(const turn_rec *t) {
  ck_assert_int_eq(t->done, 1);
  ck_assert_msg(t->status == 0, "turn '%s': %s, result %s: %s", t->prompt,
                clink_err_name(t->status), t->result_subtype, t->result_text);
  ck_assert_int_eq(t->have_result, 1);
  ck_assert_str_eq(t->result_subtype, "success");
  ck_assert_int_eq(t->is_error, 0);
}

/* ---------------------------------------------------------------- tests */

START_TEST(one_turn) {
  static const char *const p[] = {"ping"};
  run("[{\"text\": \"pong from the stub\"}]", p, 1);
  turn_rec *t = &F.turns[0];
  assert_turn_ok(t);
  ck_assert_int_eq(F.server_info, 1);
  ck_assert_int_gt(F.pid_at_connect, 0);
  ck_assert_int_eq(F.server_info_pid, F.pid_at_connect); /* the shim exec'd the CLI */
  ck_assert_int_ge(t->assistant, 1);
  ck_assert_int_eq(t->text_blocks, 1);
  ck_assert_str_eq(t->first_text, "pong from the stub");
  ck_assert_str_eq(t->result_text, "pong from the stub");
  ck_assert_int_eq(t->system_inits, 1);
  ck_assert_int_eq(t->stream_events, 0); /* no --include-partial-messages */
  /* metrics */
  ck_assert_uint_eq(F.m.turns_ok, 1);
  ck_assert_uint_eq(F.m.turns_failed, 0);
  ck_assert_uint_eq(F.m.spawns, 1);
  ck_assert_uint_eq(F.m.control_requests, 1); /* initialize */
  ck_assert_uint_eq(F.m.control_timeouts, 0);
  ck_assert_uint_gt(F.m.connect_ms, 0);
  ck_assert_uint_le(F.m.connect_ms, (uint64_t)ms_between(F.t_connect_called, uv_hrtime()) + 1);
  /* control_response, system/init, assistant, result */
  ck_assert_uint_ge(F.m.messages_in, 4);
  ck_assert_uint_eq(F.m.messages_in, (uint64_t)t->messages + 1);
  ck_assert_uint_eq(F.m.messages_out, 2); /* initialize, user */
  ck_assert_uint_gt(F.m.bytes_in, F.m.messages_in);
  ck_assert_uint_eq(F.m.errors, 0);
  ck_assert_int_eq(F.unsolicited, 0);
  int nm[8];
  ck_assert_int_eq(stub_requests(nm, NULL, 8), 1);
  info("one_turn", t, "assistant", t->t_first_assistant);
}
END_TEST

START_TEST(several_turns_one_process) {
  static const char *const p[] = {"alpha", "bravo", "charlie"};
  F.queue_all = 1; /* the client's queue runs them one after the other */
  run("[{}]", p, 3);
  char want[64];
  for (int i = 0; i < 3; i++) {
    turn_rec *t = &F.turns[i];
    assert_turn_ok(t);
    snprintf(want, sizeof(want), "echo: %s", p[i]);
    ck_assert_str_eq(t->result_text, want);
    ck_assert_str_eq(t->first_text, want);
    ck_assert_int_eq(t->system_inits, 1);
  }
  ck_assert_uint_eq(F.m.turns_ok, 3);
  ck_assert_uint_eq(F.m.spawns, 1);
  /* One process, growing history: each request repeats the ones before. */
  int nm[8];
  char *bodies[8] = {0};
  int n = stub_requests(nm, bodies, 8);
  ck_assert_int_eq(n, 3);
  for (int i = 0; i < n; i++) {
    ck_assert_ptr_nonnull(strstr(bodies[i], p[i]));
    if (i > 0) {
      ck_assert_int_gt(nm[i], nm[i - 1]);
      ck_assert_ptr_nonnull(strstr(bodies[i], p[i - 1]));
      ck_assert_ptr_nonnull(strstr(bodies[i], "echo: "));
    }
  }
  for (int i = 0; i < n; i++) cJSON_free(bodies[i]);
  printf("INFO real-cli several_turns: request messages %d, %d, %d\n", nm[0], nm[1], nm[2]);
  info("several_turns", &F.turns[0], "assistant", F.turns[0].t_first_assistant);
}
END_TEST

#define TOOL_SCRIPT                                                                       \
  "[{\"tool_use\": {\"name\": \"Bash\", \"input\": {\"command\": \"touch made-by-tool.txt " \
  "&& echo created\", \"description\": \"Create a file\"}}}, {}]"

static int file_in_cwd(const char *name) {
  char path[PATH_MAX];
  join(path, F.cwd, name);
  return access(path, F_OK) == 0;
}

START_TEST(can_use_tool_allow) {
  static const char *const p[] = {"make the file"};
  ck_assert_int_eq(clink_options_set_permission_cb(F.opts, on_permission, &F), 0);
  run(TOOL_SCRIPT, p, 1);
  turn_rec *t = &F.turns[0];
  assert_turn_ok(t);
  ck_assert_int_eq(F.perm_calls, 1);
  ck_assert_int_eq(F.perm_answer_rc, 0);
  ck_assert_str_eq(F.perm_tool, "Bash");
  ck_assert_str_eq(F.perm_command, "touch made-by-tool.txt && echo created");
  ck_assert_int_eq(file_in_cwd("made-by-tool.txt"), 1);
  ck_assert_int_eq(t->tool_use_blocks, 1);
  ck_assert_int_ge(t->users, 1);                        /* the tool_result */
  ck_assert_str_eq(t->result_text, "echo: created");    /* the tool's output went back */
  ck_assert_int_eq(t->denials, 0);
  int nm[8];
  ck_assert_int_eq(stub_requests(nm, NULL, 8), 2);
  ck_assert_int_gt(nm[1], nm[0]);
  info("can_use_tool_allow", t, "assistant", t->t_first_assistant);
}
END_TEST

START_TEST(can_use_tool_deny) {
  static const char *const p[] = {"make the file"};
  ck_assert_int_eq(clink_options_set_permission_cb(F.opts, on_permission, &F), 0);
  F.deny = 1;
  run(TOOL_SCRIPT, p, 1);
  turn_rec *t = &F.turns[0];
  assert_turn_ok(t); /* a denial does not fail the turn */
  ck_assert_int_eq(F.perm_calls, 1);
  ck_assert_int_eq(F.perm_answer_rc, 0);
  ck_assert_ptr_null(F.pending_req);
  ck_assert_str_eq(F.perm_tool, "Bash");
  ck_assert_int_eq(file_in_cwd("made-by-tool.txt"), 0);
  ck_assert_int_ge(t->denials, 1);
  ck_assert_ptr_nonnull(strstr(t->result_text, "denied by test"));
  info("can_use_tool_deny", t, "assistant", t->t_first_assistant);
}
END_TEST

START_TEST(interrupt_mid_turn) {
  static const char *const p[] = {"take your time", "second after interrupt"};
  ck_assert_int_eq(clink_options_set_include_partial_messages(F.opts, 1), 0);
  F.interrupt_on_delta = 1;
  run("[{\"hold_ms\": 30000, \"text\": \"a slow reply that never ends\"}, {}]", p, 2);
  turn_rec *t = &F.turns[0];
  ck_assert_int_eq(F.ctl_calls, 1);
  ck_assert_int_eq(F.ctl_status, 0);
  ck_assert_int_eq(t->done, 1);
  ck_assert_msg(t->status == CLINK_ETURN_FAILED, "turn 1: %s", clink_err_name(t->status));
  ck_assert_int_eq(t->have_result, 1);
  ck_assert_str_eq(t->result_subtype, "error_during_execution");
  ck_assert_int_eq(t->is_error, 1);
  ck_assert_int_le(t->assistant, 1); /* at most the partial block */
  ck_assert_int_ge(t->users, 1);     /* "[Request interrupted by user]" */
  ck_assert_uint_gt(t->t_first_delta, 0);
  /* Same process, next turn works. */
  turn_rec *t2 = &F.turns[1];
  assert_turn_ok(t2);
  ck_assert_ptr_nonnull(strstr(t2->result_text, p[1]));
  ck_assert_uint_eq(F.m.turns_ok, 1);
  ck_assert_uint_eq(F.m.turns_failed, 1);
  ck_assert_uint_eq(F.m.spawns, 1);
  ck_assert_uint_eq(F.m.control_requests, 2); /* initialize, interrupt */
  info("interrupt_mid_turn", t, "delta", t->t_first_delta);
}
END_TEST

START_TEST(api_error_then_recovery) {
  static const char *const p[] = {"fail please", "now work"};
  run("[{\"error\": 500}, {\"text\": \"recovered\"}]", p, 2);
  turn_rec *t = &F.turns[0];
  ck_assert_int_eq(t->done, 1);
  ck_assert_msg(t->status == CLINK_ETURN_FAILED, "turn 1: %s", clink_err_name(t->status));
  ck_assert_int_eq(t->have_result, 1);
  ck_assert_int_eq(t->is_error, 1);
  ck_assert_int_eq(t->api_status, 500);
  ck_assert_ptr_nonnull(strstr(t->result_text, "500"));
  turn_rec *t2 = &F.turns[1];
  assert_turn_ok(t2);
  ck_assert_str_eq(t2->result_text, "recovered");
  ck_assert_int_eq(t2->api_status, 0);
  ck_assert_uint_eq(F.m.turns_ok, 1);
  ck_assert_uint_eq(F.m.turns_failed, 1);
  ck_assert_uint_eq(F.m.spawns, 1);
  int nm[8];
  ck_assert_int_eq(stub_requests(nm, NULL, 8), 2); /* CLAUDE_CODE_MAX_RETRIES=0 */
  info("api_error_then_recovery", t, "assistant", t->t_first_assistant);
}
END_TEST

START_TEST(cli_killed_mid_turn) {
  static const char *const p[] = {"hold on"};
  ck_assert_int_eq(clink_options_set_include_partial_messages(F.opts, 1), 0);
  F.kill_on_delta = 1;
  run("[{\"hold_ms\": 30000, \"text\": \"never finished\"}]", p, 1);
  turn_rec *t = &F.turns[0];
  ck_assert_int_eq(F.killed, 1);
  ck_assert_int_eq(F.kill_rc, 0);
  ck_assert_int_eq(t->done, 1);
  ck_assert_msg(t->status == CLINK_EEXITED, "turn: %s", clink_err_name(t->status));
  ck_assert_int_eq(t->have_result, 0);
  /* CONNECTING, CONNECTED, ERROR, then our close: CLOSING, CLOSED */
  ck_assert_int_eq(F.nstates, 5);
  ck_assert_int_eq(F.states[2], CLINK_CLIENT_ERROR);
  ck_assert_int_eq(F.states[4], CLINK_CLIENT_CLOSED);
  ck_assert_msg(strstr(F.error_text, "signal 9") != NULL, "last_error: %s", F.error_text);
  ck_assert_uint_eq(F.m.turns_failed, 1);
  info("cli_killed_mid_turn", t, "delta", t->t_first_delta);
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
  trace = getenv("CLINK_TEST_TRACE") != NULL;
  stub_path = getenv("CLINK_TEST_STUB");
  if (stub_path == NULL || access(stub_path, R_OK) != 0) {
    fprintf(stderr, "CLINK_TEST_STUB is not set or unreadable: run the tests through "
                    "`meson test`\n");
    return EXIT_FAILURE;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(base_dir, sizeof(base_dir), "%s/clink-real-cli.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (mkdtemp(base_dir) == NULL) {
    perror("mkdtemp");
    return EXIT_FAILURE;
  }
  Suite *s = suite_create("real-cli");
  TCase *tc = tcase_create("turns");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, one_turn);
  tcase_add_test(tc, several_turns_one_process);
  tcase_add_test(tc, api_error_then_recovery);
  suite_add_tcase(s, tc);

  tc = tcase_create("tools");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, can_use_tool_allow);
  tcase_add_test(tc, can_use_tool_deny);
  suite_add_tcase(s, tc);

  tc = tcase_create("abort");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, interrupt_mid_turn);
  tcase_add_test(tc, cli_killed_mid_turn);
  suite_add_tcase(s, tc);

  int rc = clink_test_run(s);
  rm_rf(base_dir);
  return rc;
}
