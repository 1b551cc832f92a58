/* Retry policy: schedules, exponential backoff, jitter bounds, deadline,
 * server hints, budget, validation, classification. Pure code: every test
 * runs on made-up now_ms values, nothing sleeps. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <claudelink.h>

#include "testutil.h"

/* Check's ck_assert_* report every pass to the runner (a pipe write in fork
 * mode): too slow for loops of 10^5 calls. These only speak on failure. */
#define EXPECT(cond)                                                 \
  do {                                                               \
    if (!(cond)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond); \
  } while (0)
#define EXPECT_U(a, op, b)                                                         \
  do {                                                                             \
    uint64_t x_ = (a), y_ = (b);                                                   \
    if (!(x_ op y_))                                                               \
      ck_abort_msg("%s:%d: %s %s %s (%llu vs %llu)", __FILE__, __LINE__, #a, #op, #b, \
                   (unsigned long long)x_, (unsigned long long)y_);                \
  } while (0)

#define EXPECT_U_eq(a, b) EXPECT_U(a, ==, b)
#define EXPECT_U_le(a, b) EXPECT_U(a, <=, b)
#define EXPECT_U_ge(a, b) EXPECT_U(a, >=, b)
#define EXPECT_U_lt(a, b) EXPECT_U(a, <, b)
#define EXPECT_U_gt(a, b) EXPECT_U(a, >, b)

/* A retryable error for the tests that are not about classification. */
#define FAIL CLINK_EEXITED

static clink_retry_policy *policy(void) {
  clink_retry_policy *p = NULL;
  ck_assert_int_eq(clink_retry_policy_new(&p), 0);
  ck_assert_ptr_nonnull(p);
  return p;
}

static clink_retry *retry_of(const clink_retry_policy *p, uint64_t seed) {
  clink_retry *r = NULL;
  ck_assert_int_eq(clink_retry_new(&r, p, seed), 0);
  ck_assert_ptr_nonnull(r);
  return r;
}

static clink_retry_policy *exp_policy(uint64_t base, uint64_t cap, double mult,
                                      clink_jitter jitter, unsigned int max) {
  clink_retry_policy *p = policy();
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, base, cap, mult, jitter), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, max), 0);
  return p;
}

/* next() that must succeed; returns the delay. */
static uint64_t next_ok(clink_retry *r, uint64_t now) {
  uint64_t d = UINT64_C(0xdeadbeef);
  int rc = clink_retry_next(r, now, FAIL, 0, &d);
  if (rc != 0) ck_abort_msg("next() = %s after %u retries", clink_err_name(rc),
                            clink_retry_attempts(r));
  return d;
}

/* --------------------------------------------------------------- schedule */

START_TEST(default_schedule_and_max_attempts) {
  clink_retry_policy *p = policy();
  clink_retry *r = retry_of(p, 1);
  clink_retry_policy_free(p);
  static const uint64_t want[] = {1000, 2000, 5000, 10000, 30000, 60000};
  clink_retry_begin(r, 0);
  EXPECT_U_eq(clink_retry_attempts(r), 0);
  for (unsigned int i = 0; i < 6; i++) {
    EXPECT_U_eq(next_ok(r, 0), want[i]);
    /* The first next() after begin() is retry 1. */
    EXPECT_U_eq(clink_retry_attempts(r), i + 1);
  }
  uint64_t d = 77;
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_ERETRY_EXHAUSTED);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_ERETRY_EXHAUSTED);
  EXPECT_U_eq(d, 77); /* untouched on refusal */
  EXPECT_U_eq(clink_retry_attempts(r), 6);
  /* No budget by default. */
  ck_assert(clink_retry_budget_tokens(r) == -1.0);
  /* begin() starts over. */
  clink_retry_begin(r, 100);
  EXPECT_U_eq(clink_retry_attempts(r), 0);
  EXPECT_U_eq(next_ok(r, 100), 1000);
  clink_retry_free(r);
}
END_TEST

