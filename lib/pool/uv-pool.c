/* clink_pool: creation, and the members' lives (start, owner notifications,
 * close, end). See pool-int.h for the design. */
#include <stdio.h>

#include "base/rand.h"
#include "monitor/events-int.h"
#include "pool/pool-int.h"
#include "spawn/options.h"

/* The structured twin of every pool event (copied by the sink: no user
 * code runs here). */
static void log_event(clink_pool *p, clink_pool_event ev, clink_client *c, const char *detail) {
  static const char *const names[] = {"session_created", "session_closed", "session_leak",
                                      "session_replaced", "pool_shutdown"};
  static const clink_log_level levels[] = {CLINK_LOG_INFO, CLINK_LOG_INFO, CLINK_LOG_WARNING,
                                           CLINK_LOG_INFO, CLINK_LOG_INFO};
  if ((unsigned)ev >= 5 || !clink__events_enabled(p->sink, levels[ev])) return;
  clink_event_field f[4] = {clink__f_int("pid", c ? clink_client_pid(c) : 0),
                            clink__f_str("session_id", c ? clink_client_session_id(c) : NULL),
                            clink__f_str("detail", detail),
                            clink__f_int("pool_size", p->n_live)};
  clink__events_emit(p->sink, levels[ev], "session_pool", names[ev], f, 4);
}

void clink__pool_emit(clink_pool *p, clink_pool_event ev, clink_client *c, const char *detail) {
  log_event(p, ev, c, detail);
  if (p->ev_cb) p->ev_cb(p, ev, c, detail, p->ev_ud);
}

void clink__pool_log(clink_pool *p, clink_log_level level, const char *event, const char *detail,
                     int64_t count) {
  if (!clink__events_enabled(p->sink, level)) return;
  clink_event_field f[3] = {clink__f_str("detail", detail), clink__f_int("count", count),
                            clink__f_int("pool_size", p->n_live)};
  clink__events_emit(p->sink, level, "session_pool", event, f, 3);
}

void clink_pool_set_events(clink_pool *p, clink_events *sink) {
  if (p == NULL) return;
  p->sink = sink;
  for (pool_member *m = p->live; m; m = m->next) clink_client_set_events(m->c, sink);
}

/* ----------------------------------------------------------- idle set */

static void idle_push(clink_pool *p, pool_member *m) {
  uint32_t s = m->slot;
  p->pos_of[s] = p->n_idle;
  p->idle_slot[p->n_idle++] = s;
  p->slot_score[s] = m->score;
  p->slot_idle_since[s] = m->idle_since_ms;
}

static void idle_remove(clink_pool *p, pool_member *m) {
  uint32_t i = p->pos_of[m->slot];
  uint32_t last = p->idle_slot[--p->n_idle];
  p->idle_slot[i] = last;
  p->pos_of[last] = i;
}

static void ml_insert(pool_member **head, pool_member *m) {
  m->prev = NULL;
  m->next = *head;
  if (*head) (*head)->prev = m;
  *head = m;
}

static void ml_remove(pool_member **head, pool_member *m) {
  if (m->prev)
    m->prev->next = m->next;
  else
    *head = m->next;
  if (m->next) m->next->prev = m->prev;
  m->prev = m->next = NULL;
}

void clink__pool_unzombie(clink_pool *p, pool_member *m) {
  ml_remove(&p->zombies, m);
  clink__pool_member_free(m);
}

/* Moves a member between states, keeping the counters. CLOSING is final. */
void clink__pool_set_mstate(clink_pool *p, pool_member *m, mstate to) {
  mstate from = m->st;
  if (from == to || from == M_CLOSING) return;
  switch (from) {
    case M_STARTING:
      p->n_starting--;
      if (m->resume_sid == NULL) p->n_starting_generic--;
      break;
    case M_IDLE: idle_remove(p, m); break;
    case M_IN_USE: p->n_in_use--; break;
    case M_VALIDATING: p->n_validating--; break;
    case M_CLOSING: break;
  }
  m->st = to;
  switch (to) {
    case M_STARTING:
      p->n_starting++;
      if (m->resume_sid == NULL) p->n_starting_generic++;
      break;
    case M_IDLE: idle_push(p, m); break;
    case M_IN_USE: p->n_in_use++; break;
    case M_VALIDATING: p->n_validating++; break;
    case M_CLOSING:
      p->free_slot[p->n_free_slots++] = m->slot;
      p->slot_member[m->slot] = NULL;
      p->n_live--;
      ml_remove(&p->live, m);
      ml_insert(&p->closing_list, m);
      p->n_closing++;
      break;
  }
}

