/* clink_client's driver: transport <-> session <-> timers.
 *
 * The session (pure) turns inputs into events; this file feeds it stdout
 * lines, the process's exit and the time, then pops its events and runs them
 * one at a time: user callbacks, and actions on the process or the breaker.
 * Events caused by the loop (a line, an exit, a deadline) run at once;
 * events caused by an API call run from the loop (the defer idle handle), never
 * inside the call. User code may call anything while an event runs: what it
 * causes is queued behind, and the client is only freed from a handle's
 * close callback, never while an event runs. */
#include <signal.h>
#include <stdio.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "client/client.h"
#include "monitor/events-int.h"

static void drain(clink_client *c);
static void after_input(clink_client *c);
static void maybe_finish(clink_client *c);
static void emit_exit(clink_client *c, int64_t status, int sig);

const char *clink_client_state_name(clink_client_state s) {
  switch (s) {
    case CLINK_CLIENT_DISCONNECTED: return "DISCONNECTED";
    case CLINK_CLIENT_CONNECTING: return "CONNECTING";
    case CLINK_CLIENT_CONNECTED: return "CONNECTED";
    case CLINK_CLIENT_CLOSING: return "CLOSING";
    case CLINK_CLIENT_CLOSED: return "CLOSED";
    case CLINK_CLIENT_ERROR: return "ERROR";
    case CLINK_CLIENT_RECOVERING: return "RECOVERING";
  }
  return "UNKNOWN";
}

uint64_t clink__client_now(clink_client *c) {
  uv_update_time(c->loop);
  return uv_now(c->loop);
}

/* ------------------------------------------------------------- timers */

static void on_timer(uv_timer_t *timer) {
  clink_client *c = timer->data;
  clink__session_tick(c->s, uv_now(c->loop));
  drain(c);
}

static void arm_timer(clink_client *c) {
  if (c->freeing) return;
  uint64_t due = clink__session_next_deadline(c->s);
  if (due == CLINK__NEVER) {
    uv_timer_stop(&c->timer);
  } else {
    uv_timer_start(&c->timer, on_timer, clink__until(due, uv_now(c->loop)), 0);
  }
  /* A pending reconnection or a close waiting for its turn is work: it
   * keeps the loop alive; deadlines alone never do. */
  if (clink__session_keeps_loop_alive(c->s))
    uv_ref((uv_handle_t *)&c->timer);
  else
    uv_unref((uv_handle_t *)&c->timer);
}

static void on_defer(uv_idle_t *h) {
  clink_client *c = h->data;
  if (!c->defer_pending) {
    uv_idle_stop(h); /* the empty round after a delivery */
    c->defer_active = 0;
    maybe_finish(c);
    return;
  }
  c->defer_pending = 0;
  drain(c);
}

static void schedule_defer(clink_client *c) {
  if (c->defer_pending || c->freeing) return;
  c->defer_pending = 1;
  if (!c->defer_active) {
    c->defer_active = 1;
    uv_idle_start(&c->defer, on_defer);
  }
}

void clink__client_api_done(clink_client *c) {
  if (!c->dispatching && clink__session_has_events(c->s)) schedule_defer(c);
  if (!c->dispatching) after_input(c);
}

static void after_input(clink_client *c) {
  arm_timer(c);
  maybe_finish(c);
}

/* ----------------------------------------------------------- process */

static void on_transport_closed(void *ud) {
  clink_client *c = ud;
  c->transports_open--;
  maybe_finish(c);
}

/* Detaches the live process and closes it (EOF, grace, signals). */
static void stop_process(clink_client *c) {
  clink__transport *t = c->t;
  if (t == NULL) return;
  c->t = NULL;
  clink__transport_close(t, on_transport_closed, c);
}

static void on_line(void *ud, const char *line, size_t len) {
  clink_client *c = ud;
  clink__session_recv_line(c->s, line, len, uv_now(c->loop));
  drain(c);
  clink__session_line_done(c->s);
}

