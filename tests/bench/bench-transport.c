/* Transport benchmark: lines/s through framer + transport against a plain
 * read() + memchr loop on the same kind of pipe, same fake CLI, same run.
 *
 * Usage: bench-transport FAKE_CLI [LINES] [LINE_BYTES] [ROUNDS]
 * Prints one JSON line per round and a summary line with medians and ratio.
 * Allocations inside the library are counted with -Wl,--wrap=malloc etc.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <claudelink.h>

#include "spawn/options.h"
#include "io/transport.h"

extern char **environ;

#include "alloc-count.h"

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

static char lines_env[64], bytes_env[64];

/* ------------------------------------------------------------- baseline */

static double run_plain(const char *cli, unsigned long *lines_out) {
  int p[2];
  if (pipe(p) != 0) abort();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  char *argv[] = {(char *)cli, "--output-format", "stream-json", "--verbose",
                  "--input-format", "stream-json", NULL};
  putenv(lines_env);
  putenv(bytes_env);
  double t0 = now_s();
  pid_t pid;
  if (posix_spawn(&pid, cli, &fa, NULL, argv, environ) != 0) abort();
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

typedef struct run {
  unsigned long lines;
  size_t bytes;
  unsigned long alloc_at_first_line;
  unsigned long alloc_at_exit;
  clink__transport *t;
} run;

static void on_line(void *ud, const char *line, size_t len) {
  run *r = ud;
  if (r->lines++ == 0) r->alloc_at_first_line = n_alloc;
  r->bytes += len;
}

static void on_closed(void *ud) { (void)ud; }

static void on_exit_cb(void *ud, int64_t st, int sig) {
  run *r = ud;
  r->alloc_at_exit = n_alloc;
  clink__transport_close(r->t, on_closed, r);
}

static double run_transport(const char *cli, run *r) {
  clink_options *o;
  clink_options_new(&o);
  clink_options_set_cli_path(o, cli);
  clink_options_set_exec_shim(o, NULL);
  clink_options_set_env(o, "FAKE_BENCH_LINES", strchr(lines_env, '=') + 1);
  clink_options_set_env(o, "FAKE_BENCH_LINE_BYTES", strchr(bytes_env, '=') + 1);
  clink__spawn_spec spec;
  if (clink__spawn_spec_build(&spec, o, NULL, 0) != 0) abort();
  uv_loop_t loop;
  uv_loop_init(&loop);
  clink__transport_cbs cbs = {on_line, NULL, NULL, NULL, on_exit_cb};
  memset(r, 0, sizeof(*r));
  double t0 = now_s();
  if (clink__transport_spawn(&r->t, &loop, &spec, &cbs, r, NULL, 0) != 0) abort();
  uv_run(&loop, UV_RUN_DEFAULT);
  double dt = now_s() - t0;
  uv_loop_close(&loop);
  clink__spawn_spec_free(&spec);
  clink_options_free(o);
  return dt;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
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

  double plain[64], trans[64];
  unsigned long per_line_allocs = 0;
  for (int i = 0; i < rounds; i++) {
    unsigned long pl;
    plain[i] = run_plain(cli, &pl);
    run r;
    trans[i] = run_transport(cli, &r);
    if (pl != want || r.lines != want) {
      fprintf(stderr, "line count mismatch: plain %lu transport %lu want %lu\n", pl, r.lines,
              want);
      return 1;
    }
    per_line_allocs = r.alloc_at_exit - r.alloc_at_first_line;
    printf("{\"round\":%d,\"plain_lines_per_s\":%.0f,\"transport_lines_per_s\":%.0f,"
           "\"allocs_during_stream\":%lu}\n",
           i + 1, want / plain[i], want / trans[i], per_line_allocs);
  }
  qsort(plain, (size_t)rounds, sizeof(double), cmp);
  qsort(trans, (size_t)rounds, sizeof(double), cmp);
  double p = want / plain[rounds / 2], t = want / trans[rounds / 2];
  printf("{\"bench\":\"transport\",\"lines\":%lu,\"line_bytes\":%lu,\"rounds\":%d,"
         "\"plain_lines_per_s\":%.0f,\"transport_lines_per_s\":%.0f,\"ratio\":%.3f,"
         "\"plain_mb_per_s\":%.0f,\"transport_mb_per_s\":%.0f,"
         "\"allocs_per_line\":%.6f}\n",
         want, size, rounds, p, t, t / p, p * (size + 1) / 1e6, t * (size + 1) / 1e6,
         (double)per_line_allocs / (double)want);
  return 0;
}
