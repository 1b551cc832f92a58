/* Fallbacks (lib/fallback) and clink_ask.
 *
 * Pure parts on an injected clock: prompt normalisation and keys, the cache
 * (TTL, stale-if-error, LRU bounds in entries and bytes, references that
 * outlive eviction), failure classification, the chain's routing, the seed
 * chains, the registry and the statistics read-out.
 *
 * Loop parts against the fake CLI (FAKE_ECHO: the answer is the prompt;
 * FAKE_FAIL_FILE: the test decides how the next turns fail): every strategy,
 * every failure class with its default route, retries, the deadline, cancel,
 * statistics and events, and calls that cancel, resubmit, free their
 * fallback or shut their pool down from their own callbacks. No sleeps: the
 * loop runs until a counter moves (RUN_UNTIL); callbacks check that they
 * never run inside a library call (API()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <claudelink.h>

#include "fallback/cache.h"
#include "fallback/fallback-int.h"
#include "testutil.h"

/* Allocation failure injection (-Wl,--wrap=malloc,calloc,realloc: the code
 * linked statically, the library's included): the fail_at-th call from the
 * moment it is set fails. 0: off. */
static unsigned long oom_calls, oom_fail_at;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);
static int oom_now(void) { return oom_fail_at != 0 && ++oom_calls == oom_fail_at; }
void *__wrap_malloc(size_t n) { return oom_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t s) { return oom_now() ? NULL : __real_calloc(n, s); }
void *__wrap_realloc(void *p, size_t n) { return oom_now() ? NULL : __real_realloc(p, n); }

/* Runs body with the n-th allocation failing, for n = 1, 2, ... until a run
 * makes fewer than n allocations (it saw no failure): each run must end
 * with 0 or UV_ENOMEM (the body cleans up either way). */
#define OOM_LOOP(rc_var, body)                                                 \
  for (unsigned long n_ = 1;; n_++) {                                          \
    oom_calls = 0;                                                             \
    oom_fail_at = n_;                                                          \
    body;                                                                      \
    oom_fail_at = 0;                                                           \
    ck_assert_msg((rc_var) == 0 || (rc_var) == UV_ENOMEM, "run %lu: %s", n_,     \
                  clink_err_name(rc_var));                                     \
    if (oom_calls < n_) {                                                      \
      ck_assert_int_eq((rc_var), 0);                                           \
      break;                                                                   \
    }                                                                          \
  }

static int in_api, api_rc;
#define API(expr) (in_api++, api_rc = (expr), in_api--, api_rc)
#define NOT_IN_API() ck_assert_msg(in_api == 0, "callback inside an API call")

/* ================================================================ pure */

static clink__cache_key key(const char *op, const char *conv, const char *prompt) {
  clink__cache_key k;
  clink__cache_key_init(&k, op, "profile", conv, prompt);
  return k;
}

START_TEST(normalize_prompts) {
  char out[64];
  ck_assert_uint_eq(clink__normalize_prompt("  hello \n\t world  ", out, sizeof(out)), 11);
  ck_assert_str_eq(out, "hello world");
  ck_assert_uint_eq(clink__normalize_prompt(" \r\n\v\f\t ", out, sizeof(out)), 0);
  ck_assert_str_eq(out, "");
  ck_assert_uint_eq(clink__normalize_prompt("a  b\n\nc", out, sizeof(out)), 5);
  ck_assert_str_eq(out, "a b c");
  /* Truncation works like snprintf. */
  ck_assert_uint_eq(clink__normalize_prompt("abcdef", out, 4), 6);
  ck_assert_str_eq(out, "abc");
  /* Non-ASCII bytes and case are kept. */
  ck_assert_uint_eq(clink__normalize_prompt(" Ol\xc3\xa1  Mundo ", out, sizeof(out)), 10);
  ck_assert_str_eq(out, "Ol\xc3\xa1 Mundo");
}
END_TEST

START_TEST(keys_identify_requests) {
  clink__cache_key a = key("chat", NULL, "  what is 2+2? "), b = key("chat", NULL, "what is\n2+2?");
  ck_assert_uint_eq(a.hash, b.hash);
  ck_assert_uint_eq(a.len, b.len);
  clink__cache_key c = key("chat", "sess-1", "what is 2+2?");
  clink__cache_key d = key("create_session", NULL, "what is 2+2?");
  clink__cache_key e = key("chat", NULL, "What is 2+2?");
  ck_assert_uint_ne(a.hash, c.hash);
  ck_assert_uint_ne(a.hash, d.hash);
  ck_assert_uint_ne(a.hash, e.hash);

  clink__cache_store *s;
  ck_assert_int_eq(clink__cache_memory_new(&s, 100, 1 << 20), 0);
  ck_assert_int_eq(s->ops->put(s, &a, "four", 4, 0, 1000, 0), 0);
  clink__cache_hit h;
  ck_assert_int_eq(s->ops->lookup(s, &b, 1, &h), 0);
  ck_assert_str_eq(h.answer, "four");
  ck_assert_uint_eq(h.len, 4);
  ck_assert_uint_eq(h.age_ms, 1);
  ck_assert_int_eq(h.stale, 0);
  s->ops->release(NULL, &h);
  ck_assert_int_eq(s->ops->lookup(s, &c, 1, &h), UV_ENOENT);
  ck_assert_int_eq(s->ops->lookup(s, &d, 1, &h), UV_ENOENT);
  ck_assert_int_eq(s->ops->lookup(s, &e, 1, &h), UV_ENOENT);
  /* The profile is part of the key too. */
  clink__cache_key f;
  clink__cache_key_init(&f, "chat", "other-profile", NULL, "what is 2+2?");
  ck_assert_int_eq(s->ops->lookup(s, &f, 1, &h), UV_ENOENT);
  clink__cache_stats st;
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.hits, 1);
  ck_assert_uint_eq(st.misses, 4);
  ck_assert_uint_eq(st.entries, 1);
  s->ops->destroy(s);
}
END_TEST

/* Fresh until the TTL, stale (served on error) until TTL + stale-if-error,
 * gone at that instant: every boundary at +-1 ms. */
START_TEST(ttl_and_stale_if_error) {
  clink__cache_store *s;
  ck_assert_int_eq(clink__cache_memory_new(&s, 10, 1 << 20), 0);
  clink__cache_key k = key("chat", NULL, "q");
  ck_assert_int_eq(s->ops->put(s, &k, "a", 1, 1000, 180000, 60000), 0);
  clink__cache_hit h;
  ck_assert_int_eq(s->ops->lookup(s, &k, 1000 + 179999, &h), 0);
  ck_assert_int_eq(h.stale, 0);
  ck_assert_uint_eq(h.age_ms, 179999);
  s->ops->release(NULL, &h);
  ck_assert_int_eq(s->ops->lookup(s, &k, 1000 + 180000, &h), 0);
  ck_assert_int_eq(h.stale, 1);
  s->ops->release(NULL, &h);
  ck_assert_int_eq(s->ops->lookup(s, &k, 1000 + 239999, &h), 0);
  ck_assert_int_eq(h.stale, 1);
  s->ops->release(NULL, &h);
  ck_assert_int_eq(s->ops->lookup(s, &k, 1000 + 240000, &h), UV_ENOENT);
  clink__cache_stats st;
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.expired, 1);
  ck_assert_uint_eq(st.entries, 0);
  ck_assert_uint_eq(st.bytes, 0);
  /* Without stale-if-error the TTL is the end. */
  ck_assert_int_eq(s->ops->put(s, &k, "a", 1, 0, 100, 0), 0);
  ck_assert_int_eq(s->ops->lookup(s, &k, 99, &h), 0);
  s->ops->release(NULL, &h);
  ck_assert_int_eq(s->ops->lookup(s, &k, 100, &h), UV_ENOENT);
  /* CLINK_NEVER never expires, and stale-if-error saturates. */
  ck_assert_int_eq(s->ops->put(s, &k, "a", 1, 5, CLINK_NEVER, CLINK_NEVER), 0);
  ck_assert_int_eq(s->ops->lookup(s, &k, UINT64_MAX - 1, &h), 0);
  ck_assert_int_eq(h.stale, 0);
  s->ops->release(NULL, &h);
  ck_assert_int_eq(s->ops->put(s, &k, "a", 1, UINT64_MAX - 10, 100, 100), 0);
  ck_assert_int_eq(s->ops->lookup(s, &k, UINT64_MAX - 1, &h), 0);
  s->ops->release(NULL, &h);
  s->ops->destroy(s);
}
END_TEST

static void put_n(clink__cache_store *s, const char *prompt, size_t answer_len, uint64_t now) {
  static char buf[4096];
  memset(buf, 'x', sizeof(buf));
  clink__cache_key k = key("chat", NULL, prompt);
  ck_assert_int_eq(s->ops->put(s, &k, buf, answer_len, now, CLINK_NEVER, 0), 0);
}

static int has(clink__cache_store *s, const char *prompt, uint64_t now) {
  clink__cache_key k = key("chat", NULL, prompt);
  clink__cache_hit h;
  if (s->ops->lookup(s, &k, now, &h) != 0) return 0;
  s->ops->release(NULL, &h);
  return 1;
}

START_TEST(lru_bound_on_entries) {
  clink__cache_store *s;
  ck_assert_int_eq(clink__cache_memory_new(&s, 3, 1 << 20), 0);
  put_n(s, "a", 10, 0);
  put_n(s, "b", 10, 1);
  put_n(s, "c", 10, 2);
  ck_assert(has(s, "a", 3)); /* a is now the most recent: b goes first */
  put_n(s, "d", 10, 4);
  ck_assert(!has(s, "b", 5));
  ck_assert(has(s, "a", 5) && has(s, "c", 5) && has(s, "d", 5));
  put_n(s, "e", 10, 6); /* the least recent now: a (looked up before c, d) */
  ck_assert(!has(s, "a", 7));
  clink__cache_stats st;
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.entries, 3);
  ck_assert_uint_eq(st.evictions, 2);
  /* Shrinking evicts at once. */
  ck_assert_int_eq(s->ops->set_limits(s, 1, 1 << 20), 0);
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.entries, 1);
  ck_assert(has(s, "e", 8) || has(s, "d", 8) || has(s, "c", 8));
  s->ops->destroy(s);
}
END_TEST

START_TEST(lru_bound_on_bytes) {
  clink__cache_key ka = key("chat", NULL, "a");
  size_t one = clink__cache_entry_cost(ka.len, 1000);
  clink__cache_store *s;
  /* Room for two 1000-byte answers, not three. */
  ck_assert_int_eq(clink__cache_memory_new(&s, 100, 2 * one + one / 2), 0);
  put_n(s, "a", 1000, 0);
  put_n(s, "b", 1000, 1);
  clink__cache_stats st;
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.bytes, 2 * one);
  put_n(s, "c", 1000, 2);
  ck_assert(!has(s, "a", 3));
  ck_assert(has(s, "b", 3) && has(s, "c", 3));
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.entries, 2);
  ck_assert_uint_le(st.bytes, 2 * one + one / 2);
  /* A small answer fits beside them. */
  put_n(s, "d", 10, 4);
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.entries, 3);
  /* An answer larger than the bound alone is refused, and an older answer
   * for its key is dropped (it would be stale in meaning). */
  clink__cache_key kb = key("chat", NULL, "b");
  char *big = calloc(1, 3 * one);
  ck_assert_int_eq(s->ops->put(s, &kb, big, 3 * one - 1, 5, CLINK_NEVER, 0), UV_E2BIG);
  free(big);
  ck_assert(!has(s, "b", 6));
  ck_assert(has(s, "c", 6) && has(s, "d", 6));
  ck_assert_int_eq(s->ops->clear(s), 2);
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.entries, 0);
  ck_assert_uint_eq(st.bytes, 0);
  s->ops->destroy(s);
}
END_TEST

