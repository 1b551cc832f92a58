/* Control requests from the host to the CLI: ids, deadlines (the table in
 * ctl-out.c), and what each answer means (the initialize, a probe, a ping,
 * the host's own). */
#include "base/deadline.h"
#include "base/internal.h"
#include "session/session-int.h"
#include "wire/json-out.h"

/* Outcome of a control call (the table's callback: no user code runs). */
static void on_call_done(void *ud, int status, const clink_msg *response) {
  clink__call *call = ud;
  clink__session *s = call->s;
  switch (call->why) {
    case CALL_INIT:
      clink__sess_call_free(call);
      clink__sess_on_initialized(s, status, response);
      return;
    case CALL_PROBE:
      clink__sess_call_free(call);
      s->probe_inflight = 0;
      /* Any answer, even an error one, proves the CLI is reading. */
      if (status != CLINK_ECONTROL_TIMEOUT) return;
      s->m.probe_failures++;
      clink__session_count_error(s, status);
      if (s->proc == PROC_NONE || s->closing) return;
      /* The exit that follows takes the usual path (recovery or ERROR);
       * its description says why it was killed. */
      s->kill_cause = s->active ? CLINK_ETURN_STALLED : CLINK_ECONTROL_TIMEOUT;
      clink__sess_push_action(s, CLINK__ACT_KILL, s->kill_cause);
      return;
    case CALL_PING:
      /* Any answer means alive. */
      if (status == CLINK_ECONTROL_ERROR) status = 0;
      break;
    default:
      break;
  }
  if (status == CLINK_ECONTROL_TIMEOUT) s->m.control_timeouts++;
  if (status != 0) clink__session_count_error(s, status);
  call->done.status = status;
  call->done.msg = response;
  clink__sess_push(s, &call->done);
}

int clink__sess_send_control(clink__session *s, const char *subtype, struct cJSON *fields,
                             uint64_t timeout_ms, int why, clink_control_cb cb, void *ud,
                             uint64_t now) {
  clink__call *call = clink__calloc(1, sizeof(*call));
  if (call == NULL) {
    cJSON_Delete(fields);
    return UV_ENOMEM;
  }
  call->s = s;
  call->why = why;
  call->gen = s->gen;
  call->cb = cb;
  call->ud = ud;
  call->done.kind = CLINK__EV_CONTROL_DONE;
  call->done.home = EV_HOME_CALL;
  call->done.obj = call;
  call->done.cb.control = cb;
  call->done.ud = ud;
  char id[CLINK__CTL_ID_MAX];
  int idx = clink__ctl_add(&s->ctl, subtype, clink__deadline(now, timeout_ms), on_call_done,
                           call, id);
  if (idx < 0) {
    cJSON_Delete(fields);
    clink__free(call);
    return idx;
  }
  char *line = clink__wire_control_request(id, subtype, fields);
  int rc = clink__sess_send(s, line);
  cJSON_free(line);
  if (rc != 0) {
    clink__ctl_cancel(&s->ctl, idx);
    clink__free(call);
    return rc;
  }
  s->m.control_requests++;
  return 0;
}

void clink__sess_call_free(clink__call *call) { clink__free(call); }

int clink__session_control(clink__session *s, const char *subtype, struct cJSON *fields,
                           uint64_t timeout_ms, clink_control_cb cb, void *ud, uint64_t now) {
  clink__sess_now(s, now);
  int rc = s->closing ? CLINK_ECLOSING
                      : s->state != CLINK_CLIENT_CONNECTED ? CLINK_ENOT_CONNECTED : 0;
  if (rc != 0) {
    cJSON_Delete(fields);
    return rc;
  }
  return clink__sess_send_control(s, subtype, fields, timeout_ms, CALL_USER, cb, ud, s->now);
}

int clink__session_ping(clink__session *s, uint64_t timeout_ms, clink_control_cb cb, void *ud,
                        uint64_t now) {
  clink__sess_now(s, now);
  if (s->closing) return CLINK_ECLOSING;
  if (s->state != CLINK_CLIENT_CONNECTED) return CLINK_ENOT_CONNECTED;
  return clink__sess_send_control(s, "mcp_status", NULL, timeout_ms, CALL_PING, cb, ud, s->now);
}

