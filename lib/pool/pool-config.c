/* clink_pool_config: the pool's knobs (pure). */
#include "base/deadline.h"
#include "base/internal.h"
#include "pool/pool-config.h"

int clink_pool_config_new(clink_pool_config **out) {
  if (out == NULL) return UV_EINVAL;
  clink_pool_config *c = clink__calloc(1, sizeof(*c));
  if (c == NULL) return UV_ENOMEM;
  c->min_idle = 1;
  c->max_size = 10;
  c->acquire_timeout_ms = 30000;
  c->max_waiters = 1024;
  c->lifetime_ms = 30 * 60 * 1000;
  c->jitter_pct = 2.5;
  c->idle_timeout_ms = 10 * 60 * 1000;
  c->max_turns = 0;
  c->validate_after_ms = 30000;
  c->validate_timeout_ms = 5000;
  c->leak_ms = CLINK__NEVER;
  c->batch = 10;
  c->per_process_ms = 15000;
  c->per_batch_ms = 30000;
  c->max_rss_bytes = 0;
  c->rss_check_ms = CLINK__NEVER;
  *out = c;
  return 0;
}

void clink_pool_config_free(clink_pool_config *cfg) { clink__free(cfg); }

int clink_pool_config_set_size(clink_pool_config *cfg, unsigned min_idle, unsigned max_size) {
  if (cfg == NULL || max_size == 0 || min_idle > max_size) return UV_EINVAL;
  cfg->min_idle = min_idle;
  cfg->max_size = max_size;
  return 0;
}

int clink_pool_config_set_acquire_timeout_ms(clink_pool_config *cfg, uint64_t ms) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->acquire_timeout_ms = clink__timeout_norm(ms);
  return 0;
}

int clink_pool_config_set_max_waiters(clink_pool_config *cfg, unsigned n) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->max_waiters = n;
  return 0;
}

int clink_pool_config_set_max_lifetime_ms(clink_pool_config *cfg, uint64_t ms,
                                          double jitter_pct) {
  if (cfg == NULL || !(jitter_pct >= 0.0 && jitter_pct <= 100.0)) return UV_EINVAL;
  cfg->lifetime_ms = clink__timeout_norm(ms);
  cfg->jitter_pct = jitter_pct;
  return 0;
}

int clink_pool_config_set_isolation(clink_pool_config *cfg, int on) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->isolation = on != 0;
  return 0;
}

int clink_pool_config_set_idle_timeout_ms(clink_pool_config *cfg, uint64_t ms) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->idle_timeout_ms = clink__timeout_norm(ms);
  return 0;
}

int clink_pool_config_set_max_turns(clink_pool_config *cfg, unsigned turns) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->max_turns = turns;
  return 0;
}

int clink_pool_config_set_validation(clink_pool_config *cfg, uint64_t after_ms,
                                     uint64_t timeout_ms) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->validate_after_ms = clink__timeout_norm(after_ms);
  cfg->validate_timeout_ms = clink__timeout_norm(timeout_ms);
  return 0;
}

int clink_pool_config_set_leak_threshold_ms(clink_pool_config *cfg, uint64_t ms) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->leak_ms = clink__timeout_norm(ms);
  return 0;
}

int clink_pool_config_set_shutdown(clink_pool_config *cfg, unsigned batch,
                                   uint64_t per_process_ms, uint64_t per_batch_ms) {
  if (cfg == NULL || batch == 0) return UV_EINVAL;
  cfg->batch = batch;
  cfg->per_process_ms = clink__timeout_norm(per_process_ms);
  cfg->per_batch_ms = clink__timeout_norm(per_batch_ms);
  return 0;
}

int clink_pool_config_set_max_member_rss(clink_pool_config *cfg, uint64_t max_rss_bytes,
                                         uint64_t check_ms) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->max_rss_bytes = max_rss_bytes;
  cfg->rss_check_ms = clink__timeout_norm(check_ms);
  return 0;
}

const char *clink_pool_close_reason_name(clink_pool_close_reason reason) {
  static const char *const names[] = {"dead",       "unhealthy", "lifetime", "idle",
                                      "max_turns",  "validation", "rebalance", "shutdown",
                                      "user",       "memory",    "isolation"};
  _Static_assert(CLINK__ARRAY_SIZE(names) == CLINK_POOL_CLOSE_REASONS_,
                 "a name for every close reason");
  _Static_assert(CLINK_POOL_CLOSE_REASONS_ <= CLINK_POOL_CLOSE_REASON_SLOTS,
                 "close reasons fit the stats");
  if ((int)reason < 0 || (size_t)reason >= CLINK__ARRAY_SIZE(names)) return "unknown";
  return names[reason];
}
