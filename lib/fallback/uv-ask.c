/* clink_ask: one call through a pool, a breaker, a retry policy and an
 * operation's fallback chain; and the chain walk itself (also used by
 * clink_execute_with_fallback through clink__ask_chain_only()).
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
#include <uv.h>

#include <cjson/cJSON.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "fallback/ask-int.h"
#include "fallback/fallback-int.h"

_Static_assert(UV_EACCES == -EACCES, "classify.c takes UV_EACCES as -EACCES");

#define ASK_WHERE "clink_ask"
#define QUEUED_TEXT "queued"
#define PROFILE_KEY_MAX 127
/* Answers up to this size are collected inside the call's own allocation. */
#define INLINE_TEXT 192

struct clink_ask_options {
  clink_retry_policy *policy; /* owned; NULL: one attempt */
  uint64_t deadline_ms;       /* CLINK__NEVER: none */
  clink_fallback *fb;
  clink_ask_message_cb msg_cb;
  clink_breaker *breaker;
  clink_events *sink;
  char *profile_key;
};

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

static void enter_chain(clink_ask_call *a);
static void chain_next(clink_ask_call *a);
static void start_attempt(clink_ask_call *a);
static void report(clink_ask_call *a);

/* ------------------------------------------------------------------ options */

int clink_ask_options_new(clink_ask_options **out) {
  if (out == NULL) return UV_EINVAL;
  clink_ask_options *o = clink__calloc(1, sizeof(*o));
  if (o == NULL) return UV_ENOMEM;
  int rc = clink_retry_policy_new(&o->policy);
  if (rc != 0) {
    clink__free(o);
    return rc;
  }
  o->deadline_ms = CLINK__NEVER;
  *out = o;
  return 0;
}

void clink_ask_options_free(clink_ask_options *o) {
  if (o == NULL) return;
  clink_retry_policy_free(o->policy);
  clink__free(o->profile_key);
  clink__free(o);
}

int clink_ask_options_set_retry_policy(clink_ask_options *o, const clink_retry_policy *p) {
  if (o == NULL) return UV_EINVAL;
  clink_retry_policy *copy = NULL;
  if (p != NULL) {
    int rc = clink_retry_policy_dup(&copy, p);
    if (rc != 0) return rc;
  }
  clink_retry_policy_free(o->policy);
  o->policy = copy;
  return 0;
}

int clink_ask_options_set_deadline_ms(clink_ask_options *o, uint64_t ms) {
  if (o == NULL) return UV_EINVAL;
  o->deadline_ms = clink__timeout_norm(ms);
  return 0;
}

int clink_ask_options_set_fallback(clink_ask_options *o, clink_fallback *fb) {
  if (o == NULL) return UV_EINVAL;
  o->fb = fb;
  return 0;
}

int clink_ask_options_set_message_cb(clink_ask_options *o, clink_ask_message_cb cb) {
  if (o == NULL) return UV_EINVAL;
  o->msg_cb = cb;
  return 0;
}

int clink_ask_options_set_breaker(clink_ask_options *o, clink_breaker *b) {
  if (o == NULL) return UV_EINVAL;
  o->breaker = b;
  return 0;
}

int clink_ask_options_set_events(clink_ask_options *o, clink_events *sink) {
  if (o == NULL) return UV_EINVAL;
  o->sink = sink;
  return 0;
}

int clink_ask_options_set_profile_key(clink_ask_options *o, const char *key) {
  if (o == NULL || (key && strlen(key) > PROFILE_KEY_MAX)) return UV_EINVAL;
  return clink__set_str(&o->profile_key, key);
}

/* ---------------------------------------------------------------- lifetime */

static void free_mem(clink_ask_call *a) {
  clink_retry_free(a->retry);
  if (a->text != a->inline_text) clink__free(a->text);
  clink__free(a->reply_text);
  clink__free(a->err_text);
  clink_msg_unref(a->result_ref);
  clink__free(a);
}

static void on_handle_closed(uv_handle_t *h) {
  clink_ask_call *a = h->data;
  if (--a->handles_open == 0) free_mem(a);
}

