/* clink_pool's shutdown: stop accepting, then close members in batches (the
 * seed's 10 per batch, 15 s per process, 30 s per batch); a second call
 * closes everything at once. */
#include "pool/pool-int.h"

void clink__pool_shutdown_progress(clink_pool *p) {
  if (!p->closing || p->finishing) return;
  uint64_t now = pool_now(p);
  if (p->immediate) {
    while (p->live) clink__pool_close_member(p, p->live, CLINK_POOL_CLOSE_SHUTDOWN);
    clink__pool_rearm_house(p); /* no deadline left: the members' own handles hold the loop */
    return;
  }
  /* Members nobody can use any more go at once. */
  for (pool_member *m = p->live, *next; m; m = next) {
    next = m->next;
    if (m->st == M_STARTING || m->st == M_VALIDATING)
      clink__pool_close_member(p, m, CLINK_POOL_CLOSE_SHUTDOWN);
  }
  int drained = p->n_in_use == 0 || now >= p->drain_deadline;
  if (p->batch_inflight) {
    if (now < p->batch_deadline) {
      clink__pool_rearm_house(p);
      return;
    }
    /* The batch's time is up: its members still closing no longer hold the
     * next one back, nor count against it. */
    clink__pool_log(p, CLINK_LOG_WARNING, "session_shutdown_timeout",
                    "a shutdown batch outlived its time", p->batch_inflight);
    p->batch_gen++;
    p->batch_inflight = 0;
  }
  if (p->n_idle == 0 && !(drained && p->n_in_use)) {
    clink__pool_rearm_house(p);
    return;
  }
  /* The next batch: idle members, then (past the drain deadline) the ones
   * still checked out. */
  p->batch_gen++;
  p->batch_inflight = 0;
  while (p->batch_inflight < p->cfg.batch && p->n_idle) {
    pool_member *m = IDLE_AT(p, p->n_idle - 1);
    m->batch_gen = p->batch_gen;
    clink__pool_close_member(p, m, CLINK_POOL_CLOSE_SHUTDOWN);
    p->batch_inflight++;
  }
  for (pool_member *m = p->live, *next; m && drained && p->batch_inflight < p->cfg.batch;
       m = next) {
    next = m->next;
    if (m->st != M_IN_USE) continue;
    m->batch_gen = p->batch_gen;
    clink__pool_close_member(p, m, CLINK_POOL_CLOSE_SHUTDOWN);
    p->batch_inflight++;
  }
  p->batch_deadline = clink__deadline(now, p->cfg.per_batch_ms);
  /* Whoever called (a release, a member's close, a connect) may not rearm. */
  clink__pool_rearm_house(p);
}

static void on_pool_handle_closed(uv_handle_t *h) {
  clink_pool *p = h->data;
  if (--p->handles_open > 0) return;
  clink__pool_emit(p, CLINK_POOL_EVENT_SHUTDOWN, NULL, p->immediate ? "immediate" : "drain");
  if (p->close_cb) p->close_cb(p, p->close_ud);
  clink__pool_free(p);
}

void clink__pool_maybe_finish(clink_pool *p) {
  if (!p->closing || p->finishing || p->in_kick || p->kick_pending) return;
  if (p->n_live || p->n_closing || p->doneq.head || p->waitq.head || p->valq.head) return;
  p->finishing = 1;
  uv_close((uv_handle_t *)&p->kick, on_pool_handle_closed);
  uv_close((uv_handle_t *)&p->house, on_pool_handle_closed);
}

int clink_pool_shutdown(clink_pool *p, clink_pool_shutdown_mode mode, clink_pool_close_cb cb,
                        void *ud) {
  if (p == NULL || (mode != CLINK_POOL_DRAIN && mode != CLINK_POOL_IMMEDIATE))
    return UV_EINVAL;
  if (p->closing) {
    /* A second request: everything goes now (its cb is not used). */
    if (!p->finishing && !p->immediate) {
      p->immediate = 1;
      clink__pool_shutdown_progress(p);
      clink__pool_kick(p);
      clink__pool_rearm_house(p);
    }
    return UV_EALREADY;
  }
  p->closing = 1;
  p->immediate = mode == CLINK_POOL_IMMEDIATE;
  p->close_cb = cb;
  p->close_ud = ud;
  uv_update_time(p->loop);
  p->drain_deadline = clink__deadline(pool_now(p), p->cfg.per_batch_ms);
  p->replace_pending = p->retire_pending = 0;
  /* Waiters and pings in flight fail; assigned results not yet delivered
   * fail too, their members go back to be drained. */
  while (p->waitq.head) {
    pool_req *r = p->waitq.head;
    clink__pool_wait_remove(p, r);
    clink__pool_complete(p, r, CLINK_ECLOSING, NULL, 0);
  }
  while (p->valq.head) {
    pool_req *r = p->valq.head;
    clink__rl_remove(&p->valq, r);
    r->m->req = NULL;
    clink__pool_complete(p, r, CLINK_ECLOSING, NULL, 0);
  }
  for (pool_req *r = p->doneq.head; r; r = r->next) {
    if (r->status == 0 && r->m && r->m->st == M_IN_USE) {
      clink__pool_set_mstate(p, r->m, M_IDLE);
      r->m = NULL;
      r->status = CLINK_ECLOSING;
    }
  }
  clink__pool_shutdown_progress(p);
  clink__pool_kick(p);
  clink__pool_rearm_house(p);
  return 0;
}
