/* Fallback benchmark: prints figures, asserts nothing about timing.
 *
 * Usage: bench-fallback FAKE_CLI [EXEC_SHIM|-] [ROUNDS] [TURNS] [pool]
 * ("pool" as the fifth argument skips part 1, e.g. to profile parts 2-3)
 *
 * 1. Cache hit with 10,000 entries of 1 KB answers: the key of a ~70-byte
 *    prompt (hash of operation, profile, conversation and the normalised
 *    prompt), the lookup (bucket walk, compare, LRU move, reference) and the
 *    release, at random among the 10,000; ns per hit (median of 9 rounds of
 *    1,000,000) and allocations during the hits. Twice: the store alone,
 *    and through the fallback (statistics, event check).
 * 2. Allocations per call on the primary-success path over a warm pool:
 *    clink_ask without a fallback, with the seed's chat chain and the same
 *    prompt (the cached answer is overwritten in place), and with a new
 *    prompt each time (one cache entry stored per call).
 * 3. Latency per turn over a warm pool of the fast fake CLI (one member,
 *    turns one after another), side by side in alternating rounds: a bare
 *    try_acquire (else acquire) + query + release; clink_ask without a
 *    fallback; clink_ask with the chat chain. ROUNDS (default 61) rounds of
 *    TURNS (default 500) turns each, the order rotating; medians, and the
 *    ratios to the bare path (of the medians, and the median of each
 *    round's ratio) as they come out.
 *
 * Allocations of everything linked statically (the library) are counted with
 * -Wl,--wrap=malloc,calloc,realloc (tests/bench/alloc-count.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <claudelink.h>

#include "alloc-count.h"
#include "fallback/cache.h"
#include "fallback/fallback-int.h"

#define ENTRIES 10000
#define ANSWER_BYTES 1024
#define HIT_ROUNDS 9
#define HITS 1000000

static uint64_t ns_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void prompt_of(char *out, size_t size, unsigned i) {
  snprintf(out, size, "What is the status of order number %u in the warehouse system today?",
           i);
}

/* ------------------------------------------------------------ 1. cache hit */

static void bench_cache(void) {
  clink_fallback *fb;
  if (clink_fallback_new_seed(&fb, "chat") != 0) abort();
  clink_fallback_set_cache_limits(fb, ENTRIES, (size_t)64 << 20);
  static char answer[ANSWER_BYTES];
  memset(answer, 'a', sizeof(answer));
  static char prompts[ENTRIES][96];
  for (unsigned i = 0; i < ENTRIES; i++) {
    prompt_of(prompts[i], sizeof(prompts[i]), i);
    clink__cache_key k;
    clink__cache_key_init(&k, "chat", "0123456789abcdef", NULL, prompts[i]);
    if (clink__fallback_store(fb, &k, answer, sizeof(answer), 0) != 0) abort();
  }
  clink_fallback_stats st;
  st.struct_size = sizeof(st);
  clink_fallback_get_stats(fb, &st);
  /* A random visiting order, fixed in advance (no RNG in the timed loop). */
  static unsigned order[1 << 16];
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    order[i] = (unsigned)(x % ENTRIES);
  }
  clink__cache_store *s = fb->cache;
  double store_ns[HIT_ROUNDS], fb_ns[HIT_ROUNDS];
  unsigned long allocs_store = 0, allocs_fb = 0, misses = 0;
  size_t sink = 0;
  for (int r = 0; r < HIT_ROUNDS; r++) {
    unsigned long a0 = n_alloc;
    uint64_t t0 = ns_now();
    for (unsigned i = 0; i < HITS; i++) {
      clink__cache_key k;
      clink__cache_key_init(&k, "chat", "0123456789abcdef", NULL, prompts[order[i & 0xffff]]);
      clink__cache_hit h;
      if (s->ops->lookup(s, &k, 1, &h) != 0) {
        misses++;
        continue;
      }
      sink += h.len;
      s->ops->release(NULL, &h);
    }
    store_ns[r] = (double)(ns_now() - t0) / HITS;
    allocs_store += n_alloc - a0;
    a0 = n_alloc;
    t0 = ns_now();
    for (unsigned i = 0; i < HITS; i++) {
      clink__cache_key k;
      clink__cache_key_init(&k, "chat", "0123456789abcdef", NULL, prompts[order[i & 0xffff]]);
      clink__cache_hit h;
      if (clink__fallback_lookup(fb, NULL, &k, 1, &h) != 0) {
        misses++;
        continue;
      }
      sink += h.len;
      fb->cache->ops->release(NULL, &h);
    }
    fb_ns[r] = (double)(ns_now() - t0) / HITS;
    allocs_fb += n_alloc - a0;
  }
  printf("1. cache hit, %u entries of %d-byte answers (%.1f MiB held), %zu-byte prompts, "
         "random order:\n",
         (unsigned)st.cache_entries, ANSWER_BYTES, (double)st.cache_bytes / (1 << 20),
         strlen(prompts[0]));
  double store_med = median(store_ns, HIT_ROUNDS), fb_med = median(fb_ns, HIT_ROUNDS);
  printf("   store:    key + lookup + release  %6.1f ns median (min %.1f, max %.1f), "
         "%lu allocations in %d hits, %lu misses\n",
         store_med, store_ns[0], store_ns[HIT_ROUNDS - 1], allocs_store, HIT_ROUNDS * HITS,
         misses);
  printf("   fallback: with statistics         %6.1f ns median (min %.1f, max %.1f), "
         "%lu allocations   [goal <= 1000 ns, 0 allocations]\n",
         fb_med, fb_ns[0], fb_ns[HIT_ROUNDS - 1], allocs_fb);
  if (sink == 0) printf("(no hits)\n");
  clink_fallback_free(fb);
}

