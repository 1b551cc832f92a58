/* The ready-made deliver function: one clink_ask() per attempt (acquire
 * with the message's session id under the pool's breaker, one turn, the
 * answer, release). No retry inside the call and no fallback: the outbox
 * retries with its own backoff, and a cached or mock answer is no delivery.
 * Uses only the public API. */
#include "outbox/outbox.h"

/* Failures a later attempt cannot fix: the request or the setup is wrong. */
#define FINAL_FAILURES                                                            \
  (CLINK_FAILURE_API_REJECTED | CLINK_FAILURE_CONTEXT_OVERFLOW | CLINK_FAILURE_TURN | \
   CLINK_FAILURE_CONFIG)

static void on_answer(clink_ask_call *ask, int status, void *ud) {
  clink_outbox_delivery *d = ud;
  if (status == 0) {
    /* Only UV_ENOMEM can refuse, and then d is untouched: report the
     * failure without text instead (no allocation beyond the request). */
    if (clink_outbox_delivery_done(d, 0, clink_ask_answer(ask, NULL)) != 0)
      clink_outbox_delivery_done(d, UV_ENOMEM, NULL);
    return;
  }
  const char *text = clink_ask_error_text(ask);
  if (text == NULL || text[0] == '\0') text = clink_strerror(status);
  int rc = clink_ask_failure(ask) & FINAL_FAILURES
               ? clink_outbox_delivery_reject(d, status, text)
               : clink_outbox_delivery_done(d, status, text);
  if (rc != 0) clink_outbox_delivery_done(d, status, NULL);
}

static void deliver_via_pool(clink_outbox *ob, clink_outbox_delivery *d, void *ud) {
  const clink_outbox_msg *m = clink_outbox_delivery_msg(d);
  int rc = clink_ask(NULL, ud, clink_outbox_msg_session_id(m), clink_outbox_msg_prompt(m),
                     ob->ask_opts, on_answer, d);
  if (rc != 0) clink_outbox_delivery_done(d, rc, clink_strerror(rc));
}

int clink_outbox_deliver_via_pool(clink_outbox *ob, clink_pool *pool) {
  if (ob == NULL || pool == NULL) return UV_EINVAL;
  if (ob->ask_opts == NULL) {
    /* One attempt per delivery, no fallback: the outbox's backoff retries. */
    int rc = clink_ask_options_new(&ob->ask_opts);
    if (rc == 0) rc = clink_ask_options_set_retry_policy(ob->ask_opts, NULL);
    if (rc != 0) {
      clink_ask_options_free(ob->ask_opts);
      ob->ask_opts = NULL;
      return rc;
    }
  }
  return clink_outbox_set_deliver(ob, deliver_via_pool, pool);
}
