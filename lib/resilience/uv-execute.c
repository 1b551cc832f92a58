/* clink_execute: one async operation under a breaker and a retry policy.
 * A single timer drives everything: the next attempt (after a backoff delay
 * or at once) and the deferred completion, so no callback ever runs inside
 * the API call that caused it.
 *
 * An extension (exec-int.h; clink_execute_with_fallback is one) hears the
 * final status before done and may hold the report: done then runs when the
 * extension calls clink__exec_finish(). */
#include "base/internal.h"
#include "resilience/exec-int.h"

enum exec_phase {
  PHASE_WAITING,  /* timer armed for the next attempt */
  PHASE_RUNNING,  /* op called, clink_exec_done() not yet */
  PHASE_FINISHING /* timer armed to call done */
};

struct clink_exec {
  uv_loop_t *loop;
  uv_timer_t timer;
  clink_breaker *breaker;
  clink_retry *retry; /* NULL: a single attempt */
  clink_exec_op op;
  clink_exec_cb done;
  void *ud;
  enum exec_phase phase;
  int result;         /* final status once FINISHING */
  int last_error;
  unsigned attempts;
  uint64_t permit;
  uint64_t started_ms;
  unsigned permit_held : 1;
  unsigned cancelled : 1;  /* done already reported: the running op just frees */
  unsigned reported : 1;   /* done cb has run */
  unsigned held : 1;       /* the extension holds the report */
  const clink__exec_hooks *hooks;
  void *ext;
};

static void on_timer(uv_timer_t *t);

static void on_closed(uv_handle_t *h) {
  clink_exec *ex = h->data;
  if (ex->hooks && ex->hooks->free) ex->hooks->free(ex->ext);
  clink_retry_free(ex->retry);
  clink__free(ex);
}

static void finish(clink_exec *ex, int status) {
  ex->result = status;
  ex->phase = PHASE_FINISHING;
  uv_timer_start(&ex->timer, on_timer, 0, 0);
}

/* The attempt failed with err: schedule another or finish. */
static void retry_or_finish(clink_exec *ex, int err, uint64_t server_delay_ms) {
  ex->last_error = err;
  if (ex->retry == NULL) {
    finish(ex, err);
    return;
  }
  uint64_t delay = 0;
  int rc = clink_retry_next(ex->retry, uv_now(ex->loop), err, server_delay_ms, &delay);
  if (rc != 0) {
    finish(ex, rc);
    return;
  }
  ex->phase = PHASE_WAITING;
  uv_timer_start(&ex->timer, on_timer, delay, 0);
}

static void start_attempt(clink_exec *ex) {
  uint64_t now = uv_now(ex->loop);
  if (ex->breaker) {
    uint64_t retry_after = 0;
    int rc = clink_breaker_acquire(ex->breaker, now, &ex->permit, &retry_after);
    if (rc != 0) {
      retry_or_finish(ex, rc, retry_after);
      return;
    }
    ex->permit_held = 1;
  }
  ex->attempts++;
  ex->started_ms = now;
  ex->phase = PHASE_RUNNING;
  ex->op(ex, ex->ud);
}

/* Calls done once, then frees unless an attempt is still running (its
 * clink_exec_done() frees after a cancel). */
static void report_now(clink_exec *ex, int status) {
  ex->reported = 1;
  ex->held = 0;
  if (ex->done) ex->done(ex, status, ex->ud);
  if (ex->phase != PHASE_RUNNING) uv_close((uv_handle_t *)&ex->timer, on_closed);
}

static void report(clink_exec *ex) {
  if (ex->hooks && ex->hooks->ending && ex->hooks->ending(ex, ex->result, ex->ext)) {
    ex->held = 1;
    return;
  }
  report_now(ex, ex->result);
}

static void on_timer(uv_timer_t *t) {
  clink_exec *ex = t->data;
  if (ex->reported || ex->held) return;
  if (ex->cancelled || ex->phase == PHASE_FINISHING)
    report(ex);
  else if (ex->phase == PHASE_WAITING)
    start_attempt(ex);
}

int clink_execute(clink_exec **out, uv_loop_t *loop, clink_breaker *breaker,
                  const clink_retry_policy *policy, clink_exec_op op, clink_exec_cb done,
                  void *ud) {
  return clink__execute_ext(out, loop, breaker, policy, op, done, ud, NULL, NULL);
}

int clink__execute_ext(clink_exec **out, uv_loop_t *loop, clink_breaker *breaker,
                       const clink_retry_policy *policy, clink_exec_op op, clink_exec_cb done,
                       void *ud, const clink__exec_hooks *hooks, void *ext) {
  if (out == NULL || loop == NULL || op == NULL) return UV_EINVAL;
  clink_exec *ex = clink__calloc(1, sizeof(*ex));
  if (ex == NULL) return UV_ENOMEM;
  if (policy) {
    int rc = clink_retry_new(&ex->retry, policy, 0);
    if (rc != 0) {
      clink__free(ex);
      return rc;
    }
    clink_retry_begin(ex->retry, uv_now(loop));
  }
  ex->loop = loop;
  ex->hooks = hooks;
  ex->ext = ext;
  ex->breaker = breaker;
  ex->op = op;
  ex->done = done;
  ex->ud = ud;
  uv_timer_init(loop, &ex->timer);
  ex->timer.data = ex;
  ex->phase = PHASE_WAITING;
  uv_timer_start(&ex->timer, on_timer, 0, 0);
  *out = ex;
  return 0;
}

void clink_exec_done(clink_exec *ex, int status, uint64_t server_delay_ms) {
  if (ex == NULL || ex->phase != PHASE_RUNNING) return;
  uint64_t now = uv_now(ex->loop);
  if (ex->permit_held) {
    ex->permit_held = 0;
    /* A cancelled attempt says nothing about the dependency. */
    if (status == UV_ECANCELED || ex->cancelled)
      clink_breaker_release(ex->breaker, ex->permit);
    else if (status == 0)
      clink_breaker_on_success(ex->breaker, ex->permit, now, now - ex->started_ms);
    else
      clink_breaker_on_error(ex->breaker, ex->permit, now, now - ex->started_ms);
  }
  if (ex->cancelled) {
    /* The cancel decided the outcome; free once it has been reported. */
    ex->phase = PHASE_FINISHING;
    if (ex->reported) uv_close((uv_handle_t *)&ex->timer, on_closed);
    return;
  }
  if (status == 0) {
    if (ex->retry) clink_retry_success(ex->retry);
    finish(ex, 0);
    return;
  }
  retry_or_finish(ex, status, server_delay_ms);
}

int clink_exec_cancel(clink_exec *ex) {
  if (ex == NULL) return UV_EINVAL;
  if (ex->cancelled || ex->reported || ex->phase == PHASE_FINISHING || ex->held)
    return UV_EBUSY;
  ex->cancelled = 1;
  ex->result = UV_ECANCELED;
  uv_timer_start(&ex->timer, on_timer, 0, 0);
  return 0;
}

unsigned int clink_exec_attempts(const clink_exec *ex) { return ex ? ex->attempts : 0; }
int clink_exec_last_error(const clink_exec *ex) { return ex ? ex->last_error : 0; }

void *clink__exec_ext(const clink_exec *ex) { return ex ? ex->ext : NULL; }

int clink__exec_running(const clink_exec *ex) {
  return ex != NULL && ex->phase == PHASE_RUNNING && !ex->cancelled;
}

void clink__exec_finish(clink_exec *ex, int status) {
  if (ex == NULL || !ex->held) return;
  report_now(ex, status);
}
