/* The client against the real `claude` CLI (real-cli.md), talking to a
 * loopback Messages API stub (tests/stub/messages_stub.py). Every test starts
 * its own stub, HOME and cwd, drives the CLI only through the public client
 * API, runs the loop until nothing is left and then counts what happened.
 *
 * The resilience tests prove on the real binary what the library assumes of
 * it (recovery with --resume, mcp_status as a probe, stdin EOF mid-turn,
 * hooks, set_model / set_permission_mode, a pool of real members); they pass
 * on 2.1.197 and 2.1.332 (tests/real-cli/VERSIONS.md).
 *
 * Env: CLINK_TEST_REAL_CLI (the binary; unset -> exit 77, meson's SKIP),
 *      CLINK_TEST_STUB (the stub script, set by meson). */
#include <dirent.h>
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
  char init_model[64], init_permission_mode[32]; /* from this turn's system/init */
  char result_subtype[64], result_text[512];
  int have_result, is_error, api_status, denials;
  uint64_t t_query, t_first_assistant, t_first_delta, t_done; /* uv_hrtime() */
} turn_rec;

/* Recovery events, counted by kind (clink_recovery_event). */
#define REC_EVENTS 5

typedef struct fixture {
  uv_loop_t loop;
  uv_timer_t timer; /* deferred permission answers, the kill */
  uv_timer_t poll;  /* bounded waits of the resilience tests */
  char dir[PATH_MAX], home[PATH_MAX], cwd[PATH_MAX], tmp[PATH_MAX], script[PATH_MAX],
      log[PATH_MAX];
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
  /* per-test steps: instead of starting turn 0 at connect; at the first text
   * delta; at the end of a turn (return 1: the test continues on its own) */
  void (*after_connect)(clink_client *c);
  void (*first_delta)(clink_client *c, turn_rec *t);
  int (*after_turn)(clink_client *c, int idx);

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
  int close_requested;
  uint64_t t_close_called, t_closed;
  char cli_version[32]; /* claude_code_version of system/init */

  /* recovery */
  int rec[REC_EVENTS];
  unsigned int rec_attempt; /* attempt of the last event */
  int rec_fail_err;
  int pid_before, pid_after;
  int resume_argv_ok;      /* /proc/<pid>/cmdline of the new process has --resume=<sid> */
  int transcript_at_death; /* transcript_state() when the death was seen, -1 before */
  int polls;
  char sid_before[64];

  /* control requests */
  int mcp_idle_calls, mcp_idle_status, mcp_idle_servers;
  int mcp_mid_calls, mcp_mid_status, mcp_mid_turn_done;
  double mcp_mid_ms;
  int pm_calls, pm_status, model_calls, model_status;
  char pm_answer[32], model_answer[64];
  clink_client_metrics m_idle; /* after the idle window */

  /* hooks */
  int hook_calls, hook_rc, hook_deny;
  char hook_id[32], hook_event[32], hook_tool[32], hook_command[256];

  /* pool */
  clink_pool *pool;
  int pool_closed, acquired, released, release_rc[2], in_use_both;
  int member_pid[2];
  clink_client *member[2];
  clink_pool_stats ps;

  int tearing_down; /* callbacks check nothing more */
} fixture;

static fixture F;

/* -------------------------------------------------------------- helpers */

static double ms_between(uint64_t from, uint64_t to) {
  return from && to && to >= from ? (double)(to - from) / 1e6 : -1.0;
}

/* Starts the stub with a pipe on stdin and stdout and reads its port. */
static void start_stub(const char *script_json) {
  clink_test_write_file(F.script, script_json);
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

/* One /v1/messages POST of a turn, as the stub logged it. */
typedef struct stub_req {
  int nmsgs;
  char model[64];
  char session[64]; /* header x-claude-code-session-id */
  char *body;       /* cJSON_PrintUnformatted, or NULL; stub_free() */
} stub_req;

static void copy_str(char *out, size_t size, const cJSON *j) {
  snprintf(out, size, "%s", cJSON_IsString(j) ? j->valuestring : "");
}

/* The stub log (one JSON line per request): the model calls of turns, in
 * order (at most max; returns how many), and how many side requests (the
 * model check of set_model, which consumes no script step) with the model of
 * the last one. */
static int stub_log(stub_req *out, int max, int *side, char *side_model, size_t side_size) {
  FILE *f = fopen(F.log, "r");
  if (side) *side = 0;
  if (f == NULL) return 0;
  int n = 0;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    cJSON *j = cJSON_Parse(line);
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(j, "method");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(j, "path");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(j, "body");
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive(j, "headers");
    int messages_post = cJSON_IsString(method) && strcmp(method->valuestring, "POST") == 0 &&
                        cJSON_IsString(path) &&
                        strncmp(path->valuestring, "/v1/messages", 12) == 0 &&
                        (path->valuestring[12] == '\0' || path->valuestring[12] == '?');
    if (messages_post && cJSON_GetObjectItemCaseSensitive(j, "side")) {
      if (side) ++*side;
      if (side_model)
        copy_str(side_model, side_size, cJSON_GetObjectItemCaseSensitive(body, "model"));
    } else if (messages_post && n < max) {
      stub_req *r = &out[n++];
      r->nmsgs = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "messages"));
      copy_str(r->model, sizeof(r->model), cJSON_GetObjectItemCaseSensitive(body, "model"));
      copy_str(r->session, sizeof(r->session),
               cJSON_GetObjectItemCaseSensitive(headers, "x-claude-code-session-id"));
      r->body = cJSON_PrintUnformatted(body);
    }
    cJSON_Delete(j);
  }
  free(line);
  fclose(f);
  return n;
}

