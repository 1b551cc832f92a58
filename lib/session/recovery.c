/* Recovery and probing as pure policies. After the CLI dies while connected,
 * new processes are started with the policy's backoff, resuming the
 * conversation (the driver asks the breaker and spawns: ACT_ATTEMPT); a CLI
 * that is quiet too long (idle, or mid-turn) is probed, and killed when it
 * does not answer. */
#include "base/deadline.h"
#include "session/session-int.h"

void clink__sess_recovery_emit(clink__session *s, clink_recovery_event ev, int err,
                               uint64_t delay_ms) {
  clink__misc_ev *e = clink__sess_push_misc(s, CLINK__EV_RECOVERY);
  if (e == NULL) return;
  e->ev.a = (int)ev;
  e->ev.b = (int)clink_retry_attempts(s->retry);
  e->ev.status = err;
  e->ev.u = delay_ms;
}

static void give_up(clink__session *s, int err) {
  s->recover_at_ms = CLINK__NEVER;
  clink__session_append_last_error(s, "recovery gave up after %u attempts: %s",
                                   clink_retry_attempts(s->retry), clink_strerror(err));
  clink__session_count_error(s, err);
  /* The state first: a callback that connects again starts afresh. */
  clink__sess_set_state(s, CLINK_CLIENT_ERROR);
  clink__sess_recovery_emit(s, CLINK_RECOVERY_FAILED, err, 0);
  /* Nothing will carry the queued turns any more. */
  clink__sess_fail_queue(s, err, s->now);
}

void clink__sess_recovery_schedule(clink__session *s, int err, uint64_t server_delay_ms,
                                   uint64_t now) {
  if (s->closing || s->state != CLINK_CLIENT_RECOVERING) return;
  uint64_t delay = 0;
  int rc = clink_retry_next(s->retry, now, err, server_delay_ms, &delay);
  if (rc != 0) {
    give_up(s, rc);
    return;
  }
  s->recover_cause = err;
  s->recover_at_ms = clink__deadline(now, delay);
  clink__sess_recovery_emit(s, CLINK_RECOVERY_SCHEDULED, err, delay);
}

void clink__sess_recovery_start(clink__session *s, int cause, uint64_t now) {
  clink__sess_set_state(s, CLINK_CLIENT_RECOVERING);
  clink_retry_begin(s->retry, now);
  clink__sess_recovery_schedule(s, cause, 0, now);
}

void clink__sess_recovery_connected(clink__session *s, uint64_t now) {
  clink_retry_success(s->retry);
  s->m.recoveries++;
  clink__sess_push_action(s, CLINK__ACT_SETTLE, 0);
  clink__sess_set_state(s, CLINK_CLIENT_CONNECTED);
  clink__sess_recovery_emit(s, CLINK_RECOVERY_SUCCEEDED, 0, 0);
  (void)now;
  clink__sess_push_action(s, CLINK__ACT_PUMP, 0);
}

int clink__session_attempt_admitted(clink__session *s, uint64_t now) {
  if (now > s->now) s->now = now;
  if (!s->attempt_pending || s->closing || s->state != CLINK_CLIENT_RECOVERING) {
    s->attempt_pending = 0;
    return 0;
  }
  s->m.recovery_attempts++;
  /* Announced before the process starts: a host that closes on the event
   * starts nothing. */
  clink__sess_recovery_emit(s, CLINK_RECOVERY_ATTEMPT, s->recover_cause, 0);
  clink__sess_push_action(s, CLINK__ACT_SPAWN, 0);
  return 1;
}

int clink__session_spawn_wanted(const clink__session *s) {
  return s->attempt_pending && !s->closing && s->state == CLINK_CLIENT_RECOVERING;
}

void clink__session_attempt_rejected(clink__session *s, int err, uint64_t retry_after_ms,
                                     uint64_t now) {
  if (now > s->now) s->now = now;
  s->attempt_pending = 0;
  if (s->closing || s->state != CLINK_CLIENT_RECOVERING) return;
  clink__sess_recovery_emit(s, CLINK_RECOVERY_REJECTED, err, retry_after_ms);
  clink__sess_recovery_schedule(s, err, retry_after_ms, s->now);
}

void clink__session_attempt_spawn_failed(clink__session *s, int err, uint64_t now) {
  if (now > s->now) s->now = now;
  s->attempt_pending = 0;
  clink__session_count_error(s, err);
  clink__sess_push_action(s, CLINK__ACT_SETTLE, err);
  clink__sess_recovery_schedule(s, err, 0, s->now);
}

/* ----------------------------------------------------------- probes */

uint64_t clink__sess_probe_due(const clink__session *s) {
  if (s->closing || s->state != CLINK_CLIENT_CONNECTED || s->proc != PROC_UP ||
      s->probe_inflight)
    return CLINK__NEVER;
  /* Mid-turn: silence on stdout; idle: no traffic either way. */
  if (s->active) return clink__deadline(s->last_line_ms, s->opts->turn_inactivity_ms);
  return clink__deadline(s->last_activity_ms, s->opts->probe_idle_ms);
}

void clink__sess_probe(clink__session *s, uint64_t now) {
  s->m.probes++;
  s->probe_inflight = 1;
  /* mcp_status is cheap and answered by every CLI version, mid-turn too;
   * so is the error reply an older one gives. */
  int rc = clink__sess_send_control(s, "mcp_status", NULL, s->opts->probe_timeout_ms,
                                    CALL_PROBE, NULL, NULL, now);
  if (rc != 0) {
    /* Not sent (table or write queue full): try again a window later, so
     * the deadline never stays in the past. */
    s->probe_inflight = 0;
    if (s->active)
      s->last_line_ms = now;
    else
      s->last_activity_ms = now;
  }
}