START_TEST(overwrite_and_references) {
  clink__cache_store *s;
  ck_assert_int_eq(clink__cache_memory_new(&s, 2, 1 << 20), 0);
  clink__cache_key k = key("chat", NULL, "q");
  ck_assert_int_eq(s->ops->put(s, &k, "first", 5, 0, CLINK_NEVER, 0), 0);
  ck_assert_int_eq(s->ops->put(s, &k, "again", 5, 1, CLINK_NEVER, 0), 0);
  clink__cache_stats st;
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.entries, 1);
  clink__cache_hit h, h2;
  ck_assert_int_eq(s->ops->lookup(s, &k, 2, &h), 0);
  ck_assert_str_eq(h.answer, "again");
  /* Replaced while held: the holder keeps its answer. */
  ck_assert_int_eq(s->ops->put(s, &k, "third one", 9, 3, CLINK_NEVER, 0), 0);
  ck_assert_str_eq(h.answer, "again");
  ck_assert_int_eq(s->ops->lookup(s, &k, 4, &h2), 0);
  ck_assert_str_eq(h2.answer, "third one");
  /* Cleared and evicted while held: still readable until released. */
  ck_assert_int_eq(s->ops->clear(s), 1);
  put_n(s, "x", 10, 5);
  put_n(s, "y", 10, 6);
  put_n(s, "z", 10, 7);
  ck_assert_str_eq(h2.answer, "third one");
  s->ops->release(NULL, &h);
  /* Even the store may go first (a fallback freed from a callback). */
  const clink__cache_store_ops *ops = s->ops;
  s->ops->destroy(s);
  ck_assert_str_eq(h2.answer, "third one");
  ops->release(NULL, &h2);
}
END_TEST

START_TEST(many_entries_all_found) {
  clink__cache_store *s;
  ck_assert_int_eq(clink__cache_memory_new(&s, 20000, (size_t)64 << 20), 0);
  char p[32];
  for (int i = 0; i < 10000; i++) {
    snprintf(p, sizeof(p), "question %d", i);
    put_n(s, p, 100, (uint64_t)i);
  }
  for (int i = 0; i < 10000; i++) {
    snprintf(p, sizeof(p), "  question   %d ", i);
    ck_assert_msg(has(s, p, 20000), "entry %d", i);
  }
  clink__cache_stats st;
  s->ops->stats(s, &st);
  ck_assert_uint_eq(st.entries, 10000);
  ck_assert_uint_eq(st.evictions, 0);
  s->ops->destroy(s);
}
END_TEST

/* ------------------------------------------------------------ classify */

static clink_msg *result_msg(int api_status, const char *text, const char *terminal) {
  char line[512];
  char status[16] = "null";
  if (api_status) snprintf(status, sizeof(status), "%d", api_status);
  snprintf(line, sizeof(line),
           "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,"
           "\"api_error_status\":%s,\"result\":\"%s\",\"terminal_reason\":\"%s\"}",
           status, text, terminal);
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, line, strlen(line)), 0);
  return m;
}

static clink_failure_class classify_turn(int status, const char *text, const char *terminal) {
  clink_msg *m = result_msg(status, text, terminal);
  clink_failure_class k = clink_failure_classify(CLINK_ETURN_FAILED, m);
  clink_msg_unref(m);
  return k;
}

START_TEST(failure_classes) {
  struct {
    int err;
    clink_failure_class k;
  } t[] = {
      {0, CLINK_FAILURE_NONE},
      {UV_ECANCELED, CLINK_FAILURE_NONE},
      {CLINK_ECIRCUIT_OPEN, CLINK_FAILURE_CIRCUIT_OPEN},
      {CLINK_EPOOL_TIMEOUT, CLINK_FAILURE_POOL_TIMEOUT},
      {CLINK_EQUEUE_FULL, CLINK_FAILURE_POOL_TIMEOUT},
      {CLINK_ESPAWN, CLINK_FAILURE_PROCESS},
      {CLINK_EEXITED, CLINK_FAILURE_PROCESS},
      {CLINK_EINIT_TIMEOUT, CLINK_FAILURE_PROCESS},
      {UV_EPIPE, CLINK_FAILURE_PROCESS},
      {UV_EMFILE, CLINK_FAILURE_PROCESS},
      {CLINK_ETURN_STALLED, CLINK_FAILURE_STALLED},
      {CLINK_ECONTROL_TIMEOUT, CLINK_FAILURE_STALLED},
      {UV_ETIMEDOUT, CLINK_FAILURE_DEADLINE},
      {CLINK_ETURN_FAILED, CLINK_FAILURE_TURN}, /* no result to look at */
      {CLINK_EINTERRUPTED, CLINK_FAILURE_TURN},
      {CLINK_ECLI_NOT_FOUND, CLINK_FAILURE_CONFIG},
      {CLINK_ECLI_EXEC_DENIED, CLINK_FAILURE_CONFIG},
      {UV_EINVAL, CLINK_FAILURE_CONFIG},
      {UV_EACCES, CLINK_FAILURE_CONFIG},
      {UV_ENOMEM, CLINK_FAILURE_OTHER},
      {CLINK_ECLOSING, CLINK_FAILURE_OTHER},
      {CLINK_EPROTOCOL, CLINK_FAILURE_OTHER},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    ck_assert_msg(clink_failure_classify(t[i].err, NULL) == t[i].k, "%s -> %s, want %s",
                  clink_err_name(t[i].err),
                  clink_failure_class_name(clink_failure_classify(t[i].err, NULL)),
                  clink_failure_class_name(t[i].k));
  /* Failed turns by their API status (real-cli.md §6.1). */
  int retryable[] = {429, 500, 502, 503, 504, 529, 408};
  for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++)
    ck_assert_int_eq(classify_turn(retryable[i], "API Error", "completed"),
                     CLINK_FAILURE_API_RETRYABLE);
  int rejected[] = {400, 401, 403, 404, 413, 422};
  for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++)
    ck_assert_int_eq(classify_turn(rejected[i], "API Error: 400 fake error 400", "completed"),
                     CLINK_FAILURE_API_REJECTED);
  ck_assert_int_eq(classify_turn(400, "API Error: 400 prompt is too long: 210000 tokens > 200000",
                                 "completed"),
                   CLINK_FAILURE_CONTEXT_OVERFLOW);
  ck_assert_int_eq(classify_turn(0, "Prompt is too long", "prompt_too_long"),
                   CLINK_FAILURE_CONTEXT_OVERFLOW);
  ck_assert_int_eq(classify_turn(0, "API Error: Unable to connect to API (ConnectionRefused)",
                                 "completed"),
                   CLINK_FAILURE_API_RETRYABLE);
  ck_assert_int_eq(classify_turn(0, "", "max_turns"), CLINK_FAILURE_TURN);
  /* Names. */
  ck_assert_str_eq(clink_failure_class_name(CLINK_FAILURE_API_RETRYABLE), "api_retryable");
  ck_assert_str_eq(clink_failure_class_name(CLINK_FAILURE_DEADLINE), "deadline");
  ck_assert_str_eq(clink_failure_class_name((clink_failure_class)3), "unknown");
  ck_assert_str_eq(clink_fallback_strategy_name(CLINK_FALLBACK_QUEUE_FOR_RETRY), "queue_for_retry");
  ck_assert_str_eq(clink_fallback_strategy_name((clink_fallback_strategy)9), "unknown");
  ck_assert_str_eq(clink_source_name(CLINK_SOURCE_ALTERNATIVE), "alternative");
  ck_assert_str_eq(clink_source_name((clink_source)99), "unknown");
  ck_assert_str_eq(clink_err_name(CLINK_ENO_FALLBACK), "CLINK_ENO_FALLBACK");
}
END_TEST

/* ------------------------------------------------------------ the chain */

/* The default route of every class, for the seed's chat chain. */
START_TEST(default_routes) {
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new_seed(&fb, "chat"), 0);
  ck_assert_str_eq(clink_fallback_operation(fb), "chat");
  ck_assert_uint_eq(clink_fallback_step_count(fb), 2);
  ck_assert_int_eq(clink_fallback_step_strategy(fb, 0), CLINK_FALLBACK_CACHED_RESPONSE);
  ck_assert_int_eq(clink_fallback_step_strategy(fb, 1), CLINK_FALLBACK_MOCK_RESPONSE);
  ck_assert_int_eq(clink_fallback_step_strategy(fb, 2), UV_EINVAL);
  ck_assert_uint_eq(fb->steps[0].ttl_ms, CLINK_FALLBACK_CHAT_CACHE_TTL_MS);
  ck_assert_str_eq(fb->steps[1].text, CLINK_FALLBACK_DEFAULT_MOCK_TEXT);
  const clink_failure_class down[] = {CLINK_FAILURE_CIRCUIT_OPEN, CLINK_FAILURE_POOL_TIMEOUT,
                                      CLINK_FAILURE_PROCESS, CLINK_FAILURE_STALLED,
                                      CLINK_FAILURE_API_RETRYABLE, CLINK_FAILURE_DEADLINE};
  for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++) {
    ck_assert(clink__fallback_handles(fb, down[i], 0, 1));
    ck_assert(clink__fallback_step_applies(&fb->steps[0], down[i], 0, 1));
    ck_assert(clink__fallback_step_applies(&fb->steps[1], down[i], 0, 1));
  }
  const clink_failure_class fast[] = {CLINK_FAILURE_NONE, CLINK_FAILURE_API_REJECTED,
                                      CLINK_FAILURE_CONTEXT_OVERFLOW, CLINK_FAILURE_TURN,
                                      CLINK_FAILURE_CONFIG, CLINK_FAILURE_OTHER};
  for (size_t i = 0; i < sizeof(fast) / sizeof(fast[0]); i++)
    ck_assert_msg(!clink__fallback_handles(fb, fast[i], 0, 1), "%s falls back",
                  clink_failure_class_name(fast[i]));
  /* After the deadline: answers from memory only. */
  ck_assert(clink__fallback_handles(fb, CLINK_FAILURE_DEADLINE, 1, 1));
  clink_fallback_free(fb);

  ck_assert_int_eq(clink_fallback_new_seed(&fb, "create_session"), 0);
  ck_assert_uint_eq(clink_fallback_step_count(fb), 2);
  ck_assert_uint_eq(fb->steps[0].ttl_ms, CLINK_FALLBACK_DEFAULT_CACHE_TTL_MS);
  clink_fallback_free(fb);
  ck_assert_int_eq(clink_fallback_new_seed(&fb, "other"), UV_EINVAL);
  ck_assert_int_eq(clink_fallback_new(&fb, ""), UV_EINVAL);
  ck_assert_int_eq(clink_fallback_new(&fb, NULL), UV_EINVAL);
  clink_fallback_free(NULL);
}
END_TEST

static void never_called(clink_fallback_reply *r, void *ud) {
  (void)r;
  (void)ud;
  ck_abort_msg("not expected");
}

