/* The body of clink_fallback and what the call drivers (uv-ask*.c,
 * uv-exec-fallback.c) use of it. Pure; internal.
 *
 * A fallback is configuration (the chain), a cache store and counters. The
 * drivers decide when a step runs; this file decides whether it may
 * (clink__fallback_step_applies), keeps the statistics and makes the events,
 * so both drivers count and report the same way. */
#ifndef CLINK_FALLBACK_INT_H
#define CLINK_FALLBACK_INT_H

#include "claudelink.h"
#include "fallback/cache.h"

#define CLINK__FB_MAX_STEPS 16
#define CLINK__FB_NAME_MAX 127
#define CLINK__FB_COMPONENT "fallback_system"

typedef struct clink__fb_step {
  clink_fallback_strategy strategy;
  unsigned int classes;
  uint64_t ttl_ms, stale_ms; /* CACHED (normalised: CLINK__NEVER = forever) */
  char *text;                /* MOCK with a fixed text */
  clink_fallback_fn fn;      /* MOCK / DEGRADED answered by the host */
  void *fn_ud;
  clink_pool *pool;          /* DEGRADED / ALTERNATIVE */
  clink_breaker *breaker;    /* ALTERNATIVE: NULL = the pool's */
  clink_outbox *outbox;      /* QUEUE */
} clink__fb_step;

struct clink_fallback {
  char *operation;
  clink__fb_step steps[CLINK__FB_MAX_STEPS];
  size_t n;
  clink__cache_store *cache;
  clink_events *sink;
  clink_fallback_stats st; /* counters; the cache's figures are added on read */
  unsigned int in_flight;  /* calls using it */
  int free_pending;        /* freed while calls used it: the last one frees it */
};

/* A call stops using fb (the last one frees it when it was freed meanwhile). */
void clink__fallback_unuse(clink_fallback *fb);

/* Whether step s may answer a failure of class k: it handles the class, and
 * after the deadline only answers from memory (a cached answer, a fixed
 * mock); pool_ok 0 (clink_execute_with_fallback) skips the pool steps. */
int clink__fallback_step_applies(const clink__fb_step *s, clink_failure_class k,
                                 int after_deadline, int pool_ok);
/* Whether any step may answer k (else the failure is returned as is). */
int clink__fallback_handles(const clink_fallback *fb, clink_failure_class k, int after_deadline,
                            int pool_ok);
/* The first cached step (what stores answers), or NULL. */
const clink__fb_step *clink__fallback_cached_step(const clink_fallback *fb);

/* The source a strategy answers as. */
clink_source clink__fallback_source_of(clink_fallback_strategy s);

/* Cache access with the statistics and the cache_hit / cache_miss events
 * (sink: the call's, or NULL for the fallback's). A hit is released with
 * fb->cache->ops->release(NULL, hit), which needs neither fb nor its store. */
int clink__fallback_lookup(clink_fallback *fb, clink_events *sink, const clink__cache_key *k,
                           uint64_t now_ms, clink__cache_hit *hit);
/* Stores a primary answer under the first cached step's TTLs; no-op without
 * one. */
int clink__fallback_store(clink_fallback *fb, const clink__cache_key *k, const char *answer,
                          size_t len, uint64_t now_ms);

/* A call through fb ended: counts it (source NONE for a failure; klass the
 * primary failure's, NONE when the primary answered; tried: steps were
 * tried). */
void clink__fallback_count_end(clink_fallback *fb, clink_source source, int status,
                               clink_failure_class klass, int tried);

/* Events (component "fallback_system"); sink NULL: the fallback's. */
void clink__fallback_event_used(clink_fallback *fb, clink_events *sink,
                                clink_fallback_strategy s, int err, clink_failure_class k,
                                unsigned int attempts);
void clink__fallback_event_exhausted(clink_fallback *fb, clink_events *sink, int err,
                                     clink_failure_class k, unsigned int tried);
void clink__fallback_event_skipped(clink_fallback *fb, clink_events *sink, int err,
                                   clink_failure_class k, int api_status);

/* A spawn profile's identity in cache keys: clink_options_fingerprint() as
 * 16 lower-case hex digits (the same in every process, for a shared store). */
#define CLINK__PROFILE_KEY_LEN 16
static inline void clink__profile_key(uint64_t fingerprint, char out[CLINK__PROFILE_KEY_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = CLINK__PROFILE_KEY_LEN - 1; i >= 0; i--, fingerprint >>= 4)
    out[i] = hex[fingerprint & 15];
  out[CLINK__PROFILE_KEY_LEN] = '\0';
}

#endif
