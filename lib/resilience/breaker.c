/* Circuit breaker: pure code (sans-I/O). Time only comes in as now_ms; the
 * open-duration jitter comes from a seeded splitmix64 generator. Nothing here
 * allocates after clink_breaker_new(). One state machine with its windows
 * (~650 lines): every transition reads the same fields.
 *
 * Semantics (see also include/claudelink.h, "circuit breaker"):
 *
 * - Generation. Every state change (and reset()) increments the generation. A
 *   permit is (generation << 1) | probe, probe = 1 for a HALF_OPEN permit; an
 *   outcome or release whose generation is not the current one is ignored
 *   (sony/gobreaker). Generations start at 1, so a permit is never 0 and the 0
 *   written on a rejection is always stale.
 *
 * - CLOSED records each outcome: consecutive failures/successes, and, when a
 *   rate rule is on, the window. After every outcome (success too: a window
 *   that reaches min_calls or loses old successes may cross the threshold)
 *   the rules are checked; any one trips the breaker:
 *     consecutive_failures >= N                     (N > 0)
 *     calls >= min_calls && failures * 100 >= pct * calls   (pct > 0)
 *     calls >= min_calls && slow * 100 >= slow_pct * calls  (slow_pct > 0)
 *   A call is slow when duration_ms > slow_ms (and the slow rule is on),
 *   whether it succeeded or failed (resilience4j). min_calls 0 counts as 1;
 *   with a COUNT window it is clamped to the window size (resilience4j).
 *
 * - Windows. COUNT: a ring of the last `size` outcomes (one byte each) with
 *   running counters. TIME: a ring of `size` one-second buckets keyed by
 *   now_ms / 1000; a call made in second s counts while the current second is
 *   below s + size, i.e. a call at 0 ms with a 10 s window is gone at exactly
 *   10000 ms. Buckets rotate lazily on record and on stats. Time must not go
 *   backwards; if it does, the call lands in the newest bucket. Windows and
 *   counters are cleared on every state change (each state starts fresh).
 *
 * - OPEN rejects with retry_after = open_until - now. It becomes HALF_OPEN
 *   lazily (acquire, on_success/on_error, get_state, get_stats) at exactly
 *   now >= open_until.
 *
 * - HALF_OPEN admits at most max_probes calls at once (a release or outcome
 *   frees a slot), rejecting the rest with retry_after 0. successes_to_close
 *   successes close it; any failure re-opens it at once, and so does a slow
 *   call when the slow rule is on. max_half_open_ms counts from the first
 *   probe admitted in this HALF_OPEN (an idle HALF_OPEN with no probe out
 *   waits for traffic instead of re-opening for nothing); when it runs out
 *   without a verdict the breaker re-opens, logically at the deadline, so the
 *   result does not depend on when the breaker is looked at.
 *
 * - Open duration. Every entry into OPEN (tripping, a HALF_OPEN failure or
 *   deadline, open_for) counts as an open; the n-th open since the last close
 *   lasts min(max_ms, base_ms * multiplier^(n-1)) (kept as a double, rounded
 *   to the nearest ms), then +-jitter_pct: uniform integer in [d - s, d + s],
 *   s = floor(d * jitter_pct / 100). open_for(now, ms) opens for exactly ms
 *   (no jitter) but still counts as an open. Entering CLOSED resets the count.
 *
 * - DISABLED admits everything and records nothing (not even totals).
 *   FORCED_OPEN rejects everything with retry_after 0. Both last until
 *   reset() (or force_open / disable / each other); open_for() is ignored in
 *   them. reset() always starts a fresh CLOSED (new generation, empty window,
 *   base open duration); force_open() and disable() in their own state do
 *   nothing.
 *
 * - Events are fired synchronously, after the call has finished changing the
 *   state, so a callback may call any breaker function except free(). STATE
 *   is fired for every change of state (from != to); NOT_PERMITTED for every
 *   rejection, with from = to = the rejecting state.
 */
#include <float.h>

#include "base/internal.h"
#include "base/deadline.h"
#include "base/rand.h"
#include "monitor/events-int.h"

