/* Pure helpers of the pool: see pool.h. */
#include "pool/pool-select.h"

double clink__pool_score(const clink__pool_health *h) {
  double lat = (double)h->turn_ms_ewma + 1.0;
  uint64_t turns = h->turns_ok + h->turns_failed;
  double err = (double)h->turns_failed / (double)(turns + 1);
  double age = 0.0;
  if (h->lifetime_ms) {
    age = (double)h->age_ms / (double)h->lifetime_ms;
    if (age > 1.0) age = 1.0;
  }
  return lat * (1.0 + 8.0 * err) * (1.0 + age / 2.0);
}

void clink__pool_p2c(uint64_t r, size_t n, size_t *i, size_t *j) {
  if (n < 2) {
    *i = *j = 0;
    return;
  }
  /* Multiply-shift ranges: no division on the fast path. */
  size_t a = (size_t)(((r >> 32) * (uint64_t)n) >> 32);
  size_t b = (size_t)(((r & 0xffffffffu) * (uint64_t)(n - 1)) >> 32);
  if (b >= a) b++;
  *i = a;
  *j = b;
}

size_t clink__pool_rebalance_pick(const double *scores, const uint64_t *turns, size_t n) {
  if (n < 2) return SIZE_MAX;
  size_t worst = 0;
  double sum = 0.0;
  for (size_t k = 0; k < n; k++) {
    sum += scores[k];
    if (scores[k] > scores[worst]) worst = k;
  }
  if (turns[worst] < CLINK__POOL_REBALANCE_MIN_TURNS) return SIZE_MAX;
  double others = (sum - scores[worst]) / (double)(n - 1);
  return scores[worst] >= CLINK__POOL_REBALANCE_FACTOR * others ? worst : SIZE_MAX;
}

uint64_t clink__pool_lifetime(uint64_t lifetime_ms, double jitter_pct, uint64_t r) {
  if (lifetime_ms == 0 || jitter_pct <= 0.0) return lifetime_ms;
  double u = (double)(r >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
  uint64_t cut = (uint64_t)((double)lifetime_ms * jitter_pct / 100.0 * u);
  return cut < lifetime_ms ? lifetime_ms - cut : 1;
}

unsigned clink__pool_wait_bucket(uint64_t us, unsigned n_buckets) {
  unsigned b = 0;
  uint64_t limit = 1;
  while (b + 1 < n_buckets && us > limit) {
    b++;
    limit = limit > UINT64_MAX / 10 ? UINT64_MAX : limit * 10;
  }
  return b;
}

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

void clink__pool_plan(const clink__pool_plan_in *in, clink__pool_plan_out *out) {
  uint32_t room = in->live < in->max_size ? in->max_size - in->live : 0;
  uint32_t starting = in->starting_generic;
  out->replace = in->fill_allowed ? min_u32(in->replace_pending, room) : 0;
  room -= out->replace;
  starting += out->replace;
  out->retire = in->fill_allowed ? min_u32(in->retire_pending, room) : 0;
  room -= out->retire;
  starting += out->retire;
  uint32_t uncovered = in->wait_generic > starting ? in->wait_generic - starting : 0;
  out->for_waiters = min_u32(uncovered, room);
  room -= out->for_waiters;
  starting += out->for_waiters;
  /* Min idle counts what is idle or on its way, beyond what waiters take. */
  uint64_t want = (uint64_t)in->min_idle + in->wait_generic;
  uint64_t have = (uint64_t)in->idle + starting;
  uint64_t gap64 = want > have ? want - have : 0;
  uint32_t gap = gap64 > UINT32_MAX ? UINT32_MAX : (uint32_t)gap64;
  out->for_min_idle = in->fill_allowed ? min_u32(gap, room) : 0;
}
