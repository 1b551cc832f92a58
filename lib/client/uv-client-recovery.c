/* Client recovery: after the CLI dies while connected, start new processes
 * with the policy's backoff, through the breaker, resuming the conversation;
 * and idle probes that find a hung CLI. Time is the client's loop time; the
 * client's one timer calls clink__recovery_tick(). */
#include <signal.h>
#include <stdio.h>

#include "client/client.h"
#include "base/internal.h"

static void emit(clink_client *c, clink_recovery_event ev, int err, uint64_t delay) {
  if (c->recovery_cb && !c->closing)
    c->recovery_cb(c, ev, clink_retry_attempts(c->retry), err, delay, c->recovery_ud);
}

static void give_up(clink_client *c, int err) {
  c->recover_at_ms = 0;
  size_t n = strlen(c->last_error);
  snprintf(c->last_error + n, sizeof(c->last_error) - n,
           "%srecovery gave up after %u attempts: %s", n ? "; " : "",
           clink_retry_attempts(c->retry), clink_strerror(err));
  clink__client_count_error(c, err);
  /* Nothing will carry the queued turns any more. Take them before any
   * callback runs (they fail from the loop, after FAILED): the state or
   * recovery callback may connect again and queue turns of its own. */
  clink__client_fail_queue(c, err);
  clink__client_set_state(c, CLINK_CLIENT_ERROR);
  emit(c, CLINK_RECOVERY_FAILED, err, 0);
}

/* Schedules the next attempt after a failure err, or gives up. */
static void schedule(clink_client *c, int err, uint64_t server_delay_ms) {
  uint64_t delay = 0;
  uint64_t now = clink__client_now(c);
  int rc = clink_retry_next(c->retry, now, err, server_delay_ms, &delay);
  if (rc != 0) {
    give_up(c, rc);
    return;
  }
  c->recover_cause = err;
  c->recover_at_ms = now + delay;
  emit(c, CLINK_RECOVERY_SCHEDULED, err, delay);
  clink__client_arm_timer(c);
}

void clink__recovery_start(clink_client *c, int cause) {
  clink__client_set_state(c, CLINK_CLIENT_RECOVERING);
  if (c->state != CLINK_CLIENT_RECOVERING) return; /* closed from the state callback */
  clink_retry_begin(c->retry, clink__client_now(c));
  schedule(c, cause, 0);
}

static void settle_permit(clink_client *c, int ok) {
  if (!c->permit_held || c->breaker == NULL) return;
  c->permit_held = 0;
  uint64_t now = clink__client_now(c);
  uint64_t took = now - c->attempt_started_ms;
  if (ok)
    clink_breaker_on_success(c->breaker, c->permit, now, took);
  else
    clink_breaker_on_error(c->breaker, c->permit, now, took);
}

static void attempt(clink_client *c, uint64_t now) {
  c->recover_at_ms = 0;
  if (c->breaker) {
    uint64_t retry_after = 0;
    int rc = clink_breaker_acquire(c->breaker, now, &c->permit, &retry_after);
    if (rc != 0) {
      emit(c, CLINK_RECOVERY_REJECTED, rc, retry_after);
      if (c->state == CLINK_CLIENT_RECOVERING) schedule(c, rc, retry_after);
      return;
    }
    c->permit_held = 1;
  }
  c->attempt_started_ms = now;
  c->m.recovery_attempts++;
  emit(c, CLINK_RECOVERY_ATTEMPT, c->recover_cause, 0);
  if (c->state != CLINK_CLIENT_RECOVERING) return;
  int rc = clink__client_spawn(c, c->session_id);
  if (rc != 0) {
    settle_permit(c, 0);
    schedule(c, rc, 0);
  }
}

void clink__recovery_attempt_done(clink_client *c, int status) {
  settle_permit(c, status == 0);
  if (status != 0) {
    schedule(c, status, 0);
    return;
  }
  clink_retry_success(c->retry);
  c->m.recoveries++;
  clink__client_set_state(c, CLINK_CLIENT_CONNECTED);
  if (c->state != CLINK_CLIENT_CONNECTED) return;
  emit(c, CLINK_RECOVERY_SUCCEEDED, 0, 0);
  clink__client_pump(c);
}

/* ----------------------------------------------------------- idle probe */

static uint64_t probe_due(const clink_client *c) {
  if (c->opts->probe_idle_ms == 0 || c->state != CLINK_CLIENT_CONNECTED || c->closing ||
      c->active != NULL || c->probe_inflight || c->t == NULL)
    return UINT64_MAX;
  return c->last_activity_ms + c->opts->probe_idle_ms;
}

static void on_probe_done(void *ud, int status, const clink_msg *response) {
  clink_client *c = ud;
  c->probe_inflight = 0;
  /* Any answer, even an error one, proves the CLI is reading. */
  if (status != CLINK_ECONTROL_TIMEOUT) return;
  c->m.probe_failures++;
  clink__client_count_error(c, status);
  /* The exit that follows takes the usual path (recovery or ERROR); its
   * description says why it was killed. */
  if (c->t && clink__transport_kill(c->t, SIGKILL) == 0) c->probe_killed = 1;
}

static void probe(clink_client *c) {
  c->m.probes++;
  c->probe_inflight = 1;
  /* mcp_status is cheap and answered by every CLI version; so is the error
   * reply an older one gives. */
  int rc = clink__client_send_control(c, "mcp_status", NULL, c->opts->probe_timeout_ms,
                                      on_probe_done, c);
  if (rc != 0) c->probe_inflight = 0;
}

/* ---------------------------------------------------------------- timer */

uint64_t clink__recovery_next_due(const clink_client *c) {
  uint64_t d = probe_due(c);
  if (c->recover_at_ms && c->recover_at_ms < d) d = c->recover_at_ms;
  return d;
}

void clink__recovery_tick(clink_client *c, uint64_t now) {
  if (c->closing) return;
  if (c->recover_at_ms && now >= c->recover_at_ms && c->state == CLINK_CLIENT_RECOVERING)
    attempt(c, now);
  if (probe_due(c) <= now) probe(c);
}

void clink__recovery_stop(clink_client *c) {
  c->recover_at_ms = 0;
  if (c->permit_held && c->breaker) {
    c->permit_held = 0;
    clink_breaker_release(c->breaker, c->permit);
  }
}
