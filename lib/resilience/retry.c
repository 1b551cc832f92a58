/* Retry policy and backoff: pure code (sans-I/O). Time only comes in as now_ms;
 * delays come out; randomness is a seeded splitmix64 generator.
 *
 * Semantics (see also include/claudelink.h, "retry policy"):
 *
 * - Counting. clink_retry_begin() starts an operation with 0 retries made.
 *   Each call to clink_retry_next() reports that the most recent try failed;
 *   when it returns 0 it has scheduled retry number attempts()+1, and the
 *   delay is the one for that retry: the first next() after begin() is retry 1
 *   and gets schedule[0] / base_ms. max_attempts counts retries, not tries
 *   (Polly's MaxRetryAttempts): the default 6 gives 1 + 6 tries, one per entry
 *   of the default schedule. A new clink_retry behaves as after begin(r, 0).
 *   clink_retry_success() refills the budget but keeps attempts() (how many
 *   retries the operation needed) until the next begin().
 *
 * - Order of decisions in next(), for a retryable err:
 *     1. the budget (if any) loses one token (gRPC A6: every retryable failure
 *        counts, even the last one of an operation);
 *     2. attempts() == max_attempts        -> CLINK_ERETRY_EXHAUSTED;
 *     3. tokens <= max_tokens / 2          -> CLINK_EBUDGET_EXHAUSTED;
 *     4. delay = backoff, then jitter, then raised to server_delay_ms;
 *     5. now + delay > begin + deadline    -> CLINK_ERETRY_EXHAUSTED
 *        (equal is allowed; sums saturate at UINT64_MAX);
 *     6. attempts()++ and 0.
 *   A refusal changes nothing but the budget (and, at step 5, the generator
 *   state). A non-retryable err is returned as is and changes nothing at all.
 *   err >= 0 is not a failure: UV_EINVAL (returning 0 would read as "retry").
 *
 * - Exponential: the undelayed delay is kept as a double and multiplied once
 *   per scheduled retry, so there is no pow() and no attempt-count exponent to
 *   overflow; it is clamped to cap before it can become inf (Polly#2163), and
 *   rounded to the nearest ms. Jitter works on integers: full U[0, d], equal
 *   floor(d/2) + U[0, d - floor(d/2)], decorrelated min(cap, U[base, 3 * prev])
 *   with prev = base after begin() and prev = the last jittered delay (before
 *   the server floor, so a large server hint does not inflate the series).
 *   Decorrelated ignores the multiplier (AWS's formula fixes it at 3). All
 *   bounds are inclusive. A fixed schedule has no jitter.
 *
 * - Budget: tokens are kept in thousandths, as gRPC does, so that ten refills
 *   of 0.1 make exactly 1.0 (both knobs are rounded to the nearest
 *   thousandth; max_tokens <= 1e9; a ratio below 0.0005 is UV_EINVAL, since
 *   the bucket would never refill). They start full, floor at 0, cap at
 *   max_tokens. clink_retry_budget_tokens() is -1 when no budget is set.
 *
 * - Setters validate everything (UV_EINVAL: NaN, inf, multiplier < 1,
 *   cap < base, schedule empty or longer than 32, unknown jitter, negative
 *   budget knobs) and leave the policy untouched when they refuse. base 0 is
 *   allowed (immediate retries).
 *
 * - Nothing here allocates after clink_retry_new(); next() is branch-light
 *   integer code plus one multiply in double.
 */
#include <float.h>
#include <limits.h>

#include "base/internal.h"
#include "base/deadline.h"
#include "base/rand.h"

#define RETRY_MAX_SCHEDULE 32
/* Budget limits: thousandths must stay exact in int64 and double. */
#define RETRY_MAX_TOKENS 1e9

enum { MODE_SCHEDULE = 0, MODE_EXPONENTIAL = 1 };

struct clink_retry_policy {
  int mode;
  clink_jitter jitter;
  size_t n_schedule;
  uint64_t schedule[RETRY_MAX_SCHEDULE];
  uint64_t base_ms, cap_ms;
  double multiplier;
  unsigned int max_attempts; /* 0 = unlimited */
  uint64_t deadline_ms;      /* 0 = none */
  int64_t max_milli;         /* 0 = no budget */
  int64_t ratio_milli;
};

