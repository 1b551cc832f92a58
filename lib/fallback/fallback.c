/* clink_fallback: the chain, its cache and its statistics; the registry.
 * Pure (see fallback-int.h). */
#include "fallback/fallback-int.h"

#include <assert.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "monitor/events-int.h"

_Static_assert(CLINK_FALLBACK_ALTERNATIVE_PROVIDER < CLINK_FALLBACK_STRATEGY_SLOTS,
               "every strategy has a slot");
_Static_assert(CLINK_FAILURE_ALL < (1 << CLINK_FAILURE_CLASS_SLOTS), "every class has a slot");

/* ------------------------------------------------------------------- chain */

int clink_fallback_new(clink_fallback **out, const char *operation) {
  if (out == NULL || operation == NULL || operation[0] == '\0' ||
      strlen(operation) > CLINK__FB_NAME_MAX)
    return UV_EINVAL;
  clink_fallback *fb = clink__calloc(1, sizeof(*fb));
  if (fb == NULL) return UV_ENOMEM;
  fb->operation = clink__strdup(operation);
  if (fb->operation == NULL ||
      clink__cache_memory_new(&fb->cache, CLINK_FALLBACK_DEFAULT_CACHE_ENTRIES,
                              CLINK_FALLBACK_DEFAULT_CACHE_BYTES) != 0) {
    clink__free(fb->operation);
    clink__free(fb);
    return UV_ENOMEM;
  }
  *out = fb;
  return 0;
}

int clink_fallback_new_seed(clink_fallback **out, const char *operation) {
  if (out == NULL || operation == NULL) return UV_EINVAL;
  uint64_t ttl;
  if (strcmp(operation, "chat") == 0)
    ttl = CLINK_FALLBACK_CHAT_CACHE_TTL_MS;
  else if (strcmp(operation, "create_session") == 0)
    ttl = CLINK_FALLBACK_DEFAULT_CACHE_TTL_MS;
  else
    return UV_EINVAL;
  clink_fallback *fb;
  int rc = clink_fallback_new(&fb, operation);
  if (rc != 0) return rc;
  if ((rc = clink_fallback_add_cached(fb, ttl, 0)) < 0 ||
      (rc = clink_fallback_add_mock(fb, NULL)) < 0) {
    clink_fallback_free(fb);
    return rc;
  }
  *out = fb;
  return 0;
}

static void destroy(clink_fallback *fb) {
  for (size_t i = 0; i < fb->n; i++) clink__free(fb->steps[i].text);
  fb->cache->ops->destroy(fb->cache);
  clink__free(fb->operation);
  clink__free(fb);
}

void clink_fallback_free(clink_fallback *fb) {
  if (fb == NULL) return;
  /* A registry freed from a call's own callback must not pull the chain
   * from under the calls still walking it. */
  if (fb->in_flight) {
    fb->free_pending = 1;
    return;
  }
  destroy(fb);
}

void clink__fallback_unuse(clink_fallback *fb) {
  if (--fb->in_flight == 0 && fb->free_pending) destroy(fb);
}

const char *clink_fallback_operation(const clink_fallback *fb) {
  return fb ? fb->operation : NULL;
}

static clink__fb_step *add_step(clink_fallback *fb, clink_fallback_strategy s, int *rc) {
  if (fb == NULL) {
    *rc = UV_EINVAL;
    return NULL;
  }
  if (fb->n == CLINK__FB_MAX_STEPS) {
    *rc = UV_E2BIG;
    return NULL;
  }
  clink__fb_step *st = &fb->steps[fb->n];
  memset(st, 0, sizeof(*st));
  st->strategy = s;
  st->classes = CLINK_FAILURE_DEFAULT;
  *rc = (int)fb->n;
  return st;
}

int clink_fallback_add_cached(clink_fallback *fb, uint64_t ttl_ms, uint64_t stale_if_error_ms) {
  int rc;
  clink__fb_step *s = add_step(fb, CLINK_FALLBACK_CACHED_RESPONSE, &rc);
  if (s == NULL) return rc;
  s->ttl_ms = clink__timeout_norm(ttl_ms);
  s->stale_ms = stale_if_error_ms;
  fb->n++;
  return rc;
}

