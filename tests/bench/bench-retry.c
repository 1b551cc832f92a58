/* Retry benchmark: ns per clink_retry_next() in a tight loop, re-beginning
 * every few attempts as a real owner would, with the number of allocations
 * made during the loop (counted with -Wl,--wrap=malloc etc.).
 *
 * Usage: bench-retry [ITERATIONS] [ROUNDS]
 * Prints one JSON line per case: the median of ROUNDS rounds.
 */
#include <stdio.h>
#include <stdlib.h>

#include <claudelink.h>

#include "alloc-count.h"

/* ------------------------------------------------------------------ cases */

typedef struct bench_case {
  const char *name;
  int exponential;
  clink_jitter jitter;
  int budget;
  unsigned int every; /* begin() after this many next() calls */
} bench_case;

static const bench_case cases[] = {
    {"exponential_full_jitter", 1, CLINK_JITTER_FULL, 0, 8},
    {"exponential_decorrelated", 1, CLINK_JITTER_DECORRELATED, 0, 8},
    {"schedule", 0, CLINK_JITTER_NONE, 0, 6},
    {"exponential_full_jitter_budget_deadline", 1, CLINK_JITTER_FULL, 1, 8},
};

static volatile uint64_t sink;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int run_case(const bench_case *bc, unsigned long iters, int rounds) {
  clink_retry_policy *p = NULL;
  clink_retry *r = NULL;
  if (clink_retry_policy_new(&p) != 0) return 1;
  if (bc->exponential &&
      clink_retry_policy_set_exponential(p, 100, 30000, 2.0, bc->jitter) != 0)
    return 1;
  if (clink_retry_policy_set_max_attempts(p, 0) != 0) return 1;
  if (bc->budget) {
    /* One success per operation gives back what its `every` failures took,
     * so the bucket never drains and every call takes the full path. */
    if (clink_retry_policy_set_budget(p, 1000, (double)bc->every) != 0) return 1;
    if (clink_retry_policy_set_deadline_ms(p, UINT64_C(1) << 40) != 0) return 1;
  }
  if (clink_retry_new(&r, p, 0x5eed) != 0) return 1;
  clink_retry_policy_free(p);

  double *ns = calloc((size_t)rounds, sizeof(*ns));
  if (ns == NULL) return 1;
  unsigned long allocs = 0, failures = 0;
  for (int round = 0; round < rounds; round++) {
    uint64_t acc = 0, now = 0, d = 0;
    unsigned long a0 = n_alloc;
    uint64_t t0 = uv_hrtime();
    unsigned int left = 0;
    for (unsigned long i = 0; i < iters; i++) {
      if (left-- == 0) { /* no division in the loop */
        left = bc->every - 1;
        if (bc->budget) clink_retry_success(r);
        clink_retry_begin(r, now);
      }
      if (clink_retry_next(r, now, CLINK_EEXITED, 0, &d) != 0) failures++;
      acc += d;
      now += 1;
    }
    uint64_t t1 = uv_hrtime();
    allocs += n_alloc - a0;
    sink = acc;
    ns[round] = (double)(t1 - t0) / (double)iters;
  }
  qsort(ns, (size_t)rounds, sizeof(*ns), cmp_double);
  printf("{\"bench\":\"retry\",\"case\":\"%s\",\"iterations\":%lu,\"rounds\":%d,"
         "\"ns_per_op_median\":%.2f,\"ns_per_op_min\":%.2f,\"allocs\":%lu,"
         "\"refusals\":%lu}\n",
         bc->name, iters, rounds, ns[rounds / 2], ns[0], allocs, failures);
  free(ns);
  clink_retry_free(r);
  return failures != 0 || allocs != 0;
}

int main(int argc, char **argv) {
  unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000000UL;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (iters == 0 || rounds <= 0) {
    fprintf(stderr, "usage: %s [ITERATIONS] [ROUNDS]\n", argv[0]);
    return 2;
  }
  int bad = 0;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    bad |= run_case(&cases[i], iters, rounds);
  return bad ? 1 : 0;
}