/* ---------------------------------------------------------- read-outs */

const char *clink__pool_member_sid(const pool_member *m) {
  const char *s = clink_client_session_id(m->c);
  return s ? s : m->resume_sid;
}

int clink__pool_member_matches(const pool_member *m, const char *sid) {
  const char *s = clink_client_session_id(m->c);
  if (s && strcmp(s, sid) == 0) return 1;
  return m->resume_sid && strcmp(m->resume_sid, sid) == 0;
}

static clink_client_metrics member_metrics(const pool_member *m) {
  clink_client_metrics cm;
  cm.struct_size = sizeof(cm);
  if (clink_client_get_metrics(m->c, &cm) != 0) memset(&cm, 0, sizeof(cm));
  return cm;
}

uint64_t clink__pool_member_turns(const pool_member *m) { return clink_client_turns_done(m->c); }

int clink__pool_member_fresh(const pool_member *m) {
  return m->resume_sid == NULL && clink_client_turns_done(m->c) == 0;
}

double clink__pool_member_score(const pool_member *m, uint64_t now) {
  clink_client_metrics cm = member_metrics(m);
  clink__pool_health h;
  h.turn_ms_ewma = cm.turn_ms_ewma;
  h.turns_ok = cm.turns_ok;
  h.turns_failed = cm.turns_failed;
  h.age_ms = now - m->connected_ms;
  h.lifetime_ms = m->lifetime_ms == CLINK__NEVER ? 0 : m->lifetime_ms;
  return clink__pool_score(&h);
}

int clink__pool_holder_exists(const clink_pool *p, const char *sid) {
  for (const pool_member *m = p->live; m; m = m->next)
    if (clink__pool_member_matches(m, sid)) return 1;
  return 0;
}

/* ------------------------------------------------------------- closing */

void clink__pool_member_free(pool_member *m) {
  clink__client_disown(m->c); /* frees the client when its close finished */
  clink__free(m->resume_sid);
  clink__free(m);
}

void clink__pool_close_member(clink_pool *p, pool_member *m, clink_pool_close_reason why) {
  if (m->st == M_CLOSING) return;
  if (m->st == M_VALIDATING && m->req) {
    /* The acquire it was pinged for goes back to the front of the queue. */
    pool_req *r = m->req;
    m->req = NULL;
    r->m = NULL;
    clink__rl_remove(&p->valq, r);
    if (p->closing)
      clink__pool_complete(p, r, CLINK_ECLOSING, NULL, 0);
    else
      clink__pool_wait_add(p, r, 1);
    clink__pool_kick(p);
  }
  clink__pool_set_mstate(p, m, M_CLOSING);
  m->reason = why;
  if (!m->silent) {
    p->st.closed++;
    p->st.closed_by_reason[why]++;
  }
  /* UV_EBUSY when its holder closed it first: that close goes on. */
  (void)clink_client_close(m->c, NULL, NULL);
}

/* The owner link: a member's state changed (from the loop). */
static void on_member_state(void *ud, clink_client *c, clink_client_state from,
                            clink_client_state to) {
  pool_member *m = ud;
  clink_pool *p = m->pool;
  (void)c;
  (void)from;
  if (to == CLINK_CLIENT_CLOSING && m->st != M_CLOSING) {
    /* Its holder closed it: released and discarded. */
    clink__pool_close_member(p, m, CLINK_POOL_CLOSE_USER);
    if (p->closing) clink__pool_shutdown_progress(p);
    clink__pool_kick(p);
    return;
  }
  if (to != CLINK_CLIENT_ERROR && to != CLINK_CLIENT_RECOVERING) return;
  if (m->st != M_IDLE) return; /* others are handled where they are used */
  clink__pool_close_member(p, m, CLINK_POOL_CLOSE_DEAD);
  if (!p->closing) {
    p->replace_pending++;
    clink__pool_kick(p);
  }
}

/* The owner link: a member's close finished. */
static void on_member_closed(void *ud, clink_client *c) {
  pool_member *m = ud;
  clink_pool *p = m->pool;
  ml_remove(&p->closing_list, m);
  p->n_closing--;
  m->closed = 1;
  if (p->closing && m->batch_gen == p->batch_gen && p->batch_inflight > 0) p->batch_inflight--;
  /* The event first, with the client still there; the callback may release
   * it (then it is freed below) or shut the pool down. */
  if (!m->silent) clink__pool_emit(p, CLINK_POOL_EVENT_CLOSED, c, clink_pool_close_reason_name(m->reason));
  if (m->handed_out) {
    /* The user still holds the pointer: keep the client (closed) so that
     * releasing it stays legal until the pool is gone. */
    m->zombie = 1;
    m->next = p->zombies;
    m->prev = NULL;
    if (p->zombies) p->zombies->prev = m;
    p->zombies = m;
  } else {
    clink__pool_member_free(m);
  }
  if (p->closing) clink__pool_shutdown_progress(p);
  clink__pool_maybe_finish(p);
}

