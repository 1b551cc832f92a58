/* The body of clink_client: the libuv driver around a session core
 * (session/session.h) and a transport (io/transport.h). Shared by the
 * client's files only. */
#ifndef CLINK_CLIENT_H
#define CLINK_CLIENT_H

#include <uv.h>

#include "client/client-owner.h"
#include "io/transport.h"
#include "session/session.h"
#include "spawn/options.h"

struct clink_client {
  uv_loop_t *loop;
  clink_options *opts;
  clink__session *s;
  clink__transport *t; /* the live process, NULL when none */
  int transports_open; /* live or still closing */
  uv_timer_t timer;    /* the session's deadlines */
  /* Events caused by API calls, delivered from the loop. An idle handle,
   * not a 0 ms timer: while it is active the loop does not block in its
   * poll, so a host's uv_run(UV_RUN_ONCE) returns once they are delivered
   * (a timer fires before the poll, which may then block forever). It stays
   * armed one more, empty, round. */
  uv_idle_t defer;
  int handles_open;
  unsigned closing : 1;
  unsigned freeing : 1;
  unsigned closed : 1;         /* the close finished (owned clients stay allocated) */
  unsigned defer_pending : 1;
  unsigned defer_active : 1;
  unsigned dispatching : 1;
  unsigned owner_connecting : 1;

  /* recovery attempts' breaker permit */
  clink_breaker *breaker; /* borrowed */
  uint64_t permit;
  uint64_t attempt_started_ms;
  unsigned permit_held : 1;

  clink_events *sink; /* borrowed */
  const clink__client_owner_ops *owner_ops;
  void *owner;

  clink_close_cb close_cb;
  void *close_ud;
  clink_state_cb state_cb;
  void *state_ud;
  clink_error_cb error_cb;
  void *error_ud;
  clink_unsolicited_cb unsolicited_cb;
  void *unsolicited_ud;
  clink_recovery_cb recovery_cb;
  void *recovery_ud;
  void *user_data;
};

/* uv-client.c, for uv-client-api.c: after a public call changed the
 * session, deliver what it caused from the loop and re-arm the timer. */
void clink__client_api_done(clink_client *c);
/* Fresh loop time (API calls may come after the host blocked). */
uint64_t clink__client_now(clink_client *c);

#endif