static void on_line_error(void *ud, int err, const char *prefix, size_t plen, uint64_t total) {
  clink_client *c = ud;
  char detail[160];
  snprintf(detail, sizeof(detail), "line of %llu bytes skipped: %.*s...",
           (unsigned long long)total, (int)(plen < 64 ? plen : 64), prefix);
  clink__session_stream_error(c->s, err, detail);
  drain(c);
}

static void on_stderr_line(void *ud, const char *line, size_t len) {
  clink_client *c = ud;
  if (c->opts->stderr_cb && !c->closing) c->opts->stderr_cb(c, line, len, c->opts->stderr_ud);
}

static void describe_exit(clink_client *c, int64_t status, int sig) {
  char tail[1024];
  size_t n = c->t ? clink__transport_stderr_tail(c->t, tail, sizeof(tail)) : 0;
  while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r')) tail[--n] = '\0';
  int pid = clink_client_pid(c);
  if (sig)
    clink__session_set_last_error(c->s, "claude (pid %d) was killed by signal %d", pid, sig);
  else
    clink__session_set_last_error(c->s, "claude (pid %d) exited with code %lld", pid,
                                  (long long)status);
  switch (clink__session_kill_cause(c->s)) {
    case CLINK_ECONTROL_TIMEOUT:
      clink__session_append_last_error(
          c->s, "after it did not answer an idle probe within %llu ms",
          (unsigned long long)c->opts->probe_timeout_ms);
      break;
    case CLINK_ETURN_STALLED:
      clink__session_append_last_error(
          c->s, "after it wrote nothing for %llu ms mid-turn and did not answer a probe "
          "within %llu ms", (unsigned long long)c->opts->turn_inactivity_ms,
          (unsigned long long)c->opts->probe_timeout_ms);
      break;
    case UV_ENOMEM:
      clink__session_append_last_error(c->s, "after the host ran out of memory handling it");
      break;
    default:
      break;
  }
  const char *res = clink__session_last_error_result(c->s);
  if (res[0]) clink__session_append_last_error(c->s, "last error result: %s", res);
  if (n > 0) clink__session_append_last_error(c->s, "stderr: %s", tail);
}

static void on_exit_cb(void *ud, int64_t status, int sig) {
  clink_client *c = ud;
  describe_exit(c, status, sig);
  emit_exit(c, status, sig);
  stop_process(c);
  clink__session_process_exited(c->s, uv_now(c->loop));
  drain(c);
}

/* Starts a process (resuming session `resume` when not NULL). On error
 * nothing is left and last_error says why. */
static int spawn(clink_client *c, const char *resume) {
  const clink_options *o = c->opts;
  clink_options *tmp = NULL;
  if (resume) {
    /* The same profile, picking the conversation up where it stopped: that
     * session exactly, so neither --continue (the cwd's most recent
     * conversation, maybe another client's) nor --fork-session (a new
     * session on every recovery). */
    int rc = clink_options_dup(&tmp, c->opts);
    if (rc == 0) rc = clink_options_set_resume(tmp, resume);
    if (rc == 0) rc = clink_options_set_session_id(tmp, NULL);
    if (rc == 0) rc = clink_options_set_continue(tmp, 0);
    if (rc == 0) rc = clink_options_set_fork_session(tmp, 0);
    if (rc != 0) {
      clink_options_free(tmp);
      return rc;
    }
    o = tmp;
  }
  char err[1024] = "";
  clink__spawn_spec spec;
  int rc = clink__spawn_spec_build(&spec, o, err, sizeof(err));
  clink_options_free(tmp);
  if (rc == 0) {
    static const clink__transport_cbs cbs = {on_line, on_line_error, on_stderr_line, NULL,
                                             on_exit_cb};
    clink__transport *t;
    rc = clink__transport_spawn(&t, c->loop, &spec, &cbs, c, err, sizeof(err));
    clink__spawn_spec_free(&spec);
    if (rc == 0) {
      c->t = t;
      c->transports_open++;
      return 0;
    }
  }
  clink__session_set_last_error(c->s, "%s", err[0] ? err : clink_strerror(rc));
  clink__session_count_error(c->s, rc);
  return rc;
}