START_TEST(step_rules) {
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new(&fb, "op"), 0);
  clink_pool *fake_pool = (clink_pool *)(uintptr_t)0x1000; /* never dereferenced */
  clink_outbox *fake_ob = (clink_outbox *)(uintptr_t)0x2000;
  ck_assert_int_eq(clink_fallback_add_alternative(fb, fake_pool, NULL), 0);
  ck_assert_int_eq(clink_fallback_add_degraded(fb, fake_pool), 1);
  ck_assert_int_eq(clink_fallback_add_degraded_fn(fb, never_called, NULL), 2);
  ck_assert_int_eq(clink_fallback_add_queue(fb, fake_ob), 3);
  ck_assert_int_eq(clink_fallback_add_mock_fn(fb, never_called, NULL), 4);
  ck_assert_int_eq(clink_fallback_add_mock(fb, "static"), 5);
  ck_assert_int_eq(clink_fallback_add_cached(fb, 0, 0), 6);
  ck_assert_uint_eq(fb->steps[6].ttl_ms, CLINK_NEVER);
  ck_assert_int_eq(clink_fallback_add_alternative(fb, NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_fallback_add_queue(fb, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_fallback_add_mock_fn(fb, NULL, NULL), UV_EINVAL);
  clink_failure_class k = CLINK_FAILURE_API_RETRYABLE;
  /* Before the deadline every step applies; pool steps only with a pool. */
  for (size_t i = 0; i < 7; i++) ck_assert(clink__fallback_step_applies(&fb->steps[i], k, 0, 1));
  ck_assert(!clink__fallback_step_applies(&fb->steps[0], k, 0, 0));
  ck_assert(!clink__fallback_step_applies(&fb->steps[1], k, 0, 0));
  ck_assert(clink__fallback_step_applies(&fb->steps[2], k, 0, 0));
  /* After it: the fixed mock and the cache only. */
  int want[] = {0, 0, 0, 0, 0, 1, 1};
  for (size_t i = 0; i < 7; i++)
    ck_assert_int_eq(clink__fallback_step_applies(&fb->steps[i], k, 1, 1), want[i]);
  /* Classes per step: a larger-context alternative takes overflows. */
  ck_assert(!clink__fallback_step_applies(&fb->steps[0], CLINK_FAILURE_CONTEXT_OVERFLOW, 0, 1));
  ck_assert_int_eq(clink_fallback_set_step_failures(
                       fb, 0, CLINK_FAILURE_DEFAULT | CLINK_FAILURE_CONTEXT_OVERFLOW),
                   0);
  ck_assert(clink__fallback_step_applies(&fb->steps[0], CLINK_FAILURE_CONTEXT_OVERFLOW, 0, 1));
  ck_assert(clink__fallback_handles(fb, CLINK_FAILURE_CONTEXT_OVERFLOW, 0, 1));
  ck_assert(!clink__fallback_handles(fb, CLINK_FAILURE_CONTEXT_OVERFLOW, 0, 0));
  ck_assert_int_eq(clink_fallback_set_step_failures(fb, 5, 0), 0); /* off */
  ck_assert(!clink__fallback_step_applies(&fb->steps[5], k, 0, 1));
  ck_assert_int_eq(clink_fallback_set_step_failures(fb, 7, 0), UV_EINVAL);
  ck_assert_int_eq(clink_fallback_set_step_failures(fb, 0, 1u << 20), UV_EINVAL);
  /* At most 16 steps. */
  for (int i = 7; i < 16; i++) ck_assert_int_eq(clink_fallback_add_mock(fb, NULL), i);
  ck_assert_int_eq(clink_fallback_add_mock(fb, NULL), UV_E2BIG);
  ck_assert_uint_eq(clink_fallback_step_count(fb), 16);
  ck_assert_int_eq(clink_fallback_set_cache_limits(fb, 0, 10), UV_EINVAL);
  ck_assert_int_eq(clink_fallback_set_cache_limits(fb, 10, 0), UV_EINVAL);
  ck_assert_int_eq(clink_fallback_set_cache_limits(fb, 10, 1000), 0);
  clink_fallback_free(fb);
}
END_TEST

START_TEST(registry_and_stats) {
  clink_fallback_registry *reg;
  ck_assert_int_eq(clink_fallback_registry_new(&reg), 0);
  ck_assert_uint_eq(clink_fallback_registry_count(reg), 2);
  ck_assert_str_eq(clink_fallback_operation(clink_fallback_registry_at(reg, 0)), "chat");
  ck_assert_str_eq(clink_fallback_operation(clink_fallback_registry_at(reg, 1)),
                   "create_session");
  ck_assert_ptr_null(clink_fallback_registry_at(reg, 2));
  clink_fallback *mine;
  ck_assert_int_eq(clink_fallback_registry_add(reg, "summarize", &mine), 0);
  ck_assert_ptr_eq(clink_fallback_registry_get(reg, "summarize"), mine);
  ck_assert_int_eq(clink_fallback_registry_add(reg, "chat", NULL), UV_EEXIST);
  ck_assert_ptr_null(clink_fallback_registry_get(reg, "nope"));
  ck_assert_uint_eq(clink_fallback_step_count(mine), 0);

  /* Counting, as the drivers do. */
  clink_fallback *chat = clink_fallback_registry_get(reg, "chat");
  clink__fallback_count_end(chat, CLINK_SOURCE_PRIMARY, 0, CLINK_FAILURE_NONE, 0);
  clink__fallback_count_end(chat, CLINK_SOURCE_CACHE, 0, CLINK_FAILURE_API_RETRYABLE, 1);
  clink__fallback_count_end(chat, CLINK_SOURCE_MOCK, 0, CLINK_FAILURE_PROCESS, 2);
  clink__fallback_count_end(chat, CLINK_SOURCE_NONE, CLINK_ETURN_FAILED,
                            CLINK_FAILURE_API_REJECTED, 0);
  clink__fallback_count_end(chat, CLINK_SOURCE_NONE, CLINK_ENO_FALLBACK,
                            CLINK_FAILURE_STALLED, 1);
  clink__fallback_count_end(chat, CLINK_SOURCE_NONE, UV_ECANCELED, CLINK_FAILURE_NONE, 0);
  clink__cache_key k;
  clink__cache_key_init(&k, "chat", "p", NULL, "hi");
  ck_assert_int_eq(clink__fallback_store(chat, &k, "hello", 5, 0), 0);
  clink__cache_hit h;
  ck_assert_int_eq(clink__fallback_lookup(chat, NULL, &k, 1, &h), 0);
  chat->cache->ops->release(NULL, &h);
  clink__cache_key_init(&k, "chat", "p", NULL, "other");
  ck_assert_int_eq(clink__fallback_lookup(chat, NULL, &k, 1, &h), UV_ENOENT);

  clink_fallback_stats st;
  memset(&st, 0xff, sizeof(st));
  st.struct_size = sizeof(st);
  ck_assert_int_eq(clink_fallback_get_stats(chat, &st), 0);
  ck_assert_uint_eq(st.struct_size, sizeof(st));
  ck_assert_uint_eq(st.total_calls, 6);
  ck_assert_uint_eq(st.primary_success, 1);
  ck_assert_uint_eq(st.fallback_used, 2);
  ck_assert_uint_eq(st.fallback_by_strategy[CLINK_FALLBACK_CACHED_RESPONSE], 1);
  ck_assert_uint_eq(st.fallback_by_strategy[CLINK_FALLBACK_MOCK_RESPONSE], 1);
  ck_assert_uint_eq(st.fallback_by_strategy[CLINK_FALLBACK_QUEUE_FOR_RETRY], 0);
  ck_assert_uint_eq(st.failures, 2);
  ck_assert_uint_eq(st.failed_fast, 1);
  ck_assert_uint_eq(st.exhausted, 1);
  ck_assert_uint_eq(st.cancelled, 1);
  ck_assert_uint_eq(st.failures_by_class[4], 1); /* API_RETRYABLE is bit 4 */
  ck_assert_uint_eq(st.failures_by_class[5], 1);
  ck_assert_uint_eq(st.cache_hits, 1);
  ck_assert_uint_eq(st.cache_misses, 1);
  ck_assert_uint_eq(st.cache_entries, 1);
  ck_assert_uint_gt(st.cache_bytes, 5);
  /* An older, smaller struct gets only what fits. */
  struct {
    size_t struct_size;
    uint64_t total_calls, primary_success;
    uint64_t guard;
  } old;
  old.struct_size = offsetof(clink_fallback_stats, fallback_used);
  old.guard = 77;
  ck_assert_int_eq(clink_fallback_get_stats(chat, (clink_fallback_stats *)(void *)&old), 0);
  ck_assert_uint_eq(old.total_calls, 6);
  ck_assert_uint_eq(old.primary_success, 1);
  ck_assert_uint_eq(old.guard, 77);
  st.struct_size = 0;
  ck_assert_int_eq(clink_fallback_get_stats(chat, &st), UV_EINVAL);

  /* Clear: per fallback and for the registry. */
  clink__cache_key_init(&k, "create_session", "", NULL, "x");
  ck_assert_int_eq(
      clink__fallback_store(clink_fallback_registry_get(reg, "create_session"), &k, "s", 1, 0),
      0);
  ck_assert_int_eq(clink_fallback_registry_clear_cache(reg), 2);
  ck_assert_int_eq(clink_fallback_clear_cache(chat), 0);
  /* A chain without a cached step stores nothing. */
  ck_assert_int_eq(clink__fallback_store(mine, &k, "s", 1, 0), 0);
  ck_assert_int_eq(clink_fallback_registry_clear_cache(reg), 0);

  /* Remove: the seed's chat gives way to a host's own, order kept. */
  ck_assert_int_eq(clink_fallback_registry_remove(reg, "chat"), 0);
  ck_assert_int_eq(clink_fallback_registry_remove(reg, "chat"), UV_ENOENT);
  ck_assert_int_eq(clink_fallback_registry_remove(NULL, "chat"), UV_EINVAL);
  ck_assert_uint_eq(clink_fallback_registry_count(reg), 2);
  ck_assert_str_eq(clink_fallback_operation(clink_fallback_registry_at(reg, 0)),
                   "create_session");
  ck_assert_ptr_eq(clink_fallback_registry_at(reg, 1), mine);
  ck_assert_int_eq(clink_fallback_registry_add(reg, "chat", &chat), 0);
  ck_assert_uint_eq(clink_fallback_step_count(chat), 0);
  ck_assert_ptr_eq(clink_fallback_registry_at(reg, 2), chat);
  clink_fallback_registry_free(reg);
  clink_fallback_registry_free(NULL);
}
END_TEST

/* ================================================================ loop */

#define MAX_EVENTS 64

typedef struct call {
  int done, status, msgs, assistant_msgs, synth, inits;
  clink_source source;
  char answer[512];
  int primary_err;
  clink_failure_class klass;
  int api_status, has_result;
  int64_t queued_id;
  uint64_t latency_us, cache_age;
  int stale;
  unsigned attempts;
  char sid[64], err_text[256];
  clink_ask_call *h;
  /* what to do from the callbacks */
  int cancel_at_init, cancel_rc, cancel_again_rc, unlink_at_init;
  int shutdown_in_done, free_fb_in_done, resubmit_in_done, cancel_in_done_rc;
  struct call *next_call; /* resubmit_in_done: the new call's record */
} call;

static struct {
  uv_loop_t loop;
  char dir[256], fail_file[300];
  clink_options *opts;
  clink_pool_config *cfg;
  clink_pool *pool, *pool2;
  int pool_closed, pool2_closed;
  clink_fallback *fb;
  clink_ask_options *ao;
  clink_events *sink;
  int sink_closed;
  int n_events;
  char events[MAX_EVENTS][48];
  char event_detail[MAX_EVENTS][256];
  uv_timer_t timer;
  clink_fallback_reply *held_reply; /* answered later from the timer */
  int held_status;
  int reply_calls, reply_later;
  uint64_t reply_delay_ms;
  char reply_op[32], reply_prompt[64];
  int reply_err;
  clink_failure_class reply_class;
  clink_fallback_strategy reply_strategy;
} T;

#define RUN_UNTIL(cond)                                                        \
  do {                                                                         \
    while (!(cond))                                                            \
      ck_assert_msg(uv_run(&T.loop, UV_RUN_ONCE) != 0 || (cond),               \
                    "loop ended before: " #cond);                              \
  } while (0)

static void fail_with(const char *what) {
  FILE *f = fopen(T.fail_file, "w");
  ck_assert_ptr_nonnull(f);
  fputs(what, f);
  fclose(f);
}

static void fail_none(void) { unlink(T.fail_file); }

static void on_event(clink_events *sink, const clink_event *ev, void *ud) {
  (void)sink;
  (void)ud;
  NOT_IN_API();
  ck_assert_str_eq(ev->component, "fallback_system");
  if (T.n_events >= MAX_EVENTS) return;
  snprintf(T.events[T.n_events], sizeof(T.events[0]), "%s", ev->event);
  char *d = T.event_detail[T.n_events];
  d[0] = '\0';
  for (size_t i = 0; i < ev->n_fields; i++) {
    const clink_event_field *f = &ev->fields[i];
    size_t n = strlen(d);
    if (f->kind == CLINK_FIELD_STRING)
      snprintf(d + n, 256 - n, "%s=%s ", f->key, f->s);
    else
      snprintf(d + n, 256 - n, "%s=%lld ", f->key, (long long)f->i);
  }
  T.n_events++;
}

static int count_events(const char *name) {
  int n = 0;
  for (int i = 0; i < T.n_events; i++) n += strcmp(T.events[i], name) == 0;
  return n;
}

static const char *event_detail(const char *name) {
  for (int i = 0; i < T.n_events; i++)
    if (strcmp(T.events[i], name) == 0) return T.event_detail[i];
  return "";
}

static void on_pool_closed(clink_pool *p, void *ud) {
  (void)ud;
  if (p == T.pool) {
    T.pool_closed++;
    T.pool = NULL;
  } else {
    T.pool2_closed++;
    T.pool2 = NULL;
  }
}

static void setup(void) {
  memset(&T, 0, sizeof(T));
  in_api = 0;
  ck_assert_int_eq(uv_loop_init(&T.loop), 0);
  uv_timer_init(&T.loop, &T.timer);
  const char *tmp = getenv("TMPDIR");
  snprintf(T.dir, sizeof(T.dir), "%s/clink-fallback.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(T.dir));
  snprintf(T.fail_file, sizeof(T.fail_file), "%s/fail", T.dir);
  ck_assert_int_eq(clink_options_new(&T.opts), 0);
  ck_assert_int_eq(clink_options_set_cli_path(T.opts, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(T.opts, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(T.opts, 50, 50), 0);
  ck_assert_int_eq(clink_options_set_close_turn_wait_ms(T.opts, 0), 0);
  ck_assert_int_eq(clink_options_set_env(T.opts, "FAKE_ECHO", "1"), 0);
  ck_assert_int_eq(clink_options_set_env(T.opts, "FAKE_FAIL_FILE", T.fail_file), 0);
  ck_assert_int_eq(clink_pool_config_new(&T.cfg), 0);
  ck_assert_int_eq(clink_pool_config_set_size(T.cfg, 1, 2), 0);
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(T.cfg, 10000), 0);
  ck_assert_int_eq(clink_pool_config_set_validation(T.cfg, 0, 0), 0);
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 10, 500, 1000), 0);
  ck_assert_int_eq(clink_events_new(&T.sink, &T.loop), 0);
  ck_assert_int_eq(clink_events_set_level(T.sink, CLINK_LOG_DEBUG), 0);
  clink_events_set_cb(T.sink, on_event, NULL);
  ck_assert_int_eq(clink_fallback_new_seed(&T.fb, "chat"), 0);
  clink_fallback_set_events(T.fb, T.sink);
  ck_assert_int_eq(clink_ask_options_new(&T.ao), 0);
  ck_assert_int_eq(clink_ask_options_set_fallback(T.ao, T.fb), 0);
  /* One attempt unless a test asks for retries. */
  ck_assert_int_eq(clink_ask_options_set_retry_policy(T.ao, NULL), 0);
}

static void make_pool(void) {
  ck_assert_int_eq(API(clink_pool_new(&T.pool, &T.loop, T.opts, T.cfg)), 0);
}

/* A second pool: no fail file, answers "x..." (FAKE_ECHO off, 2 messages). */
static void make_pool2(void) {
  clink_options *o;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_eq(clink_options_set_cli_path(o, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(o, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(o, 50, 50), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_MSGS", "2"), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_BYTES", "3"), 0);
  ck_assert_int_eq(API(clink_pool_new(&T.pool2, &T.loop, o, T.cfg)), 0);
  clink_options_free(o);
}

static void close_sink(clink_events *s, void *ud) {
  (void)s;
  (void)ud;
  T.sink_closed++;
}

static void teardown(void) {
  if (T.pool) clink_pool_shutdown(T.pool, CLINK_POOL_IMMEDIATE, on_pool_closed, NULL);
  if (T.pool2) clink_pool_shutdown(T.pool2, CLINK_POOL_IMMEDIATE, on_pool_closed, NULL);
  RUN_UNTIL(T.pool == NULL && T.pool2 == NULL);
  ck_assert_int_eq(clink_events_close(T.sink, close_sink, NULL), 0);
  uv_close((uv_handle_t *)&T.timer, NULL);
  CLINK_TEST_LOOP_DONE(&T.loop);
  ck_assert_int_eq(T.sink_closed, 1);
  clink_fallback_free(T.fb);
  clink_ask_options_free(T.ao);
  clink_options_free(T.opts);
  clink_pool_config_free(T.cfg);
  unlink(T.fail_file);
  rmdir(T.dir);
}

static void wait_idle(clink_pool *p, uint32_t n) {
  for (;;) {
    clink_pool_stats s;
    s.struct_size = sizeof(s);
    ck_assert_int_eq(clink_pool_get_stats(p, &s), 0);
    if (s.idle >= n && s.starting == 0) return;
    ck_assert(uv_run(&T.loop, UV_RUN_ONCE) != 0);
  }
}

static void on_ask_msg(clink_ask_call *a, const clink_msg *m, void *ud) {
  NOT_IN_API();
  call *c = ud;
  ck_assert_ptr_eq(a, c->h);
  ck_assert_int_eq(c->done, 0);
  c->msgs++;
  if (clink_msg_get_kind(m) == CLINK_MSG_ASSISTANT) {
    c->assistant_msgs++;
    const struct cJSON *j = clink_msg_json(m);
    if (j && cJSON_GetObjectItemCaseSensitive(j, "fallback")) {
      c->synth++;
      ck_assert_str_eq(clink_msg_block_text(m, 0), clink_ask_answer(a, NULL));
    }
  }
  if (clink_msg_get_kind(m) == CLINK_MSG_SYSTEM && clink_msg_subtype(m) &&
      strcmp(clink_msg_subtype(m), "init") == 0) {
    c->inits++;
    ck_assert(clink_ask_source(a) == CLINK_SOURCE_PRIMARY ||
              clink_ask_source(a) == CLINK_SOURCE_ALTERNATIVE ||
              clink_ask_source(a) == CLINK_SOURCE_DEGRADED);
    if (c->unlink_at_init) fail_none();
    if (c->cancel_at_init) {
      c->cancel_rc = clink_ask_cancel(a);
      c->cancel_again_rc = clink_ask_cancel(a);
    }
  }
}

static void ask_into(call *c, clink_pool *pool, const char *sid, const char *prompt);

static void on_ask_done(clink_ask_call *a, int status, void *ud) {
  NOT_IN_API();
  call *c = ud;
  ck_assert_int_eq(c->done, 0);
  ck_assert_ptr_eq(a, c->h);
  c->done++;
  c->status = status;
  c->source = clink_ask_source(a);
  size_t len = 99;
  const char *ans = clink_ask_answer(a, &len);
  ck_assert_uint_eq(len, strlen(ans));
  snprintf(c->answer, sizeof(c->answer), "%s", ans);
  c->primary_err = clink_ask_primary_error(a);
  c->klass = clink_ask_failure(a);
  const clink_msg *r = clink_ask_result(a);
  c->has_result = r != NULL;
  c->api_status = r ? clink_msg_result_api_error_status(r) : 0;
  c->queued_id = clink_ask_queued_id(a);
  c->latency_us = clink_ask_latency_us(a);
  c->cache_age = clink_ask_cache_age_ms(a);
  c->stale = clink_ask_cache_stale(a);
  c->attempts = clink_ask_attempts(a);
  snprintf(c->sid, sizeof(c->sid), "%s", clink_ask_session_id(a) ? clink_ask_session_id(a) : "");
  snprintf(c->err_text, sizeof(c->err_text), "%s", clink_ask_error_text(a));
  c->cancel_in_done_rc = clink_ask_cancel(a);
  if (c->shutdown_in_done && T.pool)
    ck_assert_int_eq(clink_pool_shutdown(T.pool, CLINK_POOL_DRAIN, on_pool_closed, NULL), 0);
  if (c->free_fb_in_done) {
    clink_fallback_free(T.fb);
    T.fb = NULL;
  }
  if (c->resubmit_in_done && T.pool) ask_into(c->next_call, T.pool, NULL, "again");
}

static void ask_into(call *c, clink_pool *pool, const char *sid, const char *prompt) {
  ck_assert_int_eq(API(clink_ask(&c->h, pool, sid, prompt, T.ao, on_ask_done, c)), 0);
  ck_assert_int_eq(c->done, 0); /* never inside the call */
}

static call ask(const char *prompt) {
  call c;
  memset(&c, 0, sizeof(c));
  ask_into(&c, T.pool, NULL, prompt);
  RUN_UNTIL(c.done);
  return c;
}

static clink_fallback_stats fb_stats(void) {
  clink_fallback_stats s;
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_fallback_get_stats(T.fb, &s), 0);
  return s;
}

/* Events arrive from the loop: run until n of them are in. */
static void wait_events(int n) { RUN_UNTIL(T.n_events >= n); }

/* ------------------------------------------------------------- primary */

START_TEST(primary_success_is_cached) {
  make_pool();
  ck_assert_int_eq(clink_ask_options_set_message_cb(T.ao, on_ask_msg), 0);
  call c = ask("hello  world");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_PRIMARY);
  ck_assert_str_eq(c.answer, "hello  world");
  ck_assert_uint_eq(c.attempts, 1);
  ck_assert_int_eq(c.primary_err, 0);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_NONE);
  ck_assert(c.has_result);
  ck_assert_str_ne(c.sid, "");
  ck_assert_int_ge(c.msgs, 3); /* init, assistant, result */
  ck_assert_int_eq(c.assistant_msgs, 1);
  ck_assert_int_eq(c.synth, 0);
  ck_assert_int_eq(c.cancel_in_done_rc, UV_EBUSY);
  clink_fallback_stats s = fb_stats();
  ck_assert_uint_eq(s.total_calls, 1);
  ck_assert_uint_eq(s.primary_success, 1);
  ck_assert_uint_eq(s.fallback_used, 0);
  ck_assert_uint_eq(s.cache_entries, 1);
  /* The same conversation (session affinity) is another key. */
  call d;
  memset(&d, 0, sizeof(d));
  ask_into(&d, T.pool, c.sid, "second turn");
  RUN_UNTIL(d.done);
  ck_assert_int_eq(d.status, 0);
  ck_assert_str_eq(d.sid, c.sid);
  ck_assert_uint_eq(fb_stats().cache_entries, 2);
  /* Without options: the defaults (no fallback). */
  call e;
  memset(&e, 0, sizeof(e));
  ck_assert_int_eq(API(clink_ask(&e.h, T.pool, NULL, "bare", NULL, on_ask_done, &e)), 0);
  RUN_UNTIL(e.done);
  ck_assert_int_eq(e.status, 0);
  ck_assert_str_eq(e.answer, "bare");
  ck_assert_uint_eq(fb_stats().total_calls, 2);
  /* Bad input: an error, and no callback. */
  ck_assert_int_eq(clink_ask(NULL, NULL, NULL, "x", NULL, on_ask_done, &e), UV_EINVAL);
  ck_assert_int_eq(clink_ask(NULL, T.pool, NULL, NULL, NULL, on_ask_done, &e), UV_EINVAL);
  ck_assert_int_eq(clink_ask(NULL, T.pool, "", "x", NULL, on_ask_done, &e), UV_EINVAL);
}
END_TEST

