/* Time arithmetic for deadlines. Every deadline in the library is computed
 * here, saturating: UINT64_MAX (CLINK_NEVER) is "never" and stays never, so
 * an "infinite" timeout can never wrap into one that fires at once. Pure;
 * internal. */
#ifndef CLINK_DEADLINE_H
#define CLINK_DEADLINE_H

#include <stdint.h>

#define CLINK__NEVER UINT64_MAX

static inline uint64_t clink__sat_add(uint64_t a, uint64_t b) {
  uint64_t s = a + b;
  return s < a ? UINT64_MAX : s;
}

/* now + ms, or never when that does not fit (or ms is never). */
static inline uint64_t clink__deadline(uint64_t now_ms, uint64_t ms) {
  return clink__sat_add(now_ms, ms);
}

/* Time left until due (0 when due is past); never stays never. */
static inline uint64_t clink__until(uint64_t due_ms, uint64_t now_ms) {
  if (due_ms == CLINK__NEVER) return CLINK__NEVER;
  return due_ms > now_ms ? due_ms - now_ms : 0;
}

/* The earlier of two deadlines. */
static inline uint64_t clink__earliest(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* A timeout as the setters take it: 0 and CLINK_NEVER both mean no limit;
 * stored as never. */
static inline uint64_t clink__timeout_norm(uint64_t ms) { return ms == 0 ? CLINK__NEVER : ms; }

#endif
