/* clink_execute_with_fallback: clink_execute with an operation's fallback
 * chain after it, through clink_execute's extension point
 * (resilience/exec-int.h): a success stores the attempt's answer in the
 * chain's cache; a failure, when it would be reported, is held while the
 * chain runs (uv-ask.c, chain only), and done runs from the chain's
 * completion with its answer. */
#include <uv.h>

#include "base/internal.h"
#include "fallback/ask-int.h"
#include "fallback/fallback-int.h"
#include "resilience/exec-int.h"

typedef struct fbx {
  clink_fallback *fb;
  uv_loop_t *loop;
  char *answer; /* the attempt's (clink_exec_set_answer) */
  size_t answer_len;
  clink_ask_call *chain; /* during done after the chain */
  clink_source source;
  int status, err; /* the execution's status, and what failed */
  char request[];
} fbx;

static void fbx_free(void *ext) {
  fbx *x = ext;
  if (x == NULL) return;
  clink__free(x->answer);
  clink__free(x);
}

/* The chain ended: its answer, or the execution's own status when no step
 * handles the failure. */
static void on_chain_done(clink_ask_call *ask, int status, void *ud) {
  clink_exec *ex = ud;
  fbx *x = clink__exec_ext(ex);
  x->chain = ask;
  x->source = clink_ask_source(ask);
  clink__exec_finish(ex, status == x->err ? x->status : status);
  x->chain = NULL;
}

static int ending(clink_exec *ex, int status, void *ext) {
  fbx *x = ext;
  if (status == 0) {
    x->source = CLINK_SOURCE_PRIMARY;
    if (x->answer) {
      clink__cache_key k;
      clink__cache_key_init(&k, x->fb->operation, NULL, NULL, x->request);
      clink__fallback_store(x->fb, &k, x->answer, x->answer_len, uv_now(x->loop));
    }
    clink__fallback_count_end(x->fb, CLINK_SOURCE_PRIMARY, 0, CLINK_FAILURE_NONE, 0);
    return 0;
  }
  /* What failed: the last attempt's error when the policy gave up. */
  int err = status == CLINK_ERETRY_EXHAUSTED || status == CLINK_EBUDGET_EXHAUSTED
                ? clink_exec_last_error(ex)
                : status;
  if (status != UV_ECANCELED &&
      clink__ask_chain_only(NULL, x->loop, x->fb, x->request, err, clink_exec_attempts(ex),
                            on_chain_done, ex) == 0) {
    x->status = status;
    x->err = err;
    return 1;
  }
  clink__fallback_count_end(x->fb, CLINK_SOURCE_NONE, status, clink_failure_classify(err, NULL),
                            0);
  return 0;
}

static const clink__exec_hooks hooks = {ending, fbx_free};

int clink_execute_with_fallback(clink_exec **out, uv_loop_t *loop, clink_breaker *breaker,
                                const clink_retry_policy *policy, clink_fallback *fb,
                                const char *request, clink_exec_op op, clink_exec_cb done,
                                void *ud) {
  if (fb == NULL) return clink_execute(out, loop, breaker, policy, op, done, ud);
  if (out == NULL || loop == NULL || op == NULL || request == NULL) return UV_EINVAL;
  size_t n = strlen(request) + 1;
  fbx *x = clink__calloc(1, sizeof(*x) + n);
  if (x == NULL) return UV_ENOMEM;
  memcpy(x->request, request, n);
  x->fb = fb;
  x->loop = loop;
  int rc = clink__execute_ext(out, loop, breaker, policy, op, done, ud, &hooks, x);
  if (rc != 0) fbx_free(x);
  return rc;
}

int clink_exec_set_answer(clink_exec *ex, const char *text) {
  if (ex == NULL || !clink__exec_running(ex)) return UV_EINVAL;
  fbx *x = clink__exec_ext(ex);
  if (x == NULL) return 0; /* no fallback: nothing keeps it */
  char *copy = clink__strdup(text ? text : "");
  if (copy == NULL) return UV_ENOMEM;
  clink__free(x->answer);
  x->answer = copy;
  x->answer_len = strlen(copy);
  return 0;
}

const char *clink_exec_answer(const clink_exec *ex, size_t *len) {
  const fbx *x = clink__exec_ext(ex);
  if (x && x->chain) return clink_ask_answer(x->chain, len);
  if (x && x->source == CLINK_SOURCE_PRIMARY && x->answer) {
    if (len) *len = x->answer_len;
    return x->answer;
  }
  if (len) *len = 0;
  return "";
}

clink_source clink_exec_source(const clink_exec *ex) {
  const fbx *x = clink__exec_ext(ex);
  return x ? x->source : CLINK_SOURCE_NONE;
}