/* ------------------------------------------------------- recovery glue */

/* The breaker's verdict on an attempt: 0 ok, < 0 failed, 1 none. May run
 * the breaker's event callback (user code). */
static void settle(clink_client *c, int status) {
  if (!c->permit_held || c->breaker == NULL) return;
  c->permit_held = 0;
  uint64_t now = uv_now(c->loop);
  uint64_t took = now - c->attempt_started_ms;
  if (status == 1)
    clink_breaker_release(c->breaker, c->permit);
  else if (status == 0)
    clink_breaker_on_success(c->breaker, c->permit, now, took);
  else
    clink_breaker_on_error(c->breaker, c->permit, now, took);
}

static void attempt(clink_client *c) {
  uint64_t now = clink__client_now(c);
  if (c->breaker && !c->closing) {
    uint64_t retry_after = 0, permit = 0;
    /* May run the breaker's event callback, which may close us: the session
     * is asked again below. */
    int rc = clink_breaker_acquire(c->breaker, now, &permit, &retry_after);
    if (rc != 0) {
      clink__session_attempt_rejected(c->s, rc, retry_after, now);
      return;
    }
    c->permit = permit;
    c->permit_held = 1;
    c->attempt_started_ms = now;
  }
  if (!clink__session_attempt_admitted(c->s, now)) settle(c, 1);
}

/* The admitted attempt, announced: start its process. */
static void attempt_spawn(clink_client *c) {
  if (!clink__session_spawn_wanted(c->s)) {
    settle(c, 1);
    return;
  }
  uint64_t now = clink__client_now(c);
  int rc = spawn(c, clink__session_resume_id(c->s));
  if (rc != 0) {
    clink__session_attempt_spawn_failed(c->s, rc, now);
  } else if (clink__session_attempt_started(c->s, now) != 0) {
    stop_process(c);
  }
}

/* ------------------------------------------------------------- events */

static void emit_recovery(clink_client *c, const clink__ev_out *e) {
  static const char *const names[] = {"reconnection_scheduled", "reconnection_attempt",
                                      "reconnection_rejected", "reconnection_succeeded",
                                      "reconnection_failed",    "reconnection_history_lost"};
  static const clink_log_level levels[] = {CLINK_LOG_INFO, CLINK_LOG_WARNING, CLINK_LOG_WARNING,
                                           CLINK_LOG_INFO, CLINK_LOG_ERROR,   CLINK_LOG_WARNING};
  if ((unsigned)e->recovery >= 6 || !clink__events_enabled(c->sink, levels[e->recovery])) return;
  clink_event_field f[5] = {clink__f_int("attempt", e->attempt),
                            clink__f_int("delay_ms", (int64_t)e->delay_ms),
                            clink__f_str("error", e->status ? clink_err_name(e->status) : NULL),
                            clink__f_str("session_id", clink__session_id(c->s)),
                            clink__f_int("pid", clink_client_pid(c))};
  clink__events_emit(c->sink, levels[e->recovery], "claude_client", names[e->recovery], f, 5);
}

static void emit_exit(clink_client *c, int64_t status, int sig) {
  if (c->closing || !clink__events_enabled(c->sink, CLINK_LOG_WARNING)) return;
  clink_event_field f[5] = {clink__f_int("pid", clink_client_pid(c)),
                            clink__f_int("exit_status", status), clink__f_int("signal", sig),
                            clink__f_str("session_id", clink__session_id(c->s)),
                            clink__f_str("detail", clink__session_last_error(c->s))};
  clink__events_emit(c->sink, CLINK_LOG_WARNING, "claude_client", "cli_exited", f, 5);
}

static void emit_turn_failure(clink_client *c, int status) {
  if (status != CLINK_ETURN_STALLED && status != UV_ENOMEM) return;
  if (!clink__events_enabled(c->sink, CLINK_LOG_ERROR)) return;
  clink_event_field f[3] = {clink__f_str("error", clink_err_name(status)),
                            clink__f_str("session_id", clink__session_id(c->s)),
                            clink__f_str("detail", clink__session_last_error(c->s))};
  clink__events_emit(c->sink, CLINK_LOG_ERROR, "claude_client", "turn_stalled", f, 3);
}