/* Frees the call once its user callback ran and nothing is owed to it. */
static void maybe_free(clink_ask_call *a) {
  if (!a->reported || a->pending > 0 || a->freeing) return;
  a->freeing = 1;
  if (a->timer_init) {
    a->handles_open++;
    uv_close((uv_handle_t *)&a->timer, on_handle_closed);
  }
  if (a->handles_open == 0) free_mem(a);
}

static void on_timer(uv_timer_t *t);

/* Arms the timer for the earlier of the next step and the deadline. */
static void arm(clink_ask_call *a) {
  if (a->freeing) return;
  uint64_t due = a->next != NX_NONE ? a->next_due : CLINK__NEVER;
  if (a->deadline_armed) due = clink__earliest(due, a->deadline_at);
  if (due == CLINK__NEVER) {
    if (a->timer_init) uv_timer_stop(&a->timer);
    return;
  }
  if (!a->timer_init) {
    uv_timer_init(a->loop, &a->timer);
    a->timer.data = a;
    a->timer_init = 1;
  }
  uv_timer_start(&a->timer, on_timer, clink__until(due, uv_now(a->loop)), 0);
}

/* Runs `what` from the loop after delay_ms (0: on the next loop turn). */
static void schedule(clink_ask_call *a, next_step what, uint64_t delay_ms) {
  a->next = what;
  a->next_due = clink__deadline(uv_now(a->loop), delay_ms);
  arm(a);
}

static void unschedule(clink_ask_call *a) {
  a->next = NX_NONE;
  arm(a);
}

/* ------------------------------------------------------------------- turns */

static void text_append(clink_ask_call *a, const char *t) {
  size_t n = t ? strlen(t) : 0;
  if (n == 0 || a->text_oom) return;
  if (a->text_len + n + 1 > a->text_cap) {
    size_t cap = a->text_cap * 2;
    while (cap < a->text_len + n + 1) cap *= 2;
    char *p = a->text == a->inline_text ? malloc(cap) : realloc(a->text, cap);
    if (p == NULL) {
      a->text_oom = 1;
      return;
    }
    if (a->text == a->inline_text) memcpy(p, a->text, a->text_len + 1);
    a->text = p;
    a->text_cap = cap;
  }
  memcpy(a->text + a->text_len, t, n + 1);
  a->text_len += n;
}

static void release_member(clink_ask_call *a) {
  if (a->member && a->member_out) {
    a->member_out = 0;
    clink_pool_release(a->t_pool, a->member);
  }
}

/* The breaker's verdict on a finished turn. */
static void settle_permit(clink_ask_call *a, int status, clink_failure_class k) {
  if (!a->permit_held) return;
  a->permit_held = 0;
  uint64_t now = uv_now(a->loop);
  uint64_t took = now - a->t_started;
  if (a->t_abandoned || k == CLINK_FAILURE_NONE) {
    if (status == 0)
      clink_breaker_on_success(a->t_breaker, a->permit, now, took);
    else
      clink_breaker_release(a->t_breaker, a->permit);
  } else if (k & (CLINK_FAILURE_PROCESS | CLINK_FAILURE_STALLED | CLINK_FAILURE_API_RETRYABLE)) {
    clink_breaker_on_error(a->t_breaker, a->permit, now, took);
  } else if (k & (CLINK_FAILURE_API_REJECTED | CLINK_FAILURE_CONTEXT_OVERFLOW |
                  CLINK_FAILURE_TURN)) {
    clink_breaker_on_success(a->t_breaker, a->permit, now, took);
  } else {
    clink_breaker_release(a->t_breaker, a->permit);
  }
}

static void turn_failed(clink_ask_call *a, int err, const clink_msg *result);
static void turn_succeeded(clink_ask_call *a, const clink_msg *result);

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  (void)c;
  clink_ask_call *a = ud;
  if (a->t_abandoned || a->ending) return;
  if (clink_msg_get_kind(m) == CLINK_MSG_ASSISTANT)
    for (size_t i = 0; i < clink_msg_block_count(m); i++)
      if (clink_msg_block_kind(m, i) == CLINK_BLOCK_TEXT) text_append(a, clink_msg_block_text(m, i));
  if (a->msg_cb) a->msg_cb(a, m, a->ud);
}

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  clink_ask_call *a = ud;
  a->pending--;
  a->in_turn = 0;
  clink_failure_class k = clink_failure_classify(status, result);
  settle_permit(a, status, k);
  if (a->t_abandoned) {
    release_member(a);
    maybe_free(a);
    return;
  }
  if (status != 0 && a->ph == PH_PRIMARY) {
    /* Read before the release: the member may be closed by it. */
    const char *why = NULL;
    if (status == CLINK_ETURN_FAILED && result) why = clink_msg_result_text(result);
    if (why == NULL || why[0] == '\0') why = clink_client_last_error(c);
    if (why && why[0]) {
      clink__free(a->err_text);
      a->err_text = clink__strdup(why);
    }
  }
  release_member(a);
  if (status == 0)
    turn_succeeded(a, result);
  else
    turn_failed(a, status, result);
}

