/* The session core: one conversation with one `claude` process at a time,
 * as pure code in the style of nghttp2_session. No libuv, no clock of its
 * own, no user code.
 *
 * In:  host calls (connect, query, control, close, answers to inbound
 *      requests), stdout lines, process start and exit, now_ms.
 * Out: lines to write (through the send callback, at once), the next
 *      deadline, and events, popped one at a time with
 *      clink__session_next_event(): user notifications (state, messages,
 *      turn and control completions, inbound requests, errors, recovery
 *      steps) and actions for the driver (spawn a recovery attempt, settle
 *      the breaker permit, kill, stop or end the input of the process).
 *
 * The session never calls the host back: every effect is an event, in the
 * order it happened, so the driver decides when user code runs (never inside
 * the API call that caused it) and the session's state is consistent
 * whenever user code runs. Events live in the objects they complete (a turn,
 * a control call, a request) or in a fixed pool, so queuing one never
 * allocates and never fails. */
#ifndef CLINK_SESSION_H
#define CLINK_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "claudelink.h"

struct cJSON;

typedef struct clink__session clink__session;

typedef enum clink__ev_kind {
  /* user notifications */
  CLINK__EV_STATE = 1,     /* from -> to */
  CLINK__EV_CONNECT,       /* status; cb.connect */
  CLINK__EV_MESSAGE,       /* msg; cb.message (NULL: outside any turn) */
  CLINK__EV_TURN_DONE,     /* status, msg (the result, may be NULL); cb.done */
  CLINK__EV_CONTROL_DONE,  /* status, msg (the response, may be NULL); cb.control */
  CLINK__EV_REQUEST,       /* req, now the host's; cb.request */
  CLINK__EV_ERROR,         /* status, detail */
  CLINK__EV_RECOVERY,      /* recovery: event, attempt, status (err), delay_ms */
  /* driver actions */
  CLINK__ACT_ATTEMPT,      /* a recovery attempt is due: ask the breaker */
  CLINK__ACT_SPAWN,        /* the attempt was admitted and announced: spawn
                              (resuming clink__session_id()) unless
                              clink__session_spawn_wanted() says no */
  CLINK__ACT_SETTLE,       /* the attempt's verdict for the breaker: status 0 ok,
                              < 0 failed, 1 no verdict (release the permit) */
  CLINK__ACT_KILL,         /* the CLI hung: kill it (its exit follows) */
  CLINK__ACT_END_INPUT,    /* stdin EOF: let the running turn finish */
  CLINK__ACT_STOP,         /* close the process (EOF, grace, signals) */
  CLINK__ACT_IDLE,         /* nothing in flight: shrink buffers */
  CLINK__ACT_PUMP          /* a turn's end was delivered: call
                              clink__session_pump() so the next one starts
                              only after user code saw it */
} clink__ev_kind;

#define CLINK__EV_DETAIL 160

/* The user callback an event goes to (its kind says which member). */
typedef union clink__user_cb {
  clink_connect_cb connect;
  clink_message_cb message;
  clink_turn_cb done;
  clink_control_cb control;
  clink_request_cb request;
} clink__user_cb;

/* One popped event: a copy, so it stays valid while user code runs. msg is
 * borrowed: valid until the driver calls clink__session_line_done() (for
 * messages of the current line) or the next event is popped. */
typedef struct clink__ev_out {
  clink__ev_kind kind;
  int status;
  clink_client_state from, to;
  clink_recovery_event recovery;
  unsigned attempt;
  uint64_t delay_ms;
  const clink_msg *msg;
  clink_request *req;
  clink__user_cb cb;
  void *ud;
  char detail[CLINK__EV_DETAIL];
} clink__ev_out;

/* Writes one line (no '\n'); returns 0 or the transport's error. */
typedef int (*clink__session_send_fn)(void *ud, const char *line, size_t len);

/* opts are borrowed (they must outlive the session); owner is what
 * clink_request_client() returns. */
int clink__session_new(clink__session **out, const clink_options *opts,
                       clink__session_send_fn send, void *send_ud, void *owner);
/* Detaches unanswered requests (their answers then return CLINK_ECLOSING)
 * and frees everything, including events not popped. */
void clink__session_free(clink__session *s);

/* ------------------------------------------------------------- host calls */

/* 0 when a connect may start now; UV_EBUSY, CLINK_ECLOSING otherwise. */
int clink__session_can_connect(const clink__session *s);
/* A process was started for a connect: CONNECTING, initialize sent. On error
 * (the initialize could not be written) nothing changed; the driver stops
 * the process and fails the connect. */
