/* The body of clink_client and clink_request, shared by uv-client.c and
 * client-request.c. Not installed. */
#ifndef CLINK_CLIENT_H
#define CLINK_CLIENT_H

#include <uv.h>

#include "claudelink.h"
#include "session/ctl-out.h"
#include "wire/message.h"
#include "spawn/options.h"
#include "io/transport.h"

typedef struct clink__turn {
  struct clink__turn *next;
  char *line; /* the user message, built at query time (cJSON_free) */
  clink_message_cb on_message;
  clink_turn_cb on_done;
  void *ud;
  int status;           /* for turns failed later, from the loop */
  unsigned resent : 1;  /* already re-sent once after a recovery */
  uint64_t started_ms;  /* when its line was written */
} clink__turn;

struct clink_request {
  struct clink_request *prev, *next; /* client's pending list */
  clink_client *client;              /* NULL once the client is gone */
  clink_msg *msg;                    /* owned reference */
  const char *subtype;
  const char *id;
  int cancelled;
  /* The client's spawn count when it arrived: once that process is gone
   * (died, or replaced by a reconnect) an answer must not reach whatever
   * process runs now, which never asked. */
  uint64_t spawn;
};

#define CLINK__ERR_SLOTS 24

struct clink_client {
  uv_loop_t *loop;
  clink_options *opts;
  clink__transport *t;  /* the live process, NULL when none */
  int transports_open;  /* live or still closing */
  clink_client_state state;
  clink__ctl ctl;
  uv_timer_t timer;     /* control deadlines, close turn wait */
  uv_timer_t defer;     /* deferred completions */
  int handles_open;
  unsigned closing : 1;
  unsigned close_turn_wait : 1;
  unsigned freeing : 1;
  unsigned defer_pending : 1;
  uint64_t close_deadline_ms;

  clink__turn *active;
  clink__turn *queue_head, *queue_tail;
  size_t queued;
  /* Turns failed outside a callback wait here for the loop. */
  clink__turn *failed_head, *failed_tail;

  /* recovery (client-recovery.c) */
  clink_retry *retry;       /* NULL: no recovery policy */
  clink_breaker *breaker;   /* borrowed */
  uint64_t permit;
  uint64_t attempt_started_ms;
  uint64_t recover_at_ms;   /* next attempt due; 0 = none */
  int recover_cause;
  unsigned permit_held : 1;
  unsigned ever_connected : 1;
  unsigned probe_inflight : 1;
  unsigned probe_killed : 1; /* the exit that follows was our kill */
  clink_recovery_cb recovery_cb;
  void *recovery_ud;

  clink_msg cur; /* borrowed parse of the current line */
  clink_msg *server_info;
  char *session_id;
  clink_request *requests; /* pending inbound */

  clink_connect_cb connect_cb;
  void *connect_ud;
  int connect_status_pending; /* deferred connect failure, 0 = none */
  clink_close_cb close_cb;
  void *close_ud;
  clink_state_cb state_cb;
  void *state_ud;
  clink_error_cb error_cb;
  void *error_ud;
  clink_unsolicited_cb unsolicited_cb;
  void *unsolicited_ud;
  void *user_data;

  clink_client_metrics m;
  uint64_t spawned_at_ms, connected_at_ms, last_activity_ms;
  struct {
    int code;
    uint64_t count;
  } errs[CLINK__ERR_SLOTS];
  char last_error[2048];
  char last_error_result[512];
};

/* client-request.c */
void clink__client_request_dispatch(clink_client *c, const clink_msg *msg);
void clink__client_request_cancel(clink_client *c, const clink_msg *msg);
void clink__client_requests_detach(clink_client *c);

/* uv-client.c */
int clink__client_write_line(clink_client *c, char *line);
void clink__client_count_error(clink_client *c, int err);
void clink__client_set_state(clink_client *c, clink_client_state to);
uint64_t clink__client_now(clink_client *c);
/* Starts a process (resuming session when not NULL) and its initialize. */
int clink__client_spawn(clink_client *c, const char *resume);
void clink__client_stop_process(clink_client *c);
void clink__client_pump(clink_client *c);
void clink__client_arm_timer(clink_client *c);
int clink__client_send_control(clink_client *c, const char *subtype, cJSON *fields,
                               uint64_t timeout_ms, clink__ctl_cb done, void *done_ud);
void clink__client_fail_queue(clink_client *c, int status);

/* client-recovery.c: reconnection with backoff, idle probes. */
void clink__recovery_start(clink_client *c, int cause);
/* The initialize of a recovery attempt finished (status 0: connected). */
void clink__recovery_attempt_done(clink_client *c, int status);
/* Earliest time recovery or probing needs the timer; UINT64_MAX = none. */
uint64_t clink__recovery_next_due(const clink_client *c);
void clink__recovery_tick(clink_client *c, uint64_t now);
/* Close: forget pending attempts, hand back a breaker permit. */
void clink__recovery_stop(clink_client *c);

#endif
