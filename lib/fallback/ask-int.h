/* The ask driver's internals, shared by its files: uv-ask.c (the call's
 * life, its clock and its read-outs), uv-ask-primary.c (the primary path)
 * and uv-ask-chain.c (the fallback chain); and what
 * clink_execute_with_fallback() (uv-exec-fallback.c) uses of it: a call that
 * runs only the fallback chain. Internal; libuv (uv-*.c only). */
#ifndef CLINK_FALLBACK_ASK_INT_H
#define CLINK_FALLBACK_ASK_INT_H

#include <uv.h>

#include "claudelink.h"
#include "fallback/fallback-int.h"

/* Walks fb's chain for a failure err of an operation that is not a pool turn:
 * request is the key's prompt part (copied), pool steps are skipped, the
 * chain starts from the loop (never inside this call) and cb reports once,
 * from the loop, with the same read-outs as clink_ask() (answer, source...);
 * attempts is what the primary made (for events). The call is counted in
 * fb's statistics. *out (may be NULL) is for clink_ask_cancel(). */
int clink__ask_chain_only(clink_ask_call **out, uv_loop_t *loop, clink_fallback *fb,
                          const char *request, int err, unsigned int attempts,
                          clink_ask_cb cb, void *ud);

/* clink_ask: one call through a pool, a breaker, a retry policy and an
 * operation's fallback chain.
 *
 * A call is one object. Its phases: PRIMARY (attempts on the call's pool,
 * with retry waits), CHAIN (the fallback's steps, one at a time), then the
 * report. Work runs from libuv callbacks: the pool's acquire result, the
 * client's message and turn callbacks, an interrupt's answer, an outbox
 * enqueue's result, a host strategy's reply, and one lazily initialised
 * timer that serves two clocks: `next` (retry waits and every deferred step:
 * what a public call caused continues from here, never inside that call)
 * and the call's deadline; it is armed for the earlier of the two. Only what
 * needs time touches a handle: a call without a deadline that succeeds at
 * once on a warm pool initialises none. The call's allocation stays small
 * enough for the allocator's fast path (glibc's tcache: <= 1032 bytes) with
 * ordinary prompts.
 *
 * Abandoning (deadline, cancel): a running turn is interrupted and its
 * member released once the turn ended (at once if the interrupt cannot be
 * sent or fails: the pool then closes the member, whose turn is still
 * running); a pending acquire's member is released as it arrives; a pending
 * reply or enqueue is ignored when it comes. The object lives until the user
 * callback ran and nothing internal is pending (`pending` counts the
 * callbacks still owed to it), then closes its timers and frees itself. */

typedef enum phase { PH_PRIMARY, PH_CHAIN, PH_ENDING } phase;
typedef enum next_step { NX_NONE, NX_ATTEMPT, NX_CHAIN, NX_REPLY, NX_REPORT } next_step;

struct clink_fallback_reply {
  clink_ask_call *ask;
  clink_fallback_strategy strategy;
  unsigned ignored : 1; /* the call moved on (deadline, cancel) */
};

struct clink_ask_call {
  uv_loop_t *loop;
  clink_pool *pool; /* primary; NULL: chain only */
  clink_fallback *fb;
  clink_events *sink; /* the call's own, else NULL (the fallback's) */
  clink_breaker *breaker;
  clink_retry *retry;
  clink_ask_message_cb msg_cb;
  clink_ask_cb cb;
  void *ud;
  char *prompt, *session_id, *profile; /* inside this allocation */
  clink__cache_key key;
  unsigned has_key : 1;

  uint64_t start_ns, start_ms, deadline_at, next_due;
  uv_timer_t timer;
  unsigned timer_init : 1, deadline_armed : 1;
  int handles_open;
  next_step next;

  phase ph;
  unsigned pending; /* internal callbacks still owed to this object */
  unsigned in_api : 1, ending : 1, reported : 1, cancelled : 1, after_deadline : 1,
      freeing : 1;

  /* The turn in progress (a primary attempt or a pool step). */
  clink_pool *t_pool;
  clink_breaker *t_breaker;
  clink_client *member;
  uint64_t permit, t_started;
  clink_source t_source;
  unsigned permit_held : 1, acquiring : 1, in_turn : 1, t_abandoned : 1, member_out : 1;
  unsigned streamed : 1; /* the answer came from a turn whose messages streamed */
  char *text; /* inline_text until an answer outgrows it */
  size_t text_len, text_cap;
  unsigned text_oom : 1;
  char *inline_text;

  /* The chain. */
  size_t step;
  const clink__fb_step *cur; /* the step running (pool turn, reply, enqueue) */
  clink_fallback_reply *reply;
  int reply_status;
  char *reply_text;
  unsigned enqueueing : 1, enqueue_ignored : 1;
  unsigned steps_tried;
  clink__cache_hit hit;
  const clink__cache_store_ops *hit_ops; /* releases hit without the store */

  /* The outcome. */
  int status;
  int primary_err;
  clink_failure_class klass;
  clink_source source;
  unsigned attempts;
  uint64_t latency_us;
  const char *answer;
  size_t answer_len;
  const clink_msg *result;  /* what clink_ask_result() shows */
  clink_msg *result_ref;    /* a failed primary result kept for later */
  const char *answer_sid;   /* borrowed from the answering result */
  char *err_text;
  int64_t queued_id;
  int api_status;
};

static inline void clink__ask_set_answer(clink_ask_call *a, const char *text, size_t len) {
  a->answer = text ? text : "";
  a->answer_len = text ? len : 0;
}

/* uv-ask.c: the call's life. */
/* Frees the call once its user callback ran and nothing is owed to it. */
void clink__ask_maybe_free(clink_ask_call *a);
/* Runs `what` from the loop after delay_ms (0: on the next loop turn). */
void clink__ask_schedule(clink_ask_call *a, next_step what, uint64_t delay_ms);
/* The call ends: counts it, delivers the answer and runs the user callback. */
void clink__ask_report(clink_ask_call *a);

/* uv-ask-primary.c: the primary path. */
void clink__ask_start_attempt(clink_ask_call *a);
/* One turn on pool (the primary or a pool step). */
void clink__ask_start_turn(clink_ask_call *a, clink_pool *pool, clink_breaker *breaker,
                           const char *session_id, clink_source source);
/* Lets go of the turn in progress (deadline, cancel). */
void clink__ask_abandon_turn(clink_ask_call *a);

/* uv-ask-chain.c: the fallback chain. */
void clink__ask_enter_chain(clink_ask_call *a);
void clink__ask_chain_next(clink_ask_call *a);
/* A reply came back (from the loop, after clink_fallback_reply_done()). */
void clink__ask_reply_arrived(clink_ask_call *a);

#endif
