/* Circuit-breaker benchmark: ns per decision, allocations counted with
 * -Wl,--wrap=malloc etc.
 *
 * Usage: bench-breaker [ITERATIONS] [ROUNDS]
 * Cases: (a) acquire + on_success while CLOSED (consecutive rule and a
 * 100-call count window); (b) acquire rejected while OPEN, with retry-after.
 * Prints one JSON line per case (median of the rounds). Anchor: Polly v8
 * 137.7 ns closed, 233.7 ns open; target <= 50 ns and 0 allocations.
 */
#include <stdio.h>
#include <stdlib.h>

#include <claudelink.h>

#include "alloc-count.h"

static volatile uint64_t sink;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static clink_breaker *make(int window) {
  clink_breaker_config *c;
  if (clink_breaker_config_new(&c) != 0) abort();
  clink_breaker_config_set_consecutive_failures(c, 5);
  if (window) {
    clink_breaker_config_set_failure_rate(c, 50.0, CLINK_BREAKER_WINDOW_COUNT, 100, 20);
    clink_breaker_config_set_slow_calls(c, 1000, 80.0);
  }
  clink_breaker *b;
  if (clink_breaker_new(&b, "bench", c, 42) != 0) abort();
  clink_breaker_config_free(c);
  return b;
}

/* (a) CLOSED: acquire then on_success. */
static double run_closed(clink_breaker *b, unsigned long iters, unsigned long *allocs) {
  unsigned long a0 = n_alloc;
  uint64_t t0 = uv_hrtime();
  for (unsigned long i = 0; i < iters; i++) {
    uint64_t permit, ra;
    uint64_t now = 1000000 + i;
    if (clink_breaker_acquire(b, now, &permit, &ra) != 0) abort();
    clink_breaker_on_success(b, permit, now, 3);
    sink += permit;
  }
  uint64_t dt = uv_hrtime() - t0;
  *allocs = n_alloc - a0;
  return (double)dt / (double)iters;
}

/* (b) OPEN: rejection with retry-after. */
static double run_open(clink_breaker *b, unsigned long iters, unsigned long *allocs) {
  clink_breaker_open_for(b, 0, UINT64_MAX / 2);
  unsigned long a0 = n_alloc;
  uint64_t t0 = uv_hrtime();
  for (unsigned long i = 0; i < iters; i++) {
    uint64_t permit, ra;
    if (clink_breaker_acquire(b, 1000 + i, &permit, &ra) != CLINK_ECIRCUIT_OPEN) abort();
    sink += ra;
  }
  uint64_t dt = uv_hrtime() - t0;
  *allocs = n_alloc - a0;
  return (double)dt / (double)iters;
}

int main(int argc, char **argv) {
  unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000000UL;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (iters == 0 || rounds <= 0 || rounds > 64) {
    fprintf(stderr, "usage: %s [ITERATIONS] [ROUNDS<=64]\n", argv[0]);
    return 2;
  }
  static const struct {
    const char *name;
    int window, open;
  } cases[] = {
      {"closed_acquire_success", 0, 0},
      {"closed_acquire_success_window", 1, 0},
      {"open_reject", 0, 1},
  };
  for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
    double ns[64];
    unsigned long allocs = 0;
    for (int r = 0; r < rounds; r++) {
      clink_breaker *b = make(cases[c].window);
      unsigned long a;
      ns[r] = cases[c].open ? run_open(b, iters, &a) : run_closed(b, iters, &a);
      allocs += a;
      clink_breaker_free(b);
    }
    qsort(ns, (size_t)rounds, sizeof(double), cmp_double);
    printf("{\"bench\":\"breaker\",\"case\":\"%s\",\"iterations\":%lu,\"rounds\":%d,"
           "\"ns_per_op\":%.2f,\"ns_min\":%.2f,\"allocs\":%lu,\"target_ns\":50,"
           "\"polly_ns\":%.1f}\n",
           cases[c].name, iters, rounds, ns[rounds / 2], ns[0], allocs,
           cases[c].open ? 233.7 : 137.7);
  }
  return 0;
}