START_TEST(schedule_repeats_last_entry) {
  clink_retry_policy *p = policy();
  static const uint64_t s[] = {10, 0, 20};
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, s, 3), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, 6), 0);
  clink_retry *r = retry_of(p, 1);
  static const uint64_t want[] = {10, 0, 20, 20, 20, 20};
  for (unsigned int i = 0; i < 6; i++) EXPECT_U_eq(next_ok(r, 0), want[i]);
  uint64_t d;
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_ERETRY_EXHAUSTED);
  clink_retry_free(r);

  /* 0 = unlimited; the last entry repeats forever. */
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, 0), 0);
  r = retry_of(p, 1);
  for (unsigned int i = 0; i < 100000; i++) EXPECT_U_eq(next_ok(r, 0), i < 3 ? s[i] : 20);
  EXPECT_U_eq(clink_retry_attempts(r), 100000);
  clink_retry_free(r);

  /* A schedule of 32 (the maximum) is taken whole. */
  uint64_t big[32];
  for (unsigned int i = 0; i < 32; i++) big[i] = 100 + i;
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, big, 32), 0);
  r = retry_of(p, 1);
  for (unsigned int i = 0; i < 40; i++) EXPECT_U_eq(next_ok(r, 0), i < 32 ? big[i] : 131);
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(policy_is_copied) {
  clink_retry_policy *p = policy();
  static const uint64_t s[] = {5};
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, s, 1), 0);
  clink_retry *r = retry_of(p, 1);
  static const uint64_t s2[] = {9};
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, s2, 1), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, 1), 0);
  clink_retry_policy_free(p); /* the retry keeps working */
  EXPECT_U_eq(next_ok(r, 0), 5);
  EXPECT_U_eq(next_ok(r, 0), 5); /* max 6, not 1 */
  clink_retry_free(r);
}
END_TEST

/* ------------------------------------------------------------ exponential */