#define BREAKER_MAX_WINDOW 1024u

#define OUT_FAIL 1u
#define OUT_SLOW 2u

struct clink_breaker_config {
  unsigned int consecutive;
  double fail_pct;
  clink_breaker_window window;
  unsigned int size, min_calls;
  uint64_t slow_ms;
  double slow_pct;
  uint64_t base_ms, max_ms;
  double multiplier, jitter_pct;
  unsigned int max_probes, successes_to_close;
  uint64_t max_half_open_ms;
};

typedef struct bucket {
  uint32_t calls, fails, slow;
} bucket;

struct clink_breaker {
  clink_breaker_state state;
  uint64_t gen;
  uint64_t open_until;
  double next_open; /* undelayed duration of the next rule-driven open */
  uint32_t cons_fail, cons_succ;
  /* HALF_OPEN */
  uint32_t in_flight, probe_succ;
  int has_deadline;
  uint64_t deadline;
  /* window (NULL unless a rate rule is on) */
  uint8_t *ring;     /* COUNT */
  bucket *buckets;   /* TIME */
  uint32_t pos, len; /* COUNT: next slot, filled slots; TIME: newest bucket */
  uint64_t head_sec; /* TIME: second of the newest bucket */
  uint32_t w_calls, w_fails, w_slow;
  unsigned int min_calls; /* effective */
  /* totals */
  uint64_t total_calls, total_succ, total_fail, total_rejected, opened_count;
  uint64_t rng;
  clink_breaker_event_cb cb;
  void *ud;
  clink_events *sink; /* borrowed; NULL: none */
  clink_breaker_config cfg;
  char *name;
};

/* Events collected during one call, fired at its end. */
#define EVQ_MAX 6
typedef struct evq {
  unsigned int n;
  struct {
    clink_breaker_event ev;
    clink_breaker_state from, to;
    uint32_t failures; /* consecutive failures before the change */
  } e[EVQ_MAX];
} evq;

/* -------------------------------------------------------------- config */

static void config_defaults(clink_breaker_config *c) {
  memset(c, 0, sizeof(*c));
  c->consecutive = 5;
  c->fail_pct = 0.0;
  c->window = CLINK_BREAKER_WINDOW_COUNT;
  c->size = 100;
  c->min_calls = 100;
  c->slow_ms = 60000;
  c->slow_pct = 0.0;
  c->base_ms = 60000;
  c->max_ms = 60000;
  c->multiplier = 1.0;
  c->jitter_pct = 0.0;
  c->max_probes = 1;
  c->successes_to_close = 1;
  c->max_half_open_ms = 60000;
}

static int pct_ok(double pct) { return pct >= 0.0 && pct <= 100.0; } /* NaN: no */

int clink_breaker_config_new(clink_breaker_config **out) {
  if (out == NULL) return UV_EINVAL;
  *out = NULL;
  clink_breaker_config *c = clink__calloc(1, sizeof(*c));
  if (c == NULL) return UV_ENOMEM;
  config_defaults(c);
  *out = c;
  return 0;
}

void clink_breaker_config_free(clink_breaker_config *cfg) { clink__free(cfg); }

int clink_breaker_config_set_consecutive_failures(clink_breaker_config *cfg,
                                                  unsigned int failures) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->consecutive = failures;
  return 0;
}

int clink_breaker_config_set_failure_rate(clink_breaker_config *cfg, double threshold_pct,
                                          clink_breaker_window window, unsigned int size,
                                          unsigned int min_calls) {
  if (cfg == NULL || !pct_ok(threshold_pct)) return UV_EINVAL;
  if (window != CLINK_BREAKER_WINDOW_COUNT && window != CLINK_BREAKER_WINDOW_TIME)
    return UV_EINVAL;
  if (size == 0 || size > BREAKER_MAX_WINDOW) return UV_EINVAL;
  cfg->fail_pct = threshold_pct;
  cfg->window = window;
  cfg->size = size;
  cfg->min_calls = min_calls;
  return 0;
}