static void stub_free(stub_req *r, int n) {
  for (int i = 0; i < n; i++) cJSON_free(r[i].body);
}

/* The turns' model calls as (number of messages, body text). */
static int stub_requests(int *nmsgs, char **bodies, int max) {
  stub_req r[8];
  int n = stub_log(r, max < 8 ? max : 8, NULL, NULL, 0);
  for (int i = 0; i < n; i++) {
    nmsgs[i] = r[i].nmsgs;
    if (bodies) {
      bodies[i] = r[i].body;
      r[i].body = NULL;
    }
  }
  stub_free(r, n);
  return n;
}

/* What the CLI's transcript of session sid holds
 * ($HOME/.claude/projects/<cwd>/<sid>.jsonl): 0 no file, 1 lines but no
 * assistant message yet, 2 an assistant message. */
static int transcript_state(const char *sid) {
  char projects[PATH_MAX], path[PATH_MAX * 2];
  clink_test_join(projects, F.home, ".claude/projects");
  DIR *d = opendir(projects);
  if (d == NULL) return 0;
  int state = 0;
  struct dirent *e;
  while (state == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof(path), "%s/%s/%s.jsonl", projects, e->d_name, sid);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    state = 1;
    char *line = NULL;
    size_t cap = 0;
    while (state < 2 && getline(&line, &cap, f) > 0) {
      cJSON *j = cJSON_Parse(line);
      const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
      if (cJSON_IsString(type) && strcmp(type->valuestring, "assistant") == 0) state = 2;
      cJSON_Delete(j);
    }
    free(line);
    fclose(f);
  }
  closedir(d);
  return state;
}

/* Whether /proc/<pid>/cmdline holds the argument arg. */
static int cmdline_has(int pid, const char *arg) {
  char path[64], buf[8192];
  snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
    if (strcmp(buf + i, arg) == 0) return 1;
  return 0;
}

/* ------------------------------------------------------------ callbacks */

static void on_close(clink_client *c, void *ud) {
  (void)c;
  fixture *f = ud;
  f->closes++;
  f->t_closed = uv_hrtime();
}

static void close_client(void) {
  if (F.close_requested) return;
  F.close_requested = 1;
  F.t_close_called = uv_hrtime();
  int rc = clink_client_close(F.c, on_close, &F);
  if (!F.tearing_down) ck_assert_int_eq(rc, 0);
}

static void on_close_timer(uv_timer_t *timer) {
  (void)timer;
  close_client();
}

static void on_state(clink_client *c, clink_client_state from, clink_client_state to,
                     void *ud) {
  (void)from;
  fixture *f = ud;
  if (f->nstates < 16) f->states[f->nstates++] = (int)to;
  if (to == CLINK_CLIENT_ERROR) {
    snprintf(f->error_text, sizeof(f->error_text), "%s", clink_client_last_error(c));
    /* After a failed recovery the FAILED event comes after this state
     * change, and a client closed here would not report it: close from
     * the loop instead. */
    if (f->rec[CLINK_RECOVERY_SCHEDULED] > 0)
      ck_assert_int_eq(uv_timer_start(&f->poll, on_close_timer, 0, 0), 0);
    else
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
        if (F.first_delta) F.first_delta(c, t);
      }
      break;
    case CLINK_MSG_SYSTEM:
      if (clink_msg_subtype(m) && strcmp(clink_msg_subtype(m), "init") == 0) {
        const cJSON *j = clink_msg_json(m);
        t->system_inits++;
        copy_str(t->init_model, sizeof(t->init_model),
                 cJSON_GetObjectItemCaseSensitive(j, "model"));
        copy_str(t->init_permission_mode, sizeof(t->init_permission_mode),
                 cJSON_GetObjectItemCaseSensitive(j, "permissionMode"));
        copy_str(F.cli_version, sizeof(F.cli_version),
                 cJSON_GetObjectItemCaseSensitive(j, "claude_code_version"));
      }
      break;
    case CLINK_MSG_USER:
      t->users++;
      break;
    default:
      break;
  }
}

static void start_turn(int i);

static void record_done(turn_rec *t, int status, const clink_msg *result) {
  t->done++;
  t->status = status;
  t->t_done = uv_hrtime();
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
}

