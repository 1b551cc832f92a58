/* Pool benchmark: prints figures, asserts nothing about timing.
 *
 * Usage: bench-pool FAKE_CLI [EXEC_SHIM|-] [MEMBERS] [ITERATIONS]
 *
 * 1. warm try_acquire + release with MEMBERS (1000) idle members: ns per
 *    pair (each pair timed with clock_gettime; p50/p99, raw and minus the
 *    clock's own cost, and the mean of an untimed run), allocations per pair.
 * 2. a 50-request burst on an empty pool of max 100: processes spawned (held
 *    until all are served, and released at once).
 * 3. MEMBERS concurrent sessions in one loop, each one turn: completions;
 *    library heap per idle session (live bytes through the malloc wrap, and
 *    the whole heap from mallinfo2); fds and children back to baseline after
 *    shutdown.
 * 4. kill -9 of a pooled process: time until the pool holds a healthy
 *    replacement, against the fake CLI's own start-up (spawn to initialize
 *    response) measured with a plain client.
 *
 * Allocations of everything linked statically (the library) are counted with
 * -Wl,--wrap=malloc,calloc,realloc,free; live bytes use malloc_usable_size.
 */
#include <dirent.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <claudelink.h>

/* ------------------------------------------------------ allocation count */

static unsigned long n_alloc;
static long long live_bytes;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
void *__wrap_malloc(size_t n) {
  n_alloc++;
  void *p = __real_malloc(n);
  if (p) live_bytes += (long long)malloc_usable_size(p);
  return p;
}
void *__wrap_calloc(size_t n, size_t s) {
  n_alloc++;
  void *p = __real_calloc(n, s);
  if (p) live_bytes += (long long)malloc_usable_size(p);
  return p;
}
void *__wrap_realloc(void *p, size_t n) {
  n_alloc++;
  long long before = p ? (long long)malloc_usable_size(p) : 0;
  void *q = __real_realloc(p, n);
  if (q) live_bytes += (long long)malloc_usable_size(q) - before;
  return q;
}
void __wrap_free(void *p) {
  if (p) live_bytes -= (long long)malloc_usable_size(p);
  __real_free(p);
}

/* ---------------------------------------------------------------- helpers */

static uv_loop_t loop;
static clink_options *opts;
static int replaced, spawned, closed_events;
static uint64_t replaced_at_ns;

static uint64_t ns_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d == NULL) return -1;
  while (readdir(d)) n++;
  closedir(d);
  return n - 3; /* ".", "..", the DIR's own fd */
}

/* Processes whose parent is us (zombies included). */
static int count_children(void) {
  DIR *d = opendir("/proc");
  int n = 0;
  pid_t me = getpid();
  struct dirent *e;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *rp = strrchr(buf, ')');
    int ppid = 0;
    char st;
    if (rp && sscanf(rp + 1, " %c %d", &st, &ppid) == 2 && ppid == me) n++;
  }
  closedir(d);
  return n;
}

static size_t heap_in_use(void) { return mallinfo2().uordblks; }