int clink_fallback_add_mock(clink_fallback *fb, const char *text) {
  int rc;
  clink__fb_step *s = add_step(fb, CLINK_FALLBACK_MOCK_RESPONSE, &rc);
  if (s == NULL) return rc;
  s->text = clink__strdup(text ? text : CLINK_FALLBACK_DEFAULT_MOCK_TEXT);
  if (s->text == NULL) return UV_ENOMEM;
  fb->n++;
  return rc;
}

static int add_fn(clink_fallback *fb, clink_fallback_strategy strategy, clink_fallback_fn fn,
                  void *ud) {
  if (fn == NULL) return UV_EINVAL;
  int rc;
  clink__fb_step *s = add_step(fb, strategy, &rc);
  if (s == NULL) return rc;
  s->fn = fn;
  s->fn_ud = ud;
  fb->n++;
  return rc;
}

int clink_fallback_add_mock_fn(clink_fallback *fb, clink_fallback_fn fn, void *ud) {
  return add_fn(fb, CLINK_FALLBACK_MOCK_RESPONSE, fn, ud);
}

int clink_fallback_add_degraded_fn(clink_fallback *fb, clink_fallback_fn fn, void *ud) {
  return add_fn(fb, CLINK_FALLBACK_DEGRADED_SERVICE, fn, ud);
}

int clink_fallback_add_degraded(clink_fallback *fb, clink_pool *pool) {
  if (pool == NULL) return UV_EINVAL;
  int rc;
  clink__fb_step *s = add_step(fb, CLINK_FALLBACK_DEGRADED_SERVICE, &rc);
  if (s == NULL) return rc;
  s->pool = pool;
  fb->n++;
  return rc;
}

int clink_fallback_add_queue(clink_fallback *fb, clink_outbox *ob) {
  if (ob == NULL) return UV_EINVAL;
  int rc;
  clink__fb_step *s = add_step(fb, CLINK_FALLBACK_QUEUE_FOR_RETRY, &rc);
  if (s == NULL) return rc;
  s->outbox = ob;
  fb->n++;
  return rc;
}

int clink_fallback_add_alternative(clink_fallback *fb, clink_pool *pool, clink_breaker *breaker) {
  if (pool == NULL) return UV_EINVAL;
  int rc;
  clink__fb_step *s = add_step(fb, CLINK_FALLBACK_ALTERNATIVE_PROVIDER, &rc);
  if (s == NULL) return rc;
  s->pool = pool;
  s->breaker = breaker;
  fb->n++;
  return rc;
}

int clink_fallback_set_step_failures(clink_fallback *fb, size_t step, unsigned int classes) {
  if (fb == NULL || step >= fb->n || (classes & ~(unsigned int)CLINK_FAILURE_ALL) != 0)
    return UV_EINVAL;
  fb->steps[step].classes = classes;
  return 0;
}

size_t clink_fallback_step_count(const clink_fallback *fb) { return fb ? fb->n : 0; }

int clink_fallback_step_strategy(const clink_fallback *fb, size_t i) {
  if (fb == NULL || i >= fb->n) return UV_EINVAL;
  return (int)fb->steps[i].strategy;
}

int clink_fallback_set_cache_limits(clink_fallback *fb, size_t max_entries, size_t max_bytes) {
  if (fb == NULL || max_entries == 0 || max_entries > INT32_MAX || max_bytes == 0)
    return UV_EINVAL;
  return fb->cache->ops->set_limits(fb->cache, max_entries, max_bytes);
}

static void emit(clink_fallback *fb, clink_events *sink, clink_log_level lvl, const char *name,
                 const clink_event_field *f, size_t n) {
  clink__events_emit(sink, lvl, CLINK__FB_COMPONENT, name, f, n);
  (void)fb;
}

static clink_events *sink_of(clink_fallback *fb, clink_events *sink) {
  return sink ? sink : fb->sink;
}