const clink__client_owner_ops clink__pool_member_ops = {on_member_state, on_member_closed};

/* ------------------------------------------------------------ spawning */

static void settle_permit(clink_pool *p, pool_member *m, int status, uint64_t now) {
  if (!m->permit_held || p->breaker == NULL) return;
  m->permit_held = 0;
  /* May run the breaker's event callback (user code): callers re-check. */
  if (status == UV_ECANCELED)
    clink_breaker_release(p->breaker, m->permit);
  else if (status == 0)
    clink_breaker_on_success(p->breaker, m->permit, now, now - m->spawn_ms);
  else
    clink_breaker_on_error(p->breaker, m->permit, now, now - m->spawn_ms);
}

static void on_member_connect(clink_client *c, int status, void *ud) {
  pool_member *m = ud;
  clink_pool *p = m->pool;
  uint64_t now = pool_now(p);
  settle_permit(p, m, status, now);
  if (m->st == M_CLOSING) return;
  if (status != 0) {
    char why[256] = "";
    if (status == UV_EMFILE || status == UV_ENFILE) clink__fd_headroom(1, why, sizeof(why));
    clink__pool_log(p, CLINK_LOG_WARNING, "session_create_failed",
                    why[0] ? why : clink_err_name(status), 1);
    p->fill_backoff = p->fill_backoff ? p->fill_backoff * 2 : FILL_BACKOFF_MIN_MS;
    if (p->fill_backoff > FILL_BACKOFF_MAX_MS) p->fill_backoff = FILL_BACKOFF_MAX_MS;
    p->fill_retry_at = clink__deadline(now, p->fill_backoff);
    if (m->replacing) p->replace_pending++;
    /* Valid until the member is freed, after its close. */
    const char *sid = m->resume_sid;
    clink__pool_close_member(p, m, CLINK_POOL_CLOSE_DEAD);
    if (sid) {
      if (!clink__pool_holder_exists(p, sid)) clink__pool_fail_waiter(p, sid, status, 0);
    } else if (p->n_wait_generic > p->n_starting_generic) {
      clink__pool_fail_waiter(p, NULL, status, 0);
    }
    clink__pool_kick(p);
    clink__pool_rearm_house(p);
    return;
  }
  p->fill_backoff = 0;
  p->fill_retry_at = 0;
  m->connected_ms = now;
  m->lifetime_ms = clink__pool_lifetime(p->cfg.lifetime_ms == CLINK__NEVER ? 0 : p->cfg.lifetime_ms,
                                        p->cfg.jitter_pct, clink__splitmix64(&p->rng));
  if (m->lifetime_ms == 0) m->lifetime_ms = CLINK__NEVER;
  m->expires_ms = clink__deadline(now, m->lifetime_ms);
  m->score = clink__pool_member_score(m, now);
  m->score_at = now;
  m->idle_since_ms = now;
  int replacing = m->replacing;
  m->replacing = 0;
  clink__pool_arm_house_at(p, m->expires_ms);
  if (p->cfg.max_rss_bytes && p->cfg.rss_check_ms != CLINK__NEVER)
    clink__pool_arm_house_at(p, p->rss_check_at);
  if (p->closing && p->immediate) {
    clink__pool_close_member(p, m, CLINK_POOL_CLOSE_SHUTDOWN);
  } else {
    clink__pool_offer(p, m);
  }
  /* An expired member waiting for a successor can go now. */
  for (pool_member *o = p->live; o; o = o->next)
    if (o->retire_asked) {
      clink__pool_arm_house_at(p, now);
      break;
    }
  if (p->closing) {
    clink__pool_shutdown_progress(p);
    clink__pool_kick(p);
  }
  /* Last: the callbacks may do anything, shutting the pool down included. */
  clink__pool_emit(p, CLINK_POOL_EVENT_SPAWNED, c, NULL);
  if (replacing && !p->finishing) clink__pool_emit(p, CLINK_POOL_EVENT_REPLACED, c, "dead");
}