static void on_done(clink_client *c, int status, const clink_msg *result, void *ud) {
  turn_rec *t = ud;
  if (F.tearing_down) return;
  record_done(t, status, result);
  int idx = (int)(t - F.turns);
  if (F.after_turn && F.after_turn(c, idx)) return;
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
  if (f->after_connect)
    f->after_connect(c);
  else if (f->queue_all)
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
  ck_assert_int_eq(uv_timer_init(&F.loop, &F.poll), 0);
  F.poll.data = &F;
  F.transcript_at_death = -1;
  clink_test_join(F.dir, base_dir, "t.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(F.dir));
  clink_test_join(F.home, F.dir, "home");
  clink_test_join(F.cwd, F.dir, "cwd");
  clink_test_join(F.tmp, F.dir, "tmp");
  clink_test_join(F.script, F.dir, "script.json");
  clink_test_join(F.log, F.dir, "requests.jsonl");
  ck_assert_int_eq(mkdir(F.home, 0700), 0);
  ck_assert_int_eq(mkdir(F.cwd, 0700), 0);
  ck_assert_int_eq(mkdir(F.tmp, 0700), 0);

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
  /* The CLI keeps task folders (claude-<uid>/) and, since 2.1.332, a socket
   * (cc-socks/<pid>.sock, left behind by a killed CLI) in TMPDIR. */
  env("TMPDIR", F.tmp);
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
  if (F.pool && !F.pool_closed) clink_pool_shutdown(F.pool, CLINK_POOL_IMMEDIATE, NULL, NULL);
  stop_stub();
  uv_close((uv_handle_t *)&F.timer, NULL);
  uv_close((uv_handle_t *)&F.poll, NULL);
  uv_run(&F.loop, UV_RUN_DEFAULT);
  clink_test_rm_rf(F.dir); /* the CLI is reaped: nothing writes there any more */
  clink_options_free(F.opts);
  CLINK_TEST_LOOP_DONE(&F.loop);
}

/* Starts the stub, then the client with prompts[0..n), and runs the loop
 * until the client is closed and everything is reaped. */
static void on_recovery(clink_client *c, clink_recovery_event ev, unsigned int attempt, int err,
                        uint64_t delay_ms, void *ud);

static void start_stub_env(const char *script_json) {
  start_stub(script_json);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d", F.port);
  env("ANTHROPIC_BASE_URL", url);
}

static void run(const char *script_json, const char *const *prompts, int n) {
  start_stub_env(script_json);
  ck_assert_int_le(n, MAX_TURNS);
  F.nturns = n;
  for (int i = 0; i < n; i++) F.turns[i].prompt = prompts[i];

  ck_assert_int_eq(clink_client_new(&F.c, &F.loop, F.opts), 0);
  clink_client_set_recovery_cb(F.c, on_recovery, &F);
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
  clink_test_join(path, F.cwd, name);
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

/* ----------------------------------------------------- resilience tests */

static void on_recovery(clink_client *c, clink_recovery_event ev, unsigned int attempt, int err,
                        uint64_t delay_ms, void *ud) {
  (void)delay_ms;
  fixture *f = ud;
  if (f->tearing_down) return;
  if ((int)ev >= 0 && ev < REC_EVENTS) f->rec[ev]++;
  f->rec_attempt = attempt;
  fprintf(stderr, "recovery event %d attempt %u err %s\n", (int)ev, attempt,
          err ? clink_err_name(err) : "-");
  switch (ev) {
    case CLINK_RECOVERY_SCHEDULED:
      /* The process is dead and reaped: what it left on disk is final. */
      if (f->transcript_at_death < 0) f->transcript_at_death = transcript_state(f->sid_before);
      break;
    case CLINK_RECOVERY_SUCCEEDED: {
      f->pid_after = clink_client_pid(c);
      char arg[128];
      snprintf(arg, sizeof(arg), "--resume=%s", f->sid_before);
      f->resume_argv_ok = cmdline_has(f->pid_after, arg);
      start_turn(1); /* the second turn goes to the new process */
      break;
    }
    case CLINK_RECOVERY_FAILED:
      f->rec_fail_err = err;
      break;
    default:
      break;
  }
}

static void use_recovery(uint64_t first_delay_ms, unsigned int retries) {
  clink_retry_policy *rp;
  ck_assert_int_eq(clink_retry_policy_new(&rp), 0);
  uint64_t sched[] = {first_delay_ms, first_delay_ms * 2};
  ck_assert_int_eq(clink_retry_policy_set_schedule(rp, sched, 2), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(rp, retries), 0);
  ck_assert_int_eq(clink_options_set_recovery(F.opts, rp), 0);
  clink_retry_policy_free(rp);
}

static void kill_cli(clink_client *c) {
  F.pid_before = clink_client_pid(c);
  F.killed++;
  F.kill_rc = kill(F.pid_before, SIGKILL);
}

/* resume_after_kill: kill once the transcript holds turn 1 (polled every
 * 10 ms, at most 5 s). */
static void on_transcript_poll(uv_timer_t *timer) {
  fixture *f = timer->data;
  f->polls++;
  int st = transcript_state(f->sid_before);
  if (st == 2 || f->polls >= 500) {
    uv_timer_stop(timer);
    if (st == 2)
      kill_cli(f->c);
    else
      close_client(); /* the checks below fail on killed == 0 */
  }
}

static int kill_when_settled(clink_client *c, int idx) {
  if (idx != 0) return 0;
  snprintf(F.sid_before, sizeof(F.sid_before), "%s", clink_client_session_id(c));
  ck_assert_int_eq(uv_timer_start(&F.poll, on_transcript_poll, 0, 10), 0);
  return 1;
}

/* resume_after_kill_at_result: kill the moment turn 1's result is read. */
static int kill_at_result(clink_client *c, int idx) {
  if (idx != 0) return 0;
  snprintf(F.sid_before, sizeof(F.sid_before), "%s", clink_client_session_id(c));
  kill_cli(c);
  return 1;
}

static const char *const resume_prompts[] = {"remember the word pelican", "what was the word"};

/* The resumed conversation, as the stub saw it: turn 2's model call carries
 * turn 1 (its prompt and the stub's answer), under the same session id. */
static void assert_resumed(int with_answer) {
  ck_assert_int_eq(F.killed, 1);
  ck_assert_int_eq(F.kill_rc, 0);
  ck_assert_int_eq(F.rec[CLINK_RECOVERY_SUCCEEDED], 1);
  ck_assert_int_eq(F.rec[CLINK_RECOVERY_FAILED], 0);
  ck_assert_int_eq(F.rec_attempt, 1);
  ck_assert_int_gt(F.pid_after, 0);
  ck_assert_int_ne(F.pid_after, F.pid_before);
  ck_assert_int_eq(F.resume_argv_ok, 1);
  assert_turn_ok(&F.turns[0]);
  assert_turn_ok(&F.turns[1]);
  ck_assert_str_eq(F.turns[1].result_text, "echo: what was the word");
  ck_assert_uint_eq(F.m.spawns, 2);
  ck_assert_uint_eq(F.m.recoveries, 1);
  ck_assert_uint_eq(F.m.turns_ok, 2);
  /* CONNECTING, CONNECTED, RECOVERING, CONNECTED, CLOSING, CLOSED */
  ck_assert_int_ge(F.nstates, 6);
  ck_assert_int_eq(F.states[2], CLINK_CLIENT_RECOVERING);
  ck_assert_int_eq(F.states[F.nstates - 3], CLINK_CLIENT_CONNECTED);
  ck_assert_int_eq(F.states[F.nstates - 1], CLINK_CLIENT_CLOSED);
  stub_req r[8];
  int n = stub_log(r, 8, NULL, NULL, 0);
  ck_assert_int_eq(n, 2);
  ck_assert_ptr_nonnull(strstr(r[0].body, resume_prompts[0]));
  ck_assert_ptr_nonnull(strstr(r[1].body, resume_prompts[1]));
  ck_assert_msg(strstr(r[1].body, resume_prompts[0]) != NULL,
                "turn 2's request lost turn 1's prompt (%d messages)", r[1].nmsgs);
  if (with_answer) {
    ck_assert_msg(strstr(r[1].body, "echo: remember the word pelican") != NULL,
                  "turn 2's request lost turn 1's answer (%d messages)", r[1].nmsgs);
    ck_assert_int_gt(r[1].nmsgs, r[0].nmsgs);
  }
  ck_assert_str_eq(r[0].session, F.sid_before);
  ck_assert_str_eq(r[1].session, F.sid_before); /* --resume keeps the session id */
  printf("INFO real-cli resume (claude %s): pid %d -> %d, request messages %d -> %d, "
         "session %s kept\n",
         F.cli_version, F.pid_before, F.pid_after, r[0].nmsgs, r[1].nmsgs, F.sid_before);
  stub_free(r, n);
}

START_TEST(resume_after_kill) {
  use_recovery(100, 3);
  F.after_turn = kill_when_settled;
  run("[{}]", resume_prompts, 2);
  ck_assert_msg(F.killed == 1, "turn 1 never reached the transcript (%d polls)", F.polls);
  ck_assert_int_eq(F.transcript_at_death, 2);
  assert_resumed(1);
  printf("INFO real-cli resume_after_kill: transcript complete after %d polls of 10 ms\n",
         F.polls);
}
END_TEST

/* A crash right at the result. 2.1.332 writes the transcript before it
 * prints the result; 2.1.197 writes it about 100 ms later, so a kill at the
 * result loses the whole conversation, --resume then fails ("No conversation
 * found with session ID"), and the recovery can only give up: the library
 * keeps resuming the same id and never starts a fresh session. Which case
 * happened is read from disk once the process is dead, and each is checked
 * exactly. */
START_TEST(resume_after_kill_at_result) {
  use_recovery(50, 2);
  F.after_turn = kill_at_result;
  /* run() wants exactly one connect and a clean close; a failed recovery
   * ends in ERROR, which on_state turns into the close. */
  run("[{}]", resume_prompts, 2);
  ck_assert_int_eq(F.killed, 1);
  ck_assert_int_eq(F.kill_rc, 0);
  ck_assert_int_ge(F.transcript_at_death, 0);
  printf("INFO real-cli resume_after_kill_at_result (claude %s): transcript at death: %s\n",
         F.cli_version,
         F.transcript_at_death == 2   ? "complete"
         : F.transcript_at_death == 1 ? "without the answer"
                                      : "MISSING (conversation lost)");
  if (F.transcript_at_death == 2) {
    assert_resumed(1);
  } else if (F.transcript_at_death == 1) {
    assert_resumed(0);
  } else {
    /* Every attempt: "No conversation found", an error result, exit 1,
     * before the initialize response. */
    ck_assert_int_eq(F.rec[CLINK_RECOVERY_SUCCEEDED], 0);
    ck_assert_int_eq(F.rec[CLINK_RECOVERY_FAILED], 1);
    ck_assert_int_eq(F.rec[CLINK_RECOVERY_ATTEMPT], 2);
    ck_assert_int_eq(F.turns[1].done, 0); /* never sent: nothing to resume */
    ck_assert_msg(strstr(F.error_text, "No conversation found with session ID") != NULL,
                  "last_error: %s", F.error_text);
    ck_assert_int_eq(F.states[F.nstates - 3], CLINK_CLIENT_ERROR);
    int nm[8];
    ck_assert_int_eq(stub_requests(nm, NULL, 8), 1);
    printf("INFO real-cli resume_after_kill_at_result: recovery gave up (%s): %s\n",
           clink_err_name(F.rec_fail_err), F.error_text);
  }
}
END_TEST

/* mcp_status idle and mid-turn, and idle probes on a healthy CLI. */
static void on_mcp(clink_client *c, int status, const clink_msg *response, void *ud);

/* The idle window: 1 s without traffic, then the metrics, then (first) the
 * explicit mcp_status and the turn, or (after the turn) the close. */
static void on_idle_window(uv_timer_t *timer) {
  fixture *f = timer->data;
  f->m_idle.struct_size = sizeof(f->m_idle);
  ck_assert_int_eq(clink_client_get_metrics(f->c, &f->m_idle), 0);
  f->pid_after = clink_client_pid(f->c);
  if (f->turns[0].done)
    close_client();
  else
    ck_assert_int_eq(clink_client_control(f->c, "mcp_status", NULL, on_mcp, f), 0);
}

static void idle_window(clink_client *c) {
  (void)c;
  /* With a 100 ms idle probe, 1 s is several probes. */
  ck_assert_int_eq(uv_timer_start(&F.poll, on_idle_window, 1000, 0), 0);
}

static int idle_window_after_turn(clink_client *c, int idx) {
  (void)idx;
  F.m.struct_size = sizeof(F.m);
  ck_assert_int_eq(clink_client_get_metrics(c, &F.m), 0);
  idle_window(c);
  return 1;
}

static void on_mcp(clink_client *c, int status, const clink_msg *response, void *ud) {
  (void)c;
  fixture *f = ud;
  turn_rec *t = &f->turns[0];
  const cJSON *inner = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(clink_msg_json(response), "response"), "response");
  int servers = cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(inner, "mcpServers"));
  if (t->t_query == 0) { /* before the turn */
    f->mcp_idle_calls++;
    f->mcp_idle_status = status;
    f->mcp_idle_servers = servers;
    start_turn(0);
  } else {
    f->mcp_mid_calls++;
    f->mcp_mid_status = status;
    f->mcp_mid_turn_done = t->done;
    f->mcp_mid_ms = ms_between(t->t_first_delta, uv_hrtime());
  }
}