int clink_fallback_clear_cache(clink_fallback *fb) {
  if (fb == NULL) return UV_EINVAL;
  int n = fb->cache->ops->clear(fb->cache);
  if (clink__events_enabled(fb->sink, CLINK_LOG_INFO)) {
    clink_event_field f[] = {clink__f_str("operation", fb->operation),
                             clink__f_int("cleared", n)};
    emit(fb, fb->sink, CLINK_LOG_INFO, "fallback_cache_cleared", f, 2);
  }
  return n;
}

void clink_fallback_set_events(clink_fallback *fb, clink_events *sink) {
  if (fb) fb->sink = sink;
}

int clink_fallback_get_stats(const clink_fallback *fb, clink_fallback_stats *out) {
  if (fb == NULL || out == NULL || out->struct_size < sizeof(size_t)) return UV_EINVAL;
  clink_fallback_stats s = fb->st;
  clink__cache_stats cs;
  fb->cache->ops->stats(fb->cache, &cs);
  s.cache_entries = cs.entries;
  s.cache_bytes = cs.bytes;
  s.cache_evictions = cs.evictions;
  s.cache_expired = cs.expired;
  size_t n = out->struct_size < sizeof(s) ? out->struct_size : sizeof(s);
  s.struct_size = out->struct_size;
  memcpy(out, &s, n);
  return 0;
}

/* ------------------------------------------------------- used by drivers */

int clink__fallback_step_applies(const clink__fb_step *s, clink_failure_class k,
                                 int after_deadline, int pool_ok) {
  if (k == CLINK_FAILURE_NONE || (s->classes & (unsigned int)k) == 0) return 0;
  if (s->pool != NULL && !pool_ok) return 0;
  if (after_deadline)
    return s->strategy == CLINK_FALLBACK_CACHED_RESPONSE ||
           (s->strategy == CLINK_FALLBACK_MOCK_RESPONSE && s->text != NULL);
  return 1;
}

int clink__fallback_handles(const clink_fallback *fb, clink_failure_class k, int after_deadline,
                            int pool_ok) {
  if (fb == NULL) return 0;
  for (size_t i = 0; i < fb->n; i++)
    if (clink__fallback_step_applies(&fb->steps[i], k, after_deadline, pool_ok)) return 1;
  return 0;
}

const clink__fb_step *clink__fallback_cached_step(const clink_fallback *fb) {
  if (fb == NULL) return NULL;
  for (size_t i = 0; i < fb->n; i++)
    if (fb->steps[i].strategy == CLINK_FALLBACK_CACHED_RESPONSE) return &fb->steps[i];
  return NULL;
}

clink_source clink__fallback_source_of(clink_fallback_strategy s) {
  switch (s) {
    case CLINK_FALLBACK_CACHED_RESPONSE: return CLINK_SOURCE_CACHE;
    case CLINK_FALLBACK_MOCK_RESPONSE: return CLINK_SOURCE_MOCK;
    case CLINK_FALLBACK_DEGRADED_SERVICE: return CLINK_SOURCE_DEGRADED;
    case CLINK_FALLBACK_QUEUE_FOR_RETRY: return CLINK_SOURCE_QUEUED;
    case CLINK_FALLBACK_ALTERNATIVE_PROVIDER: return CLINK_SOURCE_ALTERNATIVE;
  }
  return CLINK_SOURCE_NONE;
}

static int strategy_of(clink_source src) {
  switch (src) {
    case CLINK_SOURCE_CACHE: return CLINK_FALLBACK_CACHED_RESPONSE;
    case CLINK_SOURCE_MOCK: return CLINK_FALLBACK_MOCK_RESPONSE;
    case CLINK_SOURCE_DEGRADED: return CLINK_FALLBACK_DEGRADED_SERVICE;
    case CLINK_SOURCE_QUEUED: return CLINK_FALLBACK_QUEUE_FOR_RETRY;
    case CLINK_SOURCE_ALTERNATIVE: return CLINK_FALLBACK_ALTERNATIVE_PROVIDER;
    default: return -1;
  }
}