START_TEST(exponential_exact_series) {
  clink_retry_policy *p = exp_policy(100, 10000, 2.0, CLINK_JITTER_NONE, 0);
  clink_retry *r = retry_of(p, 1);
  static const uint64_t want[] = {100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000};
  for (unsigned int i = 0; i < 10; i++) EXPECT_U_eq(next_ok(r, 0), want[i]);
  clink_retry_free(r);
  clink_retry_policy_free(p);

  /* Non-dyadic multipliers round to the nearest ms, without drift. */
  p = exp_policy(1000, 120000, 1.6, CLINK_JITTER_NONE, 0);
  r = retry_of(p, 1);
  static const uint64_t want16[] = {1000, 1600, 2560, 4096, 6554, 10486, 16777, 26844, 42950,
                                    68719, 109951, 120000, 120000};
  for (unsigned int i = 0; i < 13; i++) EXPECT_U_eq(next_ok(r, 0), want16[i]);
  clink_retry_free(r);
  clink_retry_policy_free(p);

  p = exp_policy(1000, 1000000, 1.5, CLINK_JITTER_NONE, 0);
  r = retry_of(p, 1);
  static const uint64_t want15[] = {1000, 1500, 2250, 3375, 5063, 7594, 11391};
  for (unsigned int i = 0; i < 7; i++) EXPECT_U_eq(next_ok(r, 0), want15[i]);
  clink_retry_free(r);
  clink_retry_policy_free(p);

  /* Multiplier 1: constant; base 0: immediate retries. */
  p = exp_policy(250, 250, 1.0, CLINK_JITTER_NONE, 0);
  r = retry_of(p, 1);
  for (unsigned int i = 0; i < 50; i++) EXPECT_U_eq(next_ok(r, 0), 250);
  clink_retry_free(r);
  clink_retry_policy_free(p);
  p = exp_policy(0, 0, 2.0, CLINK_JITTER_NONE, 0);
  r = retry_of(p, 1);
  for (unsigned int i = 0; i < 50; i++) EXPECT_U_eq(next_ok(r, 0), 0);
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(exponential_matches_formula) {
  /* delay(n) = min(cap, base * multiplier^(n-1)), rounded to the nearest ms. */
  static const double mults[] = {1.1, 1.5, 1.6, 2.0, 3.0, 10.0};
  for (size_t m = 0; m < sizeof(mults) / sizeof(mults[0]); m++) {
    clink_retry_policy *p = exp_policy(7, 1000000000, mults[m], CLINK_JITTER_NONE, 0);
    clink_retry *r = retry_of(p, 1);
    for (int n = 1; n <= 300; n++) {
      double f = 7.0 * pow(mults[m], n - 1);
      uint64_t want = f >= 1e9 ? 1000000000 : (uint64_t)llround(f);
      uint64_t got = next_ok(r, 0);
      /* pow() and repeated products may differ in the last bits. */
      if (!(got + 1 >= want && got <= want + 1))
        ck_abort_msg("mult %g n %d: %llu vs %llu", mults[m],
                    n, (unsigned long long)got, (unsigned long long)want);
    }
    clink_retry_free(r);
    clink_retry_policy_free(p);
  }
}
END_TEST

START_TEST(exponential_huge_attempts_saturate) {
  /* cap = UINT64_MAX: doubling reaches it after 64 steps, then stays. */
  clink_retry_policy *p = exp_policy(1, UINT64_MAX, 2.0, CLINK_JITTER_NONE, 0);
  clink_retry *r = retry_of(p, 1);
  uint64_t prev = 0;
  for (unsigned int n = 1; n <= 200000; n++) {
    uint64_t d = next_ok(r, 0);
    EXPECT_U_ge(d, prev);
    if (n <= 64) EXPECT_U_eq(d, UINT64_C(1) << (n - 1));
    if (n > 65) EXPECT_U_eq(d, UINT64_MAX);
    prev = d;
  }
  clink_retry_free(r);
  clink_retry_policy_free(p);

  /* A multiplier so large that the product is inf: cap, never inf or 0. */
  p = exp_policy(1000, 30000, DBL_MAX, CLINK_JITTER_NONE, 0);
  r = retry_of(p, 1);
  EXPECT_U_eq(next_ok(r, 0), 1000);
  for (unsigned int n = 2; n <= 5000; n++) EXPECT_U_eq(next_ok(r, 0), 30000);
  clink_retry_free(r);
  clink_retry_policy_free(p);

  /* Polly#2163: attempt >= 1024 with a modest cap. */
  p = exp_policy(1000, 30000, 2.0, CLINK_JITTER_FULL, 0);
  r = retry_of(p, 42);
  for (unsigned int n = 1; n <= 100000; n++) EXPECT_U_le(next_ok(r, 0), 30000);
  EXPECT_U_eq(clink_retry_attempts(r), 100000);
  clink_retry_free(r);
  clink_retry_policy_free(p);

  /* Equal jitter at cap = UINT64_MAX. */
  p = exp_policy(UINT64_MAX / 4, UINT64_MAX, 3.0, CLINK_JITTER_EQUAL, 0);
  r = retry_of(p, 42);
  for (unsigned int n = 1; n <= 1000; n++) {
    uint64_t d = next_ok(r, 0);
    if (n > 2) EXPECT_U_ge(d, UINT64_MAX / 2);
  }
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

/* ------------------------------------------------------------------ jitter */

static uint64_t expo_at(uint64_t base, uint64_t cap, unsigned int n) {
  uint64_t e = base;
  for (unsigned int i = 1; i < n && e < cap; i++) e *= 2;
  return e < cap ? e : cap;
}

START_TEST(full_jitter_bounds) {
  const uint64_t base = 100, cap = 50000;
  clink_retry_policy *p = exp_policy(base, cap, 2.0, CLINK_JITTER_FULL, 0);
  uint64_t lo_seen = UINT64_MAX, hi_seen = 0;
  for (uint64_t seed = 1; seed <= 300; seed++) {
    clink_retry *r = retry_of(p, seed);
    for (unsigned int n = 1; n <= 40; n++) {
      uint64_t e = expo_at(base, cap, n), d = next_ok(r, 0);
      EXPECT_U_le(d, e);
      if (n >= 12) { /* at cap */
        if (d < lo_seen) lo_seen = d;
        if (d > hi_seen) hi_seen = d;
      }
    }
    clink_retry_free(r);
  }
  /* It spreads over the whole range: 8700 samples of U[0, 50000]. */
  EXPECT_U_lt(lo_seen, cap / 20);
  EXPECT_U_gt(hi_seen, cap - cap / 20);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(equal_jitter_bounds) {
  const uint64_t base = 101, cap = 40001; /* odd values: check the halving */
  clink_retry_policy *p = exp_policy(base, cap, 2.0, CLINK_JITTER_EQUAL, 0);
  uint64_t lo_seen = UINT64_MAX, hi_seen = 0;
  for (uint64_t seed = 1; seed <= 300; seed++) {
    clink_retry *r = retry_of(p, seed);
    for (unsigned int n = 1; n <= 40; n++) {
      uint64_t e = expo_at(base, cap, n), d = next_ok(r, 0);
      EXPECT_U_ge(d, e / 2);
      EXPECT_U_le(d, e);
      if (n >= 12) {
        if (d < lo_seen) lo_seen = d;
        if (d > hi_seen) hi_seen = d;
      }
    }
    clink_retry_free(r);
  }
  EXPECT_U_lt(lo_seen, cap / 2 + cap / 40);
  EXPECT_U_gt(hi_seen, cap - cap / 40);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(decorrelated_jitter_bounds) {
  const uint64_t base = 50, cap = 20000;
  clink_retry_policy *p = exp_policy(base, cap, 2.0, CLINK_JITTER_DECORRELATED, 0);
  unsigned int at_cap = 0;
  for (uint64_t seed = 1; seed <= 300; seed++) {
    clink_retry *r = retry_of(p, seed);
    for (int round = 0; round < 2; round++) {
      clink_retry_begin(r, 0); /* prev goes back to base */
      uint64_t prev = base;
      for (unsigned int n = 1; n <= 40; n++) {
        uint64_t d = next_ok(r, 0);
        uint64_t hi = 3 * prev < cap ? 3 * prev : cap;
        EXPECT_U_ge(d, base);
        EXPECT_U_le(d, hi);
        if (d == cap) at_cap++;
        prev = d;
      }
    }
    clink_retry_free(r);
  }
  EXPECT_U_gt(at_cap, 0); /* it does reach the cap */
  clink_retry_policy_free(p);

  /* cap == base: always base. */
  p = exp_policy(300, 300, 2.0, CLINK_JITTER_DECORRELATED, 0);
  clink_retry *r = retry_of(p, 9);
  for (unsigned int n = 1; n <= 100; n++) EXPECT_U_eq(next_ok(r, 0), 300);
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(jitter_is_deterministic_per_seed) {
  static const clink_jitter kinds[] = {CLINK_JITTER_FULL, CLINK_JITTER_EQUAL,
                                       CLINK_JITTER_DECORRELATED};
  for (size_t k = 0; k < 3; k++) {
    clink_retry_policy *p = exp_policy(100, 60000, 2.0, kinds[k], 0);
    clink_retry *a = retry_of(p, 12345), *b = retry_of(p, 12345), *c = retry_of(p, 12346);
    unsigned int differ = 0;
    for (unsigned int i = 0; i < 200; i++) {
      if (i % 10 == 0) {
        clink_retry_begin(a, i);
        clink_retry_begin(b, i);
        clink_retry_begin(c, i);
      }
      uint64_t da = next_ok(a, i), db = next_ok(b, i), dc = next_ok(c, i);
      EXPECT_U_eq(da, db);
      differ += da != dc;
    }
    EXPECT_U_gt(differ, 150);
    clink_retry_free(a);
    clink_retry_free(b);
    clink_retry_free(c);
    clink_retry_policy_free(p);
  }
}
END_TEST

START_TEST(seed_zero_picks_distinct_seeds) {
  clink_retry_policy *p = exp_policy(1000, 1000000, 2.0, CLINK_JITTER_FULL, 0);
  clink_retry *a = retry_of(p, 0), *b = retry_of(p, 0);
  unsigned int differ = 0;
  for (unsigned int i = 0; i < 20; i++) {
    clink_retry_begin(a, 0);
    clink_retry_begin(b, 0);
    for (unsigned int n = 0; n < 5; n++) differ += next_ok(a, 0) != next_ok(b, 0);
  }
  EXPECT_U_gt(differ, 50);
  clink_retry_free(a);
  clink_retry_free(b);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(schedule_has_no_jitter) {
  clink_retry_policy *p = exp_policy(100, 1000, 2.0, CLINK_JITTER_FULL, 0);
  static const uint64_t s[] = {300, 400};
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, s, 2), 0); /* last setter wins */
  for (uint64_t seed = 1; seed < 20; seed++) {
    clink_retry *r = retry_of(p, seed);
    EXPECT_U_eq(next_ok(r, 0), 300);
    EXPECT_U_eq(next_ok(r, 0), 400);
    clink_retry_free(r);
  }
  clink_retry_policy_free(p);
}
END_TEST

/* ------------------------------------------------- deadline, server delay */

START_TEST(deadline_boundary) {
  clink_retry_policy *p = policy();
  static const uint64_t s[] = {1000};
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, s, 1), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, 0), 0);
  ck_assert_int_eq(clink_retry_policy_set_deadline_ms(p, 5000), 0);
  clink_retry *r = retry_of(p, 1);
  uint64_t d = 0;
  /* begin 1000, deadline at 6000: a retry due exactly at 6000 is allowed. */
  clink_retry_begin(r, 1000);
  EXPECT_U_eq(next_ok(r, 4999), 1000); /* due 5999 */
  EXPECT_U_eq(next_ok(r, 5000), 1000); /* due 6000 */
  EXPECT_U_eq(clink_retry_attempts(r), 2);
  ck_assert_int_eq(clink_retry_next(r, 5001, FAIL, 0, &d), CLINK_ERETRY_EXHAUSTED);
  EXPECT_U_eq(clink_retry_attempts(r), 2); /* a refusal is not a retry */
  /* The deadline is relative to begin(). */
  clink_retry_begin(r, 10000);
  EXPECT_U_eq(next_ok(r, 14000), 1000);
  ck_assert_int_eq(clink_retry_next(r, 14001, FAIL, 0, &d), CLINK_ERETRY_EXHAUSTED);
  /* The server's floor counts toward the deadline. */
  clink_retry_begin(r, 0);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 5000, &d), 0);
  EXPECT_U_eq(d, 5000);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 5001, &d), CLINK_ERETRY_EXHAUSTED);
  /* Sums saturate instead of wrapping. */
  clink_retry_begin(r, UINT64_MAX - 10);
  ck_assert_int_eq(clink_retry_next(r, UINT64_MAX - 5, FAIL, 0, &d), 0);
  ck_assert_int_eq(clink_retry_next(r, UINT64_MAX, FAIL, UINT64_MAX, &d), 0);
  EXPECT_U_eq(d, UINT64_MAX);
  clink_retry_free(r);
  /* Without a deadline, anything goes. */
  ck_assert_int_eq(clink_retry_policy_set_deadline_ms(p, 0), 0);
  r = retry_of(p, 1);
  EXPECT_U_eq(next_ok(r, UINT64_MAX), 1000);
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(deadline_with_jitter_does_not_count_attempt) {
  clink_retry_policy *p = exp_policy(1000, 1000, 1.0, CLINK_JITTER_EQUAL, 0);
  ck_assert_int_eq(clink_retry_policy_set_deadline_ms(p, 10000), 0);
  clink_retry *r = retry_of(p, 3);
  uint64_t d;
  /* Every jittered delay is in [500, 1000]: at now = 9000 all fit, at 9501
   * none does. */
  for (unsigned int i = 0; i < 100; i++) {
    clink_retry_begin(r, 0);
    ck_assert_int_eq(clink_retry_next(r, 9000, FAIL, 0, &d), 0);
    ck_assert_int_eq(clink_retry_next(r, 9501, FAIL, 0, &d), CLINK_ERETRY_EXHAUSTED);
    EXPECT_U_eq(clink_retry_attempts(r), 1);
  }
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(server_delay_is_a_floor) {
  clink_retry_policy *p = policy();
  clink_retry *r = retry_of(p, 1);
  uint64_t d;
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 5000, &d), 0);
  EXPECT_U_eq(d, 5000); /* above schedule[0] = 1000 */
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 500, &d), 0);
  EXPECT_U_eq(d, 2000); /* below schedule[1] */
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), 0);
  EXPECT_U_eq(d, 5000);
  ck_assert_int_eq(clink_retry_next(r, 0, CLINK_ECIRCUIT_OPEN, 123456, &d), 0);
  EXPECT_U_eq(d, 123456); /* no cap on the server's word */
  clink_retry_free(r);
  clink_retry_policy_free(p);

  /* With full jitter, never below the floor; the floor does not feed the
   * decorrelated series. */
  p = exp_policy(100, 10000, 2.0, CLINK_JITTER_FULL, 0);
  r = retry_of(p, 5);
  for (unsigned int i = 0; i < 1000; i++) {
    EXPECT(clink_retry_next(r, 0, FAIL, 700, &d) == 0);
    EXPECT_U_ge(d, 700);
    EXPECT_U_le(d, 10000);
  }
  clink_retry_free(r);
  clink_retry_policy_free(p);
  p = exp_policy(100, 1000000, 2.0, CLINK_JITTER_DECORRELATED, 0);
  r = retry_of(p, 5);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 900000, &d), 0);
  EXPECT_U_eq(d, 900000);
  EXPECT_U_le(next_ok(r, 0), 900); /* <= 3 * (<= 300) */
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