static void got_member(clink_ask_call *a, clink_client *c) {
  a->member = c;
  a->member_out = 1;
  if (a->t_breaker) {
    uint64_t retry_after = 0;
    int rc = clink_breaker_acquire(a->t_breaker, uv_now(a->loop), &a->permit, &retry_after);
    if (rc != 0) {
      release_member(a);
      turn_failed(a, rc, NULL);
      return;
    }
    a->permit_held = 1;
  }
  a->t_started = uv_now(a->loop);
  int rc = clink_client_query(c, a->prompt, on_message, on_turn, a);
  if (rc != 0) {
    if (a->permit_held) {
      a->permit_held = 0;
      clink_breaker_release(a->t_breaker, a->permit);
    }
    release_member(a);
    turn_failed(a, rc, NULL);
    return;
  }
  a->in_turn = 1;
  a->pending++;
}

static void on_acquired(clink_pool *pool, int status, clink_client *c, uint64_t retry_after_ms,
                        void *ud) {
  (void)retry_after_ms;
  clink_ask_call *a = ud;
  a->pending--;
  a->acquiring = 0;
  if (a->t_abandoned) {
    if (status == 0) clink_pool_release(pool, c);
    maybe_free(a);
    return;
  }
  if (status != 0)
    turn_failed(a, status, NULL);
  else
    got_member(a, c);
}

/* One turn on pool (the primary or a pool step). Failures known at once go
 * to turn_failed() like the others. */
static void start_turn(clink_ask_call *a, clink_pool *pool, clink_breaker *breaker,
                       const char *session_id, clink_source source) {
  a->t_pool = pool;
  a->t_breaker = breaker;
  a->t_source = source;
  a->source = source;
  a->member = NULL;
  a->member_out = a->permit_held = a->t_abandoned = 0;
  a->text_len = 0;
  a->text_oom = 0;
  a->text[0] = '\0';
  clink_client *c = NULL;
  int rc = session_id ? UV_EAGAIN : clink_pool_try_acquire(pool, &c);
  if (rc == 0) {
    got_member(a, c);
    return;
  }
  if (rc == UV_EAGAIN) rc = clink_pool_acquire(pool, session_id, ASK_WHERE, on_acquired, a);
  if (rc != 0) {
    turn_failed(a, rc, NULL);
    return;
  }
  a->acquiring = 1;
  a->pending++;
}

/* Lets go of the turn in progress (deadline, cancel). */
static void on_interrupted(clink_client *c, int status, const clink_msg *response, void *ud) {
  (void)c;
  (void)response;
  clink_ask_call *a = ud;
  a->pending--;
  /* No answer: the turn may never end; the pool closes a member given back
   * with its turn running. */
  if (status != 0 && a->in_turn) release_member(a);
  maybe_free(a);
}

static void abandon_turn(clink_ask_call *a) {
  if (!a->acquiring && !a->in_turn) return;
  a->t_abandoned = 1;
  if (a->in_turn) {
    if (clink_client_interrupt(a->member, on_interrupted, a) == 0)
      a->pending++;
    else
      release_member(a);
  }
}

/* ------------------------------------------------------------------ outcome */

static clink_breaker *pool_breaker(clink_pool *p) { return clink_pool_get_breaker(p); }

/* The last failed primary attempt's result (none when it had none). */
static void keep_result(clink_ask_call *a, const clink_msg *result) {
  clink_msg_unref(a->result_ref);
  a->result_ref = result ? clink_msg_ref(result) : NULL;
}

