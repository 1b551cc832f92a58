/* clink_pool's housekeeping timer: acquire and validation deadlines, leaks,
 * lifetimes, idle limits, rebalancing, fill retries and shutdown batches.
 * Every due it arms is one it consumes when it fires, so a past due never
 * re-arms itself at 0 ms forever. */
#include "monitor/procfs.h"
#include "pool/pool-int.h"

void clink__pool_arm_house_at(clink_pool *p, uint64_t due) {
  if (p->finishing || due == CLINK__NEVER) return;
  /* Even when an earlier due is armed (an unref'd housekeeping one): a
   * waiter or a shutdown must hold the loop until then. */
  if (p->n_wait || p->valq.head || p->closing) uv_ref((uv_handle_t *)&p->house);
  if (due >= p->house_due) return;
  p->house_due = due;
  uv_timer_start(&p->house, clink__pool_on_house, clink__until(due, pool_now(p)), 0);
}

static int retire_ok(const clink_pool *p) {
  /* Never close the last connected member on a timer while a successor can
   * be started first, or is starting (it counts towards max size). */
  return p->cfg.min_idle == 0 || p->n_idle + p->n_in_use + p->n_validating >= 2 ||
         (p->n_live >= p->cfg.max_size && p->n_starting == 0);
}

static void rebalance(clink_pool *p, uint64_t now) {
  if (now < p->rebalance_at) return;
  if (p->n_in_use || p->n_wait || p->n_starting || p->n_validating) {
    p->rebalance_at = clink__deadline(now, REBALANCE_PERIOD_MS); /* busy: later */
    return;
  }
  p->turns_dirty = 0;
  if (p->n_idle < 2) return;
  uint32_t n = p->n_idle;
  for (uint32_t k = 0; k < n; k++) {
    p->scratch_m[k] = IDLE_AT(p, k);
    p->scratch_score[k] = clink__pool_member_score(p->scratch_m[k], now);
    p->scratch_turns[k] = clink__pool_member_turns(p->scratch_m[k]);
  }
  size_t w = clink__pool_rebalance_pick(p->scratch_score, p->scratch_turns, n);
  if (w == SIZE_MAX) return;
  clink__pool_close_member(p, p->scratch_m[w], CLINK_POOL_CLOSE_REBALANCE);
  clink__pool_kick(p);
}

static void expire_requests(clink_pool *p, uint64_t now) {
  for (pool_req *r = p->waitq.head, *next; r; r = next) {
    next = r->next;
    if (r->deadline_ms <= now) {
      clink__pool_wait_remove(p, r);
      clink__pool_complete(p, r, CLINK_EPOOL_TIMEOUT, NULL, 0);
    }
  }
  for (pool_req *r = p->valq.head, *next; r; r = next) {
    next = r->next;
    if (r->deadline_ms <= now) {
      clink__rl_remove(&p->valq, r);
      r->m->req = NULL; /* the ping goes on; its member goes idle after */
      clink__pool_complete(p, r, CLINK_EPOOL_TIMEOUT, NULL, 0);
    }
  }
}

/* An idle member that must go (lifetime, memory): closed now, or, when it
 * is the last one, once a successor it asks for is connected. */
static void retire(clink_pool *p, pool_member *m, clink_pool_close_reason why) {
  if (retire_ok(p)) {
    clink__pool_close_member(p, m, why);
    clink__pool_kick(p);
  } else if (!m->retire_asked) {
    /* The last member: start its successor first. */
    m->retire_asked = 1;
    p->retire_pending++;
    clink__pool_kick(p);
  }
}

int clink__pool_check_rss(clink_pool *p) {
  if (p->cfg.max_rss_bytes == 0 || p->closing) return 0;
  int n = 0;
  for (uint32_t k = 0; k < p->n_idle; k++) {
    pool_member *m = IDLE_AT(p, k);
    int pid = clink_client_pid(m->c);
    uint64_t rss, vms;
    if (pid <= 0 || clink__proc_mem(pid, &rss, &vms) != 0 || rss <= p->cfg.max_rss_bytes)
      continue;
    m->over_rss = 1;
    n++;
  }
  return n;
}

/* Members past their lifetime or idle limit go; a leak is reported (the
 * only user callback here: the walk stops if it shut the pool down). */