/* ------------------------------------------------------------ errors in */

START_TEST(non_retryable_errors_pass_through) {
  clink_retry_policy *p = policy();
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 10, 1), 0);
  clink_retry *r = retry_of(p, 1);
  static const int errs[] = {CLINK_ECLI_NOT_FOUND, CLINK_ECLI_EXEC_DENIED, UV_EINVAL,
                             CLINK_EPROTOCOL, CLINK_EBAD_JSON, UV_ECANCELED, CLINK_ECLOSING,
                             CLINK_ETURN_FAILED, CLINK_ESPAWN, UV_EBUSY, -29999};
  uint64_t d = 42;
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
      ck_assert_int_eq(clink_retry_next(r, 0, errs[i], 0, &d), errs[i]);
      EXPECT_U_eq(clink_retry_attempts(r), 0);
      ck_assert(clink_retry_budget_tokens(r) == 10.0);
    }
  }
  EXPECT_U_eq(d, 42);
  /* 0 and positive values are not failures: UV_EINVAL, never 0. */
  ck_assert_int_eq(clink_retry_next(r, 0, 0, 0, &d), UV_EINVAL);
  ck_assert_int_eq(clink_retry_next(r, 0, 5, 0, &d), UV_EINVAL);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_retry_next(NULL, 0, FAIL, 0, &d), UV_EINVAL);
  EXPECT_U_eq(clink_retry_attempts(r), 0);
  ck_assert(clink_retry_budget_tokens(r) == 10.0);
  /* Still the first retry. */
  EXPECT_U_eq(next_ok(r, 0), 1000);
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