void clink_client_set_events(clink_client *c, clink_events *sink) {
  if (c) c->sink = sink;
}

/* ------------------------------------------------------------ dispatch */

static void dispatch(clink_client *c, clink__ev_out *e) {
  switch (e->kind) {
    case CLINK__EV_STATE:
      if (c->owner_ops && c->owner_ops->on_state) c->owner_ops->on_state(c->owner, c, e->from, e->to);
      if (c->state_cb) c->state_cb(c, e->from, e->to, c->state_ud);
      return;
    case CLINK__EV_CONNECT:
      if (e->cb.connect) e->cb.connect(c, e->status, e->ud);
      return;
    case CLINK__EV_MESSAGE:
      if (e->cb.message)
        e->cb.message(c, e->msg, e->ud);
      else if (c->unsolicited_cb && !c->closing)
        c->unsolicited_cb(c, e->msg, c->unsolicited_ud);
      return;
    case CLINK__EV_TURN_DONE:
      emit_turn_failure(c, e->status);
      if (e->cb.done) e->cb.done(c, e->status, e->msg, e->ud);
      return;
    case CLINK__EV_CONTROL_DONE:
      if (e->cb.control) e->cb.control(c, e->status, e->msg, e->ud);
      return;
    case CLINK__EV_REQUEST:
      e->cb.request(c, e->req, e->ud);
      return;
    case CLINK__EV_ERROR:
      if (c->error_cb && !c->closing) c->error_cb(c, e->status, e->detail, c->error_ud);
      return;
    case CLINK__EV_RECOVERY:
      emit_recovery(c, e);
      if (c->recovery_cb && !c->closing)
        c->recovery_cb(c, e->recovery, e->attempt, e->status, e->delay_ms, c->recovery_ud);
      return;
    case CLINK__ACT_ATTEMPT:
      attempt(c);
      return;
    case CLINK__ACT_SPAWN:
      attempt_spawn(c);
      return;
    case CLINK__ACT_SETTLE:
      settle(c, e->status);
      return;
    case CLINK__ACT_KILL:
      if (c->t) clink__transport_kill(c->t, SIGKILL);
      return;
    case CLINK__ACT_END_INPUT:
      if (c->t) clink__transport_end_input(c->t);
      return;
    case CLINK__ACT_STOP:
      stop_process(c);
      return;
    case CLINK__ACT_IDLE:
      /* Nothing in flight: give big read buffers back (a turn that carried
       * an 8 MB line must not pin 8 MB while idle). UV_EBUSY from inside a
       * line callback: the transport trims once it returns. */
      if (c->t) (void)clink__transport_trim(c->t);
      return;
    case CLINK__ACT_PUMP:
      clink__session_pump(c->s, uv_now(c->loop));
      return;
  }
}

static void drain(clink_client *c) {
  if (c->dispatching) return;
  c->dispatching = 1;
  clink__ev_out e;
  while (clink__session_next_event(c->s, &e)) dispatch(c, &e);
  c->dispatching = 0;
  after_input(c);
}

/* ----------------------------------------------------------- lifetime */

/* The session's output: one line to the process's stdin. */
static int send_line(void *ud, const char *line, size_t len) {
  clink_client *c = ud;
  if (c->t == NULL) return CLINK_ENOT_CONNECTED;
  return clink__transport_write(c->t, line, len, NULL, NULL);
}