static void mcp_mid_turn(clink_client *c, turn_rec *t) {
  (void)t;
  ck_assert_int_eq(clink_client_control(c, "mcp_status", NULL, on_mcp, &F), 0);
}

START_TEST(mcp_status_probe) {
  static const char *const p[] = {"hold it"};
  ck_assert_int_eq(clink_options_set_include_partial_messages(F.opts, 1), 0);
  ck_assert_int_eq(clink_options_set_idle_probe(F.opts, 100, 5000), 0);
  F.after_connect = idle_window; /* probes, then mcp_status, then the turn */
  F.first_delta = mcp_mid_turn;
  run("[{\"hold_ms\": 1500, \"text\": \"held reply\"}]", p, 1);
  /* Idle probes on a healthy CLI: sent, answered, nothing killed. */
  ck_assert_uint_ge(F.m_idle.probes, 2);
  ck_assert_uint_eq(F.m_idle.probe_failures, 0);
  ck_assert_uint_eq(F.m_idle.control_timeouts, 0);
  ck_assert_uint_eq(F.m_idle.spawns, 1);
  ck_assert_uint_eq(F.m_idle.errors, 0);
  ck_assert_int_eq(F.pid_after, F.pid_at_connect);
  /* Idle: answered (success or an error reply both prove the CLI reads). */
  ck_assert_int_eq(F.mcp_idle_calls, 1);
  ck_assert_msg(F.mcp_idle_status == 0 || F.mcp_idle_status == CLINK_ECONTROL_ERROR,
                "idle mcp_status: %s", clink_err_name(F.mcp_idle_status));
  /* Mid-turn, while the stub holds the stream: answered before the turn ends. */
  ck_assert_int_eq(F.mcp_mid_calls, 1);
  ck_assert_msg(F.mcp_mid_status == 0 || F.mcp_mid_status == CLINK_ECONTROL_ERROR,
                "mid-turn mcp_status: %s", clink_err_name(F.mcp_mid_status));
  ck_assert_int_eq(F.mcp_mid_turn_done, 0);
  turn_rec *t = &F.turns[0];
  assert_turn_ok(t);
  ck_assert_str_eq(t->result_text, "held reply");
  ck_assert_uint_eq(F.m.probe_failures, 0);
  ck_assert_uint_eq(F.m.spawns, 1);
  ck_assert_int_eq(F.nstates, 4); /* CONNECTING, CONNECTED, CLOSING, CLOSED */
  printf("INFO real-cli mcp_status_probe (claude %s): idle %s (mcpServers %s), mid-turn %s "
         "%.1f ms after the first delta; %llu idle probes in 1 s, %llu failed\n",
         F.cli_version, F.mcp_idle_status ? clink_err_name(F.mcp_idle_status) : "success",
         F.mcp_idle_servers ? "present" : "absent",
         F.mcp_mid_status ? clink_err_name(F.mcp_mid_status) : "success", F.mcp_mid_ms,
         (unsigned long long)F.m_idle.probes, (unsigned long long)F.m_idle.probe_failures);
}
END_TEST