/* ------------------------------------------------------------------ budget */

static clink_retry *budget_retry(double max, double ratio) {
  clink_retry_policy *p = policy();
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, 0), 0);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, max, ratio), 0);
  clink_retry *r = retry_of(p, 1);
  clink_retry_policy_free(p);
  return r;
}

START_TEST(budget_token_bucket) {
  clink_retry *r = budget_retry(10, 0.1);
  uint64_t d;
  ck_assert(clink_retry_budget_tokens(r) == 10.0); /* starts full */
  /* 9, 8, 7, 6 > 5: allowed; 5 <= 5: refused. */
  for (int i = 1; i <= 4; i++) {
    ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), 0);
    ck_assert(clink_retry_budget_tokens(r) == 10.0 - i);
  }
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_EBUDGET_EXHAUSTED);
  ck_assert(clink_retry_budget_tokens(r) == 5.0);
  EXPECT_U_eq(clink_retry_attempts(r), 4);
  /* begin() resets the attempts, not the tokens. */
  clink_retry_begin(r, 0);
  EXPECT_U_eq(clink_retry_attempts(r), 0);
  ck_assert(clink_retry_budget_tokens(r) == 5.0);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_EBUDGET_EXHAUSTED);
  ck_assert(clink_retry_budget_tokens(r) == 4.0);
  /* Ten successes of 0.1 make exactly one token (kept in thousandths). */
  for (int i = 0; i < 10; i++) clink_retry_success(r);
  ck_assert(clink_retry_budget_tokens(r) == 5.0);
  for (int i = 0; i < 10; i++) clink_retry_success(r);
  ck_assert(clink_retry_budget_tokens(r) == 6.0);
  /* 6 -> 5: refused exactly at max/2. */
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_EBUDGET_EXHAUSTED);
  for (int i = 0; i < 11; i++) clink_retry_success(r); /* 6.1 */
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), 0);  /* 5.1 > 5 */
  ck_assert(fabs(clink_retry_budget_tokens(r) - 5.1) < 1e-9);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_EBUDGET_EXHAUSTED); /* 4.1 */
  /* Capped at max. */
  for (int i = 0; i < 1000; i++) clink_retry_success(r);
  ck_assert(clink_retry_budget_tokens(r) == 10.0);
  /* Floor at 0. */
  for (int i = 0; i < 50; i++) clink_retry_next(r, 0, FAIL, 0, &d);
  ck_assert(clink_retry_budget_tokens(r) == 0.0);
  clink_retry_success(r);
  ck_assert(fabs(clink_retry_budget_tokens(r) - 0.1) < 1e-12);
  clink_retry_free(r);
}
END_TEST

