/* Health monitor benchmark, side by side in one run.
 *
 * Usage: bench-health FAKE_CLI [ITERATIONS] [STREAM_ROUNDS] [METER_ITERATIONS]
 * (0 stream rounds or meter iterations: that part is skipped)
 *
 * 1. Snapshot + render with 1,000 sessions, 10 breakers, 10 fallback
 *    operations (goal: each <= 200 us): the snapshot is taken live from a
 *    monitor with 1,000 attached clients (not started: no processes), a
 *    registry of 10 breakers and a fallback provider of 10 operations; the
 *    sessions' ids, which a CLI reports with its first turn, are filled in
 *    synthetically (1,000 UUIDs, counted in the time). Then rendered into a
 *    caller's buffer as /health/detailed JSON and as Prometheus text.
 * 2. The hot path: the request meter (begin + end with a latency) in ns,
 *    allocations counted (goal: a few ns, 0 allocations).
 * 3. The stream benchmark (one turn of FAKE_MSGS=100000 x 4 bytes from the
 *    fake CLI, as claudelink-bench) without a monitor, with one attached as
 *    deployed (client attached, default sampling, a snapshot rendered as
 *    Prometheus text every second) and with an aggressive one (sampling
 *    every 10 ms, a scrape every 100 ms), rounds alternating: msgs/s
 *    medians.
 * Prints one JSON line per figure and a Markdown summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <claudelink.h>

#include "alloc-count.h"
#include "monitor/health.h"

#define N_SESSIONS 1000
#define N_BREAKERS 10
#define N_FALLBACKS 10

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct stats {
  double p50, p99, mean;
} stats;

static stats summarize(double *v, size_t n) {
  stats s = {0, 0, 0};
  for (size_t i = 0; i < n; i++) s.mean += v[i];
  s.mean /= (double)n;
  qsort(v, n, sizeof(*v), cmp_double);
  s.p50 = v[n / 2];
  s.p99 = v[(n * 99) / 100];
  return s;
}

static void provide(clink_health_fallbacks *out, void *ud) {
  (void)ud;
  static const char *const ops[N_FALLBACKS] = {"chat",   "create_session", "summarize",
                                               "search", "classify",       "translate",
                                               "embed",  "moderate",       "extract",
                                               "rank"};
  for (int i = 0; i < N_FALLBACKS; i++) {
    clink_health_fallback_op op = {sizeof(op), 1000u + (uint64_t)i, 950, 50, 30};
    if (clink_health_fallbacks_add(out, ops[i], &op) != 0) abort();
  }
}

/* What started CLIs would have reported: an id each, connected. A copy of
 * ready-made ids, as the snapshot copies the clients' own. */
static char ids[N_SESSIONS][40];

static void fill_ids(clink_health_snapshot *s) {
  for (size_t i = 0; i < s->n_sess && i < N_SESSIONS; i++) {
    memcpy(s->sess[i].id, ids[i], 37);
    s->sess[i].state = CLINK_CLIENT_CONNECTED;
  }
}

/* -------------------------------------------------- snapshot + render */