int clink__pool_spawn(clink_pool *p, const char *resume, int replacing, uint64_t *retry_after) {
  uint64_t now = pool_now(p), permit = 0;
  *retry_after = 0;
  if (p->n_free_slots == 0) return UV_EBUSY; /* at max size: callers check first */
  if (p->breaker) {
    /* The breaker's callback may run here; the pool's state is consistent
     * (nothing is half done) and the callers re-check what they rely on. */
    int rc = clink_breaker_acquire(p->breaker, now, &permit, retry_after);
    if (rc != 0) return rc;
    if (p->closing || p->n_free_slots == 0) {
      clink_breaker_release(p->breaker, permit);
      return p->closing ? CLINK_ECLOSING : UV_EBUSY;
    }
  }
  pool_member *m = clink__calloc(1, sizeof(*m));
  clink_options *tmp = NULL;
  int rc = m ? 0 : UV_ENOMEM;
  if (rc == 0 && resume) {
    m->resume_sid = clink__strdup(resume);
    rc = m->resume_sid ? clink_options_dup(&tmp, p->opts) : UV_ENOMEM;
    if (rc == 0) rc = clink_options_set_resume(tmp, resume);
  }
  clink_client *c = NULL;
  if (rc == 0) rc = clink_client_new(&c, p->loop, tmp ? tmp : p->opts);
  clink_options_free(tmp);
  if (rc != 0) {
    if (p->breaker) clink_breaker_release(p->breaker, permit);
    if (m) clink__free(m->resume_sid);
    clink__free(m);
    return rc;
  }
  m->pool = p;
  m->c = c;
  m->slot = p->free_slot[--p->n_free_slots];
  p->slot_member[m->slot] = m;
  m->permit = permit;
  m->permit_held = p->breaker != NULL;
  m->replacing = replacing != 0;
  m->spawn_ms = now;
  m->expires_ms = CLINK__NEVER;
  m->lifetime_ms = CLINK__NEVER;
  clink_client_set_events(c, p->sink);
  clink__client_own(c, &clink__pool_member_ops, m);
  rc = clink__client_owner_connect(c, on_member_connect, m);
  /* Counted and listed either way: a failed member still needs its close. */
  m->st = M_STARTING;
  p->n_starting++;
  if (m->resume_sid == NULL) p->n_starting_generic++;
  p->n_live++;
  ml_insert(&p->live, m);
  if (rc != 0) {
    m->silent = 1;
    clink__pool_close_member(p, m, CLINK_POOL_CLOSE_DEAD);
    if (p->breaker) {
      m->permit_held = 0;
      clink_breaker_on_error(p->breaker, permit, now, 0);
    }
    return rc;
  }
  p->st.created++;
  return 0;
}

/* ------------------------------------------------------------ creation */

static void free_arrays(clink_pool *p) {
  clink__free(p->idle_slot);
  clink__free(p->pos_of);
  clink__free(p->free_slot);
  clink__free(p->slot_member);
  clink__free(p->slot_score);
  clink__free(p->slot_idle_since);
  clink__free(p->scratch_score);
  clink__free(p->scratch_turns);
  clink__free(p->scratch_m);
}

void clink__pool_free(clink_pool *p) {
  while (p->zombies) {
    pool_member *z = p->zombies;
    p->zombies = z->next;
    clink__pool_member_free(z);
  }
  clink__req_slab_free(&p->slab);
  free_arrays(p);
  clink_options_free(p->opts);
  clink__free(p);
}

/* A pool's profile names no conversation: each member would resume or fork
 * the same one. */
static int profile_ok(const clink_options *o) {
  return o->resume == NULL && o->session_id == NULL && !o->continue_conversation &&
         !o->fork_session;
}