int clink_breaker_config_set_slow_calls(clink_breaker_config *cfg, uint64_t slow_ms,
                                        double threshold_pct) {
  if (cfg == NULL || !pct_ok(threshold_pct)) return UV_EINVAL;
  cfg->slow_ms = slow_ms;
  cfg->slow_pct = threshold_pct;
  return 0;
}

int clink_breaker_config_set_open_duration(clink_breaker_config *cfg, uint64_t base_ms,
                                           uint64_t max_ms, double multiplier,
                                           double jitter_pct) {
  if (cfg == NULL || base_ms == 0 || max_ms < base_ms) return UV_EINVAL;
  if (!(multiplier >= 1.0 && multiplier <= DBL_MAX)) return UV_EINVAL;
  if (!pct_ok(jitter_pct)) return UV_EINVAL;
  cfg->base_ms = base_ms;
  cfg->max_ms = max_ms;
  cfg->multiplier = multiplier;
  cfg->jitter_pct = jitter_pct;
  return 0;
}

int clink_breaker_config_set_half_open(clink_breaker_config *cfg, unsigned int max_probes,
                                       unsigned int successes_to_close,
                                       uint64_t max_half_open_ms) {
  if (cfg == NULL || max_probes == 0 || successes_to_close == 0) return UV_EINVAL;
  cfg->max_probes = max_probes;
  cfg->successes_to_close = successes_to_close;
  cfg->max_half_open_ms = max_half_open_ms;
  return 0;
}

/* --------------------------------------------------------------- window */

static inline int has_window(const clink_breaker *b) {
  return b->ring != NULL || b->buckets != NULL;
}

/* The COUNT ring needs no wiping: only filled slots (len) are ever read. The
 * buckets sum to w_calls, so they are all zero already when it is 0. */
static void window_clear(clink_breaker *b, uint64_t now_ms) {
  if (b->buckets != NULL && b->w_calls != 0)
    memset(b->buckets, 0, (size_t)b->cfg.size * sizeof(bucket));
  b->w_calls = b->w_fails = b->w_slow = 0;
  b->pos = b->len = 0;
  b->head_sec = now_ms / 1000;
}

/* TIME: drops the buckets older than the window at now_ms. */
static void window_rotate(clink_breaker *b, uint64_t now_ms) {
  uint64_t sec = now_ms / 1000;
  if (sec <= b->head_sec) return;
  uint64_t steps = sec - b->head_sec;
  uint32_t size = b->cfg.size;
  b->head_sec = sec;
  if (steps >= size) {
    memset(b->buckets, 0, (size_t)size * sizeof(bucket));
    b->w_calls = b->w_fails = b->w_slow = 0;
    b->pos = 0;
    return;
  }
  for (uint64_t i = 0; i < steps; i++) {
    b->pos = b->pos + 1 == size ? 0 : b->pos + 1;
    bucket *k = &b->buckets[b->pos];
    b->w_calls -= k->calls;
    b->w_fails -= k->fails;
    b->w_slow -= k->slow;
    k->calls = k->fails = k->slow = 0;
  }
}

static void window_record(clink_breaker *b, uint64_t now_ms, unsigned int bits) {
  uint32_t f = bits & OUT_FAIL ? 1 : 0, s = bits & OUT_SLOW ? 1 : 0;
  if (b->ring != NULL) {
    if (b->len == b->cfg.size) {
      uint8_t old = b->ring[b->pos];
      b->w_calls--;
      b->w_fails -= old & OUT_FAIL ? 1 : 0;
      b->w_slow -= old & OUT_SLOW ? 1 : 0;
    } else {
      b->len++;
    }
    b->ring[b->pos] = (uint8_t)bits;
    b->pos = b->pos + 1 == b->cfg.size ? 0 : b->pos + 1;
  } else {
    window_rotate(b, now_ms);
    bucket *k = &b->buckets[b->pos];
    k->calls++;
    k->fails += f;
    k->slow += s;
  }
  b->w_calls++;
  b->w_fails += f;
  b->w_slow += s;
}

