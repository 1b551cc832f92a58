/* clink_execute: one async operation under a breaker and a retry policy.
 * A single timer drives everything: the next attempt (after a backoff delay
 * or at once) and the deferred completion, so no callback ever runs inside
 * the API call that caused it.
 *
 * clink_execute_with_fallback adds an operation's fallback chain: a success
 * stores the attempt's answer in the chain's cache; a failure, when it is
 * reported, walks the chain (fallback/uv-ask.c, chain only) and done runs
 * from the chain's completion with its answer. */
#include <uv.h>

#include "base/internal.h"
#include "fallback/ask-int.h"
#include "fallback/fallback-int.h"

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
  unsigned in_chain : 1;   /* the fallback chain runs; it reports */
  /* With a fallback: */
  clink_fallback *fb;
  char *request;
  char *answer; /* the attempt's (clink_exec_set_answer) */
  size_t answer_len;
  clink_ask_call *chain; /* during done after the chain */
  clink_source source;
};

static void on_timer(uv_timer_t *t);

static void on_closed(uv_handle_t *h) {
  clink_exec *ex = h->data;
  clink_retry_free(ex->retry);
  clink__free(ex->request);
  clink__free(ex->answer);
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
  if (ex->done) ex->done(ex, status, ex->ud);
  ex->chain = NULL;
  if (ex->phase != PHASE_RUNNING) uv_close((uv_handle_t *)&ex->timer, on_closed);
}

/* The chain ended: its answer, or the execution's own failure when no step
 * handles it. */
static void on_chain_done(clink_ask_call *ask, int status, void *ud) {
  clink_exec *ex = ud;
  ex->chain = ask;
  ex->source = clink_ask_source(ask);
  int err = ex->result == CLINK_ERETRY_EXHAUSTED || ex->result == CLINK_EBUDGET_EXHAUSTED
                ? ex->last_error
                : ex->result;
  report_now(ex, status == err ? ex->result : status);
}

static void report(clink_exec *ex) {
  int st = ex->result;
  if (ex->fb && st != 0 && st != UV_ECANCELED) {
    /* What failed: the last attempt's error when the policy gave up. */
    int err = st == CLINK_ERETRY_EXHAUSTED || st == CLINK_EBUDGET_EXHAUSTED ? ex->last_error : st;
    if (clink__ask_chain_only(NULL, ex->loop, ex->fb, ex->request, err, ex->attempts,
                              on_chain_done, ex) == 0) {
      ex->in_chain = 1;
      return;
    }
  }
  if (ex->fb) {
    if (st == 0) ex->source = CLINK_SOURCE_PRIMARY;
    clink__fallback_count_end(ex->fb, ex->source, st,
                              st == 0 ? CLINK_FAILURE_NONE
                                      : clink_failure_classify(ex->last_error, NULL),
                              0);
  }
  report_now(ex, st);
}

static void on_timer(uv_timer_t *t) {
  clink_exec *ex = t->data;
  if (ex->reported || ex->in_chain) return;
  if (ex->cancelled || ex->phase == PHASE_FINISHING)
    report(ex);
  else if (ex->phase == PHASE_WAITING)
    start_attempt(ex);
}

int clink_execute(clink_exec **out, uv_loop_t *loop, clink_breaker *breaker,
                  const clink_retry_policy *policy, clink_exec_op op, clink_exec_cb done,
                  void *ud) {
  return clink_execute_with_fallback(out, loop, breaker, policy, NULL, NULL, op, done, ud);
}

int clink_execute_with_fallback(clink_exec **out, uv_loop_t *loop, clink_breaker *breaker,
                                const clink_retry_policy *policy, clink_fallback *fb,
                                const char *request, clink_exec_op op, clink_exec_cb done,
                                void *ud) {
  if (out == NULL || loop == NULL || op == NULL || (fb && request == NULL)) return UV_EINVAL;
  clink_exec *ex = clink__calloc(1, sizeof(*ex));
  if (ex == NULL) return UV_ENOMEM;
  if (fb && (ex->request = clink__strdup(request)) == NULL) {
    clink__free(ex);
    return UV_ENOMEM;
  }
  ex->fb = fb;
  if (policy) {
    int rc = clink_retry_new(&ex->retry, policy, 0);
    if (rc != 0) {
      clink__free(ex->request);
      clink__free(ex);
      return rc;
    }
    clink_retry_begin(ex->retry, uv_now(loop));
  }
  ex->loop = loop;
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
    if (ex->fb && ex->answer) {
      clink__cache_key k;
      clink__cache_key_init(&k, ex->fb->operation, NULL, NULL, ex->request);
      clink__fallback_store(ex->fb, &k, ex->answer, ex->answer_len, now);
    }
    finish(ex, 0);
    return;
  }
  retry_or_finish(ex, status, server_delay_ms);
}

int clink_exec_cancel(clink_exec *ex) {
  if (ex == NULL) return UV_EINVAL;
  if (ex->cancelled || ex->reported || ex->phase == PHASE_FINISHING || ex->in_chain)
    return UV_EBUSY;
  ex->cancelled = 1;
  ex->result = UV_ECANCELED;
  uv_timer_start(&ex->timer, on_timer, 0, 0);
  return 0;
}

unsigned int clink_exec_attempts(const clink_exec *ex) { return ex ? ex->attempts : 0; }
int clink_exec_last_error(const clink_exec *ex) { return ex ? ex->last_error : 0; }

int clink_exec_set_answer(clink_exec *ex, const char *text) {
  if (ex == NULL || ex->phase != PHASE_RUNNING) return UV_EINVAL;
  char *copy = clink__strdup(text ? text : "");
  if (copy == NULL) return UV_ENOMEM;
  clink__free(ex->answer);
  ex->answer = copy;
  ex->answer_len = strlen(copy);
  return 0;
}

const char *clink_exec_answer(const clink_exec *ex, size_t *len) {
  if (ex && ex->chain) return clink_ask_answer(ex->chain, len);
  if (ex && ex->source == CLINK_SOURCE_PRIMARY && ex->answer) {
    if (len) *len = ex->answer_len;
    return ex->answer;
  }
  if (len) *len = 0;
  return "";
}

clink_source clink_exec_source(const clink_exec *ex) {
  return ex ? ex->source : CLINK_SOURCE_NONE;
}