static void bench_render(unsigned long iters) {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) abort();
  clink_health *h;
  if (clink_health_new(&h, &loop) != 0) abort();
  clink_health_set_service(h, "Claude Chat API", "1.0.0");
  clink_options *o;
  clink_options_new(&o);
  clink_client **clients = calloc(N_SESSIONS, sizeof(*clients));
  for (int i = 0; i < N_SESSIONS; i++) {
    if (clink_client_new(&clients[i], &loop, o) != 0) abort();
    if (clink_health_attach_client(h, clients[i]) != 0) abort();
  }
  clink_options_free(o);
  clink_breaker_registry *reg;
  clink_breaker_registry_new(&reg, 1);
  char name[32];
  for (int i = 2; i < N_BREAKERS; i++) {
    snprintf(name, sizeof(name), "breaker_%d", i);
    clink_breaker_registry_add(reg, name, NULL, NULL);
  }
  clink_health_attach_breakers(h, reg);
  clink_health_set_fallback_provider(h, provide, NULL);
  for (int i = 0; i < 100; i++) clink_health_request_begin(h), clink_health_request_end(h, i % 10 == 0, 1000u * (uint64_t)i);

  clink_health_snapshot *s;
  clink_health_snapshot_new(&s);
  size_t cap = 1 << 20, len_d = 0, len_p = 0;
  char *buf = malloc(cap);
  double *t_take = calloc(iters, sizeof(double)), *t_det = calloc(iters, sizeof(double));
  double *t_prom = calloc(iters, sizeof(double)), *t_sd = calloc(iters, sizeof(double));
  double *t_sp = calloc(iters, sizeof(double));
  unsigned long a_take = 0, a_prom = 0;
  for (unsigned long i = 0; i < iters + 50; i++) {
    unsigned long a0 = n_alloc;
    uint64_t t0 = uv_hrtime();
    if (clink_health_snapshot_take(h, s) != 0) abort();
    fill_ids(s);
    uint64_t t1 = uv_hrtime();
    unsigned long a1 = n_alloc;
    if (clink_health_render(s, CLINK_HEALTH_FORMAT_DETAILED, buf, cap, &len_d) != 0) abort();
    uint64_t t2 = uv_hrtime();
    unsigned long a2 = n_alloc;
    if (clink_health_render(s, CLINK_HEALTH_FORMAT_PROMETHEUS, buf, cap, &len_p) != 0) abort();
    uint64_t t3 = uv_hrtime();
    if (i < 50) continue; /* warm-up: tables and arrays grown */
    unsigned long k = i - 50;
    t_take[k] = (double)(t1 - t0) / 1e3;
    t_det[k] = (double)(t2 - t1) / 1e3;
    t_prom[k] = (double)(t3 - t2) / 1e3;
    t_sd[k] = t_take[k] + t_det[k];
    t_sp[k] = t_take[k] + t_prom[k];
    a_take += a1 - a0;
    a_prom += n_alloc - a2;
  }
  if (s->n_sess != N_SESSIONS || s->n_brk != N_BREAKERS || s->n_fb != N_FALLBACKS) abort();
  stats st = summarize(t_take, iters), sd = summarize(t_det, iters), sp = summarize(t_prom, iters);
  stats ssd = summarize(t_sd, iters), ssp = summarize(t_sp, iters);
  printf("{\"case\":\"snapshot_take\",\"sessions\":%d,\"breakers\":%d,\"fallbacks\":%d,"
         "\"p50_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,\"allocs_per_take\":%.2f}\n",
         N_SESSIONS, N_BREAKERS, N_FALLBACKS, st.p50, st.p99, st.mean, (double)a_take / (double)iters);
  printf("{\"case\":\"render_detailed\",\"bytes\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"mean_us\":%.1f}\n", len_d, sd.p50, sd.p99, sd.mean);
  printf("{\"case\":\"render_prometheus\",\"bytes\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,"
         "\"mean_us\":%.1f,\"allocs_per_render\":%.2f}\n", len_p, sp.p50, sp.p99, sp.mean,
         (double)a_prom / (double)iters);
  printf("{\"case\":\"snapshot_plus_detailed\",\"p50_us\":%.1f,\"p99_us\":%.1f}\n", ssd.p50, ssd.p99);
  printf("{\"case\":\"snapshot_plus_prometheus\",\"p50_us\":%.1f,\"p99_us\":%.1f}\n", ssp.p50, ssp.p99);
  printf("\n| 1,000 sessions, 10 breakers, 10 fallback ops | p50 | p99 | goal |\n|---|---|---|---|\n");
  printf("| snapshot (take) | %.1f us | %.1f us | |\n", st.p50, st.p99);
  printf("| render /health/detailed (%zu B) | %.1f us | %.1f us | |\n", len_d, sd.p50, sd.p99);
  printf("| render Prometheus (%zu B) | %.1f us | %.1f us | |\n", len_p, sp.p50, sp.p99);
  printf("| snapshot + /health/detailed | %.1f us | %.1f us | <= 200 us |\n", ssd.p50, ssd.p99);
  printf("| snapshot + Prometheus | %.1f us | %.1f us | <= 200 us |\n\n", ssp.p50, ssp.p99);

  free(t_take), free(t_det), free(t_prom), free(t_sd), free(t_sp), free(buf);
  clink_health_snapshot_free(s);
  for (int i = 0; i < N_SESSIONS; i++) {
    clink_health_detach(h, clients[i]);
    clink_client_close(clients[i], NULL, NULL);
  }
  clink_health_close(h, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  clink_breaker_registry_free(reg);
  free(clients);
  if (uv_loop_close(&loop) != 0) abort();
}

/* ------------------------------------------------------------ hot path */

static void bench_meter(unsigned long iters) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  clink_health *h;
  if (clink_health_new(&h, &loop) != 0) abort();
  double rounds[5];
  unsigned long allocs = 0;
  for (int r = 0; r < 5; r++) {
    unsigned long a0 = n_alloc;
    uint64_t t0 = uv_hrtime();
    for (unsigned long i = 0; i < iters; i++) {
      clink_health_request_begin(h);
      clink_health_request_end(h, (i & 63) == 0, (i & 0xFFFF) * 16);
    }
    uint64_t dt = uv_hrtime() - t0;
    allocs += n_alloc - a0;
    rounds[r] = (double)dt / (double)iters;
  }
  stats s = summarize(rounds, 5);
  printf("{\"case\":\"request_meter_begin_end\",\"ns\":%.2f,\"allocs\":%lu}\n", s.p50, allocs);
  printf("| hot path: request begin + end (counter, gauge, histogram) | %.2f ns | %lu allocations | a few ns, 0 |\n\n",
         s.p50, allocs);
  clink_health_close(h, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

/* --------------------------------------------------------------- stream */

typedef struct stream {
  uint64_t messages, t_query;
  double ms;
  int status, closed;
  clink_health *h;
  uv_timer_t scrape;
  clink_health_snapshot *snap;
  char *buf;
  unsigned long scrapes;
} stream;

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  (void)c;
  (void)m;
  ((stream *)ud)->messages++;
}