/* 529 -> the cached answer for the same prompt (whitespace aside), the mock
 * for a new one; statistics and events in the seed's names. */
START_TEST(api_529_cache_then_mock) {
  make_pool();
  clink_fallback_set_events(T.fb, NULL);
  ck_assert_int_eq(clink_ask_options_set_events(T.ao, T.sink), 0); /* the call's sink wins */
  ck_assert_int_eq(clink_ask_options_set_message_cb(T.ao, on_ask_msg), 0);
  call p = ask("What is 2+2?");
  ck_assert_int_eq(p.status, 0);
  fail_with("529");
  call c = ask("  What is\n2+2? ");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_str_eq(c.answer, "What is 2+2?");
  ck_assert_int_eq(c.primary_err, CLINK_ETURN_FAILED);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_API_RETRYABLE);
  ck_assert_int_eq(c.api_status, 529); /* the failed turn's result */
  ck_assert_int_eq(c.stale, 0);
  ck_assert_int_eq(c.synth, 1); /* one synthesized message with the answer */
  ck_assert_str_eq(c.sid, "");
  ck_assert_str_eq(c.err_text, "API Error: 529 fake");
  call m = ask("Something new");
  ck_assert_int_eq(m.status, 0);
  ck_assert_int_eq(m.source, CLINK_SOURCE_MOCK);
  ck_assert_str_eq(m.answer, CLINK_FALLBACK_DEFAULT_MOCK_TEXT);
  ck_assert_int_eq(m.synth, 1);
  clink_fallback_stats s = fb_stats();
  ck_assert_uint_eq(s.total_calls, 3);
  ck_assert_uint_eq(s.primary_success, 1);
  ck_assert_uint_eq(s.fallback_used, 2);
  ck_assert_uint_eq(s.fallback_by_strategy[CLINK_FALLBACK_CACHED_RESPONSE], 1);
  ck_assert_uint_eq(s.fallback_by_strategy[CLINK_FALLBACK_MOCK_RESPONSE], 1);
  ck_assert_uint_eq(s.cache_hits, 1);
  ck_assert_uint_eq(s.cache_misses, 1);
  ck_assert_uint_eq(s.failures, 0);
  ck_assert_uint_eq(s.failures_by_class[4], 2);
  wait_events(4);
  ck_assert_int_eq(count_events("cache_hit"), 1);
  ck_assert_int_eq(count_events("cache_miss"), 1);
  ck_assert_int_eq(count_events("fallback_used"), 2);
  ck_assert_ptr_nonnull(strstr(event_detail("fallback_used"),
                               "operation=chat strategy=cached_response source=cache "
                               "error=CLINK_ETURN_FAILED failure_class=api_retryable"));
  /* Clearing the cache: the same prompt now gets the mock. */
  ck_assert_int_eq(clink_fallback_clear_cache(T.fb), 1);
  call after = ask("What is 2+2?");
  ck_assert_int_eq(after.source, CLINK_SOURCE_MOCK);
}
END_TEST