START_TEST(budget_counts_every_retryable_failure) {
  /* Attempts exhausted: refused, and the failure still takes a token. */
  clink_retry_policy *p = policy();
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, 1), 0);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 100, 1), 0);
  clink_retry *r = retry_of(p, 1);
  uint64_t d;
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), 0);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_ERETRY_EXHAUSTED);
  ck_assert(clink_retry_budget_tokens(r) == 98.0);
  /* Deadline refusal too. */
  clink_retry_free(r);
  ck_assert_int_eq(clink_retry_policy_set_deadline_ms(p, 10), 0);
  r = retry_of(p, 1);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_ERETRY_EXHAUSTED);
  ck_assert(clink_retry_budget_tokens(r) == 99.0);
  clink_retry_success(r);
  clink_retry_success(r);
  ck_assert(clink_retry_budget_tokens(r) == 100.0);
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

START_TEST(budget_fractional_and_small) {
  /* gRPC's example: maxTokens 10, tokenRatio 0.1, over a long mixed run the
   * tokens never leave [0, max] and refusals happen exactly at <= max/2. */
  clink_retry *r = budget_retry(10, 0.1);
  int64_t milli = 10000;
  uint64_t state = 7, d;
  for (int i = 0; i < 100000; i++) {
    state = state * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    if ((state >> 33) % 3 == 0) {
      int rc = clink_retry_next(r, 0, FAIL, 0, &d);
      milli = milli > 1000 ? milli - 1000 : 0;
      EXPECT(rc == (milli * 2 <= 10000 ? CLINK_EBUDGET_EXHAUSTED : 0));
    } else {
      clink_retry_success(r);
      milli = milli + 100 < 10000 ? milli + 100 : 10000;
    }
    EXPECT(clink_retry_budget_tokens(r) == (double)milli / 1000.0);
  }
  clink_retry_free(r);

  /* A bucket of one token: a failure leaves 0 <= 0.5, always refused. */
  r = budget_retry(1, 1);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_EBUDGET_EXHAUSTED);
  clink_retry_free(r);
  /* Three tokens: one retry (2 > 1.5), then refused (1 <= 1.5). */
  r = budget_retry(3, 0.5);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), 0);
  ck_assert_int_eq(clink_retry_next(r, 0, FAIL, 0, &d), CLINK_EBUDGET_EXHAUSTED);
  clink_retry_free(r);
}
END_TEST

