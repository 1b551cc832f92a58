/* claudelink-pool-demo: W workers share a pool of at most N claude processes.
 *
 *   claudelink-pool-demo [--cli PATH] [--size N] [--workers W] [PROMPT]
 *
 * Each worker acquires a session from the pool, sends PROMPT (default
 * "hello"), prints `worker i: <assistant text>` and gives the session back.
 * N defaults to 3, W to 10. At the end the pool is shut down (drained) and
 * its statistics are printed as one block on stdout. Exit 0 when every
 * worker succeeded; otherwise non-zero and one line on stderr naming the
 * cause (127 when the CLI cannot be found).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <claudelink.h>

typedef struct demo demo;

typedef struct worker {
  demo *d;
  int id;
  char text[4096];
  size_t len;
} worker;

struct demo {
  uv_loop_t *loop;
  clink_pool *pool;
  const char *prompt;
  worker *workers;
  int n_workers, finished, failed, fail_code;
  char cause[1024];
  clink_pool_stats stats;
};

static void usage(void) {
  fprintf(stderr, "usage: claudelink-pool-demo [--cli PATH] [--size N] [--workers W] [PROMPT]\n");
  exit(2);
}

/* The first failure wins: it is the cause. */
static void fail(demo *d, int code, const char *who, const char *what, const char *detail) {
  if (!d->failed) {
    snprintf(d->cause, sizeof(d->cause), "%s: %s: %s", who, what, detail);
    d->fail_code = code;
  }
  d->failed = 1;
}

static void on_pool_closed(clink_pool *pool, void *ud) {
  demo *d = ud;
  /* The pool is still valid here (it is freed after this returns). */
  d->stats.struct_size = sizeof(d->stats);
  clink_pool_get_stats(pool, &d->stats);
}

static void worker_done(demo *d) {
  if (++d->finished < d->n_workers) return;
  clink_pool_shutdown(d->pool, CLINK_POOL_DRAIN, on_pool_closed, d);
}

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  worker *w = ud;
  if (clink_msg_get_kind(m) != CLINK_MSG_ASSISTANT) return;
  for (size_t i = 0; i < clink_msg_block_count(m); i++) {
    if (clink_msg_block_kind(m, i) != CLINK_BLOCK_TEXT) continue;
    const char *t = clink_msg_block_text(m, i);
    size_t n = strlen(t), room = sizeof(w->text) - 1 - w->len;
    if (n > room) n = room;
    memcpy(w->text + w->len, t, n);
    w->len += n;
    w->text[w->len] = '\0';
  }
}

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  worker *w = ud;
  demo *d = w->d;
  char who[32];
  snprintf(who, sizeof(who), "worker %d", w->id);
  if (status == 0) {
    printf("worker %d: %s\n", w->id, w->text);
    fflush(stdout);
  } else if (status == CLINK_ETURN_FAILED) {
    const char *text = result ? clink_msg_result_text(result) : NULL;
    fail(d, 1, who, "turn failed", text ? text : "error result");
  } else if (status == CLINK_EEXITED) {
    fail(d, 1, who, "claude died", clink_client_last_error(c));
  } else {
    fail(d, 1, who, "turn failed", clink_strerror(status));
  }
  /* Healthy sessions go back to the pool; dead ones are replaced by it. */
  clink_pool_release(d->pool, c);
  worker_done(d);
}

static void on_acquired(clink_pool *pool, int status, clink_client *c, uint64_t retry_after,
                        void *ud) {
  worker *w = ud;
  demo *d = w->d;
  char who[32];
  snprintf(who, sizeof(who), "worker %d", w->id);
  if (status != 0) {
    fail(d, status == CLINK_ECLI_NOT_FOUND ? 127 : 1, who, "no session", clink_strerror(status));
    worker_done(d);
    return;
  }
  int rc = clink_client_query(c, d->prompt, on_message, on_turn, w);
  if (rc != 0) {
    fail(d, 1, who, "query failed", clink_strerror(rc));
    clink_pool_release(pool, c);
    worker_done(d);
  }
}