static int waited;
static void on_wait(uv_timer_t *t) {
  (void)t;
  waited = 1;
}

/* Past its TTL, inside stale-if-error: still served on error, marked stale. */
START_TEST(stale_answer_on_error) {
  make_pool();
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new(&fb, "chat"), 0);
  ck_assert_int_eq(clink_fallback_add_cached(fb, 1, 600000), 0);
  ck_assert_int_eq(clink_ask_options_set_fallback(T.ao, fb), 0);
  clink_fallback_set_events(fb, T.sink);
  call p = ask("old news");
  ck_assert_int_eq(p.source, CLINK_SOURCE_PRIMARY);
  waited = 0;
  uv_timer_start(&T.timer, on_wait, 5, 0);
  RUN_UNTIL(waited);
  fail_with("503");
  call c = ask("old news");
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_int_eq(c.stale, 1);
  ck_assert_uint_ge(c.cache_age, 4);
  wait_events(2);
  ck_assert_ptr_nonnull(strstr(event_detail("cache_hit"), "stale=1"));
  clink_fallback_free(fb);
}
END_TEST

/* Many calls at once on a small pool: all complete, each counted once. */
START_TEST(concurrent_calls) {
  make_pool();
  enum { N = 24 };
  static call c[N];
  memset(c, 0, sizeof(c));
  char prompt[32];
  for (int i = 0; i < N; i++) {
    snprintf(prompt, sizeof(prompt), "q%d", i % 6);
    ask_into(&c[i], T.pool, NULL, prompt);
  }
  for (int i = 0; i < N; i++) RUN_UNTIL(c[i].done);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(c[i].status, 0);
    ck_assert_int_eq(c[i].source, CLINK_SOURCE_PRIMARY);
    snprintf(prompt, sizeof(prompt), "q%d", i % 6);
    ck_assert_str_eq(c[i].answer, prompt);
  }
  clink_fallback_stats s = fb_stats();
  ck_assert_uint_eq(s.total_calls, N);
  ck_assert_uint_eq(s.primary_success, N);
  ck_assert_uint_eq(s.cache_entries, 6);
  /* Now all failing at once: all from the cache. */
  fail_with("529");
  memset(c, 0, sizeof(c));
  for (int i = 0; i < N; i++) {
    snprintf(prompt, sizeof(prompt), "q%d", i % 6);
    ask_into(&c[i], T.pool, NULL, prompt);
  }
  for (int i = 0; i < N; i++) RUN_UNTIL(c[i].done);
  for (int i = 0; i < N; i++) ck_assert_int_eq(c[i].source, CLINK_SOURCE_CACHE);
  s = fb_stats();
  ck_assert_uint_eq(s.cache_hits, N);
  /* Option setters check their object. */
  ck_assert_int_eq(clink_ask_options_set_deadline_ms(NULL, 1), UV_EINVAL);
  ck_assert_int_eq(clink_ask_options_set_fallback(NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_ask_options_set_message_cb(NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_ask_options_set_breaker(NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_ask_options_set_events(NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_ask_options_set_retry_policy(NULL, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_ask_options_set_profile_key(NULL, "x"), UV_EINVAL);
  char long_key[200];
  memset(long_key, 'k', sizeof(long_key) - 1);
  long_key[sizeof(long_key) - 1] = '\0';
  ck_assert_int_eq(clink_ask_options_set_profile_key(T.ao, long_key), UV_EINVAL);
  ck_assert_int_eq(clink_ask_cancel(NULL), UV_EINVAL);
  clink_ask_options_free(NULL);
}
END_TEST

/* A named profile: two pools share answers. */
START_TEST(profile_key_shares_answers) {
  make_pool();
  make_pool2();
  ck_assert_int_eq(clink_ask_options_set_profile_key(T.ao, "shared"), 0);
  call p;
  memset(&p, 0, sizeof(p));
  ask_into(&p, T.pool2, NULL, "q");
  RUN_UNTIL(p.done);
  ck_assert_str_eq(p.answer, "xxxxxx");
  fail_with("529");
  call c = ask("q"); /* on the first pool: its own profile would miss */
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_str_eq(c.answer, "xxxxxx");
  ck_assert_int_eq(clink_ask_options_set_profile_key(T.ao, NULL), 0);
  call m = ask("q");
  ck_assert_int_eq(m.source, CLINK_SOURCE_MOCK);
}
END_TEST

/* 400, 401 and 403 are never masked: the failure comes back as it is. */
START_TEST(client_errors_fail_fast) {
  make_pool();
  call p = ask("hi");
  ck_assert_int_eq(p.status, 0);
  const char *codes[] = {"400", "401", "403"};
  for (int i = 0; i < 3; i++) {
    fail_with(codes[i]);
    call c = ask("hi");
    ck_assert_int_eq(c.status, CLINK_ETURN_FAILED);
    ck_assert_int_eq(c.source, CLINK_SOURCE_NONE);
    ck_assert_str_eq(c.answer, "");
    ck_assert_int_eq(c.api_status, atoi(codes[i]));
    ck_assert_int_eq(c.klass, CLINK_FAILURE_API_REJECTED);
  }
  clink_fallback_stats s = fb_stats();
  ck_assert_uint_eq(s.failures, 3);
  ck_assert_uint_eq(s.failed_fast, 3);
  ck_assert_uint_eq(s.cache_hits + s.cache_misses, 0);
  wait_events(3);
  ck_assert_int_eq(count_events("fallback_skipped"), 3);
  ck_assert_int_eq(count_events("fallback_used"), 0);
  ck_assert_ptr_nonnull(strstr(event_detail("fallback_skipped"), "api_error_status=400"));
}
END_TEST

/* A retryable failure is retried; the retry succeeds. */
START_TEST(retry_then_success) {
  make_pool();
  clink_retry_policy *rp;
  ck_assert_int_eq(clink_retry_policy_new(&rp), 0);
  uint64_t d[] = {1, 1};
  ck_assert_int_eq(clink_retry_policy_set_schedule(rp, d, 2), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(rp, 2), 0);
  ck_assert_int_eq(clink_ask_options_set_retry_policy(T.ao, rp), 0);
  clink_retry_policy_free(rp);
  ck_assert_int_eq(clink_ask_options_set_message_cb(T.ao, on_ask_msg), 0);
  fail_with("503");
  call c;
  memset(&c, 0, sizeof(c));
  c.unlink_at_init = 1; /* the first attempt fails; the file is gone for the retry */
  ask_into(&c, T.pool, NULL, "retry me");
  RUN_UNTIL(c.done);
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_PRIMARY);
  ck_assert_uint_eq(c.attempts, 2);
  ck_assert_int_eq(c.inits, 2);
  ck_assert_str_eq(c.answer, "retry me"); /* only the successful attempt's text */
  /* A 400 is not retried. */
  fail_with("400");
  call r = ask("no retry");
  ck_assert_uint_eq(r.attempts, 1);
  ck_assert_int_eq(r.status, CLINK_ETURN_FAILED);
  /* Retries exhausted: then the chain. */
  fail_with("500");
  call x = ask("retry me");
  ck_assert_uint_eq(x.attempts, 3);
  ck_assert_int_eq(x.source, CLINK_SOURCE_CACHE);
}
END_TEST

/* ------------------------------------------------------ failure classes */

START_TEST(breaker_open_goes_down_the_chain) {
  make_pool();
  clink_breaker *b;
  ck_assert_int_eq(clink_breaker_new(&b, "claude_sdk", NULL, 1), 0);
  ck_assert_int_eq(clink_ask_options_set_breaker(T.ao, b), 0);
  clink_retry_policy *rp;
  ck_assert_int_eq(clink_retry_policy_new(&rp), 0); /* would wait 1 s: must not */
  ck_assert_int_eq(clink_ask_options_set_retry_policy(T.ao, rp), 0);
  clink_retry_policy_free(rp);
  call p = ask("cached question");
  ck_assert_int_eq(p.source, CLINK_SOURCE_PRIMARY);
  clink_breaker_force_open(b, uv_now(&T.loop));
  call c = ask("cached question");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_int_eq(c.primary_err, CLINK_ECIRCUIT_OPEN);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_CIRCUIT_OPEN);
  ck_assert_uint_eq(c.attempts, 1);
  ck_assert_uint_lt(c.latency_us, 1000000); /* no retry wait */
  call m = ask("new question");
  ck_assert_int_eq(m.source, CLINK_SOURCE_MOCK);
  /* The member went back: nothing is held. */
  clink_pool_stats ps;
  ps.struct_size = sizeof(ps);
  ck_assert_int_eq(clink_pool_get_stats(T.pool, &ps), 0);
  ck_assert_uint_eq(ps.in_use, 0);
  /* Breaker verdicts: a 529 is a failure of the dependency, a 400 is not. */
  clink_breaker_reset(b, uv_now(&T.loop));
  ck_assert_int_eq(clink_ask_options_set_retry_policy(T.ao, NULL), 0);
  fail_with("529");
  call f = ask("cached question");
  ck_assert_int_eq(f.source, CLINK_SOURCE_CACHE);
  clink_breaker_stats bs;
  bs.struct_size = sizeof(bs);
  ck_assert_int_eq(clink_breaker_get_stats(b, uv_now(&T.loop), &bs), 0);
  ck_assert_uint_eq(bs.consecutive_failures, 1);
  fail_with("400");
  call g = ask("cached question");
  ck_assert_int_eq(g.status, CLINK_ETURN_FAILED);
  ck_assert_int_eq(clink_breaker_get_stats(b, uv_now(&T.loop), &bs), 0);
  ck_assert_uint_eq(bs.consecutive_failures, 0);
  ck_assert_uint_eq(bs.total_successes, 2);
  clink_breaker_free(b);
}
END_TEST

static void on_hold(clink_pool *p, int status, clink_client *c, uint64_t ra, void *ud) {
  (void)p;
  (void)ra;
  ck_assert_int_eq(status, 0);
  *(clink_client **)ud = c;
}

START_TEST(pool_timeout_goes_down_the_chain) {
  ck_assert_int_eq(clink_pool_config_set_size(T.cfg, 1, 1), 0);
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(T.cfg, 30), 0);
  make_pool();
  wait_idle(T.pool, 1);
  clink_client *held = NULL;
  ck_assert_int_eq(clink_pool_acquire(T.pool, NULL, "test", on_hold, &held), 0);
  RUN_UNTIL(held != NULL);
  call c = ask("anything");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_MOCK);
  ck_assert_int_eq(c.primary_err, CLINK_EPOOL_TIMEOUT);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_POOL_TIMEOUT);
  ck_assert_uint_ge(c.latency_us, 29000);
  ck_assert_int_eq(clink_pool_release(T.pool, held), 0);
}
END_TEST

