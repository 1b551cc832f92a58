/* The session's events: a FIFO of nodes that live in what they complete
 * (a turn, a control call, a request) or in a fixed pool; popping copies one
 * out and frees its owner. See session.h. */
#include "base/internal.h"
#include "session/session-int.h"

void clink__sess_push(clink__session *s, clink__evn *ev) {
  if (ev->queued) return;
  ev->queued = 1;
  ev->next = NULL;
  if (s->ev_tail)
    s->ev_tail->next = ev;
  else
    s->ev_head = ev;
  s->ev_tail = ev;
}

clink__misc_ev *clink__sess_push_misc(clink__session *s, int kind) {
  clink__misc_ev *e = s->misc_free;
  if (e == NULL) {
    s->ev_dropped++;
    return NULL;
  }
  s->misc_free = e->free_next;
  memset(&e->ev, 0, sizeof(e->ev));
  e->ev.kind = (unsigned char)kind;
  e->ev.home = EV_HOME_MISC;
  e->detail = NULL;
  clink__sess_push(s, &e->ev);
  return e;
}

void clink__sess_push_action(clink__session *s, int kind, int status) {
  clink__misc_ev *e = clink__sess_push_misc(s, kind);
  if (e) e->ev.status = status;
}

int clink__session_has_events(const clink__session *s) { return s->ev_head != NULL; }

int clink__session_next_event(clink__session *s, clink__ev_out *out) {
  clink__evn *ev = s->ev_head;
  if (ev == NULL) return 0;
  s->ev_head = ev->next;
  if (s->ev_head == NULL) s->ev_tail = NULL;
  ev->queued = 0;
  ev->next = NULL;
  memset(out, 0, sizeof(*out));
  out->kind = (clink__ev_kind)ev->kind;
  out->status = ev->status;
  out->msg = ev->msg;
  out->ud = ev->ud;
  memcpy(&out->cb, &ev->cb, sizeof(out->cb));
  switch (ev->kind) {
    case CLINK__EV_STATE:
      out->from = (clink_client_state)ev->a;
      out->to = (clink_client_state)ev->b;
      break;
    case CLINK__EV_RECOVERY:
      out->recovery = (clink_recovery_event)ev->a;
      out->attempt = (unsigned)ev->b;
      out->delay_ms = ev->u;
      break;
    case CLINK__EV_REQUEST:
      out->req = ev->obj;
      break;
    default:
      break;
  }
  switch (ev->home) {
    case EV_HOME_MISC: {
      clink__misc_ev *m = CLINK__CONTAINER_OF(ev, clink__misc_ev, ev);
      if (m->detail) {
        size_t n = strlen(m->detail);
        if (n >= sizeof(out->detail)) n = sizeof(out->detail) - 1;
        memcpy(out->detail, m->detail, n);
        out->detail[n] = '\0';
        clink__free(m->detail);
        m->detail = NULL;
      }
      m->free_next = s->misc_free;
      s->misc_free = m;
      break;
    }
    case EV_HOME_TURN:
      clink__sess_turn_free(ev->obj);
      break;
    case EV_HOME_CALL:
      clink__sess_call_free(ev->obj);
      break;
    default:
      break;
  }
  return 1;
}

