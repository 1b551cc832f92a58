/* The ready-made deliver function: one turn through a clink_pool per
 * attempt (acquire with the message's session id, query, collect the
 * assistant text, release). Uses only the public client and pool API. */
#include "outbox/outbox.h"

typedef struct pool_attempt {
  clink_outbox_delivery *d;
  clink_pool *pool;
  char *text;
  size_t len, cap;
  int oom;
} pool_attempt;

static void attempt_end(pool_attempt *a, int status, const char *response) {
  clink_outbox_delivery *d = a->d;
  /* Only UV_ENOMEM can refuse, and then d is untouched: report the failure
   * without text instead (that needs no allocation beyond the request). */
  if (clink_outbox_delivery_done(d, status, response) != 0)
    clink_outbox_delivery_done(d, status ? status : UV_ENOMEM, NULL);
  clink__free(a->text);
  clink__free(a);
}

static void append(pool_attempt *a, const char *t) {
  size_t n = strlen(t);
  if (a->oom || n == 0) return;
  if (a->len + n + 1 > a->cap) {
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + n + 1) cap *= 2;
    char *p = realloc(a->text, cap);
    if (p == NULL) {
      a->oom = 1;
      return;
    }
    a->text = p;
    a->cap = cap;
  }
  memcpy(a->text + a->len, t, n + 1);
  a->len += n;
}

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  pool_attempt *a = ud;
  if (clink_msg_get_kind(m) != CLINK_MSG_ASSISTANT) return;
  for (size_t i = 0; i < clink_msg_block_count(m); i++)
    if (clink_msg_block_kind(m, i) == CLINK_BLOCK_TEXT) append(a, clink_msg_block_text(m, i));
}

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  pool_attempt *a = ud;
  const char *rtext = result ? clink_msg_result_text(result) : NULL;
  char *err_text = NULL;
  if (status == CLINK_EEXITED || (status != 0 && status != CLINK_ETURN_FAILED))
    err_text = clink__strdup(clink_client_last_error(c)); /* before release */
  clink_pool_release(a->pool, c);
  if (status == 0 && a->oom) {
    attempt_end(a, UV_ENOMEM, "out of memory collecting the answer");
  } else if (status == 0) {
    attempt_end(a, 0, a->len > 0 ? a->text : (rtext ? rtext : ""));
  } else if (status == CLINK_ETURN_FAILED) {
    attempt_end(a, status, rtext ? rtext : clink_strerror(status));
  } else {
    attempt_end(a, status, err_text && *err_text ? err_text : clink_strerror(status));
  }
  clink__free(err_text);
}

static void on_acquired(clink_pool *pool, int status, clink_client *c, uint64_t retry_after_ms,
                        void *ud) {
  pool_attempt *a = ud;
  if (status != 0) {
    attempt_end(a, status, clink_strerror(status));
    return;
  }
  const clink_outbox_msg *m = clink_outbox_delivery_msg(a->d);
  int rc = clink_client_query(c, clink_outbox_msg_prompt(m), on_message, on_turn, a);
  if (rc != 0) {
    clink_pool_release(pool, c);
    attempt_end(a, rc, clink_strerror(rc));
  }
}

static void deliver_via_pool(clink_outbox *ob, clink_outbox_delivery *d, void *ud) {
  clink_pool *pool = ud;
  pool_attempt *a = clink__calloc(1, sizeof(*a));
  if (a == NULL) {
    clink_outbox_delivery_done(d, UV_ENOMEM, NULL);
    return;
  }
  a->d = d;
  a->pool = pool;
  const clink_outbox_msg *m = clink_outbox_delivery_msg(d);
  int rc = clink_pool_acquire(pool, clink_outbox_msg_session_id(m), "outbox delivery",
                              on_acquired, a);
  if (rc != 0) attempt_end(a, rc, clink_strerror(rc));
}

int clink_outbox_deliver_via_pool(clink_outbox *ob, clink_pool *pool) {
  if (ob == NULL || pool == NULL) return UV_EINVAL;
  return clink_outbox_set_deliver(ob, deliver_via_pool, pool);
}
