/* clink_pool: acquire, release, and what connects them (the wait queue,
 * validation, selection, planning and the delivery of results). */
#include "base/rand.h"
#include "pool/pool-int.h"

/* -------------------------------------------------------- wait queue */

void clink__pool_wait_remove(clink_pool *p, pool_req *r) {
  clink__rl_remove(&p->waitq, r);
  p->n_wait--;
  if (r->sid == NULL) p->n_wait_generic--;
  r->in = R_FREE;
}

void clink__pool_wait_add(clink_pool *p, pool_req *r, int front) {
  if (front)
    clink__rl_prepend(&p->waitq, r);
  else
    clink__rl_append(&p->waitq, r);
  r->in = R_WAIT;
  r->waited = 1;
  p->n_wait++;
  if (r->sid == NULL) p->n_wait_generic++;
}

/* The request's result goes to the completion queue, flushed from the loop. */
void clink__pool_complete(clink_pool *p, pool_req *r, int status, pool_member *m,
                          uint64_t retry_after) {
  r->status = status;
  r->m = m;
  r->retry_after = retry_after;
  r->in = R_DONE;
  clink__rl_append(&p->doneq, r);
  clink__pool_kick(p);
}

void clink__pool_fail_waiter(clink_pool *p, const char *sid, int status, uint64_t retry_after) {
  for (pool_req *r = p->waitq.head; r; r = r->next) {
    if ((sid == NULL) != (r->sid == NULL)) continue;
    if (sid && strcmp(sid, r->sid) != 0) continue;
    clink__pool_wait_remove(p, r);
    clink__pool_complete(p, r, status, NULL, retry_after);
    return;
  }
}

/* ------------------------------------------------------------ handing out */

static void assign(clink_pool *p, pool_req *r, pool_member *m) {
  clink__pool_set_mstate(p, m, M_IN_USE);
  clink__pool_complete(p, r, 0, m, 0);
}

static int member_stale(const clink_pool *p, const pool_member *m, uint64_t now) {
  return now - m->idle_since_ms > p->cfg.validate_after_ms;
}

static void on_ping(clink_client *c, int status, const clink_msg *response, void *ud);

/* Pings m for r; 0, or the member is closed and the caller picks again. */
static int validate(clink_pool *p, pool_member *m, pool_req *r) {
  clink__pool_set_mstate(p, m, M_VALIDATING);
  m->req = r;
  r->m = m;
  r->in = R_VALIDATING;
  clink__rl_append(&p->valq, r);
  int rc = clink_client_ping(m->c, p->cfg.validate_timeout_ms, on_ping, m);
  if (rc != 0) {
    m->req = NULL;
    r->m = NULL;
    clink__rl_remove(&p->valq, r);
    r->in = R_FREE;
    clink__pool_close_member(p, m, CLINK_POOL_CLOSE_VALIDATION);
    clink__pool_kick(p);
  }
  return rc;
}

static void on_ping(clink_client *c, int status, const clink_msg *response, void *ud) {
  pool_member *m = ud;
  clink_pool *p = m->pool;
  (void)response;
  pool_req *r = m->req;
  m->req = NULL;
  if (r) {
    clink__rl_remove(&p->valq, r);
    r->in = R_FREE;
    r->m = NULL;
  }
  int ok = status == 0 && clink_client_get_state(c) == CLINK_CLIENT_CONNECTED;
  if (m->st == M_VALIDATING && !ok) clink__pool_close_member(p, m, CLINK_POOL_CLOSE_VALIDATION);
  if (m->st != M_VALIDATING) {
    /* Closed: the acquire waits again (first in line). */
    if (r) {
      if (p->closing)
        clink__pool_complete(p, r, CLINK_ECLOSING, NULL, 0);
      else
        clink__pool_wait_add(p, r, 1);
    }
    clink__pool_kick(p);
    clink__pool_rearm_house(p);
    return;
  }
  m->idle_since_ms = pool_now(p);
  if (r && !p->closing) {
    assign(p, r, m);
  } else {
    if (r) clink__pool_complete(p, r, CLINK_ECLOSING, NULL, 0);
    clink__pool_offer(p, m);
  }
}

/* May m serve an acquire that names no conversation? */
static int serves_generic(const clink_pool *p, const pool_member *m) {
  return !p->cfg.isolation || clink__pool_member_fresh(m);
}

/* Isolation: the best member holding no conversation (a scan: members
 * with history sit among the idle ones). Recently validated first, as
 * pick_idle(). */