START_TEST(success_keeps_attempts) {
  clink_retry *r = budget_retry(10, 1);
  next_ok(r, 0);
  next_ok(r, 0);
  clink_retry_success(r);
  EXPECT_U_eq(clink_retry_attempts(r), 2); /* for telemetry until begin() */
  ck_assert(clink_retry_budget_tokens(r) == 9.0);
  clink_retry_free(r);
  /* Success without a budget is harmless. */
  clink_retry_policy *p = policy();
  r = retry_of(p, 1);
  clink_retry_success(r);
  ck_assert(clink_retry_budget_tokens(r) == -1.0);
  clink_retry_free(r);
  clink_retry_policy_free(p);
}
END_TEST

/* -------------------------------------------------------------- validation */

START_TEST(setter_validation) {
  clink_retry_policy *p = policy();
  uint64_t s[33] = {0};
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, s, 0), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, s, 33), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, NULL, 3), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_schedule(NULL, s, 3), UV_EINVAL);

  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 100, 99, 2.0, CLINK_JITTER_NONE),
                   UV_EINVAL); /* cap < base */
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 100, 1000, 0.99, CLINK_JITTER_NONE),
                   UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 100, 1000, 0.0, CLINK_JITTER_NONE),
                   UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 100, 1000, -2.0, CLINK_JITTER_NONE),
                   UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 100, 1000, NAN, CLINK_JITTER_NONE),
                   UV_EINVAL);
  ck_assert_int_eq(
      clink_retry_policy_set_exponential(p, 100, 1000, INFINITY, CLINK_JITTER_NONE),
      UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 100, 1000, 2.0, (clink_jitter)4),
                   UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 100, 1000, 2.0, (clink_jitter)-1),
                   UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_exponential(NULL, 1, 1, 1.0, CLINK_JITTER_NONE),
                   UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 5, 5, 1.0, CLINK_JITTER_NONE), 0);

  ck_assert_int_eq(clink_retry_policy_set_budget(p, -1, 0.1), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, NAN, 0.1), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, INFINITY, 0.1), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 1e10, 0.1), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 10, -0.1), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 10, NAN), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 10, INFINITY), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 10, 0), UV_EINVAL); /* never refills */
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 10, 0.0001), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 0.0001, 1), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 0, -1), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(NULL, 10, 0.1), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 0, 0), 0); /* off */
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 1e9, 0.001), 0);

  ck_assert_int_eq(clink_retry_policy_set_max_attempts(NULL, 3), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_deadline_ms(NULL, 3), UV_EINVAL);

  /* A rejected setter leaves the policy as it was. */
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 10, 80, 2.0, CLINK_JITTER_NONE), 0);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 10, 5, 2.0, CLINK_JITTER_NONE),
                   UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, s, 33), UV_EINVAL);
  ck_assert_int_eq(clink_retry_policy_set_budget(p, 10, -1), UV_EINVAL);
  clink_retry *r = retry_of(p, 1);
  EXPECT_U_eq(next_ok(r, 0), 10);
  EXPECT_U_eq(next_ok(r, 0), 20);
  ck_assert(clink_retry_budget_tokens(r) == 1e9 - 2);
  clink_retry_free(r);

  /* Constructors. */
  ck_assert_int_eq(clink_retry_policy_new(NULL), UV_EINVAL);
  r = (clink_retry *)p; /* poison: must be reset to NULL */
  ck_assert_int_eq(clink_retry_new(&r, NULL, 1), UV_EINVAL);
  ck_assert_ptr_null(r);
  ck_assert_int_eq(clink_retry_new(NULL, p, 1), UV_EINVAL);
  clink_retry_policy_free(p);

  /* NULL is accepted where harmless. */
  clink_retry_policy_free(NULL);
  clink_retry_free(NULL);
  clink_retry_begin(NULL, 0);
  clink_retry_success(NULL);
  EXPECT_U_eq(clink_retry_attempts(NULL), 0);
  ck_assert(clink_retry_budget_tokens(NULL) == -1.0);
}
END_TEST

/* ---------------------------------------------------------- classification */