/* ------------------------------------------------------- 2./3. warm pool */

typedef enum mode { M_BARE = 0, M_ASK = 1, M_ASK_FB = 2, M_MODES = 3 } mode;
static const char *const mode_name[M_MODES] = {"bare acquire+query+release", "clink_ask",
                                               "clink_ask + chat fallback"};

static uv_loop_t loop;
static clink_pool *pool;
static clink_ask_options *ao_plain, *ao_fb;
static clink_fallback *chat;
static unsigned remaining, failures;
static int fresh_prompts;
static unsigned prompt_no;
static char prompt_buf[128] = "hello";

static const char *next_prompt(void) {
  if (fresh_prompts) prompt_of(prompt_buf, sizeof(prompt_buf), prompt_no++);
  return prompt_buf;
}

static void bare_next(void);

static void bare_msg(clink_client *c, const clink_msg *m, void *ud) {
  (void)c;
  (void)m;
  (void)ud;
}

static void bare_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  (void)result;
  (void)ud;
  if (status != 0) failures++;
  clink_pool_release(pool, c);
  if (--remaining > 0) bare_next();
}

static void bare_acquired(clink_pool *p, int status, clink_client *c, uint64_t ra, void *ud) {
  (void)p;
  (void)ra;
  (void)ud;
  if (status != 0) abort();
  if (clink_client_query(c, next_prompt(), bare_msg, bare_turn, NULL) != 0) abort();
}

static void bare_next(void) {
  clink_client *c;
  if (clink_pool_try_acquire(pool, &c) == 0) {
    if (clink_client_query(c, next_prompt(), bare_msg, bare_turn, NULL) != 0) abort();
    return;
  }
  if (clink_pool_acquire(pool, NULL, "bench", bare_acquired, NULL) != 0) abort();
}

static void ask_next(clink_ask_options *o);

static void ask_done(clink_ask_call *a, int status, void *ud) {
  if (status != 0 || clink_ask_source(a) != CLINK_SOURCE_PRIMARY) failures++;
  if (--remaining > 0) ask_next(ud);
}

static void ask_next(clink_ask_options *o) {
  if (clink_ask(NULL, pool, NULL, next_prompt(), o, ask_done, o) != 0) abort();
}

/* n turns one after another; returns ns per turn. */
static double run(mode m, unsigned n) {
  remaining = n;
  uint64_t t0 = ns_now();
  if (m == M_BARE)
    bare_next();
  else
    ask_next(m == M_ASK ? ao_plain : ao_fb);
  while (remaining > 0) uv_run(&loop, UV_RUN_ONCE);
  return (double)(ns_now() - t0) / n;
}

static void wait_idle(void) {
  for (;;) {
    clink_pool_stats s;
    s.struct_size = sizeof(s);
    clink_pool_get_stats(pool, &s);
    if (s.idle >= 1 && s.starting == 0) return;
    uv_run(&loop, UV_RUN_ONCE);
  }
}

