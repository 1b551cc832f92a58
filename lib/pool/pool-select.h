/* The pool's decisions as pure code: health score, power-of-two-choices
 * selection, rebalancing choice, lifetime jitter, wait histogram buckets,
 * and how many processes to start. No I/O, no clock: time comes in as
 * arguments. Not installed. */
#ifndef CLINK_POOL_H
#define CLINK_POOL_H

#include <stddef.h>
#include <stdint.h>

/* What a member's health is computed from (client metrics plus age). */
typedef struct clink__pool_health {
  uint64_t turn_ms_ewma; /* 0: no turn yet */
  uint64_t turns_ok, turns_failed;
  uint64_t age_ms;       /* since connected */
  uint64_t lifetime_ms;  /* the member's own limit; 0 = none */
} clink__pool_health;

/* Rebalancing: the worst idle member is recycled when its score is at least
 * this many times the mean of the others, it has run at least
 * CLINK__POOL_REBALANCE_MIN_TURNS turns, and at least two members qualify. */
#define CLINK__POOL_REBALANCE_FACTOR 3.0
#define CLINK__POOL_REBALANCE_MIN_TURNS 3

/* Cost of a member, lower is better, >= 1:
 *   (ewma_ms + 1) * (1 + 8 * failed / (turns + 1)) * (1 + age / lifetime / 2)
 * A member without turns costs as little as a fast one, so new members are
 * tried (optimistic start, as Peak-EWMA). */
double clink__pool_score(const clink__pool_health *h);

/* Two distinct indices in [0, n) from one random draw (n >= 2); for n == 1
 * both are 0. */
void clink__pool_p2c(uint64_t r, size_t n, size_t *i, size_t *j);

/* Index of the member to recycle, or SIZE_MAX: scores[i] and turns[i]
 * (turns run) of n healthy idle members. Never picks when n < 2, so the last
 * healthy member is never evicted. */
size_t clink__pool_rebalance_pick(const double *scores, const uint64_t *turns, size_t n);

/* A member's lifetime: lifetime_ms shortened by up to jitter_pct percent,
 * uniformly from r. 0 stays 0 (no limit). */
uint64_t clink__pool_lifetime(uint64_t lifetime_ms, double jitter_pct, uint64_t r);

/* Wait histogram bucket of a wait in microseconds: bucket i (0..n-2) holds
 * waits <= 10^i us, the last one everything longer. */
unsigned clink__pool_wait_bucket(uint64_t us, unsigned n_buckets);

/* How many processes to start now, from the pool's counts. Starts are
 * generic (no conversation) and go, in this order, to replacements of dead
 * idle members, successors of members past their lifetime, acquires
 * waiting without a process on its way, then min idle; never past
 * max_size. fill_allowed is 0 while a failed start backs off (waiters are
 * served regardless: each start is theirs to fail). */
typedef struct clink__pool_plan_in {
  uint32_t idle, live, starting_generic, wait_generic;
  uint32_t min_idle, max_size;
  uint32_t replace_pending, retire_pending;
  int fill_allowed;
} clink__pool_plan_in;

typedef struct clink__pool_plan_out {
  uint32_t replace, retire, for_waiters, for_min_idle;
} clink__pool_plan_out;

void clink__pool_plan(const clink__pool_plan_in *in, clink__pool_plan_out *out);

#endif
