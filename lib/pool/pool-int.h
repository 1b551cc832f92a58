/* The body of clink_pool, shared by lib/pool/uv-pool*.c.
 *
 * Members are ordinary clients owned by the pool through the client's owner
 * link (client/client-owner.h): the pool hears their state changes and
 * their end without using any public callback slot, and holds their memory
 * while a user may still hold the pointer. A member is STARTING
 * (connecting), IDLE (in the idle array, ready), IN_USE (assigned to an
 * acquire or checked out), VALIDATING (pinged before it is handed out) or
 * CLOSING (closed, waiting for the end of its close).
 *
 * Requests (async acquires) wait in the FIFO wait queue, in the validation
 * list or in the completion queue, which one uv_idle handle (kick) flushes
 * from the loop. The idle handle stays armed for one more, empty, round:
 * with it active the loop does not block in that iteration's poll, so
 * UV_RUN_ONCE returns once results are delivered. A timer (house) runs
 * deadlines: waiter timeouts, leaks, lifetime and idle expiry, rebalancing,
 * fill retries, shutdown batches. It is unref'd unless acquires wait or a
 * shutdown runs: housekeeping alone never keeps the host's loop alive.
 *
 * User callbacks: acquire results only from the kick; pool events at the
 * end of the step that caused them, after the pool's state is consistent
 * (a callback may shut the pool down: every caller re-checks). */
#ifndef CLINK_POOL_INT_H
#define CLINK_POOL_INT_H

#include <uv.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "client/client-owner.h"
#include "pool/pool-config.h"
#include "pool/pool-reqs.h"
#include "pool/pool-select.h"

#define REBALANCE_PERIOD_MS 1000
#define FILL_BACKOFF_MIN_MS 100
#define FILL_BACKOFF_MAX_MS 10000
#define SCORE_REFRESH_MS 1000 /* age moves the score slowly: refresh at most this often */

typedef enum mstate { M_STARTING, M_IDLE, M_IN_USE, M_VALIDATING, M_CLOSING } mstate;

typedef struct clink__pool_member pool_member;
typedef clink__pool_req pool_req;

struct clink__pool_member {
  pool_member *prev, *next; /* live list, closing list, or zombie list */
  clink_pool *pool;
  clink_client *c; /* held through the owner link until the member is freed */
  mstate st;
  uint32_t slot; /* index into the pool's per-slot arrays while live */
  unsigned permit_held : 1;
  unsigned replacing : 1;    /* replaces a dead idle member: REPLACED on connect */
  unsigned handed_out : 1;   /* the user holds it */
  unsigned leak_reported : 1;
  unsigned silent : 1;       /* never started a process: no CLOSED event */
  unsigned retire_asked : 1; /* expired last member: a replacement was asked */
  unsigned closed : 1;       /* its close finished */
  unsigned zombie : 1;       /* closed, in the zombie list: its user holds it */
  unsigned over_rss : 1;     /* its CLI grew past the RSS limit: retire it */
  clink_pool_close_reason reason;
  uint64_t permit;
  uint64_t spawn_ms, connected_ms, expires_ms, lifetime_ms, idle_since_ms, checkout_ms;
  uint64_t batch_gen;
  uint64_t turns_seen, score_at;
  double score;
  char where[CLINK__POOL_WHERE_MAX];
  pool_req *req;    /* the acquire a validation runs for */
  char *resume_sid; /* the conversation this process was started to resume */
};

struct clink_pool {
  uv_loop_t *loop;
  clink_options *opts; /* the members' profile */
  clink_pool_config cfg;
  clink_breaker *breaker;
  clink_pool_event_cb ev_cb;
  void *ev_ud;
  clink_events *sink; /* borrowed; given to every member too */
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

  clink__req_slab slab;
  clink__rlist waitq, valq, doneq;

  uint64_t fill_retry_at, fill_backoff, rebalance_at;
  uint64_t rss_check_at; /* the next look at idle members' RSS */

  clink_pool_close_cb close_cb;
  void *close_ud;
  uint64_t drain_deadline, batch_deadline, batch_gen;
  uint32_t batch_inflight;

  clink_pool_stats st;
};

#define IDLE_AT(p, k) ((p)->slot_member[(p)->idle_slot[k]])

static inline uint64_t pool_now(const clink_pool *p) { return uv_now(p->loop); }

/* uv-pool.c: members */
extern const clink__client_owner_ops clink__pool_member_ops;
void clink__pool_emit(clink_pool *p, clink_pool_event ev, clink_client *c, const char *detail);
/* A structured event of the pool's own (component "session_pool"). */
void clink__pool_log(clink_pool *p, clink_log_level level, const char *event, const char *detail,
                     int64_t count);
void clink__pool_set_mstate(clink_pool *p, pool_member *m, mstate to);
void clink__pool_close_member(clink_pool *p, pool_member *m, clink_pool_close_reason why);
/* Starts one member; resume: the conversation to pick up (NULL: a fresh
 * one). 0, CLINK_ECIRCUIT_OPEN with *retry_after, or a spawn error. */
int clink__pool_spawn(clink_pool *p, const char *resume, int replacing, uint64_t *retry_after);
int clink__pool_member_matches(const pool_member *m, const char *sid);
const char *clink__pool_member_sid(const pool_member *m);
uint64_t clink__pool_member_turns(const pool_member *m);
/* Holds no conversation: never ran a turn, not started to resume one. */
int clink__pool_member_fresh(const pool_member *m);
double clink__pool_member_score(const pool_member *m, uint64_t now);
int clink__pool_holder_exists(const clink_pool *p, const char *sid);
void clink__pool_member_free(pool_member *m);
/* A zombie's holder released it: free it. */
void clink__pool_unzombie(clink_pool *p, pool_member *m);
/* The last handle closed: frees everything. */
void clink__pool_free(clink_pool *p);

/* uv-pool-acquire.c: requests, selection, hand-out */
void clink__pool_kick(clink_pool *p);
void clink__pool_wait_add(clink_pool *p, pool_req *r, int front);
void clink__pool_wait_remove(clink_pool *p, pool_req *r);
void clink__pool_complete(clink_pool *p, pool_req *r, int status, pool_member *m,
                          uint64_t retry_after);
void clink__pool_offer(clink_pool *p, pool_member *m);
void clink__pool_fail_waiter(clink_pool *p, const char *sid, int status, uint64_t retry_after);

/* uv-pool-house.c: deadlines */
void clink__pool_arm_house_at(clink_pool *p, uint64_t due);
void clink__pool_rearm_house(clink_pool *p);
void clink__pool_on_house(uv_timer_t *t);
/* Flags the idle members whose CLI's RSS is past the limit (the house
 * retires them); returns how many are. */
int clink__pool_check_rss(clink_pool *p);

/* uv-pool-shutdown.c */
void clink__pool_shutdown_progress(clink_pool *p);
void clink__pool_maybe_finish(clink_pool *p);

#endif