static pool_member *pick_fresh(clink_pool *p, int allow_stale, uint64_t now) {
  pool_member *best = NULL, *stale = NULL;
  for (uint32_t k = 0; k < p->n_idle; k++) {
    uint32_t s = p->idle_slot[k];
    pool_member *m = p->slot_member[s];
    if (!clink__pool_member_fresh(m)) continue;
    if (p->cfg.validate_after_ms != CLINK__NEVER &&
        now - p->slot_idle_since[s] > p->cfg.validate_after_ms) {
      if (stale == NULL) stale = m;
    } else if (best == NULL || p->slot_score[s] < p->slot_score[best->slot]) {
      best = m;
    }
  }
  return best ? best : allow_stale ? stale : NULL;
}

static uint32_t count_fresh_idle(const clink_pool *p) {
  uint32_t n = 0;
  for (uint32_t k = 0; k < p->n_idle; k++) n += (uint32_t)clink__pool_member_fresh(IDLE_AT(p, k));
  return n;
}

/* An idle member by power of two choices over the cached scores. With
 * allow_stale, a member due for validation may come back (the caller pings
 * it); without, only fresh ones. NULL when none fits. */
static pool_member *pick_idle(clink_pool *p, int allow_stale, uint64_t now) {
  uint32_t n = p->n_idle;
  if (n == 0) return NULL;
  if (p->cfg.isolation) return pick_fresh(p, allow_stale, now);
  size_t i, j;
  clink__pool_p2c(clink__splitmix64(&p->rng), n, &i, &j);
  uint32_t a = p->idle_slot[i], b = p->idle_slot[j];
  uint64_t after = p->cfg.validate_after_ms;
  if (after != CLINK__NEVER) {
    int sa = now - p->slot_idle_since[a] > after, sb = now - p->slot_idle_since[b] > after;
    if (sa && !sb) return p->slot_member[b];
    if (sb && !sa) return p->slot_member[a];
    if (sa && sb && !allow_stale) {
      for (uint32_t k = 0; k < n; k++)
        if (now - p->slot_idle_since[p->idle_slot[k]] <= after) return IDLE_AT(p, k);
      return NULL;
    }
  }
  return p->slot_member[p->slot_score[b] < p->slot_score[a] ? b : a];
}

static pool_member *find_idle_sid(clink_pool *p, const char *sid) {
  for (uint32_t k = 0; k < p->n_idle; k++)
    if (clink__pool_member_matches(IDLE_AT(p, k), sid)) return IDLE_AT(p, k);
  return NULL;
}

/* Serves r from the idle members (a ping first when m is stale). 1 when r
 * is taken care of, 0 when nothing idle fits. */
static int serve_from_idle(clink_pool *p, pool_req *r, uint64_t now) {
  for (;;) {
    pool_member *m = r->sid ? find_idle_sid(p, r->sid) : pick_idle(p, 1, now);
    if (m == NULL) return 0;
    if (!member_stale(p, m, now)) {
      assign(p, r, m);
      return 1;
    }
    if (validate(p, m, r) == 0) return 1;
  }
}

/* A connected, healthy member nobody holds: the oldest waiter for its
 * conversation, else the oldest waiter for any member, else idle. */
void clink__pool_offer(clink_pool *p, pool_member *m) {
  pool_req *generic = NULL, *r = NULL;
  int any_ok = serves_generic(p, m);
  if (!p->closing && p->n_wait) {
    const char *sid = clink__pool_member_sid(m);
    for (pool_req *w = p->waitq.head; w; w = w->next) {
      if (w->sid == NULL) {
        if (generic == NULL && any_ok) generic = w;
        if (sid == NULL) break;
      } else if (sid && clink__pool_member_matches(m, w->sid)) {
        r = w;
        break;
      }
    }
    if (r == NULL) r = generic;
  }
  if (r) {
    clink__pool_wait_remove(p, r);
    assign(p, r, m);
    return;
  }
  clink__pool_set_mstate(p, m, M_IDLE);
  if (p->n_live > p->cfg.min_idle)
    clink__pool_arm_house_at(p, clink__deadline(m->idle_since_ms, p->cfg.idle_timeout_ms));
  /* Isolation: m holds a conversation; waiters for any member may need a
   * fresh one (room made by the planner), and min idle one more. */
  if (!any_ok && !p->closing) clink__pool_kick(p);
}

