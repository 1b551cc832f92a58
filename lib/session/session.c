/* The session core: states, the process's start (initialize) and end,
 * routing of stdout lines, close, time. See session.h. */
#include <stdio.h>

#include "base/deadline.h"
#include "base/rand.h"
#include "session/session-int.h"
#include "wire/json-out.h"

/* ------------------------------------------------------------- state */

/* Every legal transition. Anything else is refused: a bug must never end in
 * an abort() that user code can reach. */
static int transition_allowed(clink_client_state from, clink_client_state to) {
  switch (from) {
    case CLINK_CLIENT_DISCONNECTED:
      return to == CLINK_CLIENT_CONNECTING || to == CLINK_CLIENT_CLOSING;
    case CLINK_CLIENT_CONNECTING:
      return to == CLINK_CLIENT_CONNECTED || to == CLINK_CLIENT_ERROR ||
             to == CLINK_CLIENT_CLOSING;
    case CLINK_CLIENT_CONNECTED:
      return to == CLINK_CLIENT_ERROR || to == CLINK_CLIENT_CLOSING ||
             to == CLINK_CLIENT_RECOVERING;
    case CLINK_CLIENT_RECOVERING:
      return to == CLINK_CLIENT_CONNECTED || to == CLINK_CLIENT_ERROR ||
             to == CLINK_CLIENT_CLOSING;
    case CLINK_CLIENT_ERROR:
      return to == CLINK_CLIENT_CONNECTING || to == CLINK_CLIENT_CLOSING;
    case CLINK_CLIENT_CLOSING:
      return to == CLINK_CLIENT_CLOSED;
    case CLINK_CLIENT_CLOSED:
      return 0;
  }
  return 0;
}

void clink__sess_set_state(clink__session *s, clink_client_state to) {
  clink_client_state from = s->state;
  if (from == to || !transition_allowed(from, to)) return;
  s->state = to;
  clink__misc_ev *e = clink__sess_push_misc(s, CLINK__EV_STATE);
  if (e) {
    e->ev.a = (int)from;
    e->ev.b = (int)to;
  }
}

/* ------------------------------------------------------------ helpers */

void clink__sess_error(clink__session *s, int err, const char *detail) {
  clink__session_count_error(s, err);
  if (s->closing) return;
  clink__misc_ev *e = clink__sess_push_misc(s, CLINK__EV_ERROR);
  if (e == NULL) return;
  e->ev.status = err;
  /* Without memory the event still goes, without its detail. */
  e->detail = clink__strdup(detail ? detail : "");
}

void clink__sess_fatal(clink__session *s, int err) {
  clink__session_count_error(s, err);
  if (s->proc == PROC_NONE || s->kill_cause) return;
  /* The protocol's state is unknown (a line lost, an answer the CLI waits
   * for that cannot be written): the process goes, its turn fails with err
   * instead of hanging, and recovery (if any) starts afresh. */
  s->kill_cause = err;
  clink__sess_push_action(s, CLINK__ACT_KILL, err);
}

int clink__sess_send(clink__session *s, const char *line) {
  if (line == NULL) return UV_ENOMEM;
  if (s->proc == PROC_NONE) return CLINK_ENOT_CONNECTED;
  size_t len = strlen(line);
  int rc = s->send(s->send_ud, line, len);
  if (rc == 0) {
    s->m.messages_out++;
    s->m.bytes_out += len + 1;
    s->last_activity_ms = s->now;
  }
  return rc;
}

/* ---------------------------------------------------------- lifetime */