int clink__fallback_lookup(clink_fallback *fb, clink_events *sink, const clink__cache_key *k,
                           uint64_t now_ms, clink__cache_hit *hit) {
  int rc = fb->cache->ops->lookup(fb->cache, k, now_ms, hit);
  sink = sink_of(fb, sink);
  if (rc == 0) {
    fb->st.cache_hits++;
    if (clink__events_enabled(sink, CLINK_LOG_INFO)) {
      clink_event_field f[] = {clink__f_str("operation", fb->operation),
                               clink__f_int("age_ms", (int64_t)hit->age_ms),
                               clink__f_bool("stale", hit->stale)};
      emit(fb, sink, CLINK_LOG_INFO, "cache_hit", f, 3);
    }
  } else {
    fb->st.cache_misses++;
    if (clink__events_enabled(sink, CLINK_LOG_INFO)) {
      clink_event_field f[] = {clink__f_str("operation", fb->operation)};
      emit(fb, sink, CLINK_LOG_INFO, "cache_miss", f, 1);
    }
  }
  return rc;
}

int clink__fallback_store(clink_fallback *fb, const clink__cache_key *k, const char *answer,
                          size_t len, uint64_t now_ms) {
  const clink__fb_step *s = clink__fallback_cached_step(fb);
  if (s == NULL) return 0;
  return fb->cache->ops->put(fb->cache, k, answer, len, now_ms, s->ttl_ms, s->stale_ms);
}

static int class_bit(clink_failure_class k) {
  int b = 0;
  unsigned int v = (unsigned int)k;
  while (v > 1) {
    v >>= 1;
    b++;
  }
  return b;
}

void clink__fallback_count_end(clink_fallback *fb, clink_source source, int status,
                               clink_failure_class klass, int tried) {
  clink_fallback_stats *st = &fb->st;
  st->total_calls++;
  if (klass != CLINK_FAILURE_NONE) st->failures_by_class[class_bit(klass)]++;
  if (status == UV_ECANCELED) {
    st->cancelled++;
    return;
  }
  if (source == CLINK_SOURCE_PRIMARY) {
    st->primary_success++;
  } else if (source != CLINK_SOURCE_NONE) {
    st->fallback_used++;
    int s = strategy_of(source);
    if (s >= 0) st->fallback_by_strategy[s]++;
  } else {
    st->failures++;
    if (tried)
      st->exhausted++;
    else
      st->failed_fast++;
  }
}

void clink__fallback_event_used(clink_fallback *fb, clink_events *sink,
                                clink_fallback_strategy s, int err, clink_failure_class k,
                                unsigned int attempts) {
  sink = sink_of(fb, sink);
  if (!clink__events_enabled(sink, CLINK_LOG_WARNING)) return;
  clink_event_field f[] = {
      clink__f_str("operation", fb->operation),
      clink__f_str("strategy", clink_fallback_strategy_name(s)),
      clink__f_str("source", clink_source_name(clink__fallback_source_of(s))),
      clink__f_str("error", clink_err_name(err)),
      clink__f_str("failure_class", clink_failure_class_name(k)),
      clink__f_int("primary_attempts", attempts)};
  emit(fb, sink, CLINK_LOG_WARNING, "fallback_used", f, CLINK__ARRAY_SIZE(f));
}

void clink__fallback_event_exhausted(clink_fallback *fb, clink_events *sink, int err,
                                     clink_failure_class k, unsigned int tried) {
  sink = sink_of(fb, sink);
  if (!clink__events_enabled(sink, CLINK_LOG_ERROR)) return;
  clink_event_field f[] = {clink__f_str("operation", fb->operation),
                           clink__f_str("error", clink_err_name(err)),
                           clink__f_str("failure_class", clink_failure_class_name(k)),
                           clink__f_int("steps_tried", tried)};
  emit(fb, sink, CLINK_LOG_ERROR, "fallback_exhausted", f, CLINK__ARRAY_SIZE(f));
}

void clink__fallback_event_skipped(clink_fallback *fb, clink_events *sink, int err,
                                   clink_failure_class k, int api_status) {
  sink = sink_of(fb, sink);
  if (!clink__events_enabled(sink, CLINK_LOG_WARNING)) return;
  clink_event_field f[] = {clink__f_str("operation", fb->operation),
                           clink__f_str("error", clink_err_name(err)),
                           clink__f_str("failure_class", clink_failure_class_name(k)),
                           clink__f_int("api_error_status", api_status)};
  emit(fb, sink, CLINK_LOG_WARNING, "fallback_skipped", f, CLINK__ARRAY_SIZE(f));
}