START_TEST(spawn_failure_goes_down_the_chain) {
  ck_assert_int_eq(clink_options_set_env(T.opts, "FAKE_EXIT_IMMEDIATELY", "1"), 0);
  ck_assert_int_eq(clink_pool_config_set_size(T.cfg, 0, 1), 0);
  make_pool();
  clink_retry_policy *rp;
  ck_assert_int_eq(clink_retry_policy_new(&rp), 0);
  uint64_t d[] = {1};
  ck_assert_int_eq(clink_retry_policy_set_schedule(rp, d, 1), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(rp, 2), 0);
  ck_assert_int_eq(clink_ask_options_set_retry_policy(T.ao, rp), 0);
  clink_retry_policy_free(rp);
  call c = ask("anything");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_MOCK);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_PROCESS);
  ck_assert_uint_eq(c.attempts, 3); /* spawn failures are retried */
}
END_TEST

/* A CLI that is not there is a configuration error: never masked. */
START_TEST(config_error_fails_fast) {
  ck_assert_int_eq(clink_options_set_cli_path(T.opts, "/nonexistent/claude"), 0);
  ck_assert_int_eq(clink_pool_config_set_size(T.cfg, 0, 1), 0);
  make_pool();
  clink_retry_policy *rp;
  ck_assert_int_eq(clink_retry_policy_new(&rp), 0); /* not retried either */
  ck_assert_int_eq(clink_ask_options_set_retry_policy(T.ao, rp), 0);
  clink_retry_policy_free(rp);
  call c = ask("anything");
  ck_assert_int_eq(c.status, CLINK_ECLI_NOT_FOUND);
  ck_assert_int_eq(c.source, CLINK_SOURCE_NONE);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_CONFIG);
  ck_assert_uint_eq(c.attempts, 1);
  ck_assert_uint_eq(fb_stats().failed_fast, 1);
}
END_TEST

START_TEST(process_death_goes_down_the_chain) {
  make_pool();
  call p = ask("question");
  ck_assert_int_eq(p.status, 0);
  fail_with("exit:3");
  call c = ask("question");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_int_eq(c.primary_err, CLINK_EEXITED);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_PROCESS);
  ck_assert_str_ne(c.err_text, "");
  fail_none();
  wait_idle(T.pool, 1); /* a replacement */
  call again = ask("question");
  ck_assert_int_eq(again.source, CLINK_SOURCE_PRIMARY);
}
END_TEST

START_TEST(stalled_turn_goes_down_the_chain) {
  /* A silent turn is probed after 100 ms; no answer in 100 ms: stalled. */
  ck_assert_int_eq(clink_options_set_turn_inactivity_ms(T.opts, 100), 0);
  ck_assert_int_eq(clink_options_set_idle_probe(T.opts, 0, 100), 0);
  make_pool();
  call p = ask("question");
  ck_assert_int_eq(p.status, 0);
  fail_with("hang");
  call c = ask("question");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_int_eq(c.primary_err, CLINK_ETURN_STALLED);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_STALLED);
  ck_assert_uint_ge(c.latency_us, 199000);
}
END_TEST

START_TEST(deadline_answers_from_memory) {
  ck_assert_int_eq(clink_options_set_control_timeout_ms(T.opts, 200), 0);
  make_pool();
  call p = ask("question");
  ck_assert_int_eq(p.status, 0);
  fail_with("hang");
  ck_assert_int_eq(clink_ask_options_set_deadline_ms(T.ao, 100), 0);
  call c = ask("question");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_int_eq(c.primary_err, UV_ETIMEDOUT);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_DEADLINE);
  ck_assert_uint_ge(c.latency_us, 99000); /* libuv timers: 1 ms granularity */
  /* The hung member: interrupted, no answer, given back: the pool closes it. */
  for (;;) {
    clink_pool_stats s;
    s.struct_size = sizeof(s);
    ck_assert_int_eq(clink_pool_get_stats(T.pool, &s), 0);
    if (s.closed_by_reason[CLINK_POOL_CLOSE_UNHEALTHY] == 1 && s.in_use == 0) break;
    ck_assert(uv_run(&T.loop, UV_RUN_ONCE) != 0);
  }
  /* After the deadline a step that needs time is not tried: a chain with
   * only a host strategy returns the deadline. */
  clink_fallback *slow;
  ck_assert_int_eq(clink_fallback_new(&slow, "chat"), 0);
  ck_assert_int_eq(clink_fallback_add_mock_fn(slow, never_called, NULL), 0);
  ck_assert_int_eq(clink_ask_options_set_fallback(T.ao, slow), 0);
  call d = ask("question");
  ck_assert_int_eq(d.status, UV_ETIMEDOUT);
  ck_assert_int_eq(d.source, CLINK_SOURCE_NONE);
  /* Let the hung member go. */
  for (;;) {
    clink_pool_stats s;
    s.struct_size = sizeof(s);
    ck_assert_int_eq(clink_pool_get_stats(T.pool, &s), 0);
    if (s.in_use == 0) break;
    ck_assert(uv_run(&T.loop, UV_RUN_ONCE) != 0);
  }
  clink_fallback_free(slow);
}
END_TEST

/* A retry delay that would end past the deadline is not waited for. */
START_TEST(retry_wait_past_deadline_is_skipped) {
  make_pool();
  clink_retry_policy *rp;
  ck_assert_int_eq(clink_retry_policy_new(&rp), 0); /* 1 s first delay */
  ck_assert_int_eq(clink_ask_options_set_retry_policy(T.ao, rp), 0);
  clink_retry_policy_free(rp);
  ck_assert_int_eq(clink_ask_options_set_deadline_ms(T.ao, 500), 0);
  fail_with("529");
  call c = ask("question");
  ck_assert_int_eq(c.source, CLINK_SOURCE_MOCK);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_API_RETRYABLE);
  ck_assert_uint_eq(c.attempts, 1);
  ck_assert_uint_lt(c.latency_us, 500000);
}
END_TEST

/* ---------------------------------------------------------- strategies */

static void reply_now(clink_fallback_reply *r, void *ud) {
  NOT_IN_API();
  T.reply_calls++;
  snprintf(T.reply_op, sizeof(T.reply_op), "%s", clink_fallback_reply_operation(r));
  snprintf(T.reply_prompt, sizeof(T.reply_prompt), "%s", clink_fallback_reply_prompt(r));
  T.reply_err = clink_fallback_reply_error(r);
  T.reply_class = clink_fallback_reply_failure(r);
  T.reply_strategy = clink_fallback_reply_strategy(r);
  ck_assert_ptr_null(clink_fallback_reply_session_id(r));
  const char *text = ud;
  ck_assert_int_eq(API(clink_fallback_reply_done(r, text ? 0 : CLINK_ENO_FALLBACK, text)), 0);
}

static void on_reply_timer(uv_timer_t *t) {
  (void)t;
  ck_assert_int_eq(clink_fallback_reply_done(T.held_reply, T.held_status, "later"), 0);
  T.held_reply = NULL;
}

static void reply_later(clink_fallback_reply *r, void *ud) {
  (void)ud;
  NOT_IN_API();
  T.reply_later++;
  T.held_reply = r;
  uv_timer_start(&T.timer, on_reply_timer, T.reply_delay_ms, 0);
}

START_TEST(mock_and_degraded_host_functions) {
  make_pool();
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new(&fb, "chat"), 0);
  ck_assert_int_eq(clink_fallback_add_mock_fn(fb, reply_now, NULL), 0); /* no answer */
  ck_assert_int_eq(clink_fallback_add_degraded_fn(fb, reply_later, NULL), 1);
  ck_assert_int_eq(clink_fallback_add_mock_fn(fb, reply_now, "mock text"), 2);
  ck_assert_int_eq(clink_ask_options_set_fallback(T.ao, fb), 0);
  ck_assert_int_eq(clink_ask_options_set_message_cb(T.ao, on_ask_msg), 0);
  fail_with("500");
  /* The degraded function answers later. */
  call c = ask("help me");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_DEGRADED);
  ck_assert_str_eq(c.answer, "later");
  ck_assert_int_eq(c.synth, 1);
  ck_assert_int_eq(T.reply_calls, 1);
  ck_assert_int_eq(T.reply_later, 1);
  ck_assert_str_eq(T.reply_op, "chat");
  ck_assert_str_eq(T.reply_prompt, "help me");
  ck_assert_int_eq(T.reply_err, CLINK_ETURN_FAILED);
  ck_assert_int_eq(T.reply_class, CLINK_FAILURE_API_RETRYABLE);
  ck_assert_int_eq(T.reply_strategy, CLINK_FALLBACK_MOCK_RESPONSE);
  /* It declines: the next mock answers at once. */
  T.held_status = -1;
  call d = ask("help me");
  ck_assert_int_eq(d.source, CLINK_SOURCE_MOCK);
  ck_assert_str_eq(d.answer, "mock text");
  ck_assert_int_eq(T.reply_calls, 3);
  clink_fallback_stats s;
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_fallback_get_stats(fb, &s), 0);
  ck_assert_uint_eq(s.fallback_by_strategy[CLINK_FALLBACK_DEGRADED_SERVICE], 1);
  ck_assert_uint_eq(s.fallback_by_strategy[CLINK_FALLBACK_MOCK_RESPONSE], 1);
  ck_assert_int_eq(clink_fallback_reply_done(NULL, 0, NULL), UV_EINVAL);
  clink_fallback_free(fb);
}
END_TEST