/* Makes room for a resuming process at max size: the worst idle member. */
static int evict_for_session(clink_pool *p) {
  if (p->n_idle == 0) return 0;
  pool_member *worst = IDLE_AT(p, 0);
  for (uint32_t k = 1; k < p->n_idle; k++)
    if (IDLE_AT(p, k)->score > worst->score) worst = IDLE_AT(p, k);
  clink__pool_close_member(p, worst, CLINK_POOL_CLOSE_REBALANCE);
  return 1;
}

/* Isolation at max size: acquires naming no conversation wait with no
 * start on its way, and the idle members all hold conversations. Closes
 * the least recently used of those to make room for fresh ones. */
static void evict_for_fresh(clink_pool *p) {
  uint32_t uncovered =
      p->n_wait_generic > p->n_starting_generic ? p->n_wait_generic - p->n_starting_generic : 0;
  while (uncovered && p->n_live >= p->cfg.max_size && !p->closing) {
    pool_member *lru = NULL;
    for (uint32_t k = 0; k < p->n_idle; k++) {
      pool_member *m = IDLE_AT(p, k);
      if (!clink__pool_member_fresh(m) && (lru == NULL || m->idle_since_ms < lru->idle_since_ms))
        lru = m;
    }
    if (lru == NULL) return;
    clink__pool_close_member(p, lru, CLINK_POOL_CLOSE_ISOLATION);
    uncovered--;
  }
}

/* Spawns for a waiting acquire r; on failure r completes with the error. */
static void spawn_for(clink_pool *p, pool_req *r) {
  uint64_t retry_after;
  int rc = clink__pool_spawn(p, r->sid, 0, &retry_after);
  if (rc != 0 && r->in == R_WAIT) {
    clink__pool_wait_remove(p, r);
    clink__pool_complete(p, r, rc, NULL, retry_after);
  }
}

/* Starts n generic processes; stops at the first failure (backing off).
 * Returns how many started. */
static uint32_t fill(clink_pool *p, uint32_t n, int replacing, uint64_t now) {
  uint32_t done = 0;
  uint64_t retry_after = 0;
  while (done < n && !p->closing) {
    if (clink__pool_spawn(p, NULL, replacing, &retry_after) != 0) {
      p->fill_retry_at =
          clink__deadline(now, retry_after ? retry_after : FILL_BACKOFF_MIN_MS);
      break;
    }
    done++;
  }
  return done;
}

/* Spawns what the waiters and min idle need. From the loop. */
static void plan(clink_pool *p) {
  if (p->closing) return;
  uint64_t now = pool_now(p);
  /* 1. Waiters that idle members can serve, in order. */
  for (pool_req *r = p->waitq.head, *next; r && p->n_idle; r = next) {
    next = r->next;
    /* With isolation, idle members holding conversations serve no one
     * generic: skip such a waiter instead of stopping at it. */
    int servable = r->sid ? find_idle_sid(p, r->sid) != NULL
                          : !p->cfg.isolation || count_fresh_idle(p) > 0;
    if (servable) {
      clink__pool_wait_remove(p, r);
      if (!serve_from_idle(p, r, now)) clink__pool_wait_add(p, r, 1);
      next = p->waitq.head; /* validation may have re-queued requests */
      if (next == r) break;
    }
  }
  /* 2. Conversations nobody holds: a process resuming each. */
  for (pool_req *r = p->waitq.head, *next; r && !p->closing; r = next) {
    next = r->next;
    if (r->sid == NULL || clink__pool_holder_exists(p, r->sid)) continue;
    if (p->n_live >= p->cfg.max_size && !evict_for_session(p)) break;
    spawn_for(p, r);
  }
  if (p->closing) return;
  /* 3. Generic starts, as the pure planner counts them; with isolation
   * only fresh idle members count, and room is made for them. */
  uint32_t idle = p->n_idle;
  if (p->cfg.isolation) {
    evict_for_fresh(p);
    idle = count_fresh_idle(p);
  }
  clink__pool_plan_in in = {idle,               p->n_live,          p->n_starting_generic,
                            p->n_wait_generic,  p->cfg.min_idle,    p->cfg.max_size,
                            p->replace_pending, p->retire_pending,  now >= p->fill_retry_at};
  clink__pool_plan_out out;
  clink__pool_plan(&in, &out);
  uint32_t n = fill(p, out.replace, 1, now);
  p->replace_pending -= n;
  if (n < out.replace) return;
  n = fill(p, out.retire, 0, now);
  p->retire_pending -= n;
  if (n < out.retire) return;
  for (uint32_t k = 0; k < out.for_waiters && !p->closing; k++) {
    /* The youngest uncovered waiter asked for this start. */
    pool_req *r = p->waitq.tail;
    while (r && r->sid) r = r->prev;
    if (r == NULL) break;
    spawn_for(p, r);
  }
  fill(p, out.for_min_idle, 0, now);
}