static void expire_members(clink_pool *p, uint64_t now) {
  for (pool_member *m = p->live, *next; m && !p->closing; m = next) {
    next = m->next;
    if (m->st == M_IN_USE && m->handed_out && !m->leak_reported &&
        now >= clink__deadline(m->checkout_ms, p->cfg.leak_ms)) {
      m->leak_reported = 1;
      p->st.leaks++;
      clink__pool_emit(p, CLINK_POOL_EVENT_LEAK, m->c, m->where[0] ? m->where : "unknown");
      /* The callback may have released or closed anything: start over. */
      next = p->live;
      continue;
    }
    if (m->st != M_IDLE) continue;
    if (now >= m->expires_ms || m->over_rss) {
      retire(p, m, m->over_rss ? CLINK_POOL_CLOSE_MEMORY : CLINK_POOL_CLOSE_LIFETIME);
      continue;
    }
    if (p->n_live > p->cfg.min_idle &&
        now >= clink__deadline(m->idle_since_ms, p->cfg.idle_timeout_ms)) {
      clink__pool_close_member(p, m, CLINK_POOL_CLOSE_IDLE);
      clink__pool_kick(p);
    }
  }
}

void clink__pool_on_house(uv_timer_t *t) {
  clink_pool *p = t->data;
  p->house_due = CLINK__NEVER;
  uint64_t now = pool_now(p);
  expire_requests(p, now);
  if (!p->closing) {
    if (p->cfg.max_rss_bytes && p->cfg.rss_check_ms != CLINK__NEVER &&
        now >= p->rss_check_at) {
      clink__pool_check_rss(p);
      p->rss_check_at = clink__deadline(now, p->cfg.rss_check_ms);
    }
    expire_members(p, now);
    if (p->turns_dirty && !p->closing) rebalance(p, now);
    if (p->fill_retry_at && now >= p->fill_retry_at) clink__pool_kick(p);
  } else {
    clink__pool_shutdown_progress(p);
  }
  clink__pool_rearm_house(p);
  clink__pool_maybe_finish(p);
  /* Results and events of this tick: let a UV_RUN_ONCE return. */
  clink__pool_kick(p);
}

/* Recomputes the next deadline from scratch. */
void clink__pool_rearm_house(clink_pool *p) {
  if (p->finishing) return;
  uint64_t now = pool_now(p), due = CLINK__NEVER;
  for (pool_req *r = p->waitq.head; r; r = r->next) due = clink__earliest(due, r->deadline_ms);
  for (pool_req *r = p->valq.head; r; r = r->next) due = clink__earliest(due, r->deadline_ms);
  if (!p->closing) {
    for (pool_member *m = p->live; m; m = m->next) {
      if (m->st == M_IN_USE && m->handed_out && !m->leak_reported)
        due = clink__earliest(due, clink__deadline(m->checkout_ms, p->cfg.leak_ms));
      if (m->st != M_IDLE) continue;
      if (!m->retire_asked) due = clink__earliest(due, m->over_rss ? now : m->expires_ms);
      if (p->n_live > p->cfg.min_idle)
        due = clink__earliest(due, clink__deadline(m->idle_since_ms, p->cfg.idle_timeout_ms));
    }
    if (p->turns_dirty) due = clink__earliest(due, p->rebalance_at);
    if (p->cfg.max_rss_bytes && p->cfg.rss_check_ms != CLINK__NEVER)
      due = clink__earliest(due, p->rss_check_at);
    if (p->fill_retry_at > now) due = clink__earliest(due, p->fill_retry_at);
  } else if (!p->immediate) {
    /* When shutdown_progress() must run next. Every due here is one it
     * consumes: a past batch deadline ends the batch, a past drain deadline
     * closes the checked-out members. Arming a past due it would not act on
     * re-runs the timer at once, forever (libuv < 1.45 even runs it again
     * in the same pass, without polling: the loop hangs). */
    if (p->batch_inflight)
      due = clink__earliest(due, p->batch_deadline);
    else if (p->n_idle || (p->n_in_use && now >= p->drain_deadline))
      due = clink__earliest(due, now); /* a batch is due and has not started yet */
    if (p->n_in_use && p->drain_deadline > now)
      due = clink__earliest(due, p->drain_deadline);
  }
  if (due == CLINK__NEVER) {
    uv_timer_stop(&p->house);
    p->house_due = CLINK__NEVER;
    return;
  }
  p->house_due = due;
  uv_timer_start(&p->house, clink__pool_on_house, clink__until(due, now), 0);
  if (p->n_wait || p->valq.head || p->closing)
    uv_ref((uv_handle_t *)&p->house);
  else
    uv_unref((uv_handle_t *)&p->house);
}
