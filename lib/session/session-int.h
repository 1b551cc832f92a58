/* The session's body, shared by the files of lib/session/. Not for the
 * driver (which sees session.h only). */
#ifndef CLINK_SESSION_INT_H
#define CLINK_SESSION_INT_H

#include "base/internal.h"
#include "session/ctl-out.h"
#include "session/session.h"
#include "spawn/options.h"
#include "wire/message.h"

/* Where an event node lives; popping it frees the owner when it is a turn
 * or a call. */
enum { EV_HOME_MISC, EV_HOME_TURN, EV_HOME_CALL, EV_HOME_REQ };

typedef struct clink__evn {
  struct clink__evn *next;
  unsigned char kind;
  unsigned char home;
  unsigned char queued;
  int status, a, b;
  uint64_t u;
  const clink_msg *msg;
  void *obj;
  clink__user_cb cb;
  void *ud;
} clink__evn;

typedef struct clink__misc_ev {
  clink__evn ev;
  struct clink__misc_ev *free_next;
  char *detail; /* ERROR only, on the heap: errors are rare, sessions many */
} clink__misc_ev;

/* Enough for what one input can cause between two drains (at most a few
 * each; the driver drains after every loop-side input). Small: every idle
 * session carries them. */
#define CLINK__MISC_EVENTS 16

typedef struct clink__turn {
  clink__evn done; /* its completion */
  struct clink__turn *next;
  char *line; /* the user message, built at query time (cJSON_free) */
  size_t len;
  clink_message_cb on_message;
  clink_turn_cb on_done;
  void *ud;
  unsigned resent : 1;
  uint64_t started_ms;
} clink__turn;

/* Why a control request was sent. */
enum { CALL_USER, CALL_INIT, CALL_PROBE, CALL_PING };

typedef struct clink__call {
  clink__evn done;
  clink__session *s;
  int why;
  uint64_t gen; /* the process it was sent to */
  clink_control_cb cb;
  void *ud;
} clink__call;

struct clink_request {
  clink__evn ev;                     /* its arrival */
  struct clink_request *prev, *next; /* the session's pending list */
  clink__session *s;                 /* NULL once the session is gone */
  void *owner;
  clink_msg *msg; /* owned reference */
  const char *subtype;
  const char *id;
  int cancelled;
  /* The process it came from: once that one is gone (died, or replaced by
   * a reconnect) an answer must not reach whatever process runs now. */
  uint64_t gen;
};

#define CLINK__ERR_SLOTS 24

enum { PROC_NONE, PROC_STARTING, PROC_UP };

struct clink__session {
  const clink_options *opts;
  clink__session_send_fn send;
  void *send_ud;
  void *owner;
  clink_client_state state;
  unsigned closing : 1;
  unsigned close_wait : 1;  /* close lets the running turn finish */
  unsigned recovering_init : 1; /* the running initialize is a recovery attempt's */
  unsigned attempt_pending : 1; /* ATTEMPT handed to the driver, no answer yet */
  unsigned probe_inflight : 1;
  unsigned ever_connected : 1;
  unsigned connect_pending : 1; /* the connect callback is still owed */
  unsigned resume_lost : 1;     /* the CLI could not resume: start afresh */
  int proc;
  uint64_t now;               /* the latest now_ms given: time never goes back */
  uint64_t gen;               /* processes started so far */
  int kill_cause;             /* set when we asked for a kill: why */
  uint64_t close_deadline_ms;

  /* events: FIFO of nodes */
  clink__evn *ev_head, *ev_tail;
  clink__misc_ev misc[CLINK__MISC_EVENTS];
  clink__misc_ev *misc_free;
  uint64_t ev_dropped; /* a misc event found the pool empty: a bug */

  /* turns */
  clink__turn *active;
  clink__turn *queue_head, *queue_tail;
  size_t queued;

  clink__ctl ctl;
  clink_connect_cb connect_cb;
  void *connect_ud;

  /* inbound requests not answered yet */
  clink_request *requests;
  size_t n_requests;

  /* recovery and probes */
  clink_retry *retry; /* NULL: no recovery policy */
  uint64_t recover_at_ms; /* CLINK__NEVER: none */
  int recover_cause;

  clink_msg cur; /* borrowed parse of the current line */
  int cur_live;
  clink_msg *server_info;
  char *session_id;

  clink_client_metrics m;
  uint64_t spawned_at_ms, connected_at_ms, last_activity_ms, last_line_ms;
  struct {
    int code;
    uint64_t count;
  } errs[CLINK__ERR_SLOTS];
  char last_error[2048];
  char last_error_result[512];
};

/* Time never goes back: the latest now_ms given. */
static inline void clink__sess_now(clink__session *s, uint64_t now) {
  if (now > s->now) s->now = now;
}

/* session.c */
void clink__sess_set_state(clink__session *s, clink_client_state to);
/* The initialize of the current process was answered (or failed). */
void clink__sess_on_initialized(clink__session *s, int status, const clink_msg *response);
/* Queues a misc event; returns it (to fill) or NULL when the pool is dry. */
clink__misc_ev *clink__sess_push_misc(clink__session *s, int kind);
void clink__sess_push(clink__session *s, clink__evn *ev);
void clink__sess_push_action(clink__session *s, int kind, int status);
void clink__sess_error(clink__session *s, int err, const char *detail);
int clink__sess_send(clink__session *s, const char *line);
/* The process can no longer be trusted (err): kill it. */
void clink__sess_fatal(clink__session *s, int err);
/* The close's wait for the running turn is over (its result came, the time
 * is up, or the CLI asked something it can no longer be answered). */
void clink__sess_end_close_wait(clink__session *s, int status);

/* turns.c */
void clink__sess_pump(clink__session *s, uint64_t now);
void clink__sess_turn_done(clink__session *s, clink__turn *t, int status,
                           const clink_msg *result, uint64_t now);
/* Fails every queued turn with status (the queue is emptied first). */
void clink__sess_fail_queue(clink__session *s, int status, uint64_t now);
void clink__sess_on_result(clink__session *s, const clink_msg *m, uint64_t now);
void clink__sess_turn_free(clink__turn *t);
void clink__sess_route_to_turn(clink__session *s, const clink_msg *m);

/* calls.c */
int clink__sess_send_control(clink__session *s, const char *subtype, struct cJSON *fields,
                             uint64_t timeout_ms, int why, clink_control_cb cb, void *ud,
                             uint64_t now);
void clink__sess_call_free(clink__call *call);
/* initialize.c: the initialize request's fields from the options. */
struct cJSON *clink__sess_initialize_fields(const clink_options *o);

/* requests-in.c */
void clink__sess_request_in(clink__session *s, const clink_msg *m);
void clink__sess_request_cancel(clink__session *s, const clink_msg *m);
void clink__sess_requests_detach(clink__session *s);

/* recovery.c */
/* The process died (or its initialize failed) while connected or
 * recovering: schedule a reconnection, or give up. */
void clink__sess_recovery_start(clink__session *s, int cause, uint64_t now);
void clink__sess_recovery_schedule(clink__session *s, int err, uint64_t server_delay_ms,
                                   uint64_t now);
void clink__sess_recovery_connected(clink__session *s, uint64_t now);
void clink__sess_recovery_emit(clink__session *s, clink_recovery_event ev, int err,
                               uint64_t delay_ms);
uint64_t clink__sess_probe_due(const clink__session *s);
void clink__sess_probe(clink__session *s, uint64_t now);

#endif
