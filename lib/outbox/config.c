/* clink_outbox_config: typed setters that validate, and the backoff helper.
 * Pure. */
#include "base/internal.h"
#include "base/deadline.h"
#include "outbox/config.h"

int clink_outbox_config_new(clink_outbox_config **out) {
  if (out == NULL) return UV_EINVAL;
  *out = NULL;
  clink_outbox_config *c = clink__calloc(1, sizeof(*c));
  if (c == NULL) return UV_ENOMEM;
  if (clink_retry_policy_new(&c->backoff) != 0) {
    clink__free(c);
    return UV_ENOMEM;
  }
  c->max_messages = CLINK_OUTBOX_DEFAULT_MAX_MESSAGES;
  c->max_attempts = CLINK_OUTBOX_DEFAULT_MAX_ATTEMPTS;
  c->lease_ms = CLINK_OUTBOX_DEFAULT_LEASE_MS;
  c->concurrency = CLINK_OUTBOX_DEFAULT_CONCURRENCY;
  c->batch = CLINK_OUTBOX_DEFAULT_BATCH;
  c->batch_wait_ms = 0;
  c->max_queued = CLINK_OUTBOX_DEFAULT_MAX_QUEUED;
  c->poll_ms = CLINK_OUTBOX_DEFAULT_POLL_MS;
  *out = c;
  return 0;
}

void clink__ob_config_clear(clink_outbox_config *cfg) {
  if (cfg == NULL) return;
  clink_retry_policy_free(cfg->backoff);
  cfg->backoff = NULL;
}

void clink_outbox_config_free(clink_outbox_config *cfg) {
  if (cfg == NULL) return;
  clink__ob_config_clear(cfg);
  clink__free(cfg);
}

int clink__ob_config_copy(clink_outbox_config *dst, const clink_outbox_config *src) {
  clink_retry_policy *p;
  if (clink_retry_policy_dup(&p, src->backoff) != 0) return UV_ENOMEM;
  clink_retry_policy_free(dst->backoff);
  *dst = *src;
  dst->backoff = p;
  return 0;
}

int clink_outbox_config_set_max_messages(clink_outbox_config *cfg, uint64_t n) {
  if (cfg == NULL || n == 0) return UV_EINVAL;
  cfg->max_messages = n;
  return 0;
}

int clink_outbox_config_set_max_attempts(clink_outbox_config *cfg, unsigned int attempts) {
  if (cfg == NULL || attempts == 0) return UV_EINVAL;
  cfg->max_attempts = attempts;
  return 0;
}

int clink_outbox_config_set_lease_ms(clink_outbox_config *cfg, uint64_t ms) {
  if (cfg == NULL || ms == 0 || ms == CLINK__NEVER) return UV_EINVAL;
  cfg->lease_ms = ms;
  return 0;
}

int clink_outbox_config_set_backoff(clink_outbox_config *cfg, const clink_retry_policy *policy) {
  if (cfg == NULL) return UV_EINVAL;
  clink_retry_policy *p;
  int rc = policy ? clink_retry_policy_dup(&p, policy) : clink_retry_policy_new(&p);
  if (rc != 0) return rc;
  clink_retry_policy_free(cfg->backoff);
  cfg->backoff = p;
  return 0;
}

int clink_outbox_config_set_concurrency(clink_outbox_config *cfg, unsigned int max_in_flight) {
  if (cfg == NULL || max_in_flight == 0 || max_in_flight > 65536) return UV_EINVAL;
  cfg->concurrency = max_in_flight;
  return 0;
}

int clink_outbox_config_set_group_commit(clink_outbox_config *cfg, unsigned int max_batch,
                                         uint64_t max_wait_ms) {
  /* A wait above a minute would only hide acknowledgements. */
  if (cfg == NULL || max_batch == 0 || max_batch > 65536 || max_wait_ms > 60000)
    return UV_EINVAL;
  cfg->batch = max_batch;
  cfg->batch_wait_ms = max_wait_ms;
  return 0;
}

int clink_outbox_config_set_max_queued(clink_outbox_config *cfg, unsigned int n) {
  if (cfg == NULL || n == 0) return UV_EINVAL;
  cfg->max_queued = n;
  return 0;
}

int clink_outbox_config_set_poll_ms(clink_outbox_config *cfg, uint64_t ms) {
  if (cfg == NULL || ms == CLINK__NEVER) return UV_EINVAL;
  cfg->poll_ms = ms;
  return 0;
}

int clink__ob_backoff_new(clink_retry **out, const clink_retry_policy *policy, uint64_t seed) {
  clink_retry_policy *p;
  int rc = clink_retry_policy_dup(&p, policy);
  if (rc != 0) return rc;
  /* The outbox's max attempts decides when to stop; the policy only spaces. */
  clink_retry_policy_set_max_attempts(p, 0);
  clink_retry_policy_set_deadline_ms(p, 0);
  clink_retry_policy_set_budget(p, 0, 0);
  rc = clink_retry_new(out, p, seed);
  clink_retry_policy_free(p);
  return rc;
}

uint64_t clink__ob_backoff(clink_retry *r, unsigned int n) {
  uint64_t d = 0;
  clink_retry_begin(r, 0);
  /* Replays the series: attempts are few (bounded by max attempts), and the
   * count lives in the database, not in r. */
  for (unsigned int i = 0; i < n; i++)
    if (clink_retry_next(r, 0, UV_ETIMEDOUT, 0, &d) != 0) break;
  return d;
}