/* The primary path gave up with err: to the chain (from the loop). */
static void go_chain(clink_ask_call *a) {
  if (a->in_api)
    schedule(a, NX_CHAIN, 0);
  else
    enter_chain(a);
}

static int retry_proxy(clink_failure_class k) {
  switch (k) {
    case CLINK_FAILURE_PROCESS: return CLINK_EEXITED;
    case CLINK_FAILURE_STALLED: return UV_ETIMEDOUT;
    case CLINK_FAILURE_API_RETRYABLE: return UV_EAGAIN;
    default: return 0;
  }
}

static void primary_failed(clink_ask_call *a, int err, const clink_msg *result) {
  clink_failure_class k = clink_failure_classify(err, result);
  a->primary_err = err;
  a->klass = k;
  a->api_status = result ? clink_msg_result_api_error_status(result) : 0;
  keep_result(a, result);
  int proxy = retry_proxy(k);
  if (proxy != 0 && a->retry != NULL) {
    uint64_t now = uv_now(a->loop), delay = 0;
    if (clink_retry_next(a->retry, now, proxy, 0, &delay) == 0 &&
        clink__sat_add(now, delay) < a->deadline_at) {
      schedule(a, NX_ATTEMPT, delay);
      return;
    }
  }
  go_chain(a);
}

static void turn_failed(clink_ask_call *a, int err, const clink_msg *result) {
  if (a->ph == PH_PRIMARY) {
    primary_failed(a, err, result);
    return;
  }
  /* A pool step had no answer: the next step. */
  a->cur = NULL;
  if (a->in_api)
    schedule(a, NX_CHAIN, 0);
  else
    chain_next(a);
}

static void set_answer(clink_ask_call *a, const char *text, size_t len) {
  a->answer = text ? text : "";
  a->answer_len = text ? len : 0;
}

static void turn_succeeded(clink_ask_call *a, const clink_msg *result) {
  const char *rtext = result ? clink_msg_result_text(result) : NULL;
  if (a->text_len > 0 && !a->text_oom)
    set_answer(a, a->text, a->text_len);
  else
    set_answer(a, rtext, rtext ? strlen(rtext) : 0);
  a->result = result;
  a->answer_sid = result ? clink_msg_session_id(result) : NULL;
  a->status = 0;
  a->streamed = 1;
  if (a->ph == PH_PRIMARY) {
    a->source = CLINK_SOURCE_PRIMARY;
    a->primary_err = 0;
    a->klass = CLINK_FAILURE_NONE;
    if (a->retry) clink_retry_success(a->retry);
    if (a->has_key)
      clink__fallback_store(a->fb, &a->key, a->answer, a->answer_len, uv_now(a->loop));
  } else {
    a->source = a->t_source;
    clink__fallback_event_used(a->fb, a->sink, a->cur->strategy, a->primary_err, a->klass,
                               a->attempts);
    a->cur = NULL;
  }
  a->ending = 1;
  report(a);
}

/* ------------------------------------------------------------------- chain */

static int chain_pool_ok(const clink_ask_call *a) { return a->pool != NULL; }

/* A step answered from memory or by the host: report from the loop. */
static void chain_answered(clink_ask_call *a, const clink__fb_step *s) {
  a->source = clink__fallback_source_of(s->strategy);
  a->status = 0;
  a->ending = 1;
  a->result = a->result_ref;
  clink__fallback_event_used(a->fb, a->sink, s->strategy, a->primary_err, a->klass, a->attempts);
  report(a);
}

static void on_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  (void)ob;
  clink_ask_call *a = ud;
  a->pending--;
  a->enqueueing = 0;
  if (a->enqueue_ignored) {
    maybe_free(a);
    return;
  }
  const clink__fb_step *s = a->cur;
  a->cur = NULL;
  if (status == 0) {
    a->queued_id = id;
    set_answer(a, QUEUED_TEXT, sizeof(QUEUED_TEXT) - 1);
    chain_answered(a, s);
  } else {
    chain_next(a);
  }
}