int clink__session_connect(clink__session *s, clink_connect_cb cb, void *ud, uint64_t now);
/* content (owned) is a string or an array of blocks. */
int clink__session_query(clink__session *s, struct cJSON *content, clink_message_cb on_message,
                         clink_turn_cb on_done, void *ud, uint64_t now);
/* fields (owned) may be NULL; timeout as stored in the options (never =
 * CLINK_NEVER). */
int clink__session_control(clink__session *s, const char *subtype, struct cJSON *fields,
                           uint64_t timeout_ms, clink_control_cb cb, void *ud, uint64_t now);
/* mcp_status with its own timeout: any answer means alive (status 0);
 * CLINK_ECONTROL_TIMEOUT means hung. */
int clink__session_ping(clink__session *s, uint64_t timeout_ms, clink_control_cb cb, void *ud,
                        uint64_t now);
/* Starts the close; UV_EBUSY on a second call. */
int clink__session_close(clink__session *s, uint64_t now);

/* Writes the next queued turn if the session is idle (after ACT_PUMP). */
void clink__session_pump(clink__session *s, uint64_t now);
/* Detaches unanswered requests now (their answers return CLINK_ECLOSING). */
void clink__session_detach_requests(clink__session *s);

/* ---------------------------------------------------------------- process */

/* A process started for a recovery attempt (after ATTEMPT). */
int clink__session_attempt_started(clink__session *s, uint64_t now);
/* The attempt's spawn failed with err. */
void clink__session_attempt_spawn_failed(clink__session *s, int err, uint64_t now);
/* The breaker refused the attempt. */
void clink__session_attempt_rejected(clink__session *s, int err, uint64_t retry_after_ms,
                                     uint64_t now);
/* The breaker admitted it: 1 when it is still wanted (ACT_SPAWN follows), 0
 * when not (release the permit). */
int clink__session_attempt_admitted(clink__session *s, uint64_t now);
/* Whether the admitted attempt should still start a process. */
int clink__session_spawn_wanted(const clink__session *s);

void clink__session_recv_line(clink__session *s, const char *line, size_t len, uint64_t now);
/* A stdout line was skipped (too long) or could not be read. */
void clink__session_stream_error(clink__session *s, int err, const char *detail);
/* The line's messages were dispatched: release its parse. */
void clink__session_line_done(clink__session *s);
/* The process is gone (the driver already closed it and described the exit
 * with clink__session_set_last_error()). */
void clink__session_process_exited(clink__session *s, uint64_t now);

/* ----------------------------------------------------------------- time */

void clink__session_tick(clink__session *s, uint64_t now);
/* Earliest time tick() has work; CLINK__NEVER when none. After tick(now) it
 * is always later than now. */
uint64_t clink__session_next_deadline(const clink__session *s);
/* Pending work that should keep the host's loop running: a reconnection, or
 * a close waiting for its turn. */
int clink__session_keeps_loop_alive(const clink__session *s);

/* --------------------------------------------------------------- events */

int clink__session_has_events(const clink__session *s);
/* Pops the oldest event into *out: 1, or 0 when there is none. */
int clink__session_next_event(clink__session *s, clink__ev_out *out);
/* The close is over on the session's side: nothing queued, nothing to
 * wait for (the driver still waits for its process and handles). */
int clink__session_closed(const clink__session *s);
/* The driver finished the close: CLOSING -> CLOSED (an event). */
void clink__session_mark_closed(clink__session *s);

/* -------------------------------------------------------------- read-outs */

clink_client_state clink__session_state(const clink__session *s);
int clink__session_closing(const clink__session *s);
const char *clink__session_id(const clink__session *s);
/* The conversation a recovery attempt resumes: the session id, or NULL when
 * the CLI said it no longer has it (a fresh start). */
const char *clink__session_resume_id(const clink__session *s);
const clink_msg *clink__session_server_info(const clink__session *s);
const char *clink__session_last_error(const clink__session *s);
/* Replaces the last error text (printf-style). */
void clink__session_set_last_error(clink__session *s, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends "; <text>" (or the text when empty). */
void clink__session_append_last_error(clink__session *s, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The last error result's text ("" when none), for exit descriptions. */
const char *clink__session_last_error_result(const clink__session *s);
/* The exit that came was caused by our kill of a hung CLI: why (0: no). */
int clink__session_kill_cause(const clink__session *s);
size_t clink__session_turns_pending(const clink__session *s);
uint64_t clink__session_turns_done(const clink__session *s);
/* Counts an error in the metrics (the driver's own failures). */
void clink__session_count_error(clink__session *s, int err);
int clink__session_get_metrics(const clink__session *s, uint64_t now,
                               clink_client_metrics *out);
uint64_t clink__session_error_count(const clink__session *s, int err);

#endif