START_TEST(error_classification) {
  static const int yes[] = {CLINK_EEXITED,
                            UV_EPIPE,
                            UV_EOF,
                            UV_ECONNRESET,
                            UV_ECONNREFUSED,
                            UV_ECONNABORTED,
                            UV_ENETDOWN,
                            UV_ENETUNREACH,
                            UV_EHOSTUNREACH,
                            UV_EAI_AGAIN,
                            UV_ETIMEDOUT,
                            CLINK_EINIT_TIMEOUT,
                            CLINK_ECONTROL_TIMEOUT,
                            UV_EAGAIN,
                            UV_EMFILE,
                            UV_ENFILE,
                            UV_ENOMEM,
                            CLINK_EWRITE_QUEUE_FULL,
                            CLINK_EQUEUE_FULL,
                            CLINK_ETOO_MANY_REQUESTS,
                            CLINK_ECIRCUIT_OPEN};
  static const int no[] = {0,
                           1,
                           CLINK_ECLI_NOT_FOUND,
                           CLINK_ECLI_EXEC_DENIED,
                           CLINK_ESPAWN,
                           CLINK_ELINE_TOO_LONG,
                           CLINK_EBAD_JSON,
                           CLINK_ECONTROL_ERROR,
                           CLINK_ETURN_FAILED,
                           CLINK_ECLOSING,
                           CLINK_ENOT_CONNECTED,
                           CLINK_EPROTOCOL,
                           CLINK_ERETRY_EXHAUSTED,
                           CLINK_EINTERRUPTED,
                           CLINK_EBUDGET_EXHAUSTED,
                           UV_EINVAL,
                           UV_ECANCELED,
                           UV_EBUSY,
                           UV_ENOENT,
                           UV_EACCES,
                           UV_EPERM,
                           UV_EEXIST,
                           -20999,
                           -29999,
                           INT32_MIN};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
    ck_assert_msg(clink_err_is_retryable(yes[i]) == 1, "%s", clink_err_name(yes[i]));
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
    ck_assert_msg(clink_err_is_retryable(no[i]) == 0, "%s", clink_err_name(no[i]));
}
END_TEST

START_TEST(api_status_classification) {
  for (int s = -1; s < 1000; s++) {
    int want = s == 408 || s == 409 || s == 429 || (s >= 500 && s <= 599);
    if (clink_api_status_is_retryable(s) != want) ck_abort_msg("status %d", s);
  }
  ck_assert_int_eq(clink_api_status_is_retryable(529), 1);
  ck_assert_int_eq(clink_api_status_is_retryable(400), 0);
  ck_assert_int_eq(clink_api_status_is_retryable(401), 0);
  ck_assert_int_eq(clink_api_status_is_retryable(403), 0);
  ck_assert_int_eq(clink_api_status_is_retryable(404), 0);
  ck_assert_int_eq(clink_api_status_is_retryable(413), 0);
  ck_assert_int_eq(clink_api_status_is_retryable(INT32_MIN), 0);
  ck_assert_int_eq(clink_api_status_is_retryable(INT32_MAX), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("retry");
  TCase *tc = tcase_create("schedule");
  tcase_add_test(tc, default_schedule_and_max_attempts);
  tcase_add_test(tc, schedule_repeats_last_entry);
  tcase_add_test(tc, policy_is_copied);
  tcase_add_test(tc, schedule_has_no_jitter);
  suite_add_tcase(s, tc);
  tc = tcase_create("exponential");
  tcase_add_test(tc, exponential_exact_series);
  tcase_add_test(tc, exponential_matches_formula);
  tcase_add_test(tc, exponential_huge_attempts_saturate);
  suite_add_tcase(s, tc);
  tc = tcase_create("jitter");
  tcase_add_test(tc, full_jitter_bounds);
  tcase_add_test(tc, equal_jitter_bounds);
  tcase_add_test(tc, decorrelated_jitter_bounds);
  tcase_add_test(tc, jitter_is_deterministic_per_seed);
  tcase_add_test(tc, seed_zero_picks_distinct_seeds);
  suite_add_tcase(s, tc);
  tc = tcase_create("limits");
  tcase_add_test(tc, deadline_boundary);
  tcase_add_test(tc, deadline_with_jitter_does_not_count_attempt);
  tcase_add_test(tc, server_delay_is_a_floor);
  tcase_add_test(tc, non_retryable_errors_pass_through);
  suite_add_tcase(s, tc);
  tc = tcase_create("budget");
  tcase_add_test(tc, budget_token_bucket);
  tcase_add_test(tc, budget_counts_every_retryable_failure);
  tcase_add_test(tc, budget_fractional_and_small);
  tcase_add_test(tc, success_keeps_attempts);
  suite_add_tcase(s, tc);
  tc = tcase_create("validation");
  tcase_add_test(tc, setter_validation);
  suite_add_tcase(s, tc);
  tc = tcase_create("classification");
  tcase_add_test(tc, error_classification);
  tcase_add_test(tc, api_status_classification);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
