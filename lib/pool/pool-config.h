/* The body of clink_pool_config (pure). Timeouts are stored normalised:
 * CLINK__NEVER means no limit. */
#ifndef CLINK_POOL_CONFIG_H
#define CLINK_POOL_CONFIG_H

#include <stdint.h>

#include "claudelink.h"

struct clink_pool_config {
  unsigned min_idle, max_size;
  uint64_t acquire_timeout_ms;
  unsigned max_waiters;
  uint64_t lifetime_ms; /* never: no limit */
  double jitter_pct;
  uint64_t idle_timeout_ms;
  unsigned max_turns;
  uint64_t validate_after_ms, validate_timeout_ms;
  uint64_t leak_ms;
  unsigned batch;
  uint64_t per_process_ms, per_batch_ms;
  uint64_t max_rss_bytes; /* 0: no limit */
  uint64_t rss_check_ms;  /* never: only on clink_pool_check_member_rss() */
  int isolation;          /* generic acquires get fresh members only */
};

#endif