/* ------------------------------------------------------------ delivery */

static void record_wait(clink_pool *p, pool_req *r, uint64_t now_ns) {
  uint64_t us = (now_ns - r->start_ns) / 1000;
  p->st.wait_hist[clink__pool_wait_bucket(us, CLINK_POOL_WAIT_BUCKETS)]++;
  p->st.wait_total_us += us;
  if (us > p->st.wait_max_us) p->st.wait_max_us = us;
}

static void check_out(clink_pool *p, pool_member *m, const char *where, uint64_t now) {
  m->handed_out = 1;
  m->leak_reported = 0;
  if (where)
    memcpy(m->where, where, sizeof(m->where)); /* a request's bounded copy */
  else
    m->where[0] = '\0';
  m->checkout_ms = now;
  clink__pool_arm_house_at(p, clink__deadline(now, p->cfg.leak_ms));
  p->st.acquired++;
}

static void deliver(clink_pool *p) {
  uint64_t now_ns = uv_hrtime();
  pool_req *r;
  while ((r = p->doneq.head) != NULL) {
    clink__rl_remove(&p->doneq, r);
    pool_member *m = r->m;
    int status = r->status;
    if (status == 0) {
      if (m->st != M_IN_USE) {
        status = CLINK_ECLOSING; /* closed meanwhile (shutdown) */
        m = NULL;
      } else if (clink_client_get_state(m->c) != CLINK_CLIENT_CONNECTED) {
        /* Died between assignment and delivery: wait again, first. */
        clink__pool_close_member(p, m, CLINK_POOL_CLOSE_DEAD);
        r->m = NULL;
        if (p->closing) {
          status = CLINK_ECLOSING;
          m = NULL;
        } else {
          clink__pool_wait_add(p, r, 1);
          clink__pool_kick(p);
          continue;
        }
      }
    }
    if (status == 0) {
      check_out(p, m, r->where, pool_now(p));
      if (r->waited)
        p->st.acquired_waited++;
      else
        p->st.acquired_idle++;
      record_wait(p, r, now_ns);
    } else if (status == CLINK_EPOOL_TIMEOUT) {
      p->st.timeouts++;
    } else {
      p->st.rejected++;
    }
    clink_acquire_cb cb = r->cb;
    void *ud = r->ud;
    uint64_t retry_after = r->retry_after;
    clink__req_put(&p->slab, r);
    cb(p, status, m ? m->c : NULL, retry_after, ud);
  }
}

static void on_kick(uv_idle_t *h) {
  clink_pool *p = h->data;
  if (!p->kick_pending) {
    /* The empty round after a flush. */
    uv_idle_stop(h);
    p->kick_active = 0;
    return;
  }
  p->kick_pending = 0;
  p->in_kick = 1;
  plan(p);
  deliver(p);
  if (p->closing) clink__pool_shutdown_progress(p);
  p->in_kick = 0;
  /* Deadlines only moved later (a timer firing early just recomputes), but
   * with nobody waiting any more the timer must not hold the loop. O(1). */
  if (!p->n_wait && !p->valq.head && !p->closing) uv_unref((uv_handle_t *)&p->house);
  clink__pool_maybe_finish(p);
}

void clink__pool_kick(clink_pool *p) {
  if (p->kick_pending || p->finishing) return;
  p->kick_pending = 1;
  if (!p->kick_active) {
    p->kick_active = 1;
    uv_idle_start(&p->kick, on_kick);
  }
}

/* ------------------------------------------------------------------ API */

int clink_pool_try_acquire(clink_pool *p, clink_client **out) {
  if (p == NULL || out == NULL) return UV_EINVAL;
  if (p->closing) return CLINK_ECLOSING;
  if (p->n_idle == 0) return UV_EAGAIN;
  uint64_t now = pool_now(p);
  pool_member *m = pick_idle(p, 0, now);
  if (m == NULL) return UV_EAGAIN;
  clink__pool_set_mstate(p, m, M_IN_USE);
  check_out(p, m, NULL, now);
  p->st.acquired_idle++;
  p->st.wait_hist[0]++;
  *out = m->c;
  return 0;
}

