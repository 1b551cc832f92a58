/* clink_pool: pre-warmed clients of one spawn profile.
 *
 * Members are ordinary clients owned by the pool. A member is STARTING
 * (connecting), IDLE (in the idle array, ready), IN_USE (assigned to an
 * acquire or checked out), VALIDATING (probed with mcp_status before it is
 * handed out) or CLOSING (closed, waiting for its close callback).
 *
 * Requests (async acquires) come from a slab preallocated at creation and
 * grown in chunks only when more are outstanding at once; each waits in the
 * FIFO wait queue, in the validation list or in the completion queue, which
 * one uv_idle handle (kick) flushes from the loop. The idle handle stays
 * armed for one more, empty, round: with it active the loop does not block
 * in that iteration's poll, so UV_RUN_ONCE returns once results are
 * delivered (a 0 ms timer would fire before a blocking poll). A timer (house) runs
 * deadlines: waiter timeouts, leaks, lifetime and idle expiry, rebalancing,
 * fill retries, shutdown batches. It is unref'd unless acquires wait or a
 * shutdown runs: housekeeping alone never keeps the host's loop alive.
 *
 * User callbacks (acquire results, events) only run from the loop: from the
 * kick, the house timer, or a member client's callbacks. */
#include <stdio.h>

#include "client/client-owner.h"
#include "spawn/options.h"
#include "base/internal.h"
#include "base/rand.h"
#include "pool/pool-select.h"

#define REQ_CHUNK 64
#define REBALANCE_PERIOD_MS 1000
#define FILL_BACKOFF_MIN_MS 100
#define FILL_BACKOFF_MAX_MS 10000
#define SID_INLINE 64
#define SCORE_REFRESH_MS 1000 /* age moves the score slowly: refresh at most this often */

struct clink_pool_config {
  unsigned min_idle, max_size;
  uint64_t acquire_timeout_ms;
  unsigned max_waiters;
  uint64_t lifetime_ms;
  double jitter_pct;
  uint64_t idle_timeout_ms;
  unsigned max_turns;
  uint64_t validate_after_ms, validate_timeout_ms;
  uint64_t leak_ms;
  unsigned batch;
  uint64_t per_process_ms, per_batch_ms;
};

typedef enum mstate { M_STARTING, M_IDLE, M_IN_USE, M_VALIDATING, M_CLOSING } mstate;
typedef enum rwhere { R_FREE, R_WAIT, R_VALIDATING, R_DONE } rwhere;

typedef struct pool_req pool_req;
typedef struct pool_member pool_member;

struct pool_member {
  pool_member *prev, *next; /* live list, closing list, or zombie list */
  clink_pool *pool;
  clink_client *c; /* after the close callback of a zombie: a stale value */
  mstate st;
  uint32_t slot; /* index into the pool's per-slot arrays while live */
  unsigned permit_held : 1;
  unsigned replacing : 1;     /* replaces a dead idle member: REPLACED on connect */
  unsigned handed_out : 1;    /* the user holds it */
  unsigned leak_reported : 1;
  unsigned silent : 1;        /* never started a process: no CLOSED event */
  unsigned retire_asked : 1;  /* expired last member: a replacement was asked */
  clink_client_state cstate; /* the client's state, mirrored by the state callback */
  clink_pool_close_reason reason;
  uint64_t permit;
  uint64_t spawn_ms, connected_ms, expires_ms, lifetime_ms, idle_since_ms, checkout_ms;
  uint64_t batch_gen;
  uint64_t turns_seen, score_at;
  double score;
  const char *where;
  pool_req *req;     /* the acquire a validation runs for */
  char *resume_sid;  /* the conversation this process was started to resume */
};

struct pool_req {
  pool_req *prev, *next;
  clink_acquire_cb cb;
  void *ud;
  const char *where;
  char *sid; /* NULL, sid_buf, or heap */
  char sid_buf[SID_INLINE];
  uint64_t start_ns, deadline_ms, retry_after;
  int status;
  rwhere in;
  unsigned waited : 1;
  pool_member *m;
};

typedef struct req_chunk {
  struct req_chunk *next;
  pool_req r[];
} req_chunk;

typedef struct rlist {
  pool_req *head, *tail;
} rlist;

struct clink_pool {
  uv_loop_t *loop;
  clink_options *opts; /* the members' profile */
  clink_pool_config cfg;
  clink_breaker *breaker;
  clink_pool_event_cb ev_cb;
  void *ev_ud;
  uv_idle_t kick;
  uv_timer_t house;
  int handles_open;
  unsigned kick_pending : 1;
  unsigned kick_active : 1;
  unsigned in_kick : 1;
  unsigned closing : 1;
  unsigned immediate : 1;
  unsigned finishing : 1;
  unsigned turns_dirty : 1;
  uint64_t house_due;
  uint64_t rng;

  pool_member *live, *closing_list, *zombies;
  /* The idle set, dense and cache-friendly: a pick reads these arrays and
   * touches only the member it takes. Slots (0..max_size-1) belong to live
   * members; idle_slot[0..n_idle) lists the idle ones, pos_of[slot] is a
   * slot's place in it. */
  uint32_t *idle_slot, *pos_of, *free_slot;
  uint32_t n_free_slots;
  pool_member **slot_member;
  double *slot_score;
  uint64_t *slot_idle_since;
  uint32_t n_idle, n_live, n_starting, n_starting_generic, n_in_use, n_validating;
  uint32_t n_closing, n_wait, n_wait_generic, replace_pending, retire_pending;
  double *scratch_score;
  uint64_t *scratch_turns;
  pool_member **scratch_m;

  pool_req *req_free;
  req_chunk *chunks;
  rlist waitq, valq, doneq;

  uint64_t fill_retry_at, fill_backoff, rebalance_at;

  clink_pool_close_cb close_cb;
  void *close_ud;
  uint64_t drain_deadline, batch_deadline, batch_gen;
  uint32_t batch_inflight;

  clink_pool_stats st;
};

static void kick(clink_pool *p);
static void on_house(uv_timer_t *t);
static void arm_house_at(clink_pool *p, uint64_t due);
static void rearm_house(clink_pool *p);
static void close_member(clink_pool *p, pool_member *m, clink_pool_close_reason why);
static void shutdown_progress(clink_pool *p);
static void maybe_finish(clink_pool *p);
static void offer(clink_pool *p, pool_member *m);
static void on_member_state(void *ud, clink_client *c, clink_client_state from,
                            clink_client_state to);