int clink_pool_new(clink_pool **out, uv_loop_t *loop, const clink_options *opts,
                   const clink_pool_config *cfg) {
  if (out == NULL || loop == NULL || opts == NULL || !profile_ok(opts)) return UV_EINVAL;
  clink_pool_config defaults;
  if (cfg == NULL) {
    clink_pool_config *d;
    int rc = clink_pool_config_new(&d);
    if (rc != 0) return rc;
    defaults = *d;
    clink_pool_config_free(d);
    cfg = &defaults;
  }
  /* Refused at once rather than failing spawn by spawn later: each session
   * holds descriptors of the host for its whole life. */
  char why[256];
  if (clink__fd_headroom(cfg->max_size, why, sizeof(why)) != 0) return UV_EMFILE;
  clink_pool *p = clink__calloc(1, sizeof(*p));
  if (p == NULL) return UV_ENOMEM;
  p->loop = loop;
  p->cfg = *cfg;
  unsigned max = cfg->max_size;
  int rc = clink_options_dup(&p->opts, opts);
  if (rc == 0) {
    /* One member's close is bounded by the per-process deadline; a turn
     * still running when the pool closes its member is cancelled. */
    uint64_t half = cfg->per_process_ms == CLINK__NEVER ? CLINK__NEVER
                    : cfg->per_process_ms / 2 ? cfg->per_process_ms / 2 : 1;
    uint64_t eof = opts->eof_grace_ms < half ? opts->eof_grace_ms : half;
    uint64_t term = opts->term_grace_ms < half ? opts->term_grace_ms : half;
    rc = clink_options_set_close_grace_ms(p->opts, eof, term);
    if (rc == 0) rc = clink_options_set_close_turn_wait_ms(p->opts, 0);
  }
  if (rc == 0) {
    p->idle_slot = clink__calloc(max, sizeof(*p->idle_slot));
    p->pos_of = clink__calloc(max, sizeof(*p->pos_of));
    p->free_slot = clink__calloc(max, sizeof(*p->free_slot));
    p->slot_member = clink__calloc(max, sizeof(*p->slot_member));
    p->slot_score = clink__calloc(max, sizeof(*p->slot_score));
    p->slot_idle_since = clink__calloc(max, sizeof(*p->slot_idle_since));
    p->scratch_m = clink__calloc(max, sizeof(*p->scratch_m));
    p->scratch_score = clink__calloc(max, sizeof(*p->scratch_score));
    p->scratch_turns = clink__calloc(max, sizeof(*p->scratch_turns));
    if (!p->idle_slot || !p->pos_of || !p->free_slot || !p->slot_member || !p->slot_score ||
        !p->slot_idle_since || !p->scratch_m || !p->scratch_score || !p->scratch_turns)
      rc = UV_ENOMEM;
    for (unsigned k = 0; rc == 0 && k < max; k++) p->free_slot[k] = max - 1 - k;
    p->n_free_slots = max;
  }
  if (rc == 0) {
    /* Enough requests for every member plus a queue's worth: an idle hit
     * never allocates. */
    unsigned extra = cfg->max_waiters && cfg->max_waiters < 64 ? cfg->max_waiters : 64;
    rc = clink__req_slab_grow(&p->slab, (size_t)max + extra);
  }
  if (rc != 0) {
    clink__req_slab_free(&p->slab);
    free_arrays(p);
    clink_options_free(p->opts);
    clink__free(p);
    return rc;
  }
  p->rng = clink__seed(p);
  p->house_due = CLINK__NEVER;
  p->rss_check_at = clink__deadline(uv_now(loop), cfg->rss_check_ms);
  uv_idle_init(loop, &p->kick);
  uv_timer_init(loop, &p->house);
  p->kick.data = p->house.data = p;
  uv_unref((uv_handle_t *)&p->house);
  p->handles_open = 2;
  if (cfg->min_idle) clink__pool_kick(p);
  *out = p;
  return 0;
}

void clink_pool_set_breaker(clink_pool *p, clink_breaker *b) {
  if (p) p->breaker = b;
}

clink_breaker *clink_pool_get_breaker(const clink_pool *p) { return p ? p->breaker : NULL; }
uv_loop_t *clink_pool_get_loop(const clink_pool *p) { return p ? p->loop : NULL; }
const clink_options *clink_pool_get_options(const clink_pool *p) { return p ? p->opts : NULL; }

void clink_pool_set_event_cb(clink_pool *p, clink_pool_event_cb cb, void *ud) {
  if (p == NULL) return;
  p->ev_cb = cb;
  p->ev_ud = ud;
}

size_t clink_pool_clients(const clink_pool *p, clink_client **out, size_t cap) {
  if (p == NULL) return 0;
  size_t k = 0;
  for (const pool_member *m = p->live; m; m = m->next, k++)
    if (k < cap) out[k] = m->c;
  return k;
}

int clink_pool_get_stats(const clink_pool *p, clink_pool_stats *out) {
  if (p == NULL || out == NULL || out->struct_size < sizeof(size_t)) return UV_EINVAL;
  clink_pool_stats s = p->st;
  s.size = p->n_live;
  s.idle = p->n_idle;
  s.in_use = p->n_in_use + p->n_validating;
  s.starting = p->n_starting;
  s.pending_acquires = p->n_wait;
  size_t n = out->struct_size < sizeof(s) ? out->struct_size : sizeof(s);
  s.struct_size = n;
  memcpy(out, &s, n);
  return 0;
}