static int rules_trip(const clink_breaker *b) {
  if (b->cfg.consecutive != 0 && b->cons_fail >= b->cfg.consecutive) return 1;
  if (!has_window(b) || b->w_calls < b->min_calls) return 0;
  double calls = (double)b->w_calls;
  if (b->cfg.fail_pct > 0.0 && (double)b->w_fails * 100.0 >= b->cfg.fail_pct * calls)
    return 1;
  if (b->cfg.slow_pct > 0.0 && (double)b->w_slow * 100.0 >= b->cfg.slow_pct * calls)
    return 1;
  return 0;
}

/* -------------------------------------------------------------- states */

static inline void evq_push(evq *q, clink_breaker_event ev, clink_breaker_state from,
                            clink_breaker_state to, uint32_t failures) {
  if (q->n < EVQ_MAX) {
    q->e[q->n].ev = ev;
    q->e[q->n].from = from;
    q->e[q->n].to = to;
    q->e[q->n].failures = failures;
    q->n++;
  }
}

/* The seed's structured events (copied by the sink, delivered from the
 * loop: no user code runs here). */
static void emit(clink_breaker *b, clink_breaker_event ev, clink_breaker_state from,
                 clink_breaker_state to, uint32_t failures) {
  static const char *const names[] = {"circuit_breaker_closed", "circuit_breaker_opened",
                                      "circuit_breaker_half_open", "circuit_breaker_disabled",
                                      "circuit_breaker_forced_open"};
  static const char *const states[] = {"closed", "open", "half_open", "disabled",
                                       "forced_open"};
  clink_log_level lvl = ev == CLINK_BREAKER_EVENT_NOT_PERMITTED ? CLINK_LOG_DEBUG
                        : to == CLINK_BREAKER_OPEN || to == CLINK_BREAKER_FORCED_OPEN
                            ? CLINK_LOG_WARNING
                            : CLINK_LOG_INFO;
  if (!clink__events_enabled(b->sink, lvl)) return;
  const char *name = ev == CLINK_BREAKER_EVENT_NOT_PERMITTED ? "circuit_breaker_rejected"
                                                              : names[to];
  clink_event_field f[4] = {clink__f_str("circuit_name", b->name),
                            clink__f_int("failure_count", failures),
                            clink__f_str("from_state", states[from]),
                            clink__f_str("state", states[to])};
  clink__events_emit(b->sink, lvl, "stability_monitor", name, f, 4);
}

/* The state is final when this runs; callbacks may re-enter. */
static void fire(clink_breaker *b, const evq *q) {
  for (unsigned int i = 0; i < q->n; i++)
    emit(b, q->e[i].ev, q->e[i].from, q->e[i].to, q->e[i].failures);
  for (unsigned int i = 0; i < q->n; i++) {
    clink_breaker_event_cb cb = b->cb;
    if (cb != NULL) cb(b, q->e[i].ev, q->e[i].from, q->e[i].to, b->ud);
  }
}

/* Every change of state goes through here: new generation, fresh counters. */
static void set_state(clink_breaker *b, clink_breaker_state to, uint64_t now_ms, evq *q) {
  clink_breaker_state from = b->state;
  uint32_t failures = b->cons_fail > b->w_fails ? b->cons_fail : b->w_fails;
  b->state = to;
  b->gen++;
  b->cons_fail = b->cons_succ = 0;
  b->in_flight = b->probe_succ = 0;
  b->has_deadline = 0;
  if (has_window(b)) window_clear(b, now_ms);
  if (from != to) evq_push(q, CLINK_BREAKER_EVENT_STATE, from, to, failures);
}

static void enter_closed(clink_breaker *b, uint64_t now_ms, evq *q) {
  set_state(b, CLINK_BREAKER_CLOSED, now_ms, q);
  b->next_open = (double)b->cfg.base_ms;
}

/* Opens at t for d ms; counts as an open for the growth of the duration. */
static void enter_open(clink_breaker *b, uint64_t t, uint64_t d, evq *q) {
  set_state(b, CLINK_BREAKER_OPEN, t, q);
  b->open_until = clink__sat_add(t, d);
  b->opened_count++;
  double next = b->next_open * b->cfg.multiplier;
  double max = (double)b->cfg.max_ms;
  b->next_open = next < max ? next : max;
}

