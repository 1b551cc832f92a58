/* clink_ask's primary path: a turn on a pool (acquire, breaker permit,
 * query, interrupt), the breaker's verdict, retries, and the way to the chain;
 * pool steps of the chain run their turns here too. */
#include <uv.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "fallback/ask-int.h"
#include "fallback/fallback-int.h"

#define ASK_WHERE "clink_ask"

/* ------------------------------------------------------------------- turns */

static void text_append(clink_ask_call *a, const char *t) {
  size_t n = t ? strlen(t) : 0;
  if (n == 0 || a->text_oom) return;
  if (a->text_len + n + 1 > a->text_cap) {
    size_t cap = a->text_cap * 2;
    while (cap < a->text_len + n + 1) cap *= 2;
    char *p = a->text == a->inline_text ? malloc(cap) : realloc(a->text, cap);
    if (p == NULL) {
      a->text_oom = 1;
      return;
    }
    if (a->text == a->inline_text) memcpy(p, a->text, a->text_len + 1);
    a->text = p;
    a->text_cap = cap;
  }
  memcpy(a->text + a->text_len, t, n + 1);
  a->text_len += n;
}

static void release_member(clink_ask_call *a) {
  if (a->member && a->member_out) {
    a->member_out = 0;
    clink_pool_release(a->t_pool, a->member);
  }
}

/* The breaker's verdict on a finished turn. */
static void settle_permit(clink_ask_call *a, int status, clink_failure_class k) {
  if (!a->permit_held) return;
  a->permit_held = 0;
  uint64_t now = uv_now(a->loop);
  uint64_t took = now - a->t_started;
  if (a->t_abandoned || k == CLINK_FAILURE_NONE) {
    if (status == 0)
      clink_breaker_on_success(a->t_breaker, a->permit, now, took);
    else
      clink_breaker_release(a->t_breaker, a->permit);
  } else if (k & (CLINK_FAILURE_PROCESS | CLINK_FAILURE_STALLED | CLINK_FAILURE_API_RETRYABLE)) {
    clink_breaker_on_error(a->t_breaker, a->permit, now, took);
  } else if (k & (CLINK_FAILURE_API_REJECTED | CLINK_FAILURE_CONTEXT_OVERFLOW |
                  CLINK_FAILURE_TURN)) {
    clink_breaker_on_success(a->t_breaker, a->permit, now, took);
  } else {
    clink_breaker_release(a->t_breaker, a->permit);
  }
}

static void turn_failed(clink_ask_call *a, int err, const clink_msg *result);
static void turn_succeeded(clink_ask_call *a, const clink_msg *result);

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  (void)c;
  clink_ask_call *a = ud;
  if (a->t_abandoned || a->ending) return;
  if (clink_msg_get_kind(m) == CLINK_MSG_ASSISTANT)
    for (size_t i = 0; i < clink_msg_block_count(m); i++)
      if (clink_msg_block_kind(m, i) == CLINK_BLOCK_TEXT) text_append(a, clink_msg_block_text(m, i));
  if (a->msg_cb) a->msg_cb(a, m, a->ud);
}

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  clink_ask_call *a = ud;
  a->pending--;
  a->in_turn = 0;
  clink_failure_class k = clink_failure_classify(status, result);
  settle_permit(a, status, k);
  if (a->t_abandoned) {
    release_member(a);
    clink__ask_maybe_free(a);
    return;
  }
  if (status != 0 && a->ph == PH_PRIMARY) {
    /* Read before the release: the member may be closed by it. */
    const char *why = NULL;
    if (status == CLINK_ETURN_FAILED && result) why = clink_msg_result_text(result);
    if (why == NULL || why[0] == '\0') why = clink_client_last_error(c);
    if (why && why[0]) {
      clink__free(a->err_text);
      a->err_text = clink__strdup(why);
    }
  }
  release_member(a);
  if (status == 0)
    turn_succeeded(a, result);
  else
    turn_failed(a, status, result);
}

static void got_member(clink_ask_call *a, clink_client *c) {
  a->member = c;
  a->member_out = 1;
  if (a->t_breaker) {
    uint64_t retry_after = 0;
    int rc = clink_breaker_acquire(a->t_breaker, uv_now(a->loop), &a->permit, &retry_after);
    if (rc != 0) {
      release_member(a);
      turn_failed(a, rc, NULL);
      return;
    }
    a->permit_held = 1;
  }
  a->t_started = uv_now(a->loop);
  int rc = clink_client_query(c, a->prompt, on_message, on_turn, a);
  if (rc != 0) {
    if (a->permit_held) {
      a->permit_held = 0;
      clink_breaker_release(a->t_breaker, a->permit);
    }
    release_member(a);
    turn_failed(a, rc, NULL);
    return;
  }
  a->in_turn = 1;
  a->pending++;
}

static void on_acquired(clink_pool *pool, int status, clink_client *c, uint64_t retry_after_ms,
                        void *ud) {
  (void)retry_after_ms;
  clink_ask_call *a = ud;
  a->pending--;
  a->acquiring = 0;
  if (a->t_abandoned) {
    if (status == 0) clink_pool_release(pool, c);
    clink__ask_maybe_free(a);
    return;
  }
  if (status != 0)
    turn_failed(a, status, NULL);
  else
    got_member(a, c);
}