int clink_pool_acquire(clink_pool *p, const char *sid, const char *where, clink_acquire_cb cb,
                       void *ud) {
  if (p == NULL || cb == NULL || (sid && sid[0] == '\0')) return UV_EINVAL;
  if (p->closing) return CLINK_ECLOSING;
  pool_req *r = clink__req_get(&p->slab);
  if (r == NULL) return UV_ENOMEM;
  if (clink__req_set(r, sid, where) != 0) {
    clink__req_put(&p->slab, r);
    return UV_ENOMEM;
  }
  r->cb = cb;
  r->ud = ud;
  r->start_ns = uv_hrtime();
  uint64_t now = pool_now(p);
  /* The timeout also bounds a validation ping and the wait after it. */
  r->deadline_ms = clink__deadline(now, p->cfg.acquire_timeout_ms);
  if (serve_from_idle(p, r, now)) return 0;
  if (p->cfg.max_waiters && p->n_wait >= p->cfg.max_waiters) {
    clink__pool_complete(p, r, CLINK_EQUEUE_FULL, NULL, 0);
    return 0;
  }
  /* Deadlines count from now, not from a stale loop time. */
  uv_update_time(p->loop);
  r->deadline_ms = clink__deadline(pool_now(p), p->cfg.acquire_timeout_ms);
  clink__pool_wait_add(p, r, 0);
  if (sid) {
    if (!clink__pool_holder_exists(p, sid) &&
        (p->n_live < p->cfg.max_size || evict_for_session(p)))
      spawn_for(p, r);
  } else if (p->n_starting_generic < p->n_wait_generic && p->n_live < p->cfg.max_size) {
    spawn_for(p, r);
  } else if (p->cfg.isolation) {
    clink__pool_kick(p); /* the planner may make room (evict_for_fresh) */
  }
  if (r->in == R_WAIT) clink__pool_arm_house_at(p, r->deadline_ms);
  return 0;
}

int clink_pool_check_member_rss(clink_pool *p) {
  if (p == NULL) return UV_EINVAL;
  int n = clink__pool_check_rss(p);
  if (n) clink__pool_arm_house_at(p, pool_now(p)); /* the house retires them */
  return n;
}

int clink_pool_release(clink_pool *p, clink_client *c) {
  if (p == NULL || c == NULL) return UV_EINVAL;
  pool_member *m = clink__client_owner(c, &clink__pool_member_ops);
  if (m == NULL || m->pool != p || !m->handed_out) return UV_EINVAL;
  m->handed_out = 0;
  if (m->zombie) {
    clink__pool_unzombie(p, m); /* closed while held: gone now */
    return 0;
  }
  if (m->st == M_CLOSING) return 0; /* closing: freed when its close ends */
  uint64_t now = pool_now(p);
  uint64_t turns = clink__pool_member_turns(m);
  clink_client_state cs = clink_client_get_state(c);
  int why = -1;
  if (cs == CLINK_CLIENT_CLOSING || cs == CLINK_CLIENT_CLOSED)
    why = CLINK_POOL_CLOSE_USER;
  else if (cs != CLINK_CLIENT_CONNECTED)
    why = CLINK_POOL_CLOSE_DEAD;
  else if (clink_client_turns_pending(c))
    why = CLINK_POOL_CLOSE_UNHEALTHY;
  else if (p->cfg.max_turns && turns >= p->cfg.max_turns)
    why = CLINK_POOL_CLOSE_MAX_TURNS;
  else if (now >= m->expires_ms)
    why = CLINK_POOL_CLOSE_LIFETIME;
  else if (m->over_rss)
    why = CLINK_POOL_CLOSE_MEMORY;
  if (why >= 0) {
    clink__pool_close_member(p, m, (clink_pool_close_reason)why);
    if (p->closing) clink__pool_shutdown_progress(p);
    clink__pool_kick(p);
    return 0;
  }
  if (turns != m->turns_seen || now - m->score_at >= SCORE_REFRESH_MS) {
    m->score = clink__pool_member_score(m, now);
    m->score_at = now;
    if (turns != m->turns_seen && !p->turns_dirty) {
      /* Look for an outlier once the pool is quiet. */
      p->turns_dirty = 1;
      p->rebalance_at = clink__deadline(now, REBALANCE_PERIOD_MS);
      clink__pool_arm_house_at(p, p->rebalance_at);
    }
    m->turns_seen = turns;
  }
  m->idle_since_ms = now;
  if (p->closing) {
    clink__pool_set_mstate(p, m, M_IDLE);
    clink__pool_shutdown_progress(p);
    clink__pool_kick(p);
    return 0;
  }
  clink__pool_offer(p, m);
  return 0;
}