struct clink_retry {
  clink_retry_policy p;
  uint64_t rng;
  uint64_t begin_ms;
  unsigned int attempts;
  uint64_t cur_ms; /* exponential: undelayed delay of the next retry */
  double cur_f;    /* the same before rounding (never above cap, never inf) */
  uint64_t prev;   /* decorrelated: previous delay */
  int64_t tokens_milli;
};

static const uint64_t default_schedule[] = {1000, 2000, 5000, 10000, 30000, 60000};

/* -------------------------------------------------------------- policy */

static void policy_defaults(clink_retry_policy *p) {
  memset(p, 0, sizeof(*p));
  p->mode = MODE_SCHEDULE;
  p->jitter = CLINK_JITTER_NONE;
  p->n_schedule = CLINK__ARRAY_SIZE(default_schedule);
  memcpy(p->schedule, default_schedule, sizeof(default_schedule));
  p->base_ms = default_schedule[0];
  p->cap_ms = default_schedule[CLINK__ARRAY_SIZE(default_schedule) - 1];
  p->multiplier = 2.0;
  p->max_attempts = (unsigned int)CLINK__ARRAY_SIZE(default_schedule);
}

int clink_retry_policy_new(clink_retry_policy **out) {
  if (out == NULL) return UV_EINVAL;
  *out = NULL;
  clink_retry_policy *p = clink__calloc(1, sizeof(*p));
  if (p == NULL) return UV_ENOMEM;
  policy_defaults(p);
  *out = p;
  return 0;
}

int clink_retry_policy_dup(clink_retry_policy **out, const clink_retry_policy *src) {
  if (out == NULL || src == NULL) return UV_EINVAL;
  clink_retry_policy *p = malloc(sizeof(*p));
  if (p == NULL) return UV_ENOMEM;
  *p = *src; /* plain data */
  *out = p;
  return 0;
}

void clink_retry_policy_free(clink_retry_policy *policy) { clink__free(policy); }

int clink_retry_policy_set_schedule(clink_retry_policy *policy, const uint64_t *delays_ms,
                                    size_t n) {
  if (policy == NULL || delays_ms == NULL || n == 0 || n > RETRY_MAX_SCHEDULE)
    return UV_EINVAL;
  memcpy(policy->schedule, delays_ms, n * sizeof(*delays_ms));
  policy->n_schedule = n;
  policy->mode = MODE_SCHEDULE;
  policy->jitter = CLINK_JITTER_NONE;
  return 0;
}

int clink_retry_policy_set_exponential(clink_retry_policy *policy, uint64_t base_ms,
                                       uint64_t cap_ms, double multiplier,
                                       clink_jitter jitter) {
  if (policy == NULL || cap_ms < base_ms) return UV_EINVAL;
  /* Rejects NaN and inf too. */
  if (!(multiplier >= 1.0 && multiplier <= DBL_MAX)) return UV_EINVAL;
  switch (jitter) {
    case CLINK_JITTER_NONE:
    case CLINK_JITTER_FULL:
    case CLINK_JITTER_EQUAL:
    case CLINK_JITTER_DECORRELATED:
      break;
    default:
      return UV_EINVAL;
  }
  policy->mode = MODE_EXPONENTIAL;
  policy->base_ms = base_ms;
  policy->cap_ms = cap_ms;
  policy->multiplier = multiplier;
  policy->jitter = jitter;
  return 0;
}

int clink_retry_policy_set_max_attempts(clink_retry_policy *policy, unsigned int attempts) {
  if (policy == NULL) return UV_EINVAL;
  policy->max_attempts = attempts;
  return 0;
}

int clink_retry_policy_set_deadline_ms(clink_retry_policy *policy, uint64_t deadline_ms) {
  if (policy == NULL) return UV_EINVAL;
  policy->deadline_ms = deadline_ms;
  return 0;
}