/* Regression: before the session core, nothing armed the client's timer for
 * the idle probe after a turn ended (on_result -> pump never re-armed it),
 * so a CLI that hung between turns was never found. */
START_TEST(idle_probe_after_turn) {
  static const char *const p[] = {"one turn, then idle"};
  ck_assert_int_eq(clink_options_set_idle_probe(F.opts, 100, 5000), 0);
  F.after_turn = idle_window_after_turn;
  run("[{}]", p, 1);
  assert_turn_ok(&F.turns[0]);
  printf("INFO real-cli idle_probe_after_turn (claude %s): %llu probes before the turn, "
         "%llu in the 1 s idle after it\n",
         F.cli_version, (unsigned long long)F.m.probes,
         (unsigned long long)(F.m_idle.probes - F.m.probes));
  ck_assert_uint_eq(F.m_idle.probe_failures, 0);
  ck_assert_int_eq(F.pid_after, F.pid_at_connect);
  ck_assert_msg(F.m_idle.probes - F.m.probes >= 2,
                "%llu idle probes in the 1 s after a turn (idle probe 100 ms)",
                (unsigned long long)(F.m_idle.probes - F.m.probes));
}
END_TEST

/* Close while the stub holds the answer: EOF goes out mid-turn, the CLI
 * finishes the turn, prints its result and exits on its own (well inside the
 * EOF grace, so no signal). */