START_TEST(degraded_profile_and_alternative_provider) {
  make_pool();
  make_pool2();
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new(&fb, "chat"), 0);
  clink_breaker *alt_b;
  ck_assert_int_eq(clink_breaker_new(&alt_b, "alternative", NULL, 1), 0);
  ck_assert_int_eq(clink_fallback_add_alternative(fb, T.pool2, alt_b), 0);
  ck_assert_int_eq(clink_fallback_add_degraded(fb, T.pool2), 1);
  ck_assert_int_eq(clink_ask_options_set_fallback(T.ao, fb), 0);
  ck_assert_int_eq(clink_ask_options_set_message_cb(T.ao, on_ask_msg), 0);
  fail_with("529");
  call c = ask("question");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_ALTERNATIVE);
  ck_assert_str_eq(c.answer, "xxxxxx"); /* two messages of "xxx", joined */
  ck_assert_str_ne(c.sid, "");
  ck_assert_int_eq(c.synth, 0);
  /* The failed primary's (the echo, the API error's) and the alternative's. */
  ck_assert_int_eq(c.assistant_msgs, 2 + 2);
  /* The alternative's own breaker open: the degraded profile answers. */
  clink_breaker_force_open(alt_b, uv_now(&T.loop));
  call d = ask("question");
  ck_assert_int_eq(d.source, CLINK_SOURCE_DEGRADED);
  ck_assert_str_eq(d.answer, "xxxxxx");
  /* Neither: nothing answered. */
  clink_breaker *deg_b;
  ck_assert_int_eq(clink_breaker_new(&deg_b, "degraded", NULL, 1), 0);
  clink_pool_set_breaker(T.pool2, deg_b);
  clink_breaker_force_open(deg_b, uv_now(&T.loop));
  call e = ask("question");
  ck_assert_int_eq(e.status, CLINK_ENO_FALLBACK);
  ck_assert_int_eq(e.primary_err, CLINK_ETURN_FAILED);
  ck_assert_int_eq(e.api_status, 529);
  clink_fallback_stats s;
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_fallback_get_stats(fb, &s), 0);
  ck_assert_uint_eq(s.fallback_by_strategy[CLINK_FALLBACK_ALTERNATIVE_PROVIDER], 1);
  ck_assert_uint_eq(s.fallback_by_strategy[CLINK_FALLBACK_DEGRADED_SERVICE], 1);
  ck_assert_uint_eq(s.exhausted, 1);
  clink_pool_set_breaker(T.pool2, NULL);
  clink_fallback_free(fb);
  clink_breaker_free(alt_b);
  clink_breaker_free(deg_b);
}
END_TEST

/* A context-window overflow goes only to the step opted in for it (a
 * larger-context profile), never to the mock. */
START_TEST(context_overflow_to_larger_profile) {
  make_pool();
  make_pool2();
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new(&fb, "chat"), 0);
  ck_assert_int_eq(clink_fallback_add_mock(fb, "mock"), 0);
  ck_assert_int_eq(clink_fallback_add_alternative(fb, T.pool2, NULL), 1);
  ck_assert_int_eq(clink_fallback_set_step_failures(fb, 1, CLINK_FAILURE_CONTEXT_OVERFLOW), 0);
  ck_assert_int_eq(clink_ask_options_set_fallback(T.ao, fb), 0);
  fail_with("400 prompt is too long: 250000 tokens");
  call c = ask("a very long prompt");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_ALTERNATIVE);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_CONTEXT_OVERFLOW);
  ck_assert_str_eq(c.answer, "xxxxxx");
  /* An ordinary 400 is rejected as it is: the mock does not hide it, and
   * the larger profile is not for it. */
  fail_with("400 invalid model");
  call d = ask("a very long prompt");
  ck_assert_int_eq(d.status, CLINK_ETURN_FAILED);
  ck_assert_int_eq(d.klass, CLINK_FAILURE_API_REJECTED);
  /* A 529 goes to the mock, not to the overflow-only step. */
  fail_with("529");
  call e = ask("a very long prompt");
  ck_assert_int_eq(e.source, CLINK_SOURCE_MOCK);
  clink_fallback_free(fb);
}
END_TEST

static int ob_opened, ob_closed, ob_got;
static char ob_prompt[64], ob_op[32];

static void on_ob_open(clink_outbox *ob, int status, void *ud) {
  (void)ob;
  (void)ud;
  ck_assert_int_eq(status, 0);
  ob_opened++;
}

static void on_ob_get(clink_outbox *ob, int status, const clink_outbox_msg *m, void *ud) {
  (void)ob;
  (void)ud;
  ck_assert_int_eq(status, 0);
  snprintf(ob_prompt, sizeof(ob_prompt), "%s", clink_outbox_msg_prompt(m));
  snprintf(ob_op, sizeof(ob_op), "%s", clink_outbox_msg_operation(m));
  ob_got++;
}

static void on_ob_closed(clink_outbox *ob, void *ud) {
  (void)ob;
  (void)ud;
  ob_closed++;
}

START_TEST(queue_for_retry) {
  make_pool();
  char path[400];
  snprintf(path, sizeof(path), "%s/outbox.db", T.dir);
  clink_outbox *ob;
  int rc = clink_outbox_open(&ob, &T.loop, path, NULL, on_ob_open, NULL);
  if (rc == UV_ENOTSUP) return; /* built without SQLite */
  ck_assert_int_eq(rc, 0);
  RUN_UNTIL(ob_opened);
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new(&fb, "chat"), 0);
  ck_assert_int_eq(clink_fallback_add_queue(fb, ob), 0);
  ck_assert_int_eq(clink_ask_options_set_fallback(T.ao, fb), 0);
  ck_assert_int_eq(clink_ask_options_set_message_cb(T.ao, on_ask_msg), 0);
  fail_with("429");
  call c = ask("please do it later");
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_QUEUED);
  ck_assert_str_eq(c.answer, "queued");
  ck_assert_int_gt(c.queued_id, 0);
  ck_assert_int_eq(c.synth, 1);
  ck_assert_int_eq(clink_outbox_get(ob, c.queued_id, on_ob_get, NULL), 0);
  RUN_UNTIL(ob_got);
  ck_assert_str_eq(ob_prompt, "please do it later");
  ck_assert_str_eq(ob_op, "chat");
  ck_assert_int_eq(clink_outbox_close(ob, on_ob_closed, NULL), 0);
  RUN_UNTIL(ob_closed);
  clink_fallback_free(fb);
}
END_TEST

/* ------------------------------------------------------------ lifecycle */

START_TEST(cancel_from_own_callbacks) {
  ck_assert_int_eq(clink_options_set_control_timeout_ms(T.opts, 200), 0);
  make_pool();
  ck_assert_int_eq(clink_ask_options_set_message_cb(T.ao, on_ask_msg), 0);
  /* From the message callback, mid-turn. */
  fail_with("hang");
  call c;
  memset(&c, 0, sizeof(c));
  c.cancel_at_init = 1;
  ask_into(&c, T.pool, NULL, "stop");
  RUN_UNTIL(c.done);
  ck_assert_int_eq(c.status, UV_ECANCELED);
  ck_assert_int_eq(c.cancel_rc, 0);
  ck_assert_int_eq(c.cancel_again_rc, UV_EBUSY);
  ck_assert_int_eq(c.cancel_in_done_rc, UV_EBUSY);
  ck_assert_int_eq(c.source, CLINK_SOURCE_NONE);
  /* Right after the call (no turn started yet, or just started). */
  fail_none();
  call d;
  memset(&d, 0, sizeof(d));
  ask_into(&d, T.pool, NULL, "never mind");
  ck_assert_int_eq(API(clink_ask_cancel(d.h)), 0);
  ck_assert_int_eq(d.done, 0);
  RUN_UNTIL(d.done);
  ck_assert_int_eq(d.status, UV_ECANCELED);
  /* A cancel stands even when the deadline comes in the same loop turn. */
  ck_assert_int_eq(clink_ask_options_set_deadline_ms(T.ao, 1), 0);
  call d2;
  memset(&d2, 0, sizeof(d2));
  ask_into(&d2, T.pool, NULL, "never mind");
  ck_assert_int_eq(API(clink_ask_cancel(d2.h)), 0);
  RUN_UNTIL(d2.done);
  ck_assert_int_eq(d2.status, UV_ECANCELED);
  ck_assert_int_eq(clink_ask_options_set_deadline_ms(T.ao, 0), 0);
  clink_fallback_stats s = fb_stats();
  ck_assert_uint_eq(s.cancelled, 3);
  ck_assert_uint_eq(s.failures, 0);
  /* Members come back once their turns ended (the hung one is closed). */
  for (;;) {
    clink_pool_stats ps;
    ps.struct_size = sizeof(ps);
    ck_assert_int_eq(clink_pool_get_stats(T.pool, &ps), 0);
    if (ps.in_use == 0) break;
    ck_assert(uv_run(&T.loop, UV_RUN_ONCE) != 0);
  }
  /* A host strategy pending when the call is cancelled: its late reply is
   * only freed. */
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new(&fb, "chat"), 0);
  ck_assert_int_eq(clink_fallback_add_mock_fn(fb, reply_later, NULL), 0);
  ck_assert_int_eq(clink_ask_options_set_fallback(T.ao, fb), 0);
  fail_with("529");
  T.reply_delay_ms = 300; /* the cancel comes first */
  call e;
  memset(&e, 0, sizeof(e));
  ask_into(&e, T.pool, NULL, "x");
  RUN_UNTIL(T.reply_later == 1);
  ck_assert_int_eq(API(clink_ask_cancel(e.h)), 0);
  RUN_UNTIL(e.done && T.held_reply == NULL);
  ck_assert_int_eq(e.status, UV_ECANCELED);
  clink_fallback_free(fb);
}
END_TEST

START_TEST(resubmit_free_and_shutdown_from_done) {
  make_pool();
  call next;
  memset(&next, 0, sizeof(next));
  call c;
  memset(&c, 0, sizeof(c));
  c.resubmit_in_done = 1;
  c.next_call = &next;
  ask_into(&c, T.pool, NULL, "first");
  RUN_UNTIL(next.done);
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(next.status, 0);
  ck_assert_str_eq(next.answer, "again");
  /* A cache answer, then the fallback is freed and the pool shut down from
   * the completion. */
  fail_with("529");
  call d;
  memset(&d, 0, sizeof(d));
  d.free_fb_in_done = 1;
  d.shutdown_in_done = 1;
  ask_into(&d, T.pool, NULL, "first");
  RUN_UNTIL(d.done);
  ck_assert_int_eq(d.source, CLINK_SOURCE_CACHE);
  ck_assert_str_eq(d.answer, "first");
  ck_assert_ptr_null(T.fb);
  RUN_UNTIL(T.pool_closed == 1);
  /* The pool is gone: a call to a closing pool fails without fallback. */
}
END_TEST

/* A fallback freed while another call still walks it: that call keeps it,
 * answers from its chain, and frees it when it ends (ASan, valgrind). */
START_TEST(free_while_another_call_uses_it) {
  make_pool();
  ask("shared");                /* cached */
  fail_with("529");
  call first, second;
  memset(&first, 0, sizeof(first));
  memset(&second, 0, sizeof(second));
  first.free_fb_in_done = 1;
  ask_into(&first, T.pool, NULL, "shared");
  ask_into(&second, T.pool, NULL, "shared");
  RUN_UNTIL(first.done && second.done);
  ck_assert_ptr_null(T.fb);
  ck_assert_int_eq(first.source, CLINK_SOURCE_CACHE);
  ck_assert_int_eq(second.status, 0);
  ck_assert_int_eq(second.source, CLINK_SOURCE_CACHE);
  ck_assert_str_eq(second.answer, "shared");
}
END_TEST

START_TEST(calls_to_a_closing_pool) {
  make_pool();
  ck_assert_int_eq(clink_pool_shutdown(T.pool, CLINK_POOL_DRAIN, on_pool_closed, NULL), 0);
  call c;
  memset(&c, 0, sizeof(c));
  ask_into(&c, T.pool, NULL, "late");
  RUN_UNTIL(c.done);
  ck_assert_int_eq(c.status, CLINK_ECLOSING);
  ck_assert_int_eq(c.klass, CLINK_FAILURE_OTHER);
  RUN_UNTIL(T.pool_closed == 1);
}
END_TEST

/* --------------------------------------------------- protected execution */

typedef struct exec_rec {
  int done, status, ops;
  int fail_with; /* each attempt's outcome */
  char answer[128];
  clink_source source;
  int last_error;
} exec_rec;

static void exec_op(clink_exec *ex, void *ud) {
  exec_rec *r = ud;
  r->ops++;
  if (r->fail_with == 0) ck_assert_int_eq(clink_exec_set_answer(ex, "session-42"), 0);
  clink_exec_done(ex, r->fail_with, 0);
}