/* One turn on pool (the primary or a pool step). Failures known at once go
 * to turn_failed() like the others. */
void clink__ask_start_turn(clink_ask_call *a, clink_pool *pool, clink_breaker *breaker,
                           const char *session_id, clink_source source) {
  a->t_pool = pool;
  a->t_breaker = breaker;
  a->t_source = source;
  a->source = source;
  a->member = NULL;
  a->member_out = a->permit_held = a->t_abandoned = 0;
  a->text_len = 0;
  a->text_oom = 0;
  a->text[0] = '\0';
  clink_client *c = NULL;
  int rc = session_id ? UV_EAGAIN : clink_pool_try_acquire(pool, &c);
  if (rc == 0) {
    got_member(a, c);
    return;
  }
  if (rc == UV_EAGAIN) rc = clink_pool_acquire(pool, session_id, ASK_WHERE, on_acquired, a);
  if (rc != 0) {
    turn_failed(a, rc, NULL);
    return;
  }
  a->acquiring = 1;
  a->pending++;
}

/* Lets go of the turn in progress (deadline, cancel). */
static void on_interrupted(clink_client *c, int status, const clink_msg *response, void *ud) {
  (void)c;
  (void)response;
  clink_ask_call *a = ud;
  a->pending--;
  /* No answer: the turn may never end; the pool closes a member given back
   * with its turn running. */
  if (status != 0 && a->in_turn) release_member(a);
  clink__ask_maybe_free(a);
}

void clink__ask_abandon_turn(clink_ask_call *a) {
  if (!a->acquiring && !a->in_turn) return;
  a->t_abandoned = 1;
  if (a->in_turn) {
    if (clink_client_interrupt(a->member, on_interrupted, a) == 0)
      a->pending++;
    else
      release_member(a);
  }
}

void clink__ask_start_attempt(clink_ask_call *a) {
  a->attempts++;
  clink__ask_start_turn(a, a->pool, a->breaker, a->session_id, CLINK_SOURCE_PRIMARY);
}

/* ------------------------------------------------------------------ outcome */

/* The last failed primary attempt's result (none when it had none). */
static void keep_result(clink_ask_call *a, const clink_msg *result) {
  clink_msg_unref(a->result_ref);
  a->result_ref = result ? clink_msg_ref(result) : NULL;
}

/* The primary path gave up with err: to the chain (from the loop). */
static void go_chain(clink_ask_call *a) {
  if (a->in_api)
    clink__ask_schedule(a, NX_CHAIN, 0);
  else
    clink__ask_enter_chain(a);
}

static int retry_proxy(clink_failure_class k) {
  switch (k) {
    case CLINK_FAILURE_PROCESS: return CLINK_EEXITED;
    case CLINK_FAILURE_STALLED: return UV_ETIMEDOUT;
    case CLINK_FAILURE_API_RETRYABLE: return UV_EAGAIN;
    default: return 0;
  }
}

static void primary_failed(clink_ask_call *a, int err, const clink_msg *result) {
  clink_failure_class k = clink_failure_classify(err, result);
  a->primary_err = err;
  a->klass = k;
  a->api_status = result ? clink_msg_result_api_error_status(result) : 0;
  keep_result(a, result);
  int proxy = retry_proxy(k);
  if (proxy != 0 && a->retry != NULL) {
    uint64_t now = uv_now(a->loop), delay = 0;
    if (clink_retry_next(a->retry, now, proxy, 0, &delay) == 0 &&
        clink__sat_add(now, delay) < a->deadline_at) {
      clink__ask_schedule(a, NX_ATTEMPT, delay);
      return;
    }
  }
  go_chain(a);
}

static void turn_failed(clink_ask_call *a, int err, const clink_msg *result) {
  if (a->ph == PH_PRIMARY) {
    primary_failed(a, err, result);
    return;
  }
  /* A pool step had no answer: the next step. */
  a->cur = NULL;
  if (a->in_api)
    clink__ask_schedule(a, NX_CHAIN, 0);
  else
    clink__ask_chain_next(a);
}

static void turn_succeeded(clink_ask_call *a, const clink_msg *result) {
  const char *rtext = result ? clink_msg_result_text(result) : NULL;
  if (a->text_len > 0 && !a->text_oom)
    clink__ask_set_answer(a, a->text, a->text_len);
  else
    clink__ask_set_answer(a, rtext, rtext ? strlen(rtext) : 0);
  a->result = result;
  a->answer_sid = result ? clink_msg_session_id(result) : NULL;
  a->status = 0;
  a->streamed = 1;
  if (a->ph == PH_PRIMARY) {
    a->source = CLINK_SOURCE_PRIMARY;
    a->primary_err = 0;
    a->klass = CLINK_FAILURE_NONE;
    if (a->retry) clink_retry_success(a->retry);
    if (a->has_key)
      clink__fallback_store(a->fb, &a->key, a->answer, a->answer_len, uv_now(a->loop));
  } else {
    a->source = a->t_source;
    clink__fallback_event_used(a->fb, a->sink, a->cur->strategy, a->primary_err, a->klass,
                               a->attempts);
    a->cur = NULL;
  }
  a->ending = 1;
  clink__ask_report(a);
}
