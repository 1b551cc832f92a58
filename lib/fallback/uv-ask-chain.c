/* clink_ask's fallback chain: the walk over the steps (cache, mock, host
 * replies, degraded and alternative pools, queue) and the host's replies. */
#include <uv.h>

#include "base/internal.h"
#include "fallback/ask-int.h"
#include "fallback/fallback-int.h"

#define QUEUED_TEXT "queued"

/* ------------------------------------------------------------------- chain */

static clink_breaker *pool_breaker(clink_pool *p) { return clink_pool_get_breaker(p); }

static int chain_pool_ok(const clink_ask_call *a) { return a->pool != NULL; }

/* A step answered from memory or by the host: report from the loop. */
static void chain_answered(clink_ask_call *a, const clink__fb_step *s) {
  a->source = clink__fallback_source_of(s->strategy);
  a->status = 0;
  a->ending = 1;
  a->result = a->result_ref;
  clink__fallback_event_used(a->fb, a->sink, s->strategy, a->primary_err, a->klass, a->attempts);
  clink__ask_report(a);
}

static void on_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  (void)ob;
  clink_ask_call *a = ud;
  a->pending--;
  a->enqueueing = 0;
  if (a->enqueue_ignored) {
    clink__ask_maybe_free(a);
    return;
  }
  const clink__fb_step *s = a->cur;
  a->cur = NULL;
  if (status == 0) {
    a->queued_id = id;
    clink__ask_set_answer(a, QUEUED_TEXT, sizeof(QUEUED_TEXT) - 1);
    chain_answered(a, s);
  } else {
    clink__ask_chain_next(a);
  }
}

void clink__ask_chain_next(clink_ask_call *a) {
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
        clink__ask_set_answer(a, a->hit.answer, a->hit.len);
        chain_answered(a, s);
        return;
      case CLINK_FALLBACK_MOCK_RESPONSE:
      case CLINK_FALLBACK_DEGRADED_SERVICE:
        if (s->text) {
          clink__ask_set_answer(a, s->text, strlen(s->text));
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
        clink__ask_start_turn(a, s->pool, pool_breaker(s->pool), NULL, CLINK_SOURCE_DEGRADED);
        return;
      case CLINK_FALLBACK_ALTERNATIVE_PROVIDER:
        a->cur = s;
        clink__ask_start_turn(a, s->pool, s->breaker ? s->breaker : pool_breaker(s->pool), NULL,
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
  clink__ask_report(a);
}

void clink__ask_enter_chain(clink_ask_call *a) {
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
    clink__ask_report(a);
    return;
  }
  clink__ask_chain_next(a);
}

/* A reply came back (from the loop, after clink_fallback_reply_done()). */
void clink__ask_reply_arrived(clink_ask_call *a) {
  const clink__fb_step *s = a->cur;
  a->cur = NULL;
  if (a->reply_status == 0) {
    clink__ask_set_answer(a, a->reply_text ? a->reply_text : "",
                          a->reply_text ? strlen(a->reply_text) : 0);
    chain_answered(a, s);
  } else {
    clink__ask_chain_next(a);
  }
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
    clink__ask_schedule(a, NX_REPLY, 0);
  }
  clink__free(r);
  a->pending--;
  clink__ask_maybe_free(a);
  return 0;
}