static void print_stats(const clink_pool_stats *s) {
  static const char *const reasons[CLINK_POOL_CLOSE_REASONS_] = {
      "dead", "unhealthy", "lifetime", "idle", "max_turns", "validation", "rebalance",
      "shutdown"};
  static const char *const buckets[CLINK_POOL_WAIT_BUCKETS] = {
      "<=1us", "<=10us", "<=100us", "<=1ms", "<=10ms", "<=100ms",
      "<=1s",  "<=10s",  "<=100s",  "<=1000s", "<=10000s", "more"};
  printf("pool stats:\n");
  printf("  processes: created %llu, closed %llu (", (unsigned long long)s->created,
         (unsigned long long)s->closed);
  int first = 1;
  for (int i = 0; i < CLINK_POOL_CLOSE_REASONS_; i++) {
    if (s->closed_by_reason[i] == 0) continue;
    printf("%s%s %llu", first ? "" : ", ", reasons[i], (unsigned long long)s->closed_by_reason[i]);
    first = 0;
  }
  printf("%s)\n", first ? "none" : "");
  printf("  now: size %u, idle %u, in use %u, starting %u, waiting %u\n", s->size, s->idle,
         s->in_use, s->starting, s->pending_acquires);
  printf("  acquires: %llu (from idle %llu, after waiting %llu), timeouts %llu, rejected %llu, "
         "leaks %llu\n",
         (unsigned long long)s->acquired, (unsigned long long)s->acquired_idle,
         (unsigned long long)s->acquired_waited, (unsigned long long)s->timeouts,
         (unsigned long long)s->rejected, (unsigned long long)s->leaks);
  printf("  acquire wait: mean %llu us, max %llu us;",
         (unsigned long long)(s->acquired ? s->wait_total_us / s->acquired : 0),
         (unsigned long long)s->wait_max_us);
  for (int i = 0; i < CLINK_POOL_WAIT_BUCKETS; i++)
    if (s->wait_hist[i]) printf(" %s: %llu", buckets[i], (unsigned long long)s->wait_hist[i]);
  printf("\n");
}

static unsigned parse_count(const char *v) {
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  if (*v == '\0' || *end != '\0' || n == 0 || n > 100000) usage();
  return (unsigned)n;
}

int main(int argc, char **argv) {
  demo d;
  memset(&d, 0, sizeof(d));
  d.prompt = "hello";
  unsigned size = 3, n_workers = 10;
  clink_options *o;
  if (clink_options_new(&o) != 0) return 1;
  int i = 1;
  /* Every option takes a value: each step consumes two arguments. */
  while (i < argc && strncmp(argv[i], "--", 2) == 0) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (v == NULL) usage();
    if (strcmp(a, "--cli") == 0) {
      if (clink_options_set_cli_path(o, v) != 0) usage();
    } else if (strcmp(a, "--size") == 0) {
      size = parse_count(v);
    } else if (strcmp(a, "--workers") == 0) {
      n_workers = parse_count(v);
    } else {
      usage();
    }
    i += 2;
  }
  if (i + 1 < argc) usage();
  if (i < argc) d.prompt = argv[i];

  clink_pool_config *cfg;
  if (clink_pool_config_new(&cfg) != 0 || clink_pool_config_set_size(cfg, 1, size) != 0)
    return 1;
  d.loop = uv_default_loop();
  int rc = clink_pool_new(&d.pool, d.loop, o, cfg);
  clink_options_free(o);
  clink_pool_config_free(cfg);
  if (rc != 0) {
    fprintf(stderr, "claudelink-pool-demo: %s\n", clink_strerror(rc));
    return 1;
  }
  d.n_workers = (int)n_workers;
  d.workers = calloc(n_workers, sizeof(*d.workers));
  if (d.workers == NULL) return 1;
  for (unsigned k = 0; k < n_workers; k++) {
    worker *w = &d.workers[k];
    w->d = &d;
    w->id = (int)k + 1;
    rc = clink_pool_acquire(d.pool, NULL, "pool-demo worker", on_acquired, w);
    if (rc != 0) {
      fail(&d, 1, "main", "acquire", clink_strerror(rc));
      worker_done(&d);
    }
  }
  uv_run(d.loop, UV_RUN_DEFAULT);
  uv_loop_close(d.loop);
  free(d.workers);
  print_stats(&d.stats);
  fflush(stdout);
  if (d.failed) {
    fprintf(stderr, "claudelink-pool-demo: %s\n", d.cause);
    return d.fail_code ? d.fail_code : 1;
  }
  return 0;
}