/* Opens by the rules: the grown duration, with jitter. */
static void trip(clink_breaker *b, uint64_t t, evq *q) {
  uint64_t d = clink__round_sat(b->next_open);
  if (d > b->cfg.max_ms) d = b->cfg.max_ms;
  if (b->cfg.jitter_pct > 0.0) {
    uint64_t s = (uint64_t)((double)d * b->cfg.jitter_pct / 100.0);
    if (s > d) s = d;
    uint64_t r = clink__uniform_incl(&b->rng, s > UINT64_MAX / 2 ? UINT64_MAX : 2 * s);
    d = r >= s ? clink__sat_add(d, r - s) : d - (s - r);
  }
  enter_open(b, t, d, q);
}

/* Lazy timers: OPEN -> HALF_OPEN at open_until; HALF_OPEN -> OPEN at the
 * probe deadline (and on to HALF_OPEN if that open is over too). */
static inline void advance(clink_breaker *b, uint64_t now_ms, evq *q) {
  if (b->state == CLINK_BREAKER_OPEN && now_ms >= b->open_until)
    set_state(b, CLINK_BREAKER_HALF_OPEN, b->open_until, q);
  if (b->state == CLINK_BREAKER_HALF_OPEN && b->has_deadline && now_ms >= b->deadline) {
    trip(b, b->deadline, q);
    if (now_ms >= b->open_until) set_state(b, CLINK_BREAKER_HALF_OPEN, b->open_until, q);
  }
}

/* ------------------------------------------------------------- breaker */

int clink_breaker_new(clink_breaker **out, const char *name, const clink_breaker_config *cfg,
                      uint64_t seed) {
  if (out == NULL) return UV_EINVAL;
  *out = NULL;
  if (name == NULL) return UV_EINVAL;
  clink_breaker *b = clink__calloc(1, sizeof(*b));
  if (b == NULL) return UV_ENOMEM;
  if (cfg != NULL)
    b->cfg = *cfg;
  else
    config_defaults(&b->cfg);
  b->name = clink__strdup(name);
  if (b->name == NULL) goto nomem;
  if (b->cfg.fail_pct > 0.0 || b->cfg.slow_pct > 0.0) {
    if (b->cfg.window == CLINK_BREAKER_WINDOW_COUNT) {
      b->ring = clink__calloc(b->cfg.size, 1);
      if (b->ring == NULL) goto nomem;
    } else {
      b->buckets = clink__calloc(b->cfg.size, sizeof(bucket));
      if (b->buckets == NULL) goto nomem;
    }
  }
  unsigned int mc = b->cfg.min_calls == 0 ? 1 : b->cfg.min_calls;
  if (b->cfg.window == CLINK_BREAKER_WINDOW_COUNT && mc > b->cfg.size) mc = b->cfg.size;
  b->min_calls = mc;
  if (seed == 0) {
    seed = clink__seed(b);
  }
  b->rng = seed;
  b->state = CLINK_BREAKER_CLOSED;
  b->gen = 1;
  b->next_open = (double)b->cfg.base_ms;
  *out = b;
  return 0;
nomem:
  clink_breaker_free(b);
  return UV_ENOMEM;
}

void clink_breaker_free(clink_breaker *breaker) {
  if (breaker == NULL) return;
  clink__free(breaker->ring);
  clink__free(breaker->buckets);
  clink__free(breaker->name);
  clink__free(breaker);
}

const char *clink_breaker_name(const clink_breaker *breaker) {
  return breaker != NULL ? breaker->name : NULL;
}

void clink_breaker_set_events(clink_breaker *b, clink_events *sink) {
  if (b) b->sink = sink;
}

void clink_breaker_set_event_cb(clink_breaker *breaker, clink_breaker_event_cb cb, void *ud) {
  if (breaker == NULL) return;
  breaker->cb = cb;
  breaker->ud = ud;
}

