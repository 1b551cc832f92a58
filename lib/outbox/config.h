/* The outbox's configuration (copied into each outbox) and its backoff.
 * Pure; internal. */
#ifndef CLINK_OUTBOX_CONFIG_H
#define CLINK_OUTBOX_CONFIG_H

#include <stdint.h>

#include "claudelink.h"

struct clink_outbox_config {
  uint64_t max_messages;
  unsigned int max_attempts;
  uint64_t lease_ms;
  clink_retry_policy *backoff; /* owned; never NULL in a live config */
  unsigned int concurrency;
  unsigned int batch;
  uint64_t batch_wait_ms;
  unsigned int max_queued;
  uint64_t poll_ms;
};

/* Deep copy into *dst (dst's own policy is replaced). 0 or UV_ENOMEM. */
int clink__ob_config_copy(clink_outbox_config *dst, const clink_outbox_config *src);
/* Frees what a copy owns (not dst itself). */
void clink__ob_config_clear(clink_outbox_config *cfg);

/* Delay before retry number n (n >= 1: the first retry follows attempt 1),
 * drawn from r (a clink_retry made from the config's backoff with limits
 * lifted by clink__ob_backoff_new()). */
uint64_t clink__ob_backoff(clink_retry *r, unsigned int n);
/* A clink_retry for clink__ob_backoff(): the policy's delays, no attempt
 * limit, no deadline, no budget. */
int clink__ob_backoff_new(clink_retry **out, const clink_retry_policy *policy, uint64_t seed);

#endif