/* Resident set of this process, bytes. */
static long long rss_bytes(void) {
  long long size = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return 0;
  if (fscanf(f, "%lld %lld", &size, &res) != 2) res = 0;
  fclose(f);
  return res * sysconf(_SC_PAGESIZE);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void on_event(clink_pool *p, clink_pool_event ev, clink_client *c, const char *detail,
                     void *ud) {
  if (ev == CLINK_POOL_EVENT_SPAWNED) spawned++;
  if (ev == CLINK_POOL_EVENT_CLOSED) closed_events++;
  if (ev == CLINK_POOL_EVENT_REPLACED) {
    replaced++;
    replaced_at_ns = ns_now();
  }
}

static int pool_closed;
static void on_pool_closed(clink_pool *p, void *ud) { pool_closed = 1; }

static clink_pool_stats get_stats(clink_pool *p) {
  clink_pool_stats s;
  memset(&s, 0, sizeof(s));
  s.struct_size = sizeof(s);
  clink_pool_get_stats(p, &s);
  return s;
}

static clink_pool *make_pool(unsigned min_idle, unsigned max_size) {
  clink_pool_config *cfg;
  clink_pool *p;
  if (clink_pool_config_new(&cfg) != 0 || clink_pool_config_set_size(cfg, min_idle, max_size) ||
      clink_pool_config_set_max_waiters(cfg, 0) ||
      clink_pool_config_set_acquire_timeout_ms(cfg, 120000) ||
      clink_pool_new(&p, &loop, opts, cfg) != 0) {
    fprintf(stderr, "pool creation failed\n");
    exit(1);
  }
  clink_pool_config_free(cfg);
  clink_pool_set_event_cb(p, on_event, NULL);
  return p;
}

static void close_pool(clink_pool *p) {
  pool_closed = 0;
  clink_pool_shutdown(p, CLINK_POOL_IMMEDIATE, on_pool_closed, NULL);
  while (!pool_closed) uv_run(&loop, UV_RUN_ONCE);
}

static void wait_idle(clink_pool *p, uint32_t n) {
  while (get_stats(p).idle < n) uv_run(&loop, UV_RUN_ONCE);
}

static void on_connect(clink_client *c, int status, void *ud);
static void on_client_closed(clink_client *c, void *ud);
static int connected, client_closed;

/* ------------------------------------------------- 1 and 3: warm members */

typedef struct sess {
  clink_pool *pool;
  clink_client *c;
  int acquired, turned, failed;
} sess;

static int n_acquired, n_turned, n_failed;

static void on_turn(clink_client *c, int status, const clink_msg *r, void *ud) {
  sess *s = ud;
  s->turned = 1;
  n_turned++;
  if (status != 0) n_failed++;
}

static void on_acquired(clink_pool *p, int status, clink_client *c, uint64_t ra, void *ud) {
  sess *s = ud;
  s->acquired = 1;
  n_acquired++;
  if (status != 0) {
    s->failed = 1;
    n_failed++;
    return;
  }
  s->c = c;
}

static void bench_warm(unsigned members, unsigned long iters) {
  printf("== 1/3. %u warm members\n", members);
  int fds0 = count_fds(), kids0 = count_children();
  long long live0 = live_bytes, rss0 = rss_bytes();
  size_t heap0 = heap_in_use();
  uint64_t t0 = ns_now();
  clink_pool *p = make_pool(members, members);
  wait_idle(p, members);
  double fill_s = (double)(ns_now() - t0) / 1e9;
  long long live1 = live_bytes, rss1 = rss_bytes();
  size_t heap1 = heap_in_use();
  printf("fill: %u members connected in %.2f s; fds %d -> %d, children %d -> %d\n", members,
         fill_s, fds0, count_fds(), kids0, count_children());

  /* 1. try_acquire + release pairs. */
  uint32_t *lat = malloc(iters * sizeof(*lat));
  if (lat == NULL) exit(1);
  clink_client *c;
  for (unsigned long i = 0; i < 10000; i++) { /* warm-up */
    if (clink_pool_try_acquire(p, &c) != 0) exit(1);
    clink_pool_release(p, c);
  }
  uint64_t clock_cost[1001];
  for (int i = 0; i < 1001; i++) {
    uint64_t a = ns_now();
    clock_cost[i] = ns_now() - a;
  }
  qsort(clock_cost, 1001, sizeof(uint64_t), cmp_u64);
  uint64_t overhead = clock_cost[500];
  unsigned long allocs0 = n_alloc;
  int errs = 0;
  for (unsigned long i = 0; i < iters; i++) {
    uint64_t a = ns_now();
    int rc = clink_pool_try_acquire(p, &c);
    rc |= clink_pool_release(p, c);
    uint64_t b = ns_now();
    errs += rc != 0;
    lat[i] = (uint32_t)(b - a);
  }
  unsigned long allocs = n_alloc - allocs0;
  uint64_t u0 = ns_now();
  for (unsigned long i = 0; i < iters; i++) {
    clink_pool_try_acquire(p, &c);
    clink_pool_release(p, c);
  }
  double mean_untimed = (double)(ns_now() - u0) / (double)iters;
  qsort(lat, iters, sizeof(*lat), cmp_u32);
  uint32_t p50 = lat[iters / 2], p99 = lat[iters * 99 / 100], p999 = lat[iters * 999 / 1000];
  printf("try_acquire+release, %lu pairs over %u idle: p50 %u ns, p99 %u ns, p99.9 %u ns, max "
         "%u ns (raw, incl. one clock read of %llu ns); minus it: p50 %lld ns, p99 %lld ns; "
         "untimed mean %.1f ns/pair; allocations %lu (%.3f per pair); errors %d\n",
         iters, members, p50, p99, p999, lat[iters - 1], (unsigned long long)overhead,
         (long long)p50 - (long long)overhead, (long long)p99 - (long long)overhead,
         mean_untimed, allocs, (double)allocs / (double)iters, errs);
  free(lat);

  /* The async path on an idle hit: acquire, the callback from the loop,
   * release. */
  {
    sess one;
    unsigned long n = iters / 10 ? iters / 10 : 1, a0 = n_alloc;
    uint64_t s0 = ns_now();
    for (unsigned long i = 0; i < n; i++) {
      memset(&one, 0, sizeof(one));
      clink_pool_acquire(p, NULL, "bench", on_acquired, &one);
      while (!one.acquired) uv_run(&loop, UV_RUN_NOWAIT);
      clink_pool_release(p, one.c);
    }
    printf("acquire (idle hit, result from the loop) + release: %.0f ns per pair incl. a loop "
           "iteration, allocations %.3f per pair\n",
           (double)(ns_now() - s0) / (double)n, (double)(n_alloc - a0) / (double)n);
  }

  /* 3. every member does one turn, all at once. */
  sess *ss = calloc(members, sizeof(*ss));
  n_acquired = n_turned = n_failed = 0;
  uint64_t t3 = ns_now();
  for (unsigned i = 0; i < members; i++) {
    ss[i].pool = p;
    clink_pool_acquire(p, NULL, "bench", on_acquired, &ss[i]);
  }
  while (n_acquired < (int)members) uv_run(&loop, UV_RUN_ONCE);
  for (unsigned i = 0; i < members; i++)
    if (ss[i].c && clink_client_query(ss[i].c, "hello", NULL, on_turn, &ss[i]) != 0) {
      ss[i].turned = 1;
      n_turned++;
      n_failed++;
    }
  while (n_turned < (int)members) uv_run(&loop, UV_RUN_ONCE);
  double turn_s = (double)(ns_now() - t3) / 1e9;
  clink_pool_stats st = get_stats(p);
  printf("%u concurrent sessions, one turn each: %d completed, %d failed, in %.2f s "
         "(in use %u, spawned during it %llu)\n",
         members, n_turned - n_failed, n_failed, turn_s, st.in_use,
         (unsigned long long)(st.created - members));
  for (unsigned i = 0; i < members; i++)
    if (ss[i].c) clink_pool_release(p, ss[i].c);
  long long live2 = live_bytes, rss2 = rss_bytes();
  size_t heap2 = heap_in_use();
  printf("heap per idle session: library %.1f KiB after connect, %.1f KiB after a turn; "
         "whole heap (libuv, cJSON too) %.1f KiB, %.1f KiB; resident %.1f KiB, %.1f KiB\n",
         (double)(live1 - live0) / members / 1024.0, (double)(live2 - live0) / members / 1024.0,
         (double)((long long)heap1 - (long long)heap0) / members / 1024.0,
         (double)((long long)heap2 - (long long)heap0) / members / 1024.0,
         (double)(rss1 - rss0) / members / 1024.0, (double)(rss2 - rss0) / members / 1024.0);
  free(ss);
  close_pool(p);
  while (uv_run(&loop, UV_RUN_NOWAIT) != 0 && count_children() > kids0) uv_run(&loop, UV_RUN_ONCE);
  printf("after shutdown: fds %d (baseline %d), children %d (baseline %d)\n", count_fds(), fds0,
         count_children(), kids0);
}

/* ----------------------------------------------------------- 2: bursts */

static void bench_burst(int release_at_once) {
  clink_pool *p = make_pool(0, 100);
  sess ss[50];
  memset(ss, 0, sizeof(ss));
  n_acquired = n_failed = 0;
  uint64_t t0 = ns_now();
  for (int i = 0; i < 50; i++) clink_pool_acquire(p, NULL, "burst", on_acquired, &ss[i]);
  while (n_acquired < 50) {
    uv_run(&loop, UV_RUN_ONCE);
    if (release_at_once)
      for (int i = 0; i < 50; i++)
        if (ss[i].c) {
          clink_pool_release(p, ss[i].c);
          ss[i].c = NULL;
        }
  }
  double s = (double)(ns_now() - t0) / 1e6;
  clink_pool_stats st = get_stats(p);
  printf("burst of 50 on an empty pool (max 100), %s: %llu processes spawned, all served in "
         "%.1f ms, %d failed\n",
         release_at_once ? "each released when served" : "all held",
         (unsigned long long)st.created, s, n_failed);
  for (int i = 0; i < 50; i++)
    if (ss[i].c) clink_pool_release(p, ss[i].c);
  close_pool(p);
}

/* ----------------------------------------------------- 4: kill -9 -> new */

static uint64_t connected_at_ns;
static void on_connect(clink_client *c, int status, void *ud) {
  connected = status == 0 ? 1 : -1;
  connected_at_ns = ns_now();
}
static void on_client_closed(clink_client *c, void *ud) { client_closed = 1; }

static void bench_replace(int rounds) {
  uint64_t *startup = calloc((size_t)rounds, sizeof(uint64_t));
  uint64_t *repl = calloc((size_t)rounds, sizeof(uint64_t));
  for (int i = 0; i < rounds; i++) {
    clink_client *c;
    clink_client_new(&c, &loop, opts);
    connected = 0;
    uint64_t t0 = ns_now();
    clink_client_connect(c, on_connect, NULL);
    while (!connected) uv_run(&loop, UV_RUN_ONCE);
    startup[i] = connected_at_ns - t0;
    client_closed = 0;
    clink_client_close(c, on_client_closed, NULL);
    while (!client_closed) uv_run(&loop, UV_RUN_ONCE);
  }
  clink_pool *p = make_pool(2, 4);
  wait_idle(p, 2);
  for (int i = 0; i < rounds; i++) {
    clink_client *c;
    if (clink_pool_try_acquire(p, &c) != 0) exit(1);
    int pid = clink_client_pid(c);
    clink_pool_release(p, c);
    int before = replaced;
    uint64_t t0 = ns_now();
    kill(pid, SIGKILL);
    while (replaced == before) uv_run(&loop, UV_RUN_ONCE);
    repl[i] = replaced_at_ns - t0;
    wait_idle(p, 2);
  }
  close_pool(p);
  qsort(startup, (size_t)rounds, sizeof(uint64_t), cmp_u64);
  qsort(repl, (size_t)rounds, sizeof(uint64_t), cmp_u64);
  printf("fake CLI start-up (spawn -> initialize response), %d runs: median %.2f ms, "
         "p90 %.2f ms\n",
         rounds, startup[rounds / 2] / 1e6, startup[rounds * 9 / 10] / 1e6);
  printf("kill -9 of an idle member -> healthy replacement connected, %d runs: median %.2f ms, "
         "p90 %.2f ms (median overhead over start-up %+.2f ms)\n",
         rounds, repl[rounds / 2] / 1e6, repl[rounds * 9 / 10] / 1e6,
         ((double)repl[rounds / 2] - (double)startup[rounds / 2]) / 1e6);
  free(startup);
  free(repl);
}


static int big_turn_done, big_turn_status;
static void on_big_turn(clink_client *c, int status, const clink_msg *r, void *ud) {
  (void)c;
  (void)r;
  (void)ud;
  big_turn_done = 1;
  big_turn_status = status;
}

/* 5. One session whose turn carried an 8 MB line (a big tool result), then
 * idle: the library heap it keeps (goal: back to <= 16 KiB). */
static void bench_idle_after_big_line(void) {
  clink_options *o;
  clink_options_dup(&o, opts);
  clink_options_set_env(o, "FAKE_LONG_LINE", "8388608");
  long long live0 = live_bytes;
  clink_client *c;
  connected = 0;
  clink_client_new(&c, &loop, o);
  clink_options_free(o);
  clink_client_connect(c, on_connect, NULL);
  while (!connected) uv_run(&loop, UV_RUN_ONCE);
  long long live_connected = live_bytes - live0;
  clink_client_query(c, "big", NULL, on_big_turn, NULL);
  while (!big_turn_done) uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_NOWAIT); /* the idle trim runs from the loop */
  long long live_idle = live_bytes - live0;
  printf("idle session after a turn with an 8 MB line (%s): library heap %.1f KiB "
         "(%.1f KiB right after connect)\n",
         clink_err_name(big_turn_status), live_idle / 1024.0, live_connected / 1024.0);
  client_closed = 0;
  clink_client_close(c, on_client_closed, NULL);
  while (!client_closed) uv_run(&loop, UV_RUN_ONCE);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FAKE_CLI [EXEC_SHIM|-] [MEMBERS] [ITERATIONS]\n", argv[0]);
    return 2;
  }
  const char *shim = argc > 2 && strcmp(argv[2], "-") != 0 ? argv[2] : NULL;
  unsigned members = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 1000;
  unsigned long iters = argc > 4 ? strtoul(argv[4], NULL, 10) : 1000000;
  if (members == 0 || iters == 0) return 2;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  printf("bench-pool: %u members, %lu iterations, exec shim %s, fd limit %llu\n", members,
         iters, shim ? shim : "none", (unsigned long long)rl.rlim_cur);
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  clink_options_new(&opts);
  clink_options_set_cli_path(opts, argv[1]);
  clink_options_set_exec_shim(opts, shim);
  clink_options_set_close_grace_ms(opts, 500, 500);
  clink_options_set_connect_timeout_ms(opts, 120000);

  /* One client first: libuv's child watcher (its fds) stays with the loop
   * and belongs in the baseline. */
  clink_client *c;
  clink_client_new(&c, &loop, opts);
  clink_client_connect(c, on_connect, NULL);
  while (!connected) uv_run(&loop, UV_RUN_ONCE);
  clink_client_close(c, on_client_closed, NULL);
  while (!client_closed) uv_run(&loop, UV_RUN_ONCE);

  bench_warm(members, iters);
  printf("== 2. bursts\n");
  bench_burst(0);
  bench_burst(1);
  printf("== 4. replacement after kill -9\n");
  bench_replace(21);
  printf("== 5. idle heap after a big line\n");
  bench_idle_after_big_line();
  clink_options_free(opts);
  uv_run(&loop, UV_RUN_DEFAULT);
  printf("loop close: %d\n", uv_loop_close(&loop));
  return 0;
}