int clink__session_new(clink__session **out, const clink_options *opts,
                       clink__session_send_fn send, void *send_ud, void *owner) {
  if (out == NULL || opts == NULL || send == NULL) return UV_EINVAL;
  clink__session *s = clink__calloc(1, sizeof(*s));
  if (s == NULL) return UV_ENOMEM;
  s->opts = opts;
  s->send = send;
  s->send_ud = send_ud;
  s->owner = owner;
  s->state = CLINK_CLIENT_DISCONNECTED;
  s->recover_at_ms = CLINK__NEVER;
  for (size_t i = CLINK__MISC_EVENTS; i-- > 0;) {
    s->misc[i].free_next = s->misc_free;
    s->misc_free = &s->misc[i];
  }
  int rc = clink__ctl_init(&s->ctl, opts->max_control_inflight, clink__seed(s));
  if (rc == 0 && opts->recovery) rc = clink_retry_new(&s->retry, opts->recovery, 0);
  if (rc != 0) {
    clink__ctl_free(&s->ctl);
    clink__free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void clink__session_free(clink__session *s) {
  if (s == NULL) return;
  clink__sess_requests_detach(s);
  /* Events never popped: free what they own (no callback runs). */
  clink__ev_out out;
  while (clink__session_next_event(s, &out)) {
  }
  clink__turn *t = s->active;
  s->active = NULL;
  clink__sess_turn_free(t);
  for (t = s->queue_head; t;) {
    clink__turn *n = t->next;
    clink__sess_turn_free(t);
    t = n;
  }
  /* Calls still in the table: their nodes are not queued. */
  for (size_t i = 0; i < s->ctl.cap; i++)
    if (s->ctl.e[i].used) clink__sess_call_free(s->ctl.e[i].ud);
  clink__ctl_free(&s->ctl);
  if (s->cur_live) clink__msg_clear(&s->cur);
  clink_retry_free(s->retry);
  clink_msg_unref(s->server_info);
  clink__free(s->session_id);
  clink__free(s);
}

/* ------------------------------------------------------------ connect */

int clink__session_can_connect(const clink__session *s) {
  if (s->closing) return CLINK_ECLOSING;
  if (s->state != CLINK_CLIENT_DISCONNECTED && s->state != CLINK_CLIENT_ERROR) return UV_EBUSY;
  return 0;
}

/* A new process: answers to the old one's requests must not reach it. */
static void process_started(clink__session *s) {
  s->gen++;
  s->m.spawns++;
  s->proc = PROC_STARTING;
  s->kill_cause = 0;
  s->probe_inflight = 0;
  s->spawned_at_ms = s->now;
  s->last_activity_ms = s->last_line_ms = s->now;
  s->last_error[0] = '\0';
  s->last_error_result[0] = '\0';
}

static int send_initialize(clink__session *s) {
  struct cJSON *fields = clink__sess_initialize_fields(s->opts);
  if (fields == NULL) return UV_ENOMEM;
  return clink__sess_send_control(s, "initialize", fields, s->opts->connect_timeout_ms,
                                  CALL_INIT, NULL, NULL, s->now);
}

int clink__session_connect(clink__session *s, clink_connect_cb cb, void *ud, uint64_t now) {
  clink__sess_now(s, now);
  int rc = clink__session_can_connect(s);
  if (rc != 0) return rc;
  /* A new conversation: forget the old one's identity. */
  clink__free(s->session_id);
  s->session_id = NULL;
  clink_msg_unref(s->server_info);
  s->server_info = NULL;
  process_started(s);
  rc = send_initialize(s);
  if (rc != 0) {
    s->proc = PROC_NONE;
    clink__session_count_error(s, rc);
    return rc;
  }
  s->connect_cb = cb;
  s->connect_ud = ud;
  s->connect_pending = 1;
  clink__sess_set_state(s, CLINK_CLIENT_CONNECTING);
  return 0;
}

int clink__session_attempt_started(clink__session *s, uint64_t now) {
  clink__sess_now(s, now);
  process_started(s);
  s->recovering_init = 1;
  int rc = send_initialize(s);
  if (rc != 0) {
    s->recovering_init = 0;
    s->attempt_pending = 0;
    s->proc = PROC_NONE;
    clink__sess_push_action(s, CLINK__ACT_STOP, 0);
    clink__sess_push_action(s, CLINK__ACT_SETTLE, rc);
    clink__session_count_error(s, rc);
    clink__sess_recovery_schedule(s, rc, 0, now);
  }
  return rc;
}

static void connect_done(clink__session *s, int status) {
  if (!s->connect_pending) return;
  s->connect_pending = 0;
  clink__misc_ev *e = clink__sess_push_misc(s, CLINK__EV_CONNECT);
  if (e) {
    e->ev.status = status;
    e->ev.cb.connect = s->connect_cb;
    e->ev.ud = s->connect_ud;
  }
  s->connect_cb = NULL;
  s->connect_ud = NULL;
}

/* The initialize of the current process was answered (or failed). */
void clink__sess_on_initialized(clink__session *s, int status, const clink_msg *response) {
  if (status == CLINK_ECONTROL_TIMEOUT) status = CLINK_EINIT_TIMEOUT;
  if (status == CLINK_EINIT_TIMEOUT)
    clink__session_set_last_error(s, "claude did not answer initialize within %llu ms",
                                  (unsigned long long)s->opts->connect_timeout_ms);
  if (status == 0) {
    clink_msg *info = clink_msg_ref(response);
    if (info == NULL) {
      status = UV_ENOMEM;
    } else {
      clink_msg_unref(s->server_info);
      s->server_info = info;
    }
  }
  if (status == 0) {
    s->proc = PROC_UP;
    s->resume_lost = 0;
    s->connected_at_ms = s->now;
    s->m.connect_ms = s->now - s->spawned_at_ms;
  } else if (status != UV_ECANCELED) {
    clink__session_count_error(s, status);
    if (s->proc != PROC_NONE) clink__sess_push_action(s, CLINK__ACT_STOP, 0);
    s->proc = PROC_NONE;
  }
  if (s->recovering_init) {
    s->recovering_init = 0;
    s->attempt_pending = 0;
    if (status == UV_ECANCELED) { /* closed meanwhile */
      clink__sess_push_action(s, CLINK__ACT_SETTLE, 1);
      return;
    }
    if (status == 0) {
      clink__sess_recovery_connected(s, s->now);
      return;
    }
    clink__sess_push_action(s, CLINK__ACT_SETTLE, status);
    /* Resuming a conversation the CLI no longer has fails the same way
     * every time: the next attempt starts a fresh one (and says so). */
    if (!s->resume_lost && strstr(s->last_error, "No conversation found")) {
      s->resume_lost = 1;
      clink__sess_recovery_emit(s, CLINK_RECOVERY_FRESH, status, 0);
    }
    clink__sess_recovery_schedule(s, status, 0, s->now);
    return;
  }
  if (s->state != CLINK_CLIENT_CONNECTING) {
    /* Closed while connecting: the connect still ends, once. */
    connect_done(s, status == 0 ? UV_ECANCELED : status);
    return;
  }
  if (status == 0) {
    s->ever_connected = 1;
    clink__sess_set_state(s, CLINK_CLIENT_CONNECTED);
    connect_done(s, 0);
    clink__sess_push_action(s, CLINK__ACT_PUMP, 0);
    return;
  }
  /* The state first: a callback that connects again starts afresh. */
  clink__sess_set_state(s, CLINK_CLIENT_ERROR);
  connect_done(s, status);
  clink__sess_fail_queue(s, status, s->now);
}

/* ------------------------------------------------------------ routing */

static void remember_session(clink__session *s, const clink_msg *m) {
  const char *sid = m->session_id;
  if (sid == NULL || sid[0] == '\0') return;
  if (s->session_id && strcmp(s->session_id, sid) == 0) return;
  /* Kept as it was on failure; the next result or init tries again. */
  if (clink__set_str(&s->session_id, sid) != 0)
    clink__sess_error(s, UV_ENOMEM, "out of memory: the session id was not recorded");
}

static void route(clink__session *s, const clink_msg *m) {
  switch (m->kind) {
    case CLINK_MSG_CONTROL_RESPONSE:
      clink__ctl_resolve(&s->ctl, m);
      return;
    case CLINK_MSG_CONTROL_REQUEST:
      clink__sess_request_in(s, m);
      return;
    case CLINK_MSG_CONTROL_CANCEL_REQUEST:
      clink__sess_request_cancel(s, m);
      return;
    case CLINK_MSG_KEEP_ALIVE:
      return;
    case CLINK_MSG_RESULT:
      remember_session(s, m);
      clink__sess_on_result(s, m, s->now);
      return;
    case CLINK_MSG_SYSTEM:
      if (m->subtype && strcmp(m->subtype, "init") == 0) remember_session(s, m);
      break;
    default:
      break;
  }
  clink__sess_route_to_turn(s, m);
}

void clink__session_recv_line(clink__session *s, const char *line, size_t len, uint64_t now) {
  clink__sess_now(s, now);
  s->m.messages_in++;
  s->m.bytes_in += len + 1;
  s->last_activity_ms = s->last_line_ms = s->now;
  if (s->cur_live) clink__msg_clear(&s->cur);
  s->cur_live = 0;
  int rc = len > 0 && line[0] == '{' ? clink__msg_parse_borrowed(&s->cur, line, len)
                                     : CLINK_EBAD_JSON;
  if (rc != 0) {
    /* Debug noise or a corrupt line: report it, keep the stream. */
    char detail[96];
    size_t n = len < 80 ? len : 80;
    snprintf(detail, sizeof(detail), "%.*s%s", (int)n, line, len > n ? "..." : "");
    clink__sess_error(s, rc, detail);
    if (rc == UV_ENOMEM) clink__sess_fatal(s, rc);
    return;
  }
  s->cur_live = 1;
  route(s, &s->cur);
}

void clink__session_line_done(clink__session *s) {
  if (!s->cur_live) return;
  clink__msg_clear(&s->cur);
  s->cur_live = 0;
}

void clink__session_stream_error(clink__session *s, int err, const char *detail) {
  clink__sess_error(s, err, detail);
  /* A line lost to a failed allocation: nobody knows what it said. */
  if (err == UV_ENOMEM) clink__sess_fatal(s, err);
}

/* ------------------------------------------------------------ exit */

void clink__session_process_exited(clink__session *s, uint64_t now) {
  clink__sess_now(s, now);
  int was_up = s->proc != PROC_NONE;
  s->proc = PROC_NONE;
  s->probe_inflight = 0;
  if (!was_up) return; /* a process we already stopped */
  clink__session_count_error(s, CLINK_EEXITED);
  /* What we killed says why (silence, out of memory); recovery sees a dead
   * process. */
  int cause = s->kill_cause == CLINK_ETURN_STALLED || s->kill_cause == UV_ENOMEM
                  ? s->kill_cause
                  : CLINK_EEXITED;
  if (s->state == CLINK_CLIENT_CONNECTING || s->state == CLINK_CLIENT_RECOVERING) {
    /* Its initialize fails: on_initialized() takes it from there. */
    clink__ctl_fail_all(&s->ctl, cause);
    return;
  }
  clink__turn *turn = s->active;
  s->active = NULL;
  if (s->closing) {
    s->close_wait = 0;
    clink__ctl_fail_all(&s->ctl, cause);
    if (turn) clink__sess_turn_done(s, turn, cause, NULL, now);
    return;
  }
  int recover = s->retry != NULL && s->state == CLINK_CLIENT_CONNECTED;
  if (recover && turn && s->opts->resend_interrupted_turn && !turn->resent) {
    /* Back to the head of the queue, once. */
    turn->resent = 1;
    turn->next = s->queue_head;
    s->queue_head = turn;
    if (s->queue_tail == NULL) s->queue_tail = turn;
    s->queued++;
    turn = NULL;
  }
  if (recover) {
    clink__sess_recovery_start(s, CLINK_EEXITED, now);
  } else {
    clink__sess_set_state(s, CLINK_CLIENT_ERROR);
  }
  clink__ctl_fail_all(&s->ctl, cause);
  if (turn) clink__sess_turn_done(s, turn, cause, NULL, now);
  if (!recover) clink__sess_fail_queue(s, CLINK_EEXITED, now); /* never ran: the CLI died */
}

/* ------------------------------------------------------------ close */

int clink__session_close(clink__session *s, uint64_t now) {
  clink__sess_now(s, now);
  if (s->closing) return UV_EBUSY;
  s->closing = 1;
  s->recover_at_ms = CLINK__NEVER;
  clink__sess_set_state(s, CLINK_CLIENT_CLOSING);
  if (s->attempt_pending && !s->recovering_init) {
    /* The driver holds an attempt's permit (or will be told no). */
    s->attempt_pending = 0;
  }
  clink__sess_fail_queue(s, UV_ECANCELED, now);
  clink__ctl_fail_all(&s->ctl, UV_ECANCELED);
  clink__turn *t = s->active;
  uint64_t wait = s->opts->close_turn_wait_ms;
  if (t && s->proc == PROC_UP && wait > 0 && s->n_requests == 0) {
    /* Let the running turn end: EOF now, the CLI finishes and exits. */
    s->close_wait = 1;
    s->close_deadline_ms = clink__deadline(now, wait);
    clink__sess_push_action(s, CLINK__ACT_END_INPUT, 0);
    return 0;
  }
  if (t) {
    s->active = NULL;
    clink__sess_turn_done(s, t, UV_ECANCELED, NULL, now);
  }
  if (s->proc != PROC_NONE) clink__sess_push_action(s, CLINK__ACT_STOP, 0);
  s->proc = PROC_NONE;
  return 0;
}

void clink__sess_end_close_wait(clink__session *s, int status) {
  if (!s->close_wait) return;
  s->close_wait = 0;
  clink__turn *t = s->active;
  s->active = NULL;
  if (t) clink__sess_turn_done(s, t, status, NULL, s->now);
  clink__sess_push_action(s, CLINK__ACT_STOP, 0);
  s->proc = PROC_NONE;
}

void clink__session_detach_requests(clink__session *s) { clink__sess_requests_detach(s); }

void clink__session_mark_closed(clink__session *s) {
  clink__sess_set_state(s, CLINK_CLIENT_CLOSED);
}

int clink__session_closed(const clink__session *s) {
  return s->closing && !s->close_wait && s->ev_head == NULL;
}

/* ------------------------------------------------------------- time */

void clink__session_tick(clink__session *s, uint64_t now) {
  clink__sess_now(s, now);
  now = s->now;
  clink__ctl_expire(&s->ctl, now);
  if (s->close_wait && now >= s->close_deadline_ms) clink__sess_end_close_wait(s, UV_ECANCELED);
  if (s->closing) return;
  if (s->state == CLINK_CLIENT_RECOVERING && !s->attempt_pending && now >= s->recover_at_ms) {
    s->recover_at_ms = CLINK__NEVER;
    s->attempt_pending = 1;
    clink__sess_push_action(s, CLINK__ACT_ATTEMPT, 0);
  }
  if (clink__sess_probe_due(s) <= now) clink__sess_probe(s, now);
}

uint64_t clink__session_next_deadline(const clink__session *s) {
  uint64_t d = clink__ctl_next_deadline(&s->ctl);
  if (s->close_wait) d = clink__earliest(d, s->close_deadline_ms);
  if (!s->closing) {
    if (s->state == CLINK_CLIENT_RECOVERING && !s->attempt_pending)
      d = clink__earliest(d, s->recover_at_ms);
    d = clink__earliest(d, clink__sess_probe_due(s));
  }
  return d;
}

int clink__session_keeps_loop_alive(const clink__session *s) {
  return s->close_wait || (!s->closing && s->state == CLINK_CLIENT_RECOVERING);
}

