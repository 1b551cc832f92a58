/* Breakers by name: a small array, looked up with strcmp (a handful of
 * breakers per host). A new registry holds the seed's two defaults.
 *
 * Seeds: with seed 0 every breaker picks its own from the clock; otherwise the
 * i-th breaker added gets splitmix64 of (seed + i), so runs are reproducible
 * and two breakers do not share a jitter stream. */
#include "base/internal.h"

struct clink_breaker_registry {
  clink_breaker **v;
  size_t n, cap;
  uint64_t seed;
  clink_events *sink; /* given to every breaker, now and later */
};

static uint64_t mix(uint64_t x) {
  uint64_t z = x + UINT64_C(0x9E3779B97F4A7C15);
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static int add_seed(clink_breaker_registry *reg) {
  clink_breaker_config *c = NULL;
  int rc;
  /* "claude_sdk": 3 consecutive failures, 30 s open, 2 successes to close. */
  if ((rc = clink_breaker_config_new(&c)) != 0) return rc;
  clink_breaker_config_set_consecutive_failures(c, 3);
  clink_breaker_config_set_open_duration(c, 30000, 30000, 1.0, 0.0);
  clink_breaker_config_set_half_open(c, 1, 2, 60000);
  rc = clink_breaker_registry_add(reg, "claude_sdk", c, NULL);
  clink_breaker_config_free(c);
  if (rc != 0) return rc;
  /* "session_operations": 5 consecutive failures, 60 s open (the defaults). */
  if ((rc = clink_breaker_config_new(&c)) != 0) return rc;
  clink_breaker_config_set_consecutive_failures(c, 5);
  clink_breaker_config_set_open_duration(c, 60000, 60000, 1.0, 0.0);
  rc = clink_breaker_registry_add(reg, "session_operations", c, NULL);
  clink_breaker_config_free(c);
  return rc;
}

int clink_breaker_registry_new(clink_breaker_registry **out, uint64_t seed) {
  if (out == NULL) return UV_EINVAL;
  *out = NULL;
  clink_breaker_registry *reg = clink__calloc(1, sizeof(*reg));
  if (reg == NULL) return UV_ENOMEM;
  reg->seed = seed;
  int rc = add_seed(reg);
  if (rc != 0) {
    clink_breaker_registry_free(reg);
    return rc;
  }
  *out = reg;
  return 0;
}

void clink_breaker_registry_free(clink_breaker_registry *reg) {
  if (reg == NULL) return;
  for (size_t i = 0; i < reg->n; i++) clink_breaker_free(reg->v[i]);
  clink__free(reg->v);
  clink__free(reg);
}

int clink_breaker_registry_add(clink_breaker_registry *reg, const char *name,
                               const clink_breaker_config *cfg, clink_breaker **out) {
  if (out != NULL) *out = NULL;
  if (reg == NULL || name == NULL) return UV_EINVAL;
  if (clink_breaker_registry_get(reg, name) != NULL) return UV_EEXIST;
  if (reg->n == reg->cap) {
    size_t cap = reg->cap ? reg->cap * 2 : 4;
    clink_breaker **v = realloc(reg->v, cap * sizeof(*v));
    if (v == NULL) return UV_ENOMEM;
    reg->v = v;
    reg->cap = cap;
  }
  uint64_t seed = 0;
  if (reg->seed != 0) {
    seed = mix(reg->seed + reg->n);
    if (seed == 0) seed = 1;
  }
  clink_breaker *b;
  int rc = clink_breaker_new(&b, name, cfg, seed);
  if (rc != 0) return rc;
  clink_breaker_set_events(b, reg->sink);
  reg->v[reg->n++] = b;
  if (out != NULL) *out = b;
  return 0;
}

void clink_breaker_registry_set_events(clink_breaker_registry *reg, clink_events *sink) {
  if (reg == NULL) return;
  reg->sink = sink;
  for (size_t i = 0; i < reg->n; i++) clink_breaker_set_events(reg->v[i], sink);
}

clink_breaker *clink_breaker_registry_get(const clink_breaker_registry *reg,
                                          const char *name) {
  if (reg == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < reg->n; i++)
    if (strcmp(clink_breaker_name(reg->v[i]), name) == 0) return reg->v[i];
  return NULL;
}

size_t clink_breaker_registry_count(const clink_breaker_registry *reg) {
  return reg != NULL ? reg->n : 0;
}

clink_breaker *clink_breaker_registry_at(const clink_breaker_registry *reg, size_t i) {
  if (reg == NULL || i >= reg->n) return NULL;
  return reg->v[i];
}