/* ---------------------------------------------------------------- registry */

struct clink_fallback_registry {
  clink_fallback **v;
  size_t n, cap;
  clink_events *sink;
};

static int reg_push(clink_fallback_registry *reg, clink_fallback *fb) {
  if (reg->n == reg->cap) {
    size_t cap = reg->cap ? reg->cap * 2 : 4;
    clink_fallback **v = realloc(reg->v, cap * sizeof(*v));
    if (v == NULL) return UV_ENOMEM;
    reg->v = v;
    reg->cap = cap;
  }
  fb->sink = reg->sink;
  reg->v[reg->n++] = fb;
  return 0;
}

int clink_fallback_registry_new(clink_fallback_registry **out) {
  if (out == NULL) return UV_EINVAL;
  clink_fallback_registry *reg = clink__calloc(1, sizeof(*reg));
  if (reg == NULL) return UV_ENOMEM;
  static const char *const seed[] = {"chat", "create_session"};
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(seed); i++) {
    clink_fallback *fb;
    int rc = clink_fallback_new_seed(&fb, seed[i]);
    if (rc == 0 && (rc = reg_push(reg, fb)) != 0) clink_fallback_free(fb);
    if (rc != 0) {
      clink_fallback_registry_free(reg);
      return rc;
    }
  }
  *out = reg;
  return 0;
}

void clink_fallback_registry_free(clink_fallback_registry *reg) {
  if (reg == NULL) return;
  for (size_t i = 0; i < reg->n; i++) clink_fallback_free(reg->v[i]);
  clink__free(reg->v);
  clink__free(reg);
}

int clink_fallback_registry_add(clink_fallback_registry *reg, const char *operation,
                                clink_fallback **out) {
  if (out != NULL) *out = NULL;
  if (reg == NULL || operation == NULL) return UV_EINVAL;
  if (clink_fallback_registry_get(reg, operation) != NULL) return UV_EEXIST;
  clink_fallback *fb;
  int rc = clink_fallback_new(&fb, operation);
  if (rc != 0) return rc;
  if ((rc = reg_push(reg, fb)) != 0) {
    clink_fallback_free(fb);
    return rc;
  }
  if (out != NULL) *out = fb;
  return 0;
}

int clink_fallback_registry_remove(clink_fallback_registry *reg, const char *operation) {
  if (reg == NULL || operation == NULL) return UV_EINVAL;
  for (size_t i = 0; i < reg->n; i++) {
    if (strcmp(reg->v[i]->operation, operation) != 0) continue;
    clink_fallback_free(reg->v[i]);
    /* Registration order is what reports show: keep it. */
    memmove(&reg->v[i], &reg->v[i + 1], (reg->n - i - 1) * sizeof(reg->v[0]));
    reg->n--;
    return 0;
  }
  return UV_ENOENT;
}

clink_fallback *clink_fallback_registry_get(const clink_fallback_registry *reg,
                                            const char *operation) {
  if (reg == NULL || operation == NULL) return NULL;
  for (size_t i = 0; i < reg->n; i++)
    if (strcmp(reg->v[i]->operation, operation) == 0) return reg->v[i];
  return NULL;
}

size_t clink_fallback_registry_count(const clink_fallback_registry *reg) {
  return reg ? reg->n : 0;
}

clink_fallback *clink_fallback_registry_at(const clink_fallback_registry *reg, size_t i) {
  if (reg == NULL || i >= reg->n) return NULL;
  return reg->v[i];
}

void clink_fallback_registry_set_events(clink_fallback_registry *reg, clink_events *sink) {
  if (reg == NULL) return;
  reg->sink = sink;
  for (size_t i = 0; i < reg->n; i++) reg->v[i]->sink = sink;
}

int clink_fallback_registry_clear_cache(clink_fallback_registry *reg) {
  if (reg == NULL) return UV_EINVAL;
  int n = 0;
  for (size_t i = 0; i < reg->n; i++) n += clink_fallback_clear_cache(reg->v[i]);
  return n;
}