int clink_client_new(clink_client **out, uv_loop_t *loop, const clink_options *opts) {
  if (out == NULL || loop == NULL || opts == NULL) return UV_EINVAL;
  clink_client *c = clink__calloc(1, sizeof(*c));
  if (c == NULL) return UV_ENOMEM;
  c->loop = loop;
  int rc = clink_options_dup(&c->opts, opts);
  if (rc == 0) rc = clink__session_new(&c->s, c->opts, send_line, c, c);
  if (rc != 0) {
    clink_options_free(c->opts);
    clink__free(c);
    return rc;
  }
  uv_timer_init(loop, &c->timer);
  uv_idle_init(loop, &c->defer);
  c->timer.data = c->defer.data = c;
  uv_unref((uv_handle_t *)&c->timer); /* deadlines never keep the host's loop alive */
  c->handles_open = 2;
  *out = c;
  return 0;
}

static void client_free(clink_client *c) {
  clink__session_free(c->s);
  clink_options_free(c->opts);
  clink__free(c);
}

static void on_handle_closed(uv_handle_t *h) {
  clink_client *c = h->data;
  if (--c->handles_open > 0) return;
  c->closed = 1;
  clink_close_cb cb = c->close_cb;
  void *ud = c->close_ud;
  /* Unanswered requests outlive us: their answers say CLINK_ECLOSING. */
  clink__session_detach_requests(c->s);
  /* The last transition, then the close callback. */
  clink__session_mark_closed(c->s);
  c->dispatching = 1;
  clink__ev_out e;
  while (clink__session_next_event(c->s, &e)) dispatch(c, &e);
  if (cb) cb(c, ud);
  if (c->owner_ops) {
    if (c->owner_ops->on_closed) c->owner_ops->on_closed(c->owner, c);
    return; /* the owner frees it: clink__client_disown() */
  }
  client_free(c);
}

static void maybe_finish(clink_client *c) {
  if (!c->closing || c->freeing || c->dispatching || c->defer_pending || c->defer_active ||
      c->transports_open > 0 || !clink__session_closed(c->s))
    return;
  c->freeing = 1;
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->defer, on_handle_closed);
}

int clink_client_close(clink_client *c, clink_close_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  if (c->closing) return UV_EBUSY;
  c->closing = 1;
  c->close_cb = cb;
  c->close_ud = ud;
  /* An attempt's permit goes back now, without a verdict (releasing runs no
   * callback). */
  settle(c, 1);
  clink__session_close(c->s, clink__client_now(c));
  /* The close callback always runs from the loop, even with nothing to
   * stop. */
  schedule_defer(c);
  clink__client_api_done(c);
  return 0;
}

/* ------------------------------------------------------------ connect */

static int connect_now(clink_client *c, clink_connect_cb cb, void *ud) {
  int rc = clink__session_can_connect(c->s);
  if (rc != 0) return rc;
  uint64_t now = clink__client_now(c);
  rc = spawn(c, NULL);
  if (rc != 0) return rc;
  rc = clink__session_connect(c->s, cb, ud, now);
  if (rc != 0) {
    stop_process(c);
    return rc;
  }
  clink__client_api_done(c);
  return 0;
}

int clink_client_connect(clink_client *c, clink_connect_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  if (c->owner_ops && !c->owner_connecting) return UV_EPERM;
  return connect_now(c, cb, ud);
}

/* ---------------------------------------------------------- owner link */

void clink__client_own(clink_client *c, const clink__client_owner_ops *ops, void *owner) {
  c->owner_ops = ops;
  c->owner = owner;
}

void *clink__client_owner(const clink_client *c, const clink__client_owner_ops *ops) {
  return c && c->owner_ops == ops ? c->owner : NULL;
}

void clink__client_disown(clink_client *c) {
  if (c == NULL) return;
  c->owner_ops = NULL;
  c->owner = NULL;
  if (c->closed) client_free(c);
}

int clink__client_owner_connect(clink_client *c, clink_connect_cb cb, void *ud) {
  c->owner_connecting = 1;
  int rc = connect_now(c, cb, ud);
  c->owner_connecting = 0;
  return rc;
}

int clink__client_is_closed(const clink_client *c) { return c->closed; }

/* ----------------------------------------------------- breaker, pid */

void clink_client_set_breaker(clink_client *c, clink_breaker *b) { c->breaker = b; }

int clink_client_pid(const clink_client *c) { return c->t ? clink__transport_pid(c->t) : 0; }