static void exec_done(clink_exec *ex, int status, void *ud) {
  NOT_IN_API();
  exec_rec *r = ud;
  r->done++;
  r->status = status;
  r->source = clink_exec_source(ex);
  snprintf(r->answer, sizeof(r->answer), "%s", clink_exec_answer(ex, NULL));
  r->last_error = clink_exec_last_error(ex);
}

static exec_rec run_exec(clink_fallback *fb, clink_retry_policy *rp, int fail_with) {
  exec_rec r;
  memset(&r, 0, sizeof(r));
  r.fail_with = fail_with;
  clink_exec *ex;
  ck_assert_int_eq(API(clink_execute_with_fallback(&ex, &T.loop, NULL, rp, fb, " new  session ",
                                                   exec_op, exec_done, &r)),
                   0);
  RUN_UNTIL(r.done);
  return r;
}

START_TEST(execute_with_fallback) {
  clink_fallback *fb;
  ck_assert_int_eq(clink_fallback_new_seed(&fb, "create_session"), 0);
  clink_fallback_set_events(fb, T.sink);
  exec_rec ok = run_exec(fb, NULL, 0);
  ck_assert_int_eq(ok.status, 0);
  ck_assert_int_eq(ok.source, CLINK_SOURCE_PRIMARY);
  ck_assert_str_eq(ok.answer, "session-42");
  clink_retry_policy *rp;
  ck_assert_int_eq(clink_retry_policy_new(&rp), 0);
  uint64_t d[] = {1};
  ck_assert_int_eq(clink_retry_policy_set_schedule(rp, d, 1), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(rp, 2), 0);
  /* Retries exhausted on a dead process: the cached answer. */
  exec_rec c = run_exec(fb, rp, CLINK_EEXITED);
  ck_assert_int_eq(c.ops, 3);
  ck_assert_int_eq(c.status, 0);
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  ck_assert_str_eq(c.answer, "session-42");
  ck_assert_int_eq(c.last_error, CLINK_EEXITED);
  /* A configuration error is not masked. */
  exec_rec bad = run_exec(fb, rp, UV_EINVAL);
  ck_assert_int_eq(bad.status, UV_EINVAL);
  ck_assert_int_eq(bad.source, CLINK_SOURCE_NONE);
  ck_assert_str_eq(bad.answer, "");
  /* Not cached: the mock. */
  ck_assert_int_eq(clink_fallback_clear_cache(fb), 1);
  exec_rec m = run_exec(fb, NULL, CLINK_ETURN_STALLED);
  ck_assert_int_eq(m.status, 0);
  ck_assert_int_eq(m.source, CLINK_SOURCE_MOCK);
  ck_assert_str_eq(m.answer, CLINK_FALLBACK_DEFAULT_MOCK_TEXT);
  clink_fallback_stats s;
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_fallback_get_stats(fb, &s), 0);
  ck_assert_uint_eq(s.total_calls, 4);
  ck_assert_uint_eq(s.primary_success, 1);
  ck_assert_uint_eq(s.fallback_used, 2);
  ck_assert_uint_eq(s.failed_fast, 1);
  /* Pool steps do not apply; only a cache that misses: exhausted. */
  clink_fallback *only;
  ck_assert_int_eq(clink_fallback_new(&only, "op"), 0);
  ck_assert_int_eq(clink_fallback_add_cached(only, 1000, 0), 0);
  ck_assert_int_eq(clink_fallback_add_alternative(only, (clink_pool *)(uintptr_t)0x1000, NULL),
                   1);
  exec_rec x = run_exec(only, NULL, CLINK_ECIRCUIT_OPEN);
  ck_assert_int_eq(x.status, CLINK_ENO_FALLBACK);
  /* Retries exhausted and nothing handles it: the execution's own status. */
  ck_assert_int_eq(clink_fallback_set_step_failures(only, 0, CLINK_FAILURE_STALLED), 0);
  exec_rec y = run_exec(only, rp, CLINK_EEXITED);
  ck_assert_int_eq(y.status, CLINK_ERETRY_EXHAUSTED);
  /* Without a fallback: plain clink_execute. */
  exec_rec z = run_exec(NULL, NULL, CLINK_EEXITED);
  ck_assert_int_eq(z.status, CLINK_EEXITED);
  ck_assert_int_eq(clink_execute_with_fallback(NULL, &T.loop, NULL, NULL, fb, NULL, exec_op,
                                               exec_done, NULL),
                   UV_EINVAL);
  wait_events(4);
  ck_assert_int_ge(count_events("cache_hit"), 1);
  ck_assert_int_ge(count_events("fallback_skipped"), 1);
  ck_assert_int_ge(count_events("fallback_cache_cleared"), 1);
  clink_retry_policy_free(rp);
  clink_fallback_free(fb);
  clink_fallback_free(only);
}
END_TEST

/* ------------------------------------------------------------ allocation */

static int oom_constructors(void) {
  clink_fallback *fb = NULL;
  clink_fallback_registry *reg = NULL;
  clink_ask_options *o = NULL;
  clink_retry_policy *rp = NULL;
  int rc = clink_fallback_new_seed(&fb, "chat");
  if (rc == 0) rc = clink_fallback_add_mock(fb, "another");
  if (rc > 0) rc = 0;
  if (rc == 0) rc = clink_fallback_registry_new(&reg);
  if (rc == 0) rc = clink_fallback_registry_add(reg, "mine", NULL);
  if (rc == 0) rc = clink_ask_options_new(&o);
  if (rc == 0) rc = clink_retry_policy_new(&rp);
  if (rc == 0) rc = clink_ask_options_set_retry_policy(o, rp);
  if (rc == 0) rc = clink_ask_options_set_profile_key(o, "profile");
  clink_retry_policy_free(rp);
  clink_ask_options_free(o);
  clink_fallback_registry_free(reg);
  clink_fallback_free(fb);
  return rc;
}

static int oom_cache(void) {
  clink__cache_store *s;
  int rc = clink__cache_memory_new(&s, 2, 1 << 20);
  if (rc != 0) return rc;
  char p[16];
  for (int i = 0; i < 70 && rc == 0; i++) { /* past the first table growth */
    snprintf(p, sizeof(p), "p%d", i % 3);
    clink__cache_key k = key("chat", NULL, p);
    rc = s->ops->put(s, &k, p, strlen(p), (uint64_t)i, CLINK_NEVER, 0);
  }
  s->ops->destroy(s);
  return rc;
}

START_TEST(allocation_failures_pure) {
  int rc;
  OOM_LOOP(rc, rc = oom_constructors());
  OOM_LOOP(rc, rc = oom_cache());
}
END_TEST

/* While allocations fail, callbacks record without Check's asserts (they
 * allocate too). */
static void oom_msg(clink_ask_call *a, const clink_msg *m, void *ud) {
  (void)a;
  (void)m;
  ((call *)ud)->msgs++;
}

static void oom_done(clink_ask_call *a, int status, void *ud) {
  call *c = ud;
  c->done++;
  c->status = status;
  c->source = clink_ask_source(a);
}

static void oom_exec_done(clink_exec *ex, int status, void *ud) {
  exec_rec *r = ud;
  r->done++;
  r->status = status;
  r->source = clink_exec_source(ex);
}

static int oom_ask(call *c, const char *prompt, int whole_call) {
  memset(c, 0, sizeof(*c));
  int rc = clink_ask(&c->h, T.pool, NULL, prompt, T.ao, oom_done, c);
  if (!whole_call) oom_fail_at = 0;
  if (rc == 0)
    while (!c->done) uv_run(&T.loop, UV_RUN_ONCE);
  return rc;
}

/* Every allocation of clink_ask() and of clink_execute_with_fallback() can
 * fail: an error and no callback, or a call that completes once. */
START_TEST(allocation_failures_calls) {
  clink_fallback_set_events(T.fb, NULL); /* the test's sink asserts */
  make_pool();
  wait_idle(T.pool, 1);
  ck_assert_int_eq(clink_ask_options_set_message_cb(T.ao, oom_msg), 0);
  int rc;
  call c;
  OOM_LOOP(rc, rc = oom_ask(&c, "oom", 0));
  ck_assert_int_eq(c.source, CLINK_SOURCE_PRIMARY);
  ck_assert_int_eq(c.done, 1);
  /* The fallback path, allocations failing anywhere in the call: a failed
   * primary, the cached answer, the synthesized message. */
  fail_with("529");
  OOM_LOOP(rc, {
    rc = oom_ask(&c, "oom", 1);
    oom_fail_at = 0;
    if (rc == 0) ck_assert_int_eq(c.done, 1);
  });
  ck_assert_int_eq(c.source, CLINK_SOURCE_CACHE);
  exec_rec r;
  clink_exec *ex;
  OOM_LOOP(rc, {
    memset(&r, 0, sizeof(r));
    r.fail_with = CLINK_EEXITED;
    rc = clink_execute_with_fallback(&ex, &T.loop, NULL, NULL, T.fb, "req", exec_op,
                                     oom_exec_done, &r);
    if (rc == 0)
      while (!r.done) uv_run(&T.loop, UV_RUN_ONCE);
    oom_fail_at = 0;
  });
  ck_assert_int_eq(r.source, CLINK_SOURCE_MOCK);
}
END_TEST

/* ----------------------------------------------------------------- main */

int main(void) {
  Suite *s = suite_create("fallback");
  TCase *tc = tcase_create("cache");
  tcase_add_test(tc, normalize_prompts);
  tcase_add_test(tc, keys_identify_requests);
  tcase_add_test(tc, ttl_and_stale_if_error);
  tcase_add_test(tc, lru_bound_on_entries);
  tcase_add_test(tc, lru_bound_on_bytes);
  tcase_add_test(tc, overwrite_and_references);
  tcase_add_test(tc, many_entries_all_found);
  suite_add_tcase(s, tc);

  tc = tcase_create("chain");
  tcase_add_test(tc, failure_classes);
  tcase_add_test(tc, default_routes);
  tcase_add_test(tc, step_rules);
  tcase_add_test(tc, registry_and_stats);
  suite_add_tcase(s, tc);

  tc = tcase_create("ask");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, primary_success_is_cached);
  tcase_add_test(tc, api_529_cache_then_mock);
  tcase_add_test(tc, client_errors_fail_fast);
  tcase_add_test(tc, retry_then_success);
  tcase_add_test(tc, stale_answer_on_error);
  tcase_add_test(tc, concurrent_calls);
  tcase_add_test(tc, profile_key_shares_answers);
  suite_add_tcase(s, tc);

  tc = tcase_create("classes");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, breaker_open_goes_down_the_chain);
  tcase_add_test(tc, pool_timeout_goes_down_the_chain);
  tcase_add_test(tc, spawn_failure_goes_down_the_chain);
  tcase_add_test(tc, config_error_fails_fast);
  tcase_add_test(tc, process_death_goes_down_the_chain);
  tcase_add_test(tc, stalled_turn_goes_down_the_chain);
  tcase_add_test(tc, deadline_answers_from_memory);
  tcase_add_test(tc, retry_wait_past_deadline_is_skipped);
  suite_add_tcase(s, tc);

  tc = tcase_create("strategies");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, mock_and_degraded_host_functions);
  tcase_add_test(tc, degraded_profile_and_alternative_provider);
  tcase_add_test(tc, context_overflow_to_larger_profile);
  tcase_add_test(tc, queue_for_retry);
  suite_add_tcase(s, tc);

  tc = tcase_create("lifecycle");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, cancel_from_own_callbacks);
  tcase_add_test(tc, resubmit_free_and_shutdown_from_done);
  tcase_add_test(tc, free_while_another_call_uses_it);
  tcase_add_test(tc, calls_to_a_closing_pool);
  tcase_add_test(tc, execute_with_fallback);
  suite_add_tcase(s, tc);

  tc = tcase_create("allocation");
  tcase_add_test(tc, allocation_failures_pure);
  suite_add_tcase(s, tc);
  tc = tcase_create("allocation-calls");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, allocation_failures_calls);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