int clink_retry_policy_set_budget(clink_retry_policy *policy, double max_tokens,
                                  double token_ratio) {
  if (policy == NULL) return UV_EINVAL;
  if (!(max_tokens >= 0.0 && max_tokens <= RETRY_MAX_TOKENS)) return UV_EINVAL;
  if (!(token_ratio >= 0.0 && token_ratio <= RETRY_MAX_TOKENS)) return UV_EINVAL;
  if (max_tokens == 0.0) { /* budget off; the ratio is irrelevant */
    policy->max_milli = 0;
    policy->ratio_milli = 0;
    return 0;
  }
  int64_t max_milli = (int64_t)(max_tokens * 1000.0 + 0.5);
  int64_t ratio_milli = (int64_t)(token_ratio * 1000.0 + 0.5);
  /* Below a thousandth: a bucket that cannot hold a token, or never refills. */
  if (max_milli <= 0 || ratio_milli <= 0) return UV_EINVAL;
  policy->max_milli = max_milli;
  policy->ratio_milli = ratio_milli;
  return 0;
}

/* --------------------------------------------------------------- state */

int clink_retry_new(clink_retry **out, const clink_retry_policy *policy, uint64_t seed) {
  if (out == NULL) return UV_EINVAL;
  *out = NULL;
  if (policy == NULL) return UV_EINVAL;
  clink_retry *r = clink__calloc(1, sizeof(*r));
  if (r == NULL) return UV_ENOMEM;
  r->p = *policy;
  if (seed == 0) {
    seed = clink__seed(r);
  }
  r->rng = seed;
  r->tokens_milli = r->p.max_milli;
  clink_retry_begin(r, 0);
  *out = r;
  return 0;
}

void clink_retry_free(clink_retry *retry) { clink__free(retry); }

void clink_retry_begin(clink_retry *retry, uint64_t now_ms) {
  if (retry == NULL) return;
  retry->begin_ms = now_ms;
  retry->attempts = 0;
  retry->cur_ms = retry->p.base_ms;
  retry->cur_f = (double)retry->p.base_ms;
  retry->prev = retry->p.base_ms;
}

static inline uint64_t backoff(clink_retry *r) {
  const clink_retry_policy *p = &r->p;
  if (p->mode == MODE_SCHEDULE) {
    size_t i = r->attempts < p->n_schedule ? r->attempts : p->n_schedule - 1;
    return p->schedule[i];
  }
  uint64_t d = r->cur_ms;
  switch (p->jitter) {
    case CLINK_JITTER_FULL:
      return clink__uniform_incl(&r->rng, d);
    case CLINK_JITTER_EQUAL: {
      uint64_t half = d / 2;
      return half + clink__uniform_incl(&r->rng, d - half);
    }
    case CLINK_JITTER_DECORRELATED: {
      /* Drawn over the whole [base, 3 * prev], then clipped: the cap gets the
       * mass of everything above it, as in AWS's formula. */
      uint64_t hi = r->prev > UINT64_MAX / 3 ? UINT64_MAX : r->prev * 3;
      uint64_t x = hi <= p->base_ms ? p->base_ms
                                    : p->base_ms + clink__uniform_incl(&r->rng, hi - p->base_ms);
      return x < p->cap_ms ? x : p->cap_ms;
    }
    default:
      return d;
  }
}

/* A retry was scheduled with delay d (before the server floor). */
static inline void advance(clink_retry *r, uint64_t d) {
  const clink_retry_policy *p = &r->p;
  if (r->attempts != UINT_MAX) r->attempts++; /* unlimited: never wraps to 0 */
  if (p->mode != MODE_EXPONENTIAL) return;
  r->prev = d;
  if (r->cur_ms < p->cap_ms) {
    double f = r->cur_f * p->multiplier; /* finite * finite: may be inf, not NaN */
    if (!(f < (double)p->cap_ms)) {
      r->cur_f = (double)p->cap_ms;
      r->cur_ms = p->cap_ms;
    } else {
      uint64_t m = clink__round_sat(f);
      r->cur_f = f;
      r->cur_ms = m < p->cap_ms ? m : p->cap_ms;
    }
  }
}

