/* The one seeded generator of the library (jitter, P2C choices, request ids)
 * and the arithmetic it needs. Pure; internal. */
#ifndef CLINK_RAND_H
#define CLINK_RAND_H

#include <stdint.h>

#define CLINK__TWO_POW_64 18446744073709551616.0

/* Nearest integer of x >= 0, saturating (callers never pass NaN). */
static inline uint64_t clink__round_sat(double x) {
  x += 0.5;
  if (!(x < CLINK__TWO_POW_64)) return UINT64_MAX;
  return (uint64_t)x;
}

/* splitmix64: tiny, fast, and good enough for jitter; seeded per object. */
static inline uint64_t clink__splitmix64(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Uniform in [0, n], inclusive (Lemire's multiply-shift: no division; the bias
 * is at most (n + 1) / 2^64). */
static inline uint64_t clink__uniform_incl(uint64_t *state, uint64_t n) {
  uint64_t x = clink__splitmix64(state);
  if (n == UINT64_MAX) return x;
  uint64_t m = n + 1;
#ifdef __SIZEOF_INT128__
  __extension__ typedef unsigned __int128 u128;
  return (uint64_t)(((u128)x * m) >> 64);
#else
  uint64_t xl = x & 0xffffffffu, xh = x >> 32, ml = m & 0xffffffffu, mh = m >> 32;
  uint64_t ll = xl * ml, lh = xl * mh, hl = xh * ml, hh = xh * mh;
  uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
  return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
#endif
}

/* A seed for an object that was given none: the monotonic clock mixed with
 * the object's address, so two objects made in the same nanosecond differ.
 * Never 0. */
uint64_t clink__seed(const void *salt);

#endif
