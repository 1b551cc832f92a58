/* Turns: one at a time per process, the rest in a bounded FIFO; each gets
 * exactly its own messages and its own result. */
#include <stdio.h>

#include "session/session-int.h"
#include "wire/json-out.h"

void clink__sess_turn_free(clink__turn *t) {
  if (t == NULL) return;
  cJSON_free(t->line);
  clink__free(t);
}

void clink__sess_turn_done(clink__session *s, clink__turn *t, int status,
                           const clink_msg *result, uint64_t now) {
  if (t->started_ms) {
    uint64_t took = now - t->started_ms;
    s->m.last_turn_ms = took;
    s->m.turn_ms_ewma =
        s->m.turn_ms_ewma ? (s->m.turn_ms_ewma * 4 + took) / 5 : (took ? took : 1);
  }
  if (status == 0) {
    s->m.turns_ok++;
  } else {
    s->m.turns_failed++;
    clink__session_count_error(s, status);
  }
  t->next = NULL;
  t->done.status = status;
  t->done.msg = result;
  clink__sess_push(s, &t->done);
}

void clink__sess_fail_queue(clink__session *s, int status, uint64_t now) {
  clink__turn *t = s->queue_head;
  s->queue_head = s->queue_tail = NULL;
  s->queued = 0;
  while (t) {
    clink__turn *n = t->next;
    clink__sess_turn_done(s, t, status, NULL, now);
    t = n;
  }
}

/* Nothing running, nothing queued: the driver may shrink its buffers. */
static void maybe_idle(clink__session *s) {
  if (s->active == NULL && s->queue_head == NULL && s->proc == PROC_UP)
    clink__sess_push_action(s, CLINK__ACT_IDLE, 0);
}

void clink__sess_pump(clink__session *s, uint64_t now) {
  while (s->active == NULL && s->queue_head && s->state == CLINK_CLIENT_CONNECTED &&
         !s->closing && s->proc == PROC_UP) {
    clink__turn *t = s->queue_head;
    s->queue_head = t->next;
    if (s->queue_head == NULL) s->queue_tail = NULL;
    s->queued--;
    t->next = NULL;
    /* The line stays with the turn: recovery may send it again. */
    int rc = clink__sess_send(s, t->line);
    if (rc != 0) {
      clink__sess_turn_done(s, t, rc, NULL, now);
      continue;
    }
    t->started_ms = now;
    s->last_line_ms = now; /* the turn's silence counts from here */
    s->active = t;
  }
}

int clink__session_query(clink__session *s, struct cJSON *content,
                         clink_message_cb on_message, clink_turn_cb on_done, void *ud,
                         uint64_t now) {
  if (now > s->now) s->now = now;
  int rc = 0;
  if (s->closing)
    rc = CLINK_ECLOSING;
  else if (s->state != CLINK_CLIENT_CONNECTED && s->state != CLINK_CLIENT_CONNECTING &&
           s->state != CLINK_CLIENT_RECOVERING)
    rc = CLINK_ENOT_CONNECTED;
  else if (s->queued >= s->opts->max_queued_queries)
    rc = CLINK_EQUEUE_FULL;
  if (rc != 0) {
    cJSON_Delete(content);
    return rc;
  }
  clink__turn *t = clink__calloc(1, sizeof(*t));
  if (t == NULL) {
    cJSON_Delete(content);
    return UV_ENOMEM;
  }
  /* "default" as the Python SDK's client writes; the CLI keeps its own id. */
  t->line = clink__wire_user("default", content);
  if (t->line == NULL) {
    clink__free(t);
    return UV_ENOMEM;
  }
  t->len = strlen(t->line);
  t->on_message = on_message;
  t->on_done = on_done;
  t->ud = ud;
  t->done.kind = CLINK__EV_TURN_DONE;
  t->done.home = EV_HOME_TURN;
  t->done.obj = t;
  t->done.cb.done = on_done;
  t->done.ud = ud;
  if (s->queue_tail)
    s->queue_tail->next = t;
  else
    s->queue_head = t;
  s->queue_tail = t;
  s->queued++;
  /* Writing now is safe: completions only come from stdout lines. */
  clink__sess_pump(s, s->now);
  return 0;
}

/* A message of the running turn, or one outside any turn. */
void clink__sess_route_to_turn(clink__session *s, const clink_msg *m) {
  clink__turn *t = s->active;
  if (t == NULL && s->closing) return;
  if (t && t->on_message == NULL) return;
  clink__misc_ev *e = clink__sess_push_misc(s, CLINK__EV_MESSAGE);
  if (e == NULL) return;
  e->ev.msg = m;
  if (t) {
    e->ev.cb.message = t->on_message;
    e->ev.ud = t->ud;
  }
}

void clink__sess_on_result(clink__session *s, const clink_msg *m, uint64_t now) {
  int is_error = clink_msg_result_is_error(m);
  if (is_error) {
    const char *text = clink_msg_result_text(m);
    snprintf(s->last_error_result, sizeof(s->last_error_result), "%s%s%s",
             m->subtype ? m->subtype : "result", text ? ": " : "", text ? text : "");
    clink__session_set_last_error(s, "turn failed: %s", s->last_error_result);
  }
  clink__turn *t = s->active;
  clink__sess_route_to_turn(s, m);
  if (t == NULL) return;
  s->active = NULL;
  clink__sess_turn_done(s, t, is_error ? CLINK_ETURN_FAILED : 0, m, now);
  if (s->close_wait) {
    /* The turn close was waiting for has ended. */
    s->close_wait = 0;
    clink__sess_push_action(s, CLINK__ACT_STOP, 0);
    s->proc = PROC_NONE;
    return;
  }
  /* The next turn starts once the host saw this one end. */
  clink__sess_push_action(s, CLINK__ACT_PUMP, 0);
}

void clink__session_pump(clink__session *s, uint64_t now) {
  if (now > s->now) s->now = now;
  clink__sess_pump(s, s->now);
  maybe_idle(s);
}