static void close_mid_turn(clink_client *c, turn_rec *t) {
  (void)c;
  (void)t;
  close_client();
}

START_TEST(stdin_eof_mid_turn) {
  static const char *const p[] = {"finish after EOF"};
  ck_assert_int_eq(clink_options_set_include_partial_messages(F.opts, 1), 0);
  ck_assert_int_eq(clink_options_set_close_turn_wait_ms(F.opts, 20000), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(F.opts, 20000, 2000), 0);
  F.first_delta = close_mid_turn;
  run("[{\"hold_ms\": 1500, \"text\": \"finished after EOF\"}]", p, 1);
  turn_rec *t = &F.turns[0];
  assert_turn_ok(t);
  ck_assert_str_eq(t->result_text, "finished after EOF");
  ck_assert_uint_gt(F.t_close_called, 0);
  ck_assert_uint_gt(t->t_done, F.t_close_called); /* the result came after the EOF */
  ck_assert_uint_ge(F.t_closed, t->t_done);
  double exit_ms = ms_between(t->t_done, F.t_closed);
  ck_assert_msg(exit_ms >= 0 && exit_ms < 10000, "exit %.0f ms after the result", exit_ms);
  /* CONNECTING, CONNECTED, CLOSING, CLOSED */
  ck_assert_int_eq(F.nstates, 4);
  ck_assert_int_eq(F.states[2], CLINK_CLIENT_CLOSING);
  int nm[8];
  ck_assert_int_eq(stub_requests(nm, NULL, 8), 1);
  printf("INFO real-cli stdin_eof_mid_turn (claude %s): close -> result %.0f ms, "
         "result -> exited and reaped %.0f ms\n",
         F.cli_version, ms_between(F.t_close_called, t->t_done), exit_ms);
}
END_TEST

/* ------------------------------------------------------- hooks, controls */

static void on_hook(clink_client *c, clink_request *req, void *ud) {
  (void)c;
  fixture *f = ud;
  if (f->tearing_down) {
    clink_request_fail(req, "test over");
    return;
  }
  f->hook_calls++;
  const cJSON *input = clink_request_field(req, "input");
  copy_str(f->hook_id, sizeof(f->hook_id), clink_request_field(req, "callback_id"));
  copy_str(f->hook_event, sizeof(f->hook_event),
           cJSON_GetObjectItemCaseSensitive(input, "hook_event_name"));
  copy_str(f->hook_tool, sizeof(f->hook_tool),
           cJSON_GetObjectItemCaseSensitive(input, "tool_name"));
  copy_str(f->hook_command, sizeof(f->hook_command),
           cJSON_GetObjectItemCaseSensitive(
               cJSON_GetObjectItemCaseSensitive(input, "tool_input"), "command"));
  f->hook_rc = clink_request_respond(
      req, f->hook_deny ? "{\"hookSpecificOutput\":{\"hookEventName\":\"PreToolUse\","
                          "\"permissionDecision\":\"deny\","
                          "\"permissionDecisionReason\":\"denied by the hook\"}}"
                        : "{\"hookSpecificOutput\":{\"hookEventName\":\"PreToolUse\","
                          "\"permissionDecision\":\"allow\","
                          "\"permissionDecisionReason\":\"allowed by the hook\"}}");
}