static void bench_pool(const char *cli, const char *shim, int rounds, unsigned turns) {
  uv_loop_init(&loop);
  clink_options *o;
  clink_options_new(&o);
  clink_options_set_cli_path(o, cli);
  clink_options_set_exec_shim(o, shim);
  clink_pool_config *cfg;
  clink_pool_config_new(&cfg);
  clink_pool_config_set_size(cfg, 1, 1);
  clink_pool_config_set_validation(cfg, 0, 0);
  if (clink_pool_new(&pool, &loop, o, cfg) != 0) abort();
  clink_options_free(o);
  clink_pool_config_free(cfg);
  clink_fallback_new_seed(&chat, "chat");
  clink_ask_options_new(&ao_plain);
  clink_ask_options_new(&ao_fb);
  clink_ask_options_set_fallback(ao_fb, chat);
  wait_idle();
  run(M_BARE, 200); /* warm-up */
  run(M_ASK_FB, 200);

  /* 2. allocations per call */
  unsigned long a0;
  double per[4];
  a0 = n_alloc;
  run(M_BARE, 1000);
  per[0] = (double)(n_alloc - a0) / 1000;
  a0 = n_alloc;
  run(M_ASK, 1000);
  per[1] = (double)(n_alloc - a0) / 1000;
  a0 = n_alloc;
  run(M_ASK_FB, 1000);
  per[2] = (double)(n_alloc - a0) / 1000;
  fresh_prompts = 1;
  a0 = n_alloc;
  run(M_ASK_FB, 1000);
  per[3] = (double)(n_alloc - a0) / 1000;
  fresh_prompts = 0;
  printf("2. allocations per call on the primary-success path (warm pool, 1000 calls each):\n");
  printf("   bare acquire+query+release                 %.2f\n", per[0]);
  printf("   clink_ask, no fallback                     %.2f  (+%.2f over bare: the call object "
         "and its retry state)\n",
         per[1], per[1] - per[0]);
  printf("   clink_ask + chat chain, same prompt        %.2f  (+%.2f over clink_ask: the answer "
         "overwritten in place)\n",
         per[2], per[2] - per[1]);
  printf("   clink_ask + chat chain, new prompt each    %.2f  (+%.2f over clink_ask: the cache "
         "entry stored)\n",
         per[3], per[3] - per[1]);

  /* 3. latency, alternating rounds */
  double *t[M_MODES];
  for (int m = 0; m < M_MODES; m++) t[m] = calloc((size_t)rounds, sizeof(double));
  for (int r = 0; r < rounds; r++)
    for (int k = 0; k < M_MODES; k++) {
      int m = (r + k) % M_MODES; /* rotate who goes first */
      t[m][r] = run((mode)m, turns);
    }
  double ratio[M_MODES][64];
  for (int m = 1; m < M_MODES; m++)
    for (int r = 0; r < rounds; r++) ratio[m][r] = t[m][r] / t[M_BARE][r];
  double bare_med = median(t[M_BARE], rounds); /* sorts: ratios are taken first */
  printf("3. per turn over a warm pool of the fast fake CLI (1 member, %d alternating rounds of "
         "%u turns; %u failed):\n",
         rounds, turns, failures);
  for (int m = 0; m < M_MODES; m++) {
    double med = median(t[m], rounds); /* sorts t[m] */
    printf("   %-28s %8.2f us median (min %.2f, max %.2f)", mode_name[m], med / 1000,
           t[m][0] / 1000, t[m][rounds - 1] / 1000);
    if (m != M_BARE) {
      double rm = median(ratio[m], rounds);
      printf("  ratio of medians %.3f, median of per-round ratios %.3f (%+.1f %%)", med / bare_med,
             rm, (rm - 1) * 100);
    }
    printf("\n");
  }
  printf("   [goal: clink_ask overhead <= 5 %%]\n");
  for (int m = 0; m < M_MODES; m++) free(t[m]);
  clink_ask_options_free(ao_plain);
  clink_ask_options_free(ao_fb);
  clink_pool_shutdown(pool, CLINK_POOL_IMMEDIATE, NULL, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  clink_fallback_free(chat);
  uv_loop_close(&loop);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FAKE_CLI [EXEC_SHIM|-] [ROUNDS] [TURNS]\n", argv[0]);
    return 2;
  }
  const char *shim = argc > 2 && strcmp(argv[2], "-") != 0 ? argv[2] : NULL;
  int rounds = argc > 3 ? atoi(argv[3]) : 61;
  unsigned turns = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 500;
  if (rounds < 1 || rounds > 64 || turns == 0) return 2;
  if (!(argc > 5 && strcmp(argv[5], "pool") == 0)) bench_cache();
  bench_pool(argv[1], shim, rounds, turns);
  return 0;
}
