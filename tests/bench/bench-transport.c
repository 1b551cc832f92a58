/* Transport benchmark: lines/s through framer + transport against a plain
 * read() + memchr loop on the same kind of channel, same fake CLI, same run.
 *
 * libuv makes a UV_CREATE_PIPE stdio channel with uv_socketpair() on Unix
 * (each run prints what the child's stdout really is, from /proc), so the
 * baseline reads a socketpair. A pipe baseline is printed too, for reference
 * only. The three are run in alternating rounds; the summary has the medians
 * and the ratio transport / socketpair baseline as it comes out.
 *
 * Then the idle-heap figure: the library heap a transport holds after a turn
 * that carried an 8 MB line, before and after clink__transport_trim().
 *
 * Usage: bench-transport FAKE_CLI [LINES] [LINE_BYTES] [ROUNDS]
 * Prints one JSON line per round and summary lines. Allocations inside the
 * library are counted (and live heap followed) with -Wl,--wrap=malloc etc.:
 * all of them during the stream (the read buffer grows over the first reads)
 * and those per line once it has (0 is the claim).
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <claudelink.h>

#include "spawn/options.h"
#include "io/transport.h"

extern char **environ;

#define CLINK_BENCH_LIVE_BYTES
#include "alloc-count.h"

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

static char lines_env[64], bytes_env[64];

static void die(const char *what) {
  fprintf(stderr, "bench-transport: %s\n", what);
  exit(1);
}

/* ------------------------------------------------------------- baseline */

enum channel { CHANNEL_SOCKETPAIR, CHANNEL_PIPE };

static double run_plain(const char *cli, enum channel ch, unsigned long *lines_out) {
  int p[2];
  if (ch == CHANNEL_SOCKETPAIR) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) die("socketpair");
  } else if (pipe2(p, O_CLOEXEC) != 0) {
    die("pipe");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1); /* the copy is not close-on-exec */
  char *argv[] = {(char *)cli, "--output-format", "stream-json", "--verbose",
                  "--input-format", "stream-json", NULL};
  putenv(lines_env);
  putenv(bytes_env);
  double t0 = now_s();
  pid_t pid;
  if (posix_spawn(&pid, cli, &fa, NULL, argv, environ) != 0) die("posix_spawn");
  close(p[1]);
  static char buf[65536];
  unsigned long lines = 0;
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0) {
    const char *s = buf, *e = buf + n, *nl;
    while ((nl = memchr(s, '\n', (size_t)(e - s))) != NULL) {
      lines++;
      s = nl + 1;
    }
  }
  double dt = now_s() - t0;
  close(p[0]);
  waitpid(pid, NULL, 0);
  posix_spawn_file_actions_destroy(&fa);
  *lines_out = lines;
  return dt;
}

/* ------------------------------------------------------------ transport */

/* Lines after which the read buffer has reached its working size. */
#define WARM_LINES 10000

typedef struct run {
  unsigned long lines;
  size_t bytes;
  unsigned long alloc_at_first_line;
  unsigned long alloc_at_warm;
  unsigned long alloc_at_exit;
  int stop_on_result;
  clink__transport *t;
  uv_loop_t *loop;
} run;

static void on_line(void *ud, const char *line, size_t len) {
  run *r = ud;
  if (r->lines == 0) r->alloc_at_first_line = n_alloc;
  if (r->lines == WARM_LINES) r->alloc_at_warm = n_alloc;
  r->lines++;
  r->bytes += len;
  if (r->stop_on_result && memmem(line, len, "\"type\":\"result\"", 15) != NULL)
    uv_stop(r->loop);
}

static void on_closed(void *ud) { (void)ud; }

static void on_exit_cb(void *ud, int64_t st, int sig) {
  run *r = ud;
  r->alloc_at_exit = n_alloc;
  clink__transport_close(r->t, on_closed, r);
}

/* What the child's stdout is, as the kernel says ("socket:[...]", "pipe:[...]"). */
static void channel_kind(int pid, char *out, size_t len) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/fd/1", pid);
  ssize_t n = readlink(path, out, len - 1);
  out[n > 0 ? (size_t)n : 0] = '\0';
  char *bracket = strchr(out, ':');
  if (bracket) *bracket = '\0';
}

static void build_spec(clink__spawn_spec *spec, const char *cli, const char *lines,
                       const char *bytes, const char *long_line) {
  clink_options *o;
  if (clink_options_new(&o) != 0) die("options");
  clink_options_set_cli_path(o, cli);
  clink_options_set_exec_shim(o, NULL);
  /* NULL removes what the baseline runs put in our own environment. */
  clink_options_set_env(o, "FAKE_BENCH_LINES", lines);
  clink_options_set_env(o, "FAKE_BENCH_LINE_BYTES", bytes);
  if (long_line) clink_options_set_env(o, "FAKE_LONG_LINE", long_line);
  if (clink__spawn_spec_build(spec, o, NULL, 0) != 0) die("spawn spec");
  clink_options_free(o);
}