static void hook_run(int deny) {
  static const char *const p[] = {"make the file"};
  ck_assert_int_eq(clink_options_add_hook(F.opts, "PreToolUse", "Bash", 0), 0);
  ck_assert_int_eq(clink_options_set_hook_cb(F.opts, on_hook, &F), 0);
  /* The hook's decision replaces the permission prompt. */
  ck_assert_int_eq(clink_options_set_permission_cb(F.opts, on_permission, &F), 0);
  F.hook_deny = deny;
  run(TOOL_SCRIPT, p, 1);
  turn_rec *t = &F.turns[0];
  assert_turn_ok(t);
  ck_assert_int_eq(F.hook_calls, 1);
  ck_assert_int_eq(F.hook_rc, 0);
  ck_assert_str_eq(F.hook_id, "hook_0");
  ck_assert_str_eq(F.hook_event, "PreToolUse");
  ck_assert_str_eq(F.hook_tool, "Bash");
  ck_assert_str_eq(F.hook_command, "touch made-by-tool.txt && echo created");
  ck_assert_int_eq(F.perm_calls, 0);
  ck_assert_int_eq(t->tool_use_blocks, 1);
  int nm[8];
  ck_assert_int_eq(stub_requests(nm, NULL, 8), 2);
}

START_TEST(hook_pre_tool_use_allows) {
  hook_run(0);
  ck_assert_int_eq(file_in_cwd("made-by-tool.txt"), 1);
  ck_assert_str_eq(F.turns[0].result_text, "echo: created");
  info("hook_pre_tool_use_allows", &F.turns[0], "assistant", F.turns[0].t_first_assistant);
}
END_TEST

START_TEST(hook_pre_tool_use_denies) {
  hook_run(1);
  ck_assert_int_eq(file_in_cwd("made-by-tool.txt"), 0);
  /* 2.1.197: "echo: denied by the hook"; 2.1.332: "echo: PreToolUse:Bash hook
   * error: denied by the hook". */
  ck_assert_msg(strstr(F.turns[0].result_text, "denied by the hook") != NULL, "result: %s",
                F.turns[0].result_text);
  printf("INFO real-cli hook_pre_tool_use_denies (claude %s): tool result '%s'\n",
         F.cli_version, F.turns[0].result_text);
}
END_TEST

#define NEW_MODEL "claude-sonnet-4-5"

static void on_set_model(clink_client *c, int status, const clink_msg *response, void *ud) {
  fixture *f = ud;
  f->model_calls++;
  f->model_status = status;
  const cJSON *inner = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(clink_msg_json(response), "response"), "response");
  copy_str(f->model_answer, sizeof(f->model_answer),
           cJSON_GetObjectItemCaseSensitive(inner, "model"));
  if (status == 0)
    start_turn(1);
  else
    close_client();
  (void)c;
}

static void on_set_mode(clink_client *c, int status, const clink_msg *response, void *ud) {
  fixture *f = ud;
  f->pm_calls++;
  f->pm_status = status;
  const cJSON *inner = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(clink_msg_json(response), "response"), "response");
  copy_str(f->pm_answer, sizeof(f->pm_answer), cJSON_GetObjectItemCaseSensitive(inner, "mode"));
  if (status == 0)
    ck_assert_int_eq(clink_client_set_model(c, NEW_MODEL, on_set_model, f), 0);
  else
    close_client();
}

static int switch_after_first(clink_client *c, int idx) {
  if (idx != 0) return 0;
  ck_assert_int_eq(clink_client_set_permission_mode(c, CLINK_PERMISSION_ACCEPT_EDITS,
                                                    on_set_mode, &F),
                   0);
  return 1;
}

START_TEST(set_model_and_permission_mode) {
  static const char *const p[] = {"before", "after"};
  F.after_turn = switch_after_first;
  run("[{}]", p, 2);
  ck_assert_int_eq(F.pm_calls, 1);
  ck_assert_msg(F.pm_status == 0, "set_permission_mode: %s", clink_err_name(F.pm_status));
  ck_assert_str_eq(F.pm_answer, "acceptEdits");
  ck_assert_int_eq(F.model_calls, 1);
  ck_assert_msg(F.model_status == 0, "set_model: %s", clink_err_name(F.model_status));
  assert_turn_ok(&F.turns[0]);
  assert_turn_ok(&F.turns[1]);
  ck_assert_str_eq(F.turns[0].init_permission_mode, "default");
  ck_assert_str_eq(F.turns[1].init_permission_mode, "acceptEdits");
  ck_assert_str_eq(F.turns[1].init_model, NEW_MODEL);
  ck_assert_uint_eq(F.m.spawns, 1);
  stub_req r[8];
  int side = 0;
  char side_model[64] = "";
  int n = stub_log(r, 8, &side, side_model, sizeof(side_model));
  ck_assert_int_eq(n, 2);
  ck_assert_str_ne(r[0].model, NEW_MODEL); /* the default model before */
  ck_assert_str_eq(r[1].model, NEW_MODEL); /* the next turn's model call uses the new one */
  /* 2.1.332 checks the model with a one-token call before it answers. */
  if (side) ck_assert_str_eq(side_model, NEW_MODEL);
  printf("INFO real-cli set_model (claude %s): %s -> %s; answer model '%s'; model checks %d; "
         "unsolicited lines %d\n",
         F.cli_version, r[0].model, r[1].model, F.model_answer, side, F.unsolicited);
  stub_free(r, n);
}
END_TEST

/* ------------------------------------------------------------------ pool */

static void on_pool_closed(clink_pool *pool, void *ud) {
  (void)pool;
  fixture *f = ud;
  f->pool_closed++;
  f->pool = NULL;
}