static void chain_next(clink_ask_call *a) {
  clink_fallback *fb = a->fb;
  while (a->step < fb->n) {
    const clink__fb_step *s = &fb->steps[a->step++];
    if (!clink__fallback_step_applies(s, a->klass, a->after_deadline, chain_pool_ok(a)))
      continue;
    a->steps_tried++;
    switch (s->strategy) {
      case CLINK_FALLBACK_CACHED_RESPONSE:
        if (!a->has_key) continue;
        if (clink__fallback_lookup(fb, a->sink, &a->key, uv_now(a->loop), &a->hit) != 0) continue;
        a->hit_ops = fb->cache->ops;
        set_answer(a, a->hit.answer, a->hit.len);
        chain_answered(a, s);
        return;
      case CLINK_FALLBACK_MOCK_RESPONSE:
      case CLINK_FALLBACK_DEGRADED_SERVICE:
        if (s->text) {
          set_answer(a, s->text, strlen(s->text));
          chain_answered(a, s);
          return;
        }
        if (s->fn) {
          clink_fallback_reply *r = clink__calloc(1, sizeof(*r));
          if (r == NULL) continue;
          r->ask = a;
          r->strategy = s->strategy;
          a->reply = r;
          a->cur = s;
          a->pending++;
          s->fn(r, s->fn_ud);
          return;
        }
        a->cur = s;
        start_turn(a, s->pool, pool_breaker(s->pool), NULL, CLINK_SOURCE_DEGRADED);
        return;
      case CLINK_FALLBACK_ALTERNATIVE_PROVIDER:
        a->cur = s;
        start_turn(a, s->pool, s->breaker ? s->breaker : pool_breaker(s->pool), NULL,
                   CLINK_SOURCE_ALTERNATIVE);
        return;
      case CLINK_FALLBACK_QUEUE_FOR_RETRY:
        if (clink_outbox_enqueue(s->outbox, a->prompt, fb->operation, a->session_id, NULL, NULL,
                                 on_enqueued, a) != 0)
          continue;
        a->cur = s;
        a->enqueueing = 1;
        a->pending++;
        return;
    }
  }
  /* Nothing answered. */
  a->cur = NULL;
  a->status = CLINK_ENO_FALLBACK;
  a->source = CLINK_SOURCE_NONE;
  a->result = a->result_ref;
  a->ending = 1;
  clink__fallback_event_exhausted(fb, a->sink, a->primary_err, a->klass, a->steps_tried);
  report(a);
}

static void enter_chain(clink_ask_call *a) {
  a->ph = PH_CHAIN;
  a->step = 0;
  a->source = CLINK_SOURCE_NONE;
  if (!clink__fallback_handles(a->fb, a->klass, a->after_deadline, chain_pool_ok(a))) {
    /* Fail fast: no fallback, or none for this class (a 400 is not masked). */
    a->status = a->primary_err;
    a->result = a->result_ref;
    a->ending = 1;
    if (a->fb)
      clink__fallback_event_skipped(a->fb, a->sink, a->primary_err, a->klass, a->api_status);
    report(a);
    return;
  }
  chain_next(a);
}

/* A reply came back (from the loop, after clink_fallback_reply_done()). */
static void reply_arrived(clink_ask_call *a) {
  const clink__fb_step *s = a->cur;
  a->cur = NULL;
  if (a->reply_status == 0) {
    set_answer(a, a->reply_text ? a->reply_text : "", a->reply_text ? strlen(a->reply_text) : 0);
    chain_answered(a, s);
  } else {
    chain_next(a);
  }
}

/* --------------------------------------------------------------- report */

/* One assistant message holding the answer, for sources that have no turn of
 * their own to stream. NULL on UV_ENOMEM (then none is delivered). */