static void on_closed(clink_client *c, void *ud) {
  (void)c;
  ((stream *)ud)->closed = 1;
}

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  (void)result;
  stream *s = ud;
  s->ms = (double)(uv_hrtime() - s->t_query) / 1e6;
  s->status = status;
  if (s->h) clink_health_detach(s->h, c);
  clink_client_close(c, on_closed, s);
}

static void on_connect(clink_client *c, int status, void *ud) {
  stream *s = ud;
  if (status != 0 ||
      (s->t_query = uv_hrtime(), clink_client_query(c, "bench", on_message, on_turn, s)) != 0) {
    fprintf(stderr, "bench-health: stream: %s\n", clink_err_name(status));
    exit(1);
  }
}

static void on_scrape(uv_timer_t *t) {
  stream *s = t->data;
  size_t len;
  if (clink_health_snapshot_take(s->h, s->snap) == 0 &&
      clink_health_render(s->snap, CLINK_HEALTH_FORMAT_PROMETHEUS, s->buf, 1 << 20, &len) == 0)
    s->scrapes++;
}

/* with_monitor: 0 none, 1 as deployed, 2 aggressive. */
static double stream_round(const char *cli, int with_monitor, unsigned long *scrapes) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  stream s;
  memset(&s, 0, sizeof(s));
  clink_options *o;
  clink_options_new(&o);
  clink_options_set_cli_path(o, cli);
  clink_options_set_exec_shim(o, NULL);
  clink_options_set_env(o, "FAKE_MSGS", "100000");
  clink_options_set_env(o, "FAKE_BYTES", "4");
  clink_client *c;
  if (clink_client_new(&c, &loop, o) != 0) abort();
  if (with_monitor) {
    clink_health_new(&s.h, &loop);
    clink_health_remove_check(s.h, CLINK_HEALTH_CHECK_SDK);
    if (with_monitor == 2) clink_health_set_sample_interval_ms(s.h, 10);
    clink_health_attach_client(s.h, c);
    clink_health_snapshot_new(&s.snap);
    s.buf = malloc(1 << 20);
    uv_timer_init(&loop, &s.scrape);
    s.scrape.data = &s;
    uint64_t every = with_monitor == 2 ? 100 : 1000;
    uv_timer_start(&s.scrape, on_scrape, every, every);
    uv_unref((uv_handle_t *)&s.scrape);
  }
  clink_options_free(o);
  if (clink_client_connect(c, on_connect, &s) != 0) abort();
  while (!s.closed) uv_run(&loop, UV_RUN_ONCE);
  if (with_monitor) {
    *scrapes += s.scrapes;
    uv_close((uv_handle_t *)&s.scrape, NULL);
    clink_health_close(s.h, NULL, NULL);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  clink_health_snapshot_free(s.snap);
  free(s.buf);
  uv_loop_close(&loop);
  if (s.status != 0) abort();
  return (double)s.messages / s.ms * 1000.0;
}

static void bench_stream(const char *cli, int rounds) {
  double *v[3];
  for (int m = 0; m < 3; m++) v[m] = calloc((size_t)rounds, sizeof(double));
  unsigned long scrapes = 0;
  for (int r = 0; r < rounds; r++)
    for (int m = 0; m < 3; m++) v[(m + r) % 3][r] = stream_round(cli, (m + r) % 3, &scrapes);
  stats a = summarize(v[0], (size_t)rounds), b = summarize(v[1], (size_t)rounds);
  stats c = summarize(v[2], (size_t)rounds);
  printf("{\"case\":\"stream_100000x4\",\"rounds\":%d,\"msgs_per_s_without\":%.0f,"
         "\"msgs_per_s_with_monitor\":%.0f,\"msgs_per_s_with_aggressive_monitor\":%.0f,"
         "\"ratio\":%.3f,\"ratio_aggressive\":%.3f,\"scrapes\":%lu}\n",
         rounds, a.p50, b.p50, c.p50, b.p50 / a.p50, c.p50 / a.p50, scrapes);
  printf("| stream 100,000 x 4 B, median of %d | without: %.0f msgs/s | with a monitor: %.0f "
         "(%.3fx); sampling every 10 ms + a scrape every 100 ms: %.0f (%.3fx) | not slower |\n",
         rounds, a.p50, b.p50, b.p50 / a.p50, c.p50, c.p50 / a.p50);
  for (int m = 0; m < 3; m++) free(v[m]);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench-health FAKE_CLI [ITERATIONS] [STREAM_ROUNDS] [METER_ITERATIONS]\n");
    return 2;
  }
  unsigned long iters = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000;
  int rounds = argc > 3 ? atoi(argv[3]) : 7;
  unsigned long meter = argc > 4 ? strtoul(argv[4], NULL, 10) : 100000000;
  if (iters < 100) iters = 100;
  for (size_t i = 0; i < N_SESSIONS; i++)
    snprintf(ids[i], sizeof(ids[i]), "%08zx-1b2c-4d5e-8f90-%012zx", i, i * 7919);
  bench_render(iters);
  if (meter) bench_meter(meter);
  if (rounds > 0) bench_stream(argv[1], rounds);
  return 0;
}