/* A member's turn ended. Both members stay checked out until both turns
 * ended (so the second acquire cannot be served by the first member coming
 * back): then both go back, the stats are read, the pool shuts down. */
static void on_member_done(clink_client *c, int status, const clink_msg *result, void *ud) {
  (void)c;
  turn_rec *t = ud;
  if (F.tearing_down) return;
  record_done(t, status, result);
  if (!F.turns[0].done || !F.turns[1].done) return;
  for (int i = 0; i < 2; i++) {
    F.release_rc[i] = clink_pool_release(F.pool, F.member[i]);
    F.released++;
  }
  F.ps.struct_size = sizeof(F.ps);
  ck_assert_int_eq(clink_pool_get_stats(F.pool, &F.ps), 0);
  ck_assert_int_eq(clink_pool_shutdown(F.pool, CLINK_POOL_DRAIN, on_pool_closed, &F), 0);
}

static void on_acquired(clink_pool *pool, int status, clink_client *c, uint64_t retry_after_ms,
                        void *ud) {
  (void)retry_after_ms;
  turn_rec *t = ud;
  int i = (int)(t - F.turns);
  F.acquired++;
  ck_assert_msg(status == 0, "acquire %d: %s", i, clink_err_name(status));
  F.member[i] = c;
  F.member_pid[i] = clink_client_pid(c);
  if (F.acquired == 2) { /* both checked out at once */
    clink_pool_stats s;
    s.struct_size = sizeof(s);
    ck_assert_int_eq(clink_pool_get_stats(pool, &s), 0);
    F.in_use_both = (int)s.in_use;
  }
  t->t_query = uv_hrtime();
  ck_assert_int_eq(clink_client_query(c, t->prompt, on_message, on_member_done, t), 0);
}

START_TEST(pool_of_real_members) {
  static const char *const p[] = {"member one", "member two"};
  start_stub_env("[{}]");
  clink_pool_config *cfg;
  ck_assert_int_eq(clink_pool_config_new(&cfg), 0);
  ck_assert_int_eq(clink_pool_config_set_size(cfg, 2, 2), 0);
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(cfg, 30000), 0);
  ck_assert_int_eq(clink_pool_new(&F.pool, &F.loop, F.opts, cfg), 0);
  clink_pool_config_free(cfg);
  F.nturns = 2;
  for (int i = 0; i < 2; i++) {
    F.turns[i].prompt = p[i];
    ck_assert_int_eq(
        clink_pool_acquire(F.pool, NULL, "test-real-cli.c:pool", on_acquired, &F.turns[i]), 0);
  }
  uint64_t t0 = uv_hrtime();
  uv_run(&F.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(F.pool_closed, 1);
  ck_assert_int_eq(F.acquired, 2);
  ck_assert_int_eq(F.released, 2);
  char want[64];
  for (int i = 0; i < 2; i++) {
    assert_turn_ok(&F.turns[i]);
    snprintf(want, sizeof(want), "echo: %s", p[i]);
    ck_assert_str_eq(F.turns[i].result_text, want);
    ck_assert_int_eq(F.release_rc[i], 0);
    ck_assert_int_gt(F.member_pid[i], 0);
  }
  ck_assert_ptr_ne(F.member[0], F.member[1]);
  ck_assert_int_ne(F.member_pid[0], F.member_pid[1]);
  /* two concurrent turns on two processes, nothing more spawned */
  ck_assert_int_eq(F.in_use_both, 2);
  ck_assert_uint_eq(F.ps.created, 2);
  ck_assert_uint_eq(F.ps.acquired, 2);
  ck_assert_uint_eq(F.ps.size, 2);
  ck_assert_uint_eq(F.ps.idle, 2);
  ck_assert_uint_eq(F.ps.in_use, 0);
  ck_assert_uint_eq(F.ps.timeouts, 0);
  ck_assert_uint_eq(F.ps.closed, 0);
  stub_req r[8];
  int n = stub_log(r, 8, NULL, NULL, 0);
  ck_assert_int_eq(n, 2);
  ck_assert_str_ne(r[0].session, r[1].session); /* two conversations */
  stub_free(r, n);
  printf("INFO real-cli pool_of_real_members (claude %s): pids %d, %d; created %llu; "
         "acquire waits max %.0f ms; all done and closed in %.0f ms\n",
         F.cli_version, F.member_pid[0], F.member_pid[1], (unsigned long long)F.ps.created,
         (double)F.ps.wait_max_us / 1000.0, ms_between(t0, uv_hrtime()));
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

  tc = tcase_create("resilience");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, resume_after_kill);
  tcase_add_test(tc, resume_after_kill_at_result);
  tcase_add_test(tc, mcp_status_probe);
  tcase_add_test(tc, stdin_eof_mid_turn);
  tcase_add_test(tc, idle_probe_after_turn);
  suite_add_tcase(s, tc);

  tc = tcase_create("controls");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, hook_pre_tool_use_allows);
  tcase_add_test(tc, hook_pre_tool_use_denies);
  tcase_add_test(tc, set_model_and_permission_mode);
  suite_add_tcase(s, tc);

  tc = tcase_create("pool");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, pool_of_real_members);
  suite_add_tcase(s, tc);

  int rc = clink_test_run(s);
  clink_test_rm_rf(base_dir);
  return rc;
}