static double run_transport(const char *cli, run *r, char *kind, size_t kind_len) {
  clink__spawn_spec spec;
  build_spec(&spec, cli, strchr(lines_env, '=') + 1, strchr(bytes_env, '=') + 1, NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  clink__transport_cbs cbs = {on_line, NULL, NULL, NULL, on_exit_cb};
  memset(r, 0, sizeof(*r));
  r->loop = &loop;
  double t0 = now_s();
  if (clink__transport_spawn(&r->t, &loop, &spec, &cbs, r, NULL, 0) != 0) die("spawn");
  channel_kind(clink__transport_pid(r->t), kind, kind_len);
  uv_run(&loop, UV_RUN_DEFAULT);
  double dt = now_s() - t0;
  if (uv_loop_close(&loop) != 0) die("loop busy");
  clink__spawn_spec_free(&spec);
  return dt;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------ idle heap */

#define USER_LINE                                                                       \
  "{\"type\":\"user\",\"session_id\":\"\",\"message\":{\"role\":\"user\",\"content\":" \
  "\"hi\"},\"parent_tool_use_id\":null}"

static void idle_heap(const char *cli) {
  const unsigned long big = 8000000;
  char big_s[32];
  snprintf(big_s, sizeof(big_s), "%lu", big);
  clink__spawn_spec spec;
  build_spec(&spec, cli, NULL, NULL, big_s);
  uv_loop_t loop;
  uv_loop_init(&loop);
  clink__transport_cbs cbs = {on_line, NULL, NULL, NULL, on_exit_cb};
  run r;
  memset(&r, 0, sizeof(r));
  r.loop = &loop;
  r.stop_on_result = 1;
  long long live0 = live_bytes;
  if (clink__transport_spawn(&r.t, &loop, &spec, &cbs, &r, NULL, 0) != 0) die("spawn");
  long long live_start = live_bytes - live0;
  if (clink__transport_write(r.t, USER_LINE, strlen(USER_LINE), NULL, NULL) != 0) die("write");
  uv_run(&loop, UV_RUN_DEFAULT); /* stopped at the result: the session is idle */
  long long live_turn = live_bytes - live0;
  unsigned long allocs0 = n_alloc;
  int rc = clink__transport_trim(r.t);
  long long live_trim = live_bytes - live0;
  printf("{\"bench\":\"idle_heap\",\"line_bytes\":%lu,\"trim\":\"%s\","
         "\"library_heap_at_start\":%lld,\"library_heap_after_turn\":%lld,"
         "\"library_heap_after_trim\":%lld,\"trim_allocations\":%lu,"
         "\"goal_after_trim\":16384,\"met\":%s}\n",
         big, clink_err_name(rc), live_start, live_turn, live_trim, n_alloc - allocs0,
         live_trim <= 16384 ? "true" : "false");
  clink__transport_close(r.t, on_closed, &r);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) die("loop busy");
  clink__spawn_spec_free(&spec);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FAKE_CLI [LINES] [LINE_BYTES] [ROUNDS]\n", argv[0]);
    return 2;
  }
  const char *cli = argv[1];
  unsigned long want = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
  unsigned long size = argc > 3 ? strtoul(argv[3], NULL, 10) : 300;
  int rounds = argc > 4 ? atoi(argv[4]) : 5;
  if (rounds < 1 || rounds > 64) rounds = 5;
  snprintf(lines_env, sizeof(lines_env), "FAKE_BENCH_LINES=%lu", want);
  snprintf(bytes_env, sizeof(bytes_env), "FAKE_BENCH_LINE_BYTES=%lu", size);

  double sock[64], pip[64], trans[64];
  unsigned long per_line_allocs = 0, warm_allocs = 0;
  char kind[64] = "";
  for (int i = 0; i < rounds; i++) {
    unsigned long ls, lp;
    run r;
    /* Alternating, and the order rotates so no path always goes first. */
    for (int k = 0; k < 3; k++) {
      switch ((i + k) % 3) {
        case 0: sock[i] = run_plain(cli, CHANNEL_SOCKETPAIR, &ls); break;
        case 1: trans[i] = run_transport(cli, &r, kind, sizeof(kind)); break;
        default: pip[i] = run_plain(cli, CHANNEL_PIPE, &lp); break;
      }
    }
    if (ls != want || lp != want || r.lines != want) {
      fprintf(stderr, "line count mismatch: socketpair %lu pipe %lu transport %lu want %lu\n",
              ls, lp, r.lines, want);
      return 1;
    }
    per_line_allocs = r.alloc_at_exit - r.alloc_at_first_line;
    warm_allocs = want > WARM_LINES ? r.alloc_at_exit - r.alloc_at_warm : 0;
    printf("{\"round\":%d,\"socketpair_lines_per_s\":%.0f,\"transport_lines_per_s\":%.0f,"
           "\"pipe_lines_per_s\":%.0f,\"transport_child_stdout\":\"%s\","
           "\"allocs_during_stream\":%lu,\"allocs_after_first_%d_lines\":%lu}\n",
           i + 1, want / sock[i], want / trans[i], want / pip[i], kind, per_line_allocs,
           WARM_LINES, warm_allocs);
  }
  qsort(sock, (size_t)rounds, sizeof(double), cmp);
  qsort(pip, (size_t)rounds, sizeof(double), cmp);
  qsort(trans, (size_t)rounds, sizeof(double), cmp);
  double b = want / sock[rounds / 2], t = want / trans[rounds / 2], p = want / pip[rounds / 2];
  printf("{\"bench\":\"transport\",\"lines\":%lu,\"line_bytes\":%lu,\"rounds\":%d,"
         "\"transport_child_stdout\":\"%s\",\"baseline\":\"read()+memchr on a socketpair\","
         "\"baseline_lines_per_s\":%.0f,\"transport_lines_per_s\":%.0f,\"ratio\":%.3f,"
         "\"baseline_mb_per_s\":%.0f,\"transport_mb_per_s\":%.0f,"
         "\"pipe_lines_per_s\":%.0f,\"allocs_during_stream\":%lu,"
         "\"allocs_per_line_after_warmup\":%.6f}\n",
         want, size, rounds, kind, b, t, t / b, b * (size + 1) / 1e6, t * (size + 1) / 1e6, p,
         per_line_allocs,
         want > WARM_LINES ? (double)warm_allocs / (double)(want - WARM_LINES) : 0.0);
  idle_heap(cli);
  return 0;
}