static void on_member_closed(void *ud, clink_client *c);
static const clink__client_owner_ops member_ops = {on_member_state, on_member_closed};

static const char *const reason_names[CLINK_POOL_CLOSE_REASONS_] = {
    "dead", "unhealthy", "lifetime", "idle", "max_turns", "validation", "rebalance", "shutdown"};

static inline uint64_t now_ms(const clink_pool *p) { return uv_now(p->loop); }

/* ---------------------------------------------------------------- config */

int clink_pool_config_new(clink_pool_config **out) {
  if (out == NULL) return UV_EINVAL;
  clink_pool_config *c = clink__calloc(1, sizeof(*c));
  if (c == NULL) return UV_ENOMEM;
  c->min_idle = 1;
  c->max_size = 10;
  c->acquire_timeout_ms = 30000;
  c->max_waiters = 1024;
  c->lifetime_ms = 30 * 60 * 1000;
  c->jitter_pct = 2.5;
  c->idle_timeout_ms = 10 * 60 * 1000;
  c->max_turns = 0;
  c->validate_after_ms = 30000;
  c->validate_timeout_ms = 5000;
  c->leak_ms = 0;
  c->batch = 10;
  c->per_process_ms = 15000;
  c->per_batch_ms = 30000;
  *out = c;
  return 0;
}

void clink_pool_config_free(clink_pool_config *cfg) { clink__free(cfg); }

int clink_pool_config_set_size(clink_pool_config *cfg, unsigned min_idle, unsigned max_size) {
  if (cfg == NULL || max_size == 0 || min_idle > max_size) return UV_EINVAL;
  cfg->min_idle = min_idle;
  cfg->max_size = max_size;
  return 0;
}

int clink_pool_config_set_acquire_timeout_ms(clink_pool_config *cfg, uint64_t ms) {
  if (cfg == NULL || ms == 0) return UV_EINVAL;
  cfg->acquire_timeout_ms = ms;
  return 0;
}

int clink_pool_config_set_max_waiters(clink_pool_config *cfg, unsigned n) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->max_waiters = n;
  return 0;
}

int clink_pool_config_set_max_lifetime_ms(clink_pool_config *cfg, uint64_t ms,
                                          double jitter_pct) {
  if (cfg == NULL || !(jitter_pct >= 0.0 && jitter_pct <= 100.0)) return UV_EINVAL;
  cfg->lifetime_ms = ms;
  cfg->jitter_pct = jitter_pct;
  return 0;
}

int clink_pool_config_set_idle_timeout_ms(clink_pool_config *cfg, uint64_t ms) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->idle_timeout_ms = ms;
  return 0;
}

int clink_pool_config_set_max_turns(clink_pool_config *cfg, unsigned turns) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->max_turns = turns;
  return 0;
}

int clink_pool_config_set_validation(clink_pool_config *cfg, uint64_t after_ms,
                                     uint64_t timeout_ms) {
  if (cfg == NULL || (after_ms != 0 && timeout_ms == 0)) return UV_EINVAL;
  cfg->validate_after_ms = after_ms;
  cfg->validate_timeout_ms = timeout_ms;
  return 0;
}

int clink_pool_config_set_leak_threshold_ms(clink_pool_config *cfg, uint64_t ms) {
  if (cfg == NULL) return UV_EINVAL;
  cfg->leak_ms = ms;
  return 0;
}

int clink_pool_config_set_shutdown(clink_pool_config *cfg, unsigned batch,
                                   uint64_t per_process_ms, uint64_t per_batch_ms) {
  if (cfg == NULL || batch == 0 || per_process_ms == 0 || per_batch_ms == 0) return UV_EINVAL;
  cfg->batch = batch;
  cfg->per_process_ms = per_process_ms;
  cfg->per_batch_ms = per_batch_ms;
  return 0;
}

/* -------------------------------------------------------------- requests */

static int req_grow(clink_pool *p, size_t n) {
  req_chunk *ch = malloc(sizeof(*ch) + n * sizeof(pool_req));
  if (ch == NULL) return UV_ENOMEM;
  ch->next = p->chunks;
  p->chunks = ch;
  for (size_t i = 0; i < n; i++) {
    ch->r[i].in = R_FREE;
    ch->r[i].next = p->req_free;
    p->req_free = &ch->r[i];
  }
  return 0;
}

static pool_req *req_get(clink_pool *p) {
  if (p->req_free == NULL && req_grow(p, REQ_CHUNK) != 0) return NULL;
  pool_req *r = p->req_free;
  p->req_free = r->next;
  r->prev = r->next = NULL;
  r->sid = NULL;
  r->m = NULL;
  r->status = 0;
  r->retry_after = 0;
  r->waited = 0;
  return r;
}

static void req_put(clink_pool *p, pool_req *r) {
  if (r->sid && r->sid != r->sid_buf) clink__free(r->sid);
  r->sid = NULL;
  r->in = R_FREE;
  r->next = p->req_free;
  p->req_free = r;
}

static void rl_append(rlist *l, pool_req *r) {
  r->next = NULL;
  r->prev = l->tail;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
}

static void rl_prepend(rlist *l, pool_req *r) {
  r->prev = NULL;
  r->next = l->head;
  if (l->head)
    l->head->prev = r;
  else
    l->tail = r;
  l->head = r;
}

static void rl_remove(rlist *l, pool_req *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    l->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    l->tail = r->prev;
  r->prev = r->next = NULL;
}

static void wait_remove(clink_pool *p, pool_req *r) {
  rl_remove(&p->waitq, r);
  p->n_wait--;
  if (r->sid == NULL) p->n_wait_generic--;
  r->in = R_FREE;
}

static void wait_add(clink_pool *p, pool_req *r, int front) {
  if (front)
    rl_prepend(&p->waitq, r);
  else
    rl_append(&p->waitq, r);
  r->in = R_WAIT;
  r->waited = 1;
  p->n_wait++;
  if (r->sid == NULL) p->n_wait_generic++;
}