int clink_retry_next(clink_retry *retry, uint64_t now_ms, int err, uint64_t server_delay_ms,
                     uint64_t *delay_ms) {
  if (retry == NULL || delay_ms == NULL || err >= 0) return UV_EINVAL;
  if (!clink_err_is_retryable(err)) return err;
  const clink_retry_policy *p = &retry->p;

  int throttled = 0;
  if (p->max_milli > 0) {
    retry->tokens_milli = retry->tokens_milli > 1000 ? retry->tokens_milli - 1000 : 0;
    throttled = retry->tokens_milli * 2 <= p->max_milli;
  }
  if (p->max_attempts != 0 && retry->attempts >= p->max_attempts)
    return CLINK_ERETRY_EXHAUSTED;
  if (throttled) return CLINK_EBUDGET_EXHAUSTED;

  uint64_t d = backoff(retry);
  uint64_t delay = d > server_delay_ms ? d : server_delay_ms;
  if (p->deadline_ms != 0 &&
      clink__sat_add(now_ms, delay) > clink__sat_add(retry->begin_ms, p->deadline_ms))
    return CLINK_ERETRY_EXHAUSTED;

  advance(retry, d);
  *delay_ms = delay;
  return 0;
}

void clink_retry_success(clink_retry *retry) {
  if (retry == NULL || retry->p.max_milli == 0) return;
  int64_t t = retry->tokens_milli + retry->p.ratio_milli;
  retry->tokens_milli = t < retry->p.max_milli ? t : retry->p.max_milli;
}

unsigned int clink_retry_attempts(const clink_retry *retry) {
  return retry == NULL ? 0 : retry->attempts;
}

double clink_retry_budget_tokens(const clink_retry *retry) {
  if (retry == NULL || retry->p.max_milli == 0) return -1.0;
  return (double)retry->tokens_milli / 1000.0;
}

/* ------------------------------------------------------ classification */

int clink_err_is_retryable(int err) {
  switch (err) {
    /* The process or its pipes went away: a new process may well work. */
    case CLINK_EEXITED:
    case UV_EPIPE:
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_ECONNREFUSED:
    case UV_ECONNABORTED:
    case UV_ENETDOWN:
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case UV_EAI_AGAIN:
    /* Timeouts. */
    case UV_ETIMEDOUT:
    case CLINK_EINIT_TIMEOUT:
    case CLINK_ECONTROL_TIMEOUT:
    /* Back-pressure and overload: fine after a delay. */
    case UV_EAGAIN:
    /* The host ran out of descriptors or memory (a failed spawn keeps these
     * codes): transient, other sessions close meanwhile. */
    case UV_EMFILE:
    case UV_ENFILE:
    case UV_ENOMEM:
    case CLINK_EWRITE_QUEUE_FULL:
    case CLINK_EQUEUE_FULL:
    case CLINK_ETOO_MANY_REQUESTS:
    /* Retry once the breaker's retry_after_ms (pass it as server_delay_ms)
     * has passed. */
    case CLINK_ECIRCUIT_OPEN:
      return 1;
    /* Everything else is no, notably: CLI_NOT_FOUND, CLI_EXEC_DENIED and
     * SPAWN (the path checks passed and exec or chdir still failed: a bad
     * cwd, a bad interpreter, ENOEXEC; permanent), TURN_FAILED (classify the turn by its
     * API status with clink_api_status_is_retryable()), CONTROL_ERROR (the CLI
     * answered), PROTOCOL, BAD_JSON, LINE_TOO_LONG (the same input gives the
     * same output), CLOSING, INTERRUPTED, UV_ECANCELED (someone chose to
     * stop), RETRY_EXHAUSTED and BUDGET_EXHAUSTED (retrying a retrier's
     * verdict multiplies attempts across layers), UV_EINVAL, UV_EBUSY,
     * unknown codes. */
    default:
      return 0;
  }
}

int clink_api_status_is_retryable(int http_status) {
  /* As the Anthropic SDKs: 408 Request Timeout, 409 Conflict (lock timeout),
   * 429 rate limited, and every 5xx (529 overloaded among them). */
  if (http_status >= 500 && http_status <= 599) return 1;
  return http_status == 408 || http_status == 409 || http_status == 429;
}