static clink_msg *synthesize(const clink_ask_call *a) {
  cJSON *root = cJSON_CreateObject(), *msg = NULL, *content = NULL, *block = NULL;
  char model[48];
  snprintf(model, sizeof(model), "<fallback:%s>", clink_source_name(a->source));
  if (root == NULL || !cJSON_AddStringToObject(root, "type", "assistant") ||
      (msg = cJSON_AddObjectToObject(root, "message")) == NULL ||
      !cJSON_AddStringToObject(msg, "role", "assistant") ||
      !cJSON_AddStringToObject(msg, "model", model) ||
      (content = cJSON_AddArrayToObject(msg, "content")) == NULL ||
      (block = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(content, block) ||
      !cJSON_AddStringToObject(block, "type", "text") ||
      !cJSON_AddStringToObject(block, "text", a->answer) ||
      !cJSON_AddNullToObject(root, "parent_tool_use_id") ||
      !cJSON_AddStringToObject(root, "fallback", clink_source_name(a->source))) {
    cJSON_Delete(root);
    return NULL;
  }
  char *line = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (line == NULL) return NULL;
  clink_msg *m = NULL;
  clink_msg_parse(&m, line, strlen(line));
  cJSON_free(line);
  return m;
}

static void report(clink_ask_call *a) {
  a->ending = 1;
  a->reported = 1;
  a->deadline_armed = 0;
  unschedule(a);
  a->latency_us = (uv_hrtime() - a->start_ns) / 1000;
  if (a->status != 0) {
    a->source = CLINK_SOURCE_NONE;
    set_answer(a, NULL, 0);
  } else if (a->answer == NULL) {
    set_answer(a, NULL, 0);
  }
  /* The fallback is not touched after the user callback: it may free it. */
  if (a->fb) {
    clink__fallback_count_end(a->fb, a->source, a->status, a->klass, a->steps_tried > 0);
    a->fb->in_flight--;
  }
  /* Sources without a turn of their own deliver one message. */
  if (a->status == 0 && a->msg_cb && !a->streamed) {
    clink_msg *m = synthesize(a);
    if (m) {
      a->msg_cb(a, m, a->ud);
      clink_msg_unref(m);
    }
  }
  if (a->cb) a->cb(a, a->status, a->ud);
  if (a->hit.handle) a->hit_ops->release(NULL, &a->hit);
  a->result = NULL;
  maybe_free(a);
}

/* ----------------------------------------------------------------- timers */

static void start_attempt(clink_ask_call *a) {
  a->attempts++;
  start_turn(a, a->pool, a->breaker, a->session_id, CLINK_SOURCE_PRIMARY);
}

static void on_deadline(clink_ask_call *a);

static void on_timer(uv_timer_t *t) {
  clink_ask_call *a = t->data;
  if (a->reported) return;
  uint64_t now = uv_now(a->loop);
  if (a->deadline_armed && now >= a->deadline_at) {
    a->deadline_armed = 0;
    if (!a->ending) { /* an outcome already decided (a cancel) stands */
      on_deadline(a);
      return;
    }
  }
  if (a->next == NX_NONE || now < a->next_due) {
    arm(a); /* woken early: wait on */
    return;
  }
  next_step what = a->next;
  a->next = NX_NONE;
  arm(a); /* the deadline, if it still counts */
  switch (what) {
    case NX_ATTEMPT:
      start_attempt(a);
      break;
    case NX_CHAIN:
      if (a->ph == PH_PRIMARY)
        enter_chain(a);
      else
        chain_next(a);
      break;
    case NX_REPLY:
      reply_arrived(a);
      break;
    case NX_REPORT:
      report(a);
      break;
    case NX_NONE:
      break;
  }
}

/* Stops waiting for whatever runs now (deadline, cancel). */
static void abandon_all(clink_ask_call *a) {
  unschedule(a);
  abandon_turn(a);
  if (a->reply) {
    a->reply->ignored = 1;
    a->reply = NULL;
  }
  if (a->enqueueing) a->enqueue_ignored = 1;
  a->cur = NULL;
}

static void on_deadline(clink_ask_call *a) {
  if (a->ending) return;
  a->after_deadline = 1;
  abandon_all(a);
  if (a->ph == PH_PRIMARY) {
    a->primary_err = UV_ETIMEDOUT;
    a->klass = CLINK_FAILURE_DEADLINE;
    enter_chain(a);
  } else {
    chain_next(a);
  }
}

/* -------------------------------------------------------------------- API */

/* One allocation: the call, the inline answer buffer, the prompt, the
 * session id and the profile key (profile: its length + 1, or 0 for none). */
static clink_ask_call *ask_alloc(const char *prompt, const char *session_id, size_t profile) {
  size_t lp = strlen(prompt) + 1, ls = session_id ? strlen(session_id) + 1 : 0;
  clink_ask_call *a = malloc(sizeof(*a) + INLINE_TEXT + lp + ls + profile);
  if (a == NULL) return NULL;
  memset(a, 0, sizeof(*a));
  a->inline_text = (char *)(a + 1);
  a->inline_text[0] = '\0';
  a->text = a->inline_text;
  a->text_cap = INLINE_TEXT;
  a->prompt = a->inline_text + INLINE_TEXT;
  memcpy(a->prompt, prompt, lp);
  char *end = a->prompt + lp;
  if (session_id) {
    a->session_id = end;
    memcpy(a->session_id, session_id, ls);
    end += ls;
  }
  if (profile) {
    a->profile = end;
    a->profile[0] = '\0';
  }
  a->deadline_at = CLINK__NEVER;
  return a;
}

int clink_ask(clink_ask_call **out, clink_pool *pool, const char *session_id, const char *prompt,
              const clink_ask_options *opts, clink_ask_cb cb, void *ud) {
  if (out) *out = NULL;
  if (pool == NULL || prompt == NULL || (session_id && session_id[0] == '\0')) return UV_EINVAL;
  clink_fallback *fb = opts ? opts->fb : NULL;
  const char *named = opts ? opts->profile_key : NULL;
  size_t profile = 0;
  if (fb && clink__fallback_cached_step(fb))
    profile = (named ? strlen(named) : (size_t)CLINK__PROFILE_KEY_LEN) + 1;
  clink_ask_call *a = ask_alloc(prompt, session_id, profile);
  if (a == NULL) return UV_ENOMEM;
  a->loop = clink_pool_get_loop(pool);
  a->pool = pool;
  a->cb = cb;
  a->ud = ud;
  a->start_ns = uv_hrtime();
  a->start_ms = uv_now(a->loop);
  const clink_retry_policy *policy = NULL;
  clink_retry_policy *def = NULL;
  uint64_t deadline_ms = CLINK__NEVER;
  if (opts) {
    policy = opts->policy;
    deadline_ms = opts->deadline_ms;
    a->fb = opts->fb;
    a->msg_cb = opts->msg_cb;
    a->breaker = opts->breaker;
    a->sink = opts->sink;
  } else {
    int rc = clink_retry_policy_new(&def);
    if (rc != 0) {
      free_mem(a);
      return rc;
    }
    policy = def;
  }
  if (a->breaker == NULL) a->breaker = clink_pool_get_breaker(pool);
  if (policy) {
    int rc = clink_retry_new(&a->retry, policy, 0);
    clink_retry_policy_free(def);
    if (rc != 0) {
      free_mem(a);
      return rc;
    }
    clink_retry_begin(a->retry, a->start_ms);
  }
  if (a->profile) {
    if (named)
      memcpy(a->profile, named, profile);
    else
      clink__profile_key(clink_options_fingerprint(clink_pool_get_options(pool)), a->profile);
    clink__cache_key_init(&a->key, a->fb->operation, a->profile, a->session_id, a->prompt);
    a->has_key = 1;
  }
  if (a->fb) a->fb->in_flight++;
  if (deadline_ms != CLINK__NEVER) {
    /* Deadlines count from now, not from a stale loop time. */
    uv_update_time(a->loop);
    a->start_ms = uv_now(a->loop);
    if (a->retry) clink_retry_begin(a->retry, a->start_ms);
    a->deadline_at = clink__deadline(a->start_ms, deadline_ms);
    a->deadline_armed = 1;
    arm(a);
  }
  if (out) *out = a;
  a->in_api = 1;
  start_attempt(a);
  a->in_api = 0;
  return 0;
}

int clink__ask_chain_only(clink_ask_call **out, uv_loop_t *loop, clink_fallback *fb,
                          const char *request, int err, unsigned int attempts, clink_ask_cb cb,
                          void *ud) {
  if (out) *out = NULL;
  if (loop == NULL || fb == NULL || request == NULL) return UV_EINVAL;
  clink_ask_call *a = ask_alloc(request, NULL, 0);
  if (a == NULL) return UV_ENOMEM;
  a->loop = loop;
  a->fb = fb;
  a->cb = cb;
  a->ud = ud;
  a->start_ns = uv_hrtime();
  a->start_ms = uv_now(loop);
  a->attempts = attempts;
  a->primary_err = err;
  a->klass = clink_failure_classify(err, NULL);
  if (clink__fallback_cached_step(fb)) {
    clink__cache_key_init(&a->key, fb->operation, NULL, NULL, a->prompt);
    a->has_key = 1;
  }
  fb->in_flight++;
  schedule(a, NX_CHAIN, 0);
  if (out) *out = a;
  return 0;
}

int clink_ask_cancel(clink_ask_call *a) {
  if (a == NULL) return UV_EINVAL;
  if (a->ending || a->cancelled) return UV_EBUSY;
  a->cancelled = 1;
  a->ending = 1;
  abandon_all(a);
  a->status = UV_ECANCELED;
  a->source = CLINK_SOURCE_NONE;
  a->result = a->result_ref;
  schedule(a, NX_REPORT, 0);
  return 0;
}

/* -------------------------------------------------------------- read-outs */

const char *clink_ask_answer(const clink_ask_call *a, size_t *len) {
  const char *s = a && a->answer ? a->answer : "";
  if (len) *len = a && a->answer ? a->answer_len : 0;
  return s;
}

const clink_msg *clink_ask_result(const clink_ask_call *a) {
  if (a == NULL) return NULL;
  return a->result ? a->result : a->result_ref;
}

clink_source clink_ask_source(const clink_ask_call *a) { return a ? a->source : CLINK_SOURCE_NONE; }
unsigned int clink_ask_attempts(const clink_ask_call *a) { return a ? a->attempts : 0; }

uint64_t clink_ask_latency_us(const clink_ask_call *a) {
  if (a == NULL) return 0;
  return a->reported ? a->latency_us : (uv_hrtime() - a->start_ns) / 1000;
}

int clink_ask_primary_error(const clink_ask_call *a) { return a ? a->primary_err : 0; }

clink_failure_class clink_ask_failure(const clink_ask_call *a) {
  return a ? a->klass : CLINK_FAILURE_NONE;
}

const char *clink_ask_error_text(const clink_ask_call *a) {
  return a && a->err_text ? a->err_text : "";
}

int64_t clink_ask_queued_id(const clink_ask_call *a) {
  return a && a->source == CLINK_SOURCE_QUEUED ? a->queued_id : 0;
}

const char *clink_ask_session_id(const clink_ask_call *a) {
  if (a == NULL || (a->source != CLINK_SOURCE_PRIMARY && a->source != CLINK_SOURCE_ALTERNATIVE &&
                    a->source != CLINK_SOURCE_DEGRADED))
    return NULL;
  return a->answer_sid;
}

uint64_t clink_ask_cache_age_ms(const clink_ask_call *a) {
  return a && a->source == CLINK_SOURCE_CACHE ? a->hit.age_ms : 0;
}

int clink_ask_cache_stale(const clink_ask_call *a) {
  return a && a->source == CLINK_SOURCE_CACHE ? a->hit.stale : 0;
}

/* ----------------------------------------------------------------- replies */

const char *clink_fallback_reply_operation(const clink_fallback_reply *r) {
  return r ? r->ask->fb->operation : NULL;
}

const char *clink_fallback_reply_prompt(const clink_fallback_reply *r) {
  return r ? r->ask->prompt : NULL;
}

const char *clink_fallback_reply_session_id(const clink_fallback_reply *r) {
  return r ? r->ask->session_id : NULL;
}

int clink_fallback_reply_error(const clink_fallback_reply *r) {
  return r ? r->ask->primary_err : 0;
}

clink_failure_class clink_fallback_reply_failure(const clink_fallback_reply *r) {
  return r ? r->ask->klass : CLINK_FAILURE_NONE;
}

clink_fallback_strategy clink_fallback_reply_strategy(const clink_fallback_reply *r) {
  return r ? r->strategy : CLINK_FALLBACK_MOCK_RESPONSE;
}

int clink_fallback_reply_done(clink_fallback_reply *r, int status, const char *text) {
  if (r == NULL || status > 0) return UV_EINVAL;
  clink_ask_call *a = r->ask;
  if (!r->ignored) {
    char *copy = NULL;
    if (status == 0 && (copy = clink__strdup(text ? text : "")) == NULL) status = UV_ENOMEM;
    clink__free(a->reply_text);
    a->reply_text = copy;
    a->reply_status = status;
    a->reply = NULL;
    schedule(a, NX_REPLY, 0);
  }
  clink__free(r);
  a->pending--;
  maybe_free(a);
  return 0;
}
