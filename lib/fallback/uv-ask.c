/* clink_ask's call: its options, its start (clink_ask, the chain-only call),
 * its clock (the one timer: next step and deadline), cancel, the report from
 * the loop, the read-outs, and its end. */
#include <uv.h>

#include <cjson/cJSON.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "fallback/ask-int.h"
#include "fallback/fallback-int.h"

_Static_assert(UV_EACCES == -EACCES, "classify.c takes UV_EACCES as -EACCES");

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
void clink__ask_maybe_free(clink_ask_call *a) {
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
void clink__ask_schedule(clink_ask_call *a, next_step what, uint64_t delay_ms) {
  a->next = what;
  a->next_due = clink__deadline(uv_now(a->loop), delay_ms);
  arm(a);
}

static void unschedule(clink_ask_call *a) {
  a->next = NX_NONE;
  arm(a);
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

void clink__ask_report(clink_ask_call *a) {
  a->ending = 1;
  a->reported = 1;
  a->deadline_armed = 0;
  unschedule(a);
  a->latency_us = (uv_hrtime() - a->start_ns) / 1000;
  if (a->status != 0) {
    a->source = CLINK_SOURCE_NONE;
    clink__ask_set_answer(a, NULL, 0);
  } else if (a->answer == NULL) {
    clink__ask_set_answer(a, NULL, 0);
  }
  /* Counted before the user callback (its statistics include this call);
   * released after it: a fallback freed meanwhile goes with the last call. */
  clink_fallback *fb = a->fb;
  if (fb) clink__fallback_count_end(fb, a->source, a->status, a->klass, a->steps_tried > 0);
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
  if (fb) clink__fallback_unuse(fb);
  a->result = NULL;
  clink__ask_maybe_free(a);
}

/* ----------------------------------------------------------------- timers */

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
      clink__ask_start_attempt(a);
      break;
    case NX_CHAIN:
      if (a->ph == PH_PRIMARY)
        clink__ask_enter_chain(a);
      else
        clink__ask_chain_next(a);
      break;
    case NX_REPLY:
      clink__ask_reply_arrived(a);
      break;
    case NX_REPORT:
      clink__ask_report(a);
      break;
    case NX_NONE:
      break;
  }
}

/* Stops waiting for whatever runs now (deadline, cancel). */
static void abandon_all(clink_ask_call *a) {
  unschedule(a);
  clink__ask_abandon_turn(a);
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
    clink__ask_enter_chain(a);
  } else {
    clink__ask_chain_next(a);
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
  clink__ask_start_attempt(a);
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
  clink__ask_schedule(a, NX_CHAIN, 0);
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
  clink__ask_schedule(a, NX_REPORT, 0);
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