static int reject(clink_breaker *b, uint64_t retry_after, uint64_t *permit,
                  uint64_t *retry_after_ms, evq *q) {
  b->total_rejected++;
  *permit = 0;
  if (retry_after_ms != NULL) *retry_after_ms = retry_after;
  evq_push(q, CLINK_BREAKER_EVENT_NOT_PERMITTED, b->state, b->state, b->cons_fail);
  fire(b, q);
  return CLINK_ECIRCUIT_OPEN;
}

int clink_breaker_acquire(clink_breaker *b, uint64_t now_ms, uint64_t *permit,
                          uint64_t *retry_after_ms) {
  if (b == NULL || permit == NULL) return UV_EINVAL;
  /* Fast paths: no timers, no events. */
  if (b->state == CLINK_BREAKER_CLOSED) {
    b->total_calls++;
    *permit = b->gen << 1;
    if (retry_after_ms != NULL) *retry_after_ms = 0;
    return 0;
  }
  if (b->state == CLINK_BREAKER_DISABLED) {
    *permit = b->gen << 1;
    if (retry_after_ms != NULL) *retry_after_ms = 0;
    return 0;
  }
  evq q;
  q.n = 0;
  if (b->state == CLINK_BREAKER_FORCED_OPEN) return reject(b, 0, permit, retry_after_ms, &q);
  advance(b, now_ms, &q);
  if (b->state == CLINK_BREAKER_OPEN)
    return reject(b, b->open_until - now_ms, permit, retry_after_ms, &q);
  /* HALF_OPEN */
  if (b->in_flight >= b->cfg.max_probes) return reject(b, 0, permit, retry_after_ms, &q);
  b->in_flight++;
  if (!b->has_deadline && b->cfg.max_half_open_ms != 0) {
    b->has_deadline = 1;
    b->deadline = clink__sat_add(now_ms, b->cfg.max_half_open_ms);
  }
  b->total_calls++;
  *permit = (b->gen << 1) | 1u;
  if (retry_after_ms != NULL) *retry_after_ms = 0;
  fire(b, &q);
  return 0;
}

static void outcome(clink_breaker *b, uint64_t permit, uint64_t now_ms, uint64_t duration_ms,
                    int failed) {
  if (b == NULL) return;
  if (b->state == CLINK_BREAKER_DISABLED || b->state == CLINK_BREAKER_FORCED_OPEN) return;
  evq q;
  q.n = 0;
  advance(b, now_ms, &q);
  if ((permit >> 1) != b->gen) goto done;
  unsigned int bits = failed ? OUT_FAIL : 0;
  if (b->cfg.slow_pct > 0.0 && duration_ms > b->cfg.slow_ms) bits |= OUT_SLOW;
  if (failed)
    b->total_fail++;
  else
    b->total_succ++;
  if (b->state == CLINK_BREAKER_CLOSED && !(permit & 1u)) {
    if (failed) {
      if (b->cons_fail < UINT32_MAX) b->cons_fail++;
      b->cons_succ = 0;
    } else {
      if (b->cons_succ < UINT32_MAX) b->cons_succ++;
      b->cons_fail = 0;
    }
    if (has_window(b)) window_record(b, now_ms, bits);
    if (rules_trip(b)) trip(b, now_ms, &q);
  } else if (b->state == CLINK_BREAKER_HALF_OPEN && (permit & 1u)) {
    if (b->in_flight > 0) b->in_flight--;
    if (bits != 0) {
      trip(b, now_ms, &q);
    } else {
      b->cons_succ++;
      if (++b->probe_succ >= b->cfg.successes_to_close) enter_closed(b, now_ms, &q);
    }
  }
done:
  if (q.n != 0) fire(b, &q);
}

void clink_breaker_on_success(clink_breaker *breaker, uint64_t permit, uint64_t now_ms,
                              uint64_t duration_ms) {
  outcome(breaker, permit, now_ms, duration_ms, 0);
}

void clink_breaker_on_error(clink_breaker *breaker, uint64_t permit, uint64_t now_ms,
                            uint64_t duration_ms) {
  outcome(breaker, permit, now_ms, duration_ms, 1);
}