/* The request's result goes to the completion queue, flushed from the loop. */
static void complete(clink_pool *p, pool_req *r, int status, pool_member *m,
                     uint64_t retry_after) {
  r->status = status;
  r->m = m;
  r->retry_after = retry_after;
  r->in = R_DONE;
  rl_append(&p->doneq, r);
  kick(p);
}

/* --------------------------------------------------------------- members */

static void emit(clink_pool *p, clink_pool_event ev, clink_client *c, const char *detail) {
  if (p->ev_cb) p->ev_cb(p, ev, c, detail, p->ev_ud);
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

#define IDLE_AT(p, k) ((p)->slot_member[(p)->idle_slot[k]])

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

/* Moves a member between states, keeping the counters. */
static void set_mstate(clink_pool *p, pool_member *m, mstate to) {
  mstate from = m->st;
  if (from == to) return;
  switch (from) {
    case M_STARTING:
      p->n_starting--;
      if (m->resume_sid == NULL) p->n_starting_generic--;
      break;
    case M_IDLE: idle_remove(p, m); break;
    case M_IN_USE: p->n_in_use--; break;
    case M_VALIDATING: p->n_validating--; break;
    case M_CLOSING: abort();
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

static const char *member_sid(const pool_member *m) {
  const char *s = m->c ? clink_client_session_id(m->c) : NULL;
  return s ? s : m->resume_sid;
}

static int member_matches(const pool_member *m, const char *sid) {
  const char *s = clink_client_session_id(m->c);
  if (s && strcmp(s, sid) == 0) return 1;
  return m->resume_sid && strcmp(m->resume_sid, sid) == 0;
}

static uint64_t member_turns(const pool_member *m) {
  clink_client_metrics cm;
  cm.struct_size = sizeof(cm);
  clink_client_get_metrics(m->c, &cm);
  return cm.turns_ok + cm.turns_failed;
}

static double member_score(const clink_pool *p, const pool_member *m, uint64_t now) {
  clink__pool_health h;
  clink_client_metrics cm;
  cm.struct_size = sizeof(cm);
  clink_client_get_metrics(m->c, &cm);
  h.turn_ms_ewma = cm.turn_ms_ewma;
  h.turns_ok = cm.turns_ok;
  h.turns_failed = cm.turns_failed;
  h.age_ms = now - m->connected_ms;
  h.lifetime_ms = m->lifetime_ms;
  (void)p;
  return clink__pool_score(&h);
}

static int member_stale(const clink_pool *p, const pool_member *m, uint64_t now) {
  return p->cfg.validate_after_ms && now - m->idle_since_ms > p->cfg.validate_after_ms;
}

static void on_member_closed(void *ud, clink_client *c) {
  pool_member *m = ud;
  clink_pool *p = m->pool;
  if (!m->silent) emit(p, CLINK_POOL_EVENT_CLOSED, c, reason_names[m->reason]);
  ml_remove(&p->closing_list, m);
  p->n_closing--;
  if (p->closing && m->batch_gen == p->batch_gen && p->batch_inflight > 0) p->batch_inflight--;
  if (m->handed_out) {
    /* The user still holds the pointer: keep the record so that releasing
     * it stays legal until the pool is gone. */
    m->next = p->zombies;
    p->zombies = m;
  } else {
    clink__free(m->resume_sid);
    clink__free(m);
  }
  if (p->closing) {
    shutdown_progress(p);
    maybe_finish(p);
  }
}

static void close_member(clink_pool *p, pool_member *m, clink_pool_close_reason why) {
  if (m->st == M_CLOSING) return;
  if (m->st == M_VALIDATING && m->req) {
    /* The acquire it was probed for goes back to the front of the queue. */
    pool_req *r = m->req;
    m->req = NULL;
    r->m = NULL;
    rl_remove(&p->valq, r);
    if (p->closing)
      complete(p, r, CLINK_ECLOSING, NULL, 0);
    else
      wait_add(p, r, 1);
    kick(p);
  }
  set_mstate(p, m, M_CLOSING);
  m->reason = why;
  if (!m->silent) {
    p->st.closed++;
    p->st.closed_by_reason[why]++;
  }
  int rc = clink_client_close(m->c, NULL, NULL);
  (void)rc; /* UV_EBUSY cannot happen: only the pool closes its members */
}

/* ------------------------------------------------------------- spawning */

static void fail_waiter(clink_pool *p, const char *sid, int status, uint64_t retry_after) {
  for (pool_req *r = p->waitq.head; r; r = r->next) {
    if ((sid == NULL) != (r->sid == NULL)) continue;
    if (sid && strcmp(sid, r->sid) != 0) continue;
    wait_remove(p, r);
    complete(p, r, status, NULL, retry_after);
    return;
  }
}

static int holder_exists(const clink_pool *p, const char *sid) {
  for (const pool_member *m = p->live; m; m = m->next)
    if (member_matches(m, sid)) return 1;
  return 0;
}

static void on_member_connect(clink_client *c, int status, void *ud) {
  pool_member *m = ud;
  clink_pool *p = m->pool;
  uint64_t now = now_ms(p);
  if (m->permit_held && p->breaker) {
    m->permit_held = 0;
    if (status == UV_ECANCELED)
      clink_breaker_release(p->breaker, m->permit);
    else if (status == 0)
      clink_breaker_on_success(p->breaker, m->permit, now, now - m->spawn_ms);
    else
      clink_breaker_on_error(p->breaker, m->permit, now, now - m->spawn_ms);
  }
  if (m->st == M_CLOSING) return;
  if (status != 0) {
    p->fill_backoff = p->fill_backoff ? p->fill_backoff * 2 : FILL_BACKOFF_MIN_MS;
    if (p->fill_backoff > FILL_BACKOFF_MAX_MS) p->fill_backoff = FILL_BACKOFF_MAX_MS;
    p->fill_retry_at = now + p->fill_backoff;
    if (m->replacing) p->replace_pending++;
    /* Valid until the member's close callback. */
    const char *sid = m->resume_sid;
    close_member(p, m, CLINK_POOL_CLOSE_DEAD);
    if (sid) {
      if (!holder_exists(p, sid)) fail_waiter(p, sid, status, 0);
    } else if (p->n_wait_generic > p->n_starting_generic) {
      fail_waiter(p, NULL, status, 0);
    }
    kick(p);
    rearm_house(p);
    return;
  }
  p->fill_backoff = 0;
  p->fill_retry_at = 0;
  m->connected_ms = now;
  m->lifetime_ms =
      clink__pool_lifetime(p->cfg.lifetime_ms, p->cfg.jitter_pct, clink__splitmix64(&p->rng));
  m->expires_ms = m->lifetime_ms ? now + m->lifetime_ms : 0;
  m->score = member_score(p, m, now);
  m->score_at = now;
  m->idle_since_ms = now;
  int replacing = m->replacing;
  m->replacing = 0;
  if (m->expires_ms) arm_house_at(p, m->expires_ms);
  if (p->closing && p->immediate) {
    close_member(p, m, CLINK_POOL_CLOSE_SHUTDOWN);
  } else {
    offer(p, m);
  }
  /* An expired member waiting for a successor can go now. */
  for (pool_member *o = p->live; o; o = o->next)
    if (o->retire_asked) {
      arm_house_at(p, now);
      break;
    }
  emit(p, CLINK_POOL_EVENT_SPAWNED, c, NULL);
  if (replacing) emit(p, CLINK_POOL_EVENT_REPLACED, c, "dead");
  if (p->closing) {
    shutdown_progress(p);
    kick(p);
  }
}

/* Starts one member; resume: the conversation to pick up (NULL: a fresh
 * one). Returns 0, CLINK_ECIRCUIT_OPEN with *retry_after, or a spawn error. */
static int spawn(clink_pool *p, const char *resume, int replacing, uint64_t *retry_after) {
  uint64_t now = now_ms(p), permit = 0;
  *retry_after = 0;
  if (p->n_free_slots == 0) return UV_EBUSY; /* at max size: callers check first */
  if (p->breaker) {
    int rc = clink_breaker_acquire(p->breaker, now, &permit, retry_after);
    if (rc != 0) return rc;
  }
  pool_member *m = clink__calloc(1, sizeof(*m));
  clink_options *tmp = NULL;
  int rc = m ? 0 : UV_ENOMEM;
  if (rc == 0 && resume) {
    m->resume_sid = clink__strdup(resume);
    rc = m->resume_sid ? clink_options_dup(&tmp, p->opts) : UV_ENOMEM;
    if (rc == 0) rc = clink_options_set_resume(tmp, resume);
    if (rc == 0) rc = clink_options_set_session_id(tmp, NULL);
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
  m->cstate = clink_client_get_state(c);
  clink__client_own(c, &member_ops, m);
  rc = clink__client_owner_connect(c, on_member_connect, m);
  /* Counted and listed either way: a failed member still needs its close. */
  m->st = M_STARTING;
  p->n_starting++;
  if (m->resume_sid == NULL) p->n_starting_generic++;
  p->n_live++;
  ml_insert(&p->live, m);
  if (rc != 0) {
    if (p->breaker) {
      m->permit_held = 0;
      clink_breaker_on_error(p->breaker, permit, now, 0);
    }
    m->silent = 1;
    close_member(p, m, CLINK_POOL_CLOSE_DEAD);
    return rc;
  }
  p->st.created++;
  return 0;
}

/* ------------------------------------------------------------ handing out */

static void assign(clink_pool *p, pool_req *r, pool_member *m) {
  set_mstate(p, m, M_IN_USE);
  complete(p, r, 0, m, 0);
}

static void on_probe(clink_client *c, int status, const clink_msg *response, void *ud);

/* Probes m for r; 0, or the member is closed and the caller picks again. */
static int validate(clink_pool *p, pool_member *m, pool_req *r) {
  set_mstate(p, m, M_VALIDATING);
  m->req = r;
  r->m = m;
  r->in = R_VALIDATING;
  rl_append(&p->valq, r);
  int rc = UV_EPIPE;
  if (clink_client_get_state(m->c) == CLINK_CLIENT_CONNECTED)
    rc = clink_client_ping(m->c, p->cfg.validate_timeout_ms, on_probe, m);
  if (rc != 0) {
    m->req = NULL;
    r->m = NULL;
    rl_remove(&p->valq, r);
    r->in = R_FREE;
    close_member(p, m, CLINK_POOL_CLOSE_VALIDATION);
    kick(p);
  }
  return rc;
}

static void on_probe(clink_client *c, int status, const clink_msg *response, void *ud) {
  (void)c;
  pool_member *m = ud;
  clink_pool *p = m->pool;
  (void)response;
  pool_req *r = m->req;
  m->req = NULL;
  if (r) {
    rl_remove(&p->valq, r);
    r->in = R_FREE;
    r->m = NULL;
  }
  /* Any answer, even an error one, proves the CLI is reading. */
  int ok = status != CLINK_ECONTROL_TIMEOUT && status != CLINK_EEXITED &&
           status != UV_ECANCELED &&
           clink_client_get_state(m->c) == CLINK_CLIENT_CONNECTED;
  if (m->st == M_VALIDATING && !ok) close_member(p, m, CLINK_POOL_CLOSE_VALIDATION);
  if (m->st != M_VALIDATING) {
    /* Closed: the acquire waits again (first in line). */
    if (r) {
      if (p->closing)
        complete(p, r, CLINK_ECLOSING, NULL, 0);
      else
        wait_add(p, r, 1);
    }
    kick(p);
    rearm_house(p);
    return;
  }
  m->idle_since_ms = now_ms(p);
  if (r && !p->closing)
    assign(p, r, m);
  else {
    if (r) complete(p, r, CLINK_ECLOSING, NULL, 0);
    offer(p, m);
  }
}

/* An idle member by power of two choices over the cached scores. With
 * allow_stale, a member due for validation may come back (the caller probes
 * it); without, only fresh ones. NULL when none fits. */
static pool_member *pick_idle(clink_pool *p, int allow_stale, uint64_t now) {
  uint32_t n = p->n_idle;
  if (n == 0) return NULL;
  size_t i, j;
  clink__pool_p2c(clink__splitmix64(&p->rng), n, &i, &j);
  uint32_t a = p->idle_slot[i], b = p->idle_slot[j];
  uint64_t after = p->cfg.validate_after_ms;
  if (after) {
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
    if (member_matches(IDLE_AT(p, k), sid)) return IDLE_AT(p, k);
  return NULL;
}

/* Serves r from the idle members (a probe first when m is stale). 1 when r
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
static void offer(clink_pool *p, pool_member *m) {
  pool_req *generic = NULL, *r = NULL;
  if (!p->closing && p->n_wait) {
    const char *sid = member_sid(m);
    for (pool_req *w = p->waitq.head; w; w = w->next) {
      if (w->sid == NULL) {
        if (generic == NULL) generic = w;
        if (sid == NULL) break;
      } else if (sid && member_matches(m, w->sid)) {
        r = w;
        break;
      }
    }
    if (r == NULL) r = generic;
  }
  if (r) {
    wait_remove(p, r);
    assign(p, r, m);
    return;
  }
  set_mstate(p, m, M_IDLE);
  if (p->cfg.idle_timeout_ms && p->n_live > p->cfg.min_idle)
    arm_house_at(p, m->idle_since_ms + p->cfg.idle_timeout_ms);
}

/* Makes room for a resuming process at max size: the worst idle member. */
static int evict_for_session(clink_pool *p) {
  if (p->n_idle == 0) return 0;
  pool_member *worst = IDLE_AT(p, 0);
  for (uint32_t k = 1; k < p->n_idle; k++)
    if (IDLE_AT(p, k)->score > worst->score) worst = IDLE_AT(p, k);
  close_member(p, worst, CLINK_POOL_CLOSE_REBALANCE);
  return 1;
}

/* Spawns for a waiting acquire r; on failure r completes with the error. */
static void spawn_for(clink_pool *p, pool_req *r) {
  uint64_t retry_after;
  int rc = spawn(p, r->sid, 0, &retry_after);
  if (rc != 0) {
    wait_remove(p, r);
    complete(p, r, rc, NULL, retry_after);
  }
}

/* Spawns what the waiters and min idle need. From the loop. */
static void plan(clink_pool *p) {
  if (p->closing) return;
  uint64_t now = now_ms(p);
  /* 1. Waiters that idle members can serve, in order. */
  for (pool_req *r = p->waitq.head, *next; r && p->n_idle; r = next) {
    next = r->next;
    if (r->sid == NULL || find_idle_sid(p, r->sid)) {
      wait_remove(p, r);
      if (!serve_from_idle(p, r, now)) wait_add(p, r, 1);
      next = p->waitq.head; /* validation may have re-queued requests */
      if (next == r) break;
    }
  }
  /* 2. Conversations nobody holds: a process resuming each. */
  for (pool_req *r = p->waitq.head, *next; r; r = next) {
    next = r->next;
    if (r->sid == NULL || holder_exists(p, r->sid)) continue;
    if (p->n_live >= p->cfg.max_size && !evict_for_session(p)) break;
    spawn_for(p, r);
  }
  /* 3. Replacements of dead idle members, then the waiters' demand, then
   * min idle. */
  uint64_t retry_after = 0;
  while (p->replace_pending && p->n_live < p->cfg.max_size && now >= p->fill_retry_at) {
    if (spawn(p, NULL, 1, &retry_after) != 0) {
      p->fill_retry_at = now + (retry_after ? retry_after : FILL_BACKOFF_MIN_MS);
      break;
    }
    p->replace_pending--;
  }
  while (p->retire_pending && p->n_live < p->cfg.max_size && now >= p->fill_retry_at) {
    if (spawn(p, NULL, 0, &retry_after) != 0) {
      p->fill_retry_at = now + (retry_after ? retry_after : FILL_BACKOFF_MIN_MS);
      break;
    }
    p->retire_pending--;
  }
  while (p->n_wait_generic > p->n_starting_generic && p->n_live < p->cfg.max_size) {
    pool_req *r = p->waitq.tail;
    while (r && r->sid) r = r->prev;
    if (r == NULL) break;
    int rc = spawn(p, NULL, 0, &retry_after);
    if (rc != 0) {
      /* The youngest uncovered waiter asked for this spawn. */
      wait_remove(p, r);
      complete(p, r, rc, NULL, retry_after);
    }
  }
  while (p->n_idle + p->n_starting_generic < p->cfg.min_idle + p->n_wait_generic &&
         p->n_live < p->cfg.max_size && now >= p->fill_retry_at) {
    if (spawn(p, NULL, 0, &retry_after) != 0) {
      p->fill_retry_at = now + (retry_after ? retry_after : FILL_BACKOFF_MIN_MS);
      break;
    }
  }
}

/* ------------------------------------------------------------ callbacks */

static void on_member_state(void *ud, clink_client *c, clink_client_state from,
                            clink_client_state to) {
  pool_member *m = ud;
  clink_pool *p = m->pool;
  (void)c;
  (void)from;
  m->cstate = to;
  if (to != CLINK_CLIENT_ERROR && to != CLINK_CLIENT_RECOVERING) return;
  if (m->st != M_IDLE) return; /* others are handled where they are used */
  close_member(p, m, CLINK_POOL_CLOSE_DEAD);
  if (!p->closing) {
    p->replace_pending++;
    kick(p);
  }
}

static void record_wait(clink_pool *p, pool_req *r, uint64_t now_ns) {
  uint64_t us = (now_ns - r->start_ns) / 1000;
  p->st.wait_hist[clink__pool_wait_bucket(us, CLINK_POOL_WAIT_BUCKETS)]++;
  p->st.wait_total_us += us;
  if (us > p->st.wait_max_us) p->st.wait_max_us = us;
}

static void deliver(clink_pool *p) {
  uint64_t now_ns = uv_hrtime();
  pool_req *r;
  while ((r = p->doneq.head) != NULL) {
    rl_remove(&p->doneq, r);
    pool_member *m = r->m;
    int status = r->status;
    if (status == 0) {
      if (m->st != M_IN_USE) {
        status = CLINK_ECLOSING; /* closed meanwhile (shutdown) */
        m = NULL;
      } else if (clink_client_get_state(m->c) != CLINK_CLIENT_CONNECTED) {
        /* Died between assignment and delivery: wait again, first. */
        close_member(p, m, CLINK_POOL_CLOSE_DEAD);
        r->m = NULL;
        if (p->closing) {
          status = CLINK_ECLOSING;
          m = NULL;
        } else {
          wait_add(p, r, 1);
          kick(p);
          continue;
        }
      }
    }
    if (status == 0) {
      m->handed_out = 1;
      m->leak_reported = 0;
      m->where = r->where;
      m->checkout_ms = now_ms(p);
      if (p->cfg.leak_ms) arm_house_at(p, m->checkout_ms + p->cfg.leak_ms);
      p->st.acquired++;
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
    req_put(p, r);
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
  if (p->closing) shutdown_progress(p);
  p->in_kick = 0;
  /* Deadlines only moved later (a timer firing early just recomputes), but
   * with nobody waiting any more the timer must not hold the loop. O(1). */
  if (!p->n_wait && !p->valq.head && !p->closing) uv_unref((uv_handle_t *)&p->house);
  maybe_finish(p);
}

static void kick(clink_pool *p) {
  if (p->kick_pending || p->finishing) return;
  p->kick_pending = 1;
  if (!p->kick_active) {
    p->kick_active = 1;
    uv_idle_start(&p->kick, on_kick);
  }
}

/* ------------------------------------------------------------ housekeeping */

static void arm_house_at(clink_pool *p, uint64_t due) {
  if (p->finishing) return;
  /* Even when an earlier due is armed (an unref'd housekeeping one): a
   * waiter or a shutdown must hold the loop until then. */
  if (p->n_wait || p->valq.head || p->closing) uv_ref((uv_handle_t *)&p->house);
  if (due >= p->house_due) return;
  uint64_t now = now_ms(p);
  p->house_due = due;
  uv_timer_start(&p->house, on_house, due > now ? due - now : 0, 0);
}

static int retire_ok(const clink_pool *p, const pool_member *m) {
  /* Never close the last connected member on a timer while a successor can
   * be started first. */
  (void)m;
  return p->cfg.min_idle == 0 || p->n_idle + p->n_in_use + p->n_validating >= 2 ||
         p->n_live >= p->cfg.max_size;
}

static void rebalance(clink_pool *p, uint64_t now) {
  if (now < p->rebalance_at) return;
  if (p->n_in_use || p->n_wait || p->n_starting || p->n_validating) {
    p->rebalance_at = now + REBALANCE_PERIOD_MS; /* busy: look again later */
    return;
  }
  p->turns_dirty = 0;
  if (p->n_idle < 2) return;
  uint32_t n = p->n_idle;
  for (uint32_t k = 0; k < n; k++) {
    p->scratch_m[k] = IDLE_AT(p, k);
    p->scratch_score[k] = member_score(p, p->scratch_m[k], now);
    p->scratch_turns[k] = member_turns(p->scratch_m[k]);
  }
  size_t w = clink__pool_rebalance_pick(p->scratch_score, p->scratch_turns, n);
  if (w == SIZE_MAX) return;
  close_member(p, p->scratch_m[w], CLINK_POOL_CLOSE_REBALANCE);
  kick(p);
}

static void on_house(uv_timer_t *t) {
  clink_pool *p = t->data;
  p->house_due = UINT64_MAX;
  uint64_t now = now_ms(p);
  /* Waiter and validation deadlines. */
  for (pool_req *r = p->waitq.head, *next; r; r = next) {
    next = r->next;
    if (r->deadline_ms <= now) {
      wait_remove(p, r);
      complete(p, r, CLINK_EPOOL_TIMEOUT, NULL, 0);
    }
  }
  for (pool_req *r = p->valq.head, *next; r; r = next) {
    next = r->next;
    if (r->deadline_ms <= now) {
      rl_remove(&p->valq, r);
      r->m->req = NULL; /* the probe goes on; its member goes idle after */
      complete(p, r, CLINK_EPOOL_TIMEOUT, NULL, 0);
    }
  }
  if (!p->closing) {
    for (pool_member *m = p->live, *next; m; m = next) {
      next = m->next;
      if (m->st == M_IN_USE && m->handed_out && p->cfg.leak_ms && !m->leak_reported &&
          now - m->checkout_ms >= p->cfg.leak_ms) {
        m->leak_reported = 1;
        p->st.leaks++;
        emit(p, CLINK_POOL_EVENT_LEAK, m->c, m->where ? m->where : "unknown");
        if (p->closing) break;
        continue;
      }
      if (m->st != M_IDLE) continue;
      if (m->expires_ms && now >= m->expires_ms) {
        if (retire_ok(p, m)) {
          close_member(p, m, CLINK_POOL_CLOSE_LIFETIME);
          kick(p);
        } else if (!m->retire_asked) {
          /* The last member: start its successor first. */
          m->retire_asked = 1;
          p->retire_pending++;
          kick(p);
        }
        continue;
      }
      if (p->cfg.idle_timeout_ms && p->n_live > p->cfg.min_idle &&
          now - m->idle_since_ms >= p->cfg.idle_timeout_ms) {
        close_member(p, m, CLINK_POOL_CLOSE_IDLE);
        kick(p);
      }
    }
    if (p->turns_dirty && !p->closing) rebalance(p, now);
    if (now < p->fill_retry_at) {
      /* nothing: rearm below */
    } else if (p->fill_retry_at) {
      kick(p);
    }
  } else {
    shutdown_progress(p);
  }
  rearm_house(p);
  maybe_finish(p);
  /* Results and events of this tick: let a UV_RUN_ONCE return. */
  kick(p);
}

/* Recomputes the next deadline from scratch. */
static void rearm_house(clink_pool *p) {
  if (p->finishing) return;
  uint64_t now = now_ms(p), due = UINT64_MAX;
#define MIN_DUE(x)            \
  do {                        \
    uint64_t x_ = (x);        \
    if (x_ < due) due = x_;   \
  } while (0)
  for (pool_req *r = p->waitq.head; r; r = r->next) MIN_DUE(r->deadline_ms);
  for (pool_req *r = p->valq.head; r; r = r->next) MIN_DUE(r->deadline_ms);
  if (!p->closing) {
    for (pool_member *m = p->live; m; m = m->next) {
      if (m->st == M_IN_USE && m->handed_out && p->cfg.leak_ms && !m->leak_reported)
        MIN_DUE(m->checkout_ms + p->cfg.leak_ms);
      if (m->st != M_IDLE) continue;
      if (m->expires_ms && !m->retire_asked) MIN_DUE(m->expires_ms);
      if (p->cfg.idle_timeout_ms && p->n_live > p->cfg.min_idle)
        MIN_DUE(m->idle_since_ms + p->cfg.idle_timeout_ms);
    }
    if (p->turns_dirty) MIN_DUE(p->rebalance_at);
    if (p->fill_retry_at > now) MIN_DUE(p->fill_retry_at);
  } else if (!p->immediate) {
    /* When shutdown_progress() must run next. Every due here is one it
     * consumes: a past batch deadline ends the batch, a past drain deadline
     * closes the checked-out members. Arming a past due it would not act on
     * re-runs the timer at once, forever (libuv < 1.45 even runs it again
     * in the same pass, without polling: the loop hangs). */
    if (p->batch_inflight)
      MIN_DUE(p->batch_deadline);
    else if (p->n_idle || (p->n_in_use && now >= p->drain_deadline))
      MIN_DUE(now); /* a batch is due and has not started yet */
    if (p->n_in_use && p->drain_deadline > now) MIN_DUE(p->drain_deadline);
  }
#undef MIN_DUE
  if (due == UINT64_MAX) {
    uv_timer_stop(&p->house);
    p->house_due = UINT64_MAX;
    return;
  }
  p->house_due = due;
  uv_timer_start(&p->house, on_house, due > now ? due - now : 0, 0);
  if (p->n_wait || p->valq.head || p->closing)
    uv_ref((uv_handle_t *)&p->house);
  else
    uv_unref((uv_handle_t *)&p->house);
}

/* -------------------------------------------------------------- shutdown */

static void shutdown_progress(clink_pool *p) {
  if (!p->closing || p->finishing) return;
  uint64_t now = now_ms(p);
  if (p->immediate) {
    while (p->live) close_member(p, p->live, CLINK_POOL_CLOSE_SHUTDOWN);
    rearm_house(p); /* no deadline left: the members' own handles hold the loop */
    return;
  }
  /* Members nobody can use any more go at once. */
  for (pool_member *m = p->live, *next; m; m = next) {
    next = m->next;
    if (m->st == M_STARTING || m->st == M_VALIDATING)
      close_member(p, m, CLINK_POOL_CLOSE_SHUTDOWN);
  }
  int drained = p->n_in_use == 0 || now >= p->drain_deadline;
  if (p->batch_inflight) {
    if (now < p->batch_deadline) {
      rearm_house(p);
      return;
    }
    /* The batch's time is up: its members still closing no longer hold the
     * next one back, nor count against it. */
    p->batch_gen++;
    p->batch_inflight = 0;
  }
  if (p->n_idle == 0 && !(drained && p->n_in_use)) {
    rearm_house(p);
    return;
  }
  /* The next batch: idle members, then (past the drain deadline) the ones
   * still checked out. */
  p->batch_gen++;
  p->batch_inflight = 0;
  while (p->batch_inflight < p->cfg.batch && p->n_idle) {
    pool_member *m = IDLE_AT(p, p->n_idle - 1);
    m->batch_gen = p->batch_gen;
    close_member(p, m, CLINK_POOL_CLOSE_SHUTDOWN);
    p->batch_inflight++;
  }
  for (pool_member *m = p->live, *next; m && drained && p->batch_inflight < p->cfg.batch;
       m = next) {
    next = m->next;
    if (m->st != M_IN_USE) continue;
    m->batch_gen = p->batch_gen;
    close_member(p, m, CLINK_POOL_CLOSE_SHUTDOWN);
    p->batch_inflight++;
  }
  p->batch_deadline = now + p->cfg.per_batch_ms;
  /* Whoever called (a release, a member's close, a connect) may not rearm. */
  rearm_house(p);
}

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

static void on_pool_handle_closed(uv_handle_t *h) {
  clink_pool *p = h->data;
  if (--p->handles_open > 0) return;
  emit(p, CLINK_POOL_EVENT_SHUTDOWN, NULL, p->immediate ? "immediate" : "drain");
  if (p->close_cb) p->close_cb(p, p->close_ud);
  while (p->zombies) {
    pool_member *z = p->zombies;
    p->zombies = z->next;
    clink__free(z->resume_sid);
    clink__free(z);
  }
  while (p->chunks) {
    req_chunk *ch = p->chunks;
    p->chunks = ch->next;
    clink__free(ch);
  }
  free_arrays(p);
  clink_options_free(p->opts);
  clink__free(p);
}

static void maybe_finish(clink_pool *p) {
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
      shutdown_progress(p);
      kick(p);
      rearm_house(p);
    }
    return UV_EALREADY;
  }
  p->closing = 1;
  p->immediate = mode == CLINK_POOL_IMMEDIATE;
  p->close_cb = cb;
  p->close_ud = ud;
  uv_update_time(p->loop);
  p->drain_deadline = now_ms(p) + p->cfg.per_batch_ms;
  p->replace_pending = p->retire_pending = 0;
  /* Waiters and probes in flight fail; assigned results not yet delivered
   * fail too, their members go back to be drained. */
  while (p->waitq.head) {
    pool_req *r = p->waitq.head;
    wait_remove(p, r);
    complete(p, r, CLINK_ECLOSING, NULL, 0);
  }
  while (p->valq.head) {
    pool_req *r = p->valq.head;
    rl_remove(&p->valq, r);
    r->m->req = NULL;
    complete(p, r, CLINK_ECLOSING, NULL, 0);
  }
  for (pool_req *r = p->doneq.head; r; r = r->next) {
    if (r->status == 0 && r->m && r->m->st == M_IN_USE) {
      set_mstate(p, r->m, M_IDLE);
      r->m = NULL;
      r->status = CLINK_ECLOSING;
    }
  }
  shutdown_progress(p);
  kick(p);
  rearm_house(p);
  return 0;
}

/* ------------------------------------------------------------------ API */

int clink_pool_new(clink_pool **out, uv_loop_t *loop, const clink_options *opts,
                   const clink_pool_config *cfg) {
  if (out == NULL || loop == NULL || opts == NULL) return UV_EINVAL;
  clink_pool_config defaults;
  if (cfg == NULL) {
    clink_pool_config *d;
    int rc = clink_pool_config_new(&d);
    if (rc != 0) return rc;
    defaults = *d;
    clink_pool_config_free(d);
    cfg = &defaults;
  }
  clink_pool *p = clink__calloc(1, sizeof(*p));
  if (p == NULL) return UV_ENOMEM;
  p->loop = loop;
  p->cfg = *cfg;
  unsigned max = cfg->max_size;
  int rc = clink_options_dup(&p->opts, opts);
  if (rc == 0) {
    /* One member's close is bounded by the per-process deadline; a turn
     * still running when the pool closes its member is cancelled. */
    uint64_t half = cfg->per_process_ms / 2 ? cfg->per_process_ms / 2 : 1;
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
    unsigned extra = cfg->max_waiters && cfg->max_waiters < REQ_CHUNK ? cfg->max_waiters
                                                                        : REQ_CHUNK;
    rc = req_grow(p, (size_t)max + extra);
  }
  if (rc != 0) {
    clink__free(p->chunks);
    free_arrays(p);
    clink_options_free(p->opts);
    clink__free(p);
    return rc;
  }
  p->rng = clink__seed(p);
  p->house_due = UINT64_MAX;
  uv_idle_init(loop, &p->kick);
  uv_timer_init(loop, &p->house);
  p->kick.data = p->house.data = p;
  uv_unref((uv_handle_t *)&p->house);
  p->handles_open = 2;
  if (cfg->min_idle) kick(p);
  *out = p;
  return 0;
}

void clink_pool_set_breaker(clink_pool *p, clink_breaker *b) {
  if (p) p->breaker = b;
}

void clink_pool_set_event_cb(clink_pool *p, clink_pool_event_cb cb, void *ud) {
  if (p == NULL) return;
  p->ev_cb = cb;
  p->ev_ud = ud;
}

int clink_pool_try_acquire(clink_pool *p, clink_client **out) {
  if (p == NULL || out == NULL) return UV_EINVAL;
  if (p->closing) return CLINK_ECLOSING;
  if (p->n_idle == 0) return UV_EAGAIN;
  uint64_t now = now_ms(p);
  pool_member *m = pick_idle(p, 0, now);
  if (m == NULL) return UV_EAGAIN;
  set_mstate(p, m, M_IN_USE);
  m->handed_out = 1;
  m->leak_reported = 0;
  m->where = NULL;
  m->checkout_ms = now;
  if (p->cfg.leak_ms) arm_house_at(p, now + p->cfg.leak_ms);
  p->st.acquired++;
  p->st.acquired_idle++;
  p->st.wait_hist[0]++;
  *out = m->c;
  return 0;
}

int clink_pool_acquire(clink_pool *p, const char *sid, const char *where, clink_acquire_cb cb,
                       void *ud) {
  if (p == NULL || cb == NULL || (sid && sid[0] == '\0')) return UV_EINVAL;
  if (p->closing) return CLINK_ECLOSING;
  pool_req *r = req_get(p);
  if (r == NULL) return UV_ENOMEM;
  if (sid) {
    size_t n = strlen(sid);
    if (n < SID_INLINE) {
      memcpy(r->sid_buf, sid, n + 1);
      r->sid = r->sid_buf;
    } else if ((r->sid = clink__strdup(sid)) == NULL) {
      req_put(p, r);
      return UV_ENOMEM;
    }
  }
  r->cb = cb;
  r->ud = ud;
  r->where = where;
  r->start_ns = uv_hrtime();
  uint64_t now = now_ms(p);
  /* The timeout also bounds a validation probe and the wait after it. */
  r->deadline_ms = now + p->cfg.acquire_timeout_ms;
  if (serve_from_idle(p, r, now)) return 0;
  if (p->cfg.max_waiters && p->n_wait >= p->cfg.max_waiters) {
    complete(p, r, CLINK_EQUEUE_FULL, NULL, 0);
    return 0;
  }
  /* Deadlines count from now, not from a stale loop time. */
  uv_update_time(p->loop);
  r->deadline_ms = now_ms(p) + p->cfg.acquire_timeout_ms;
  wait_add(p, r, 0);
  if (sid) {
    if (!holder_exists(p, sid) &&
        (p->n_live < p->cfg.max_size || evict_for_session(p)))
      spawn_for(p, r);
  } else if (p->n_starting_generic < p->n_wait_generic && p->n_live < p->cfg.max_size) {
    spawn_for(p, r);
  }
  if (r->in == R_WAIT) arm_house_at(p, r->deadline_ms);
  return 0;
}

int clink_pool_release(clink_pool *p, clink_client *c) {
  if (p == NULL || c == NULL) return UV_EINVAL;
  if (p->zombies) {
    for (pool_member *z = p->zombies; z; z = z->next)
      if (z->c == c) {
        if (!z->handed_out) return UV_EINVAL;
        z->handed_out = 0;
        return 0;
      }
  }
  pool_member *m = clink__client_owner(c, &member_ops);
  if (m == NULL || m->pool != p || m->c != c || !m->handed_out) return UV_EINVAL;
  m->handed_out = 0;
  if (m->st == M_CLOSING) return 0; /* closed by the shutdown */
  uint64_t now = now_ms(p);
  uint64_t turns = member_turns(m);
  int why = -1;
  if (m->cstate != CLINK_CLIENT_CONNECTED)
    why = CLINK_POOL_CLOSE_DEAD;
  else if (clink_client_turns_pending(c))
    why = CLINK_POOL_CLOSE_UNHEALTHY;
  else if (p->cfg.max_turns && turns >= p->cfg.max_turns)
    why = CLINK_POOL_CLOSE_MAX_TURNS;
  else if (m->expires_ms && now >= m->expires_ms)
    why = CLINK_POOL_CLOSE_LIFETIME;
  if (why >= 0) {
    close_member(p, m, (clink_pool_close_reason)why);
    if (p->closing)
      shutdown_progress(p);
    kick(p);
    return 0;
  }
  if (turns != m->turns_seen || now - m->score_at >= SCORE_REFRESH_MS) {
    m->score = member_score(p, m, now);
    m->score_at = now;
    if (turns != m->turns_seen && !p->turns_dirty) {
      /* Look for an outlier once the pool is quiet. */
      p->turns_dirty = 1;
      p->rebalance_at = now + REBALANCE_PERIOD_MS;
      arm_house_at(p, p->rebalance_at);
    }
    m->turns_seen = turns;
  }
  m->idle_since_ms = now;
  if (p->closing) {
    set_mstate(p, m, M_IDLE);
    shutdown_progress(p);
    kick(p);
    return 0;
  }
  offer(p, m);
  return 0;
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