void clink_breaker_release(clink_breaker *b, uint64_t permit) {
  if (b == NULL || b->state != CLINK_BREAKER_HALF_OPEN) return;
  if ((permit >> 1) != b->gen || !(permit & 1u)) return;
  if (b->in_flight > 0) b->in_flight--;
}

void clink_breaker_reset(clink_breaker *b, uint64_t now_ms) {
  if (b == NULL) return;
  evq q;
  q.n = 0;
  enter_closed(b, now_ms, &q);
  fire(b, &q);
}

void clink_breaker_force_open(clink_breaker *b, uint64_t now_ms) {
  if (b == NULL || b->state == CLINK_BREAKER_FORCED_OPEN) return;
  evq q;
  q.n = 0;
  set_state(b, CLINK_BREAKER_FORCED_OPEN, now_ms, &q);
  fire(b, &q);
}

void clink_breaker_disable(clink_breaker *b, uint64_t now_ms) {
  if (b == NULL || b->state == CLINK_BREAKER_DISABLED) return;
  evq q;
  q.n = 0;
  set_state(b, CLINK_BREAKER_DISABLED, now_ms, &q);
  fire(b, &q);
}

void clink_breaker_open_for(clink_breaker *b, uint64_t now_ms, uint64_t open_ms) {
  if (b == NULL) return;
  if (b->state == CLINK_BREAKER_DISABLED || b->state == CLINK_BREAKER_FORCED_OPEN) return;
  evq q;
  q.n = 0;
  enter_open(b, now_ms, open_ms, &q);
  fire(b, &q);
}

clink_breaker_state clink_breaker_get_state(clink_breaker *b, uint64_t now_ms) {
  if (b == NULL) return CLINK_BREAKER_CLOSED;
  if (b->state == CLINK_BREAKER_OPEN || b->state == CLINK_BREAKER_HALF_OPEN) {
    evq q;
    q.n = 0;
    advance(b, now_ms, &q);
    if (q.n != 0) fire(b, &q);
  }
  return b->state;
}

const char *clink_breaker_state_name(clink_breaker_state state) {
  switch (state) {
    case CLINK_BREAKER_CLOSED: return "CLOSED";
    case CLINK_BREAKER_OPEN: return "OPEN";
    case CLINK_BREAKER_HALF_OPEN: return "HALF_OPEN";
    case CLINK_BREAKER_DISABLED: return "DISABLED";
    case CLINK_BREAKER_FORCED_OPEN: return "FORCED_OPEN";
  }
  return "UNKNOWN";
}

int clink_breaker_get_stats(clink_breaker *b, uint64_t now_ms, clink_breaker_stats *out) {
  if (b == NULL || out == NULL || out->struct_size < sizeof(size_t)) return UV_EINVAL;
  evq q;
  q.n = 0;
  advance(b, now_ms, &q);
  if (b->buckets != NULL) window_rotate(b, now_ms);
  clink_breaker_stats s;
  memset(&s, 0, sizeof(s));
  s.state = b->state;
  s.generation = b->gen;
  s.consecutive_failures = b->cons_fail;
  s.consecutive_successes = b->cons_succ;
  s.window_calls = b->w_calls;
  s.window_failures = b->w_fails;
  s.window_slow = b->w_slow;
  if (has_window(b) && b->w_calls >= b->min_calls) {
    s.failure_rate_pct = (double)b->w_fails * 100.0 / (double)b->w_calls;
    s.slow_rate_pct = (double)b->w_slow * 100.0 / (double)b->w_calls;
  } else {
    s.failure_rate_pct = -1.0;
    s.slow_rate_pct = -1.0;
  }
  s.half_open_in_flight = b->in_flight;
  s.until_half_open_ms = b->state == CLINK_BREAKER_OPEN ? b->open_until - now_ms : 0;
  s.total_calls = b->total_calls;
  s.total_successes = b->total_succ;
  s.total_failures = b->total_fail;
  s.total_rejected = b->total_rejected;
  s.opened_count = b->opened_count;
  size_t n = out->struct_size < sizeof(s) ? out->struct_size : sizeof(s);
  s.struct_size = n;
  memcpy(out, &s, n);
  if (q.n != 0) fire(b, &q);
  return 0;
}
