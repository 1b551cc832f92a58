/* bench-outbox FAKE_CLI [MESSAGES] [WINDOW]: the durable outbox's figures,
 * side by side in one run.
 *
 * 1. Durable enqueue throughput, closed loop: WINDOW enqueues (default 256)
 *    are always outstanding; each acknowledgement (the commit is durable:
 *    WAL, synchronous=FULL) submits the next. Group commit (default config)
 *    against one transaction per message (batch 1), with the enqueue-to-
 *    durable latency p50/p99 of each.
 * 2. Delivery throughput: MESSAGES (default 20000) pending messages
 *    delivered through a warm pool of 4 fake-CLI members (one turn each),
 *    64 attempts in flight.
 *
 * Files go to a fresh directory under $TMPDIR (default /tmp). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <claudelink.h>

static uv_loop_t *loop;
static char dir[256];

/* ------------------------------------------------------------- enqueue */

typedef struct enq_run {
  clink_outbox *ob;
  int total, submitted, acked, failed, window;
  uint64_t *lat_ns;
  uint64_t *sent_ns; /* per slot of the window */
  uint64_t t0, t1;
} enq_run;

typedef struct slot {
  enq_run *run;
  uint64_t sent;
} slot;

static void submit(enq_run *r, slot *s);

static void on_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  slot *s = ud;
  enq_run *r = s->run;
  uint64_t now = uv_hrtime();
  if (status != 0) r->failed++;
  r->lat_ns[r->acked++] = now - s->sent;
  if (r->acked == r->total) r->t1 = now;
  if (r->submitted < r->total) submit(r, s);
}

static void submit(enq_run *r, slot *s) {
  static const char prompt[] = "Summarise the attached ticket in two sentences, please.";
  s->sent = uv_hrtime();
  r->submitted++;
  int rc = clink_outbox_enqueue(r->ob, prompt, NULL, NULL, NULL, NULL, on_enqueued, s);
  if (rc != 0) {
    fprintf(stderr, "enqueue: %s\n", clink_strerror(rc));
    exit(1);
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void on_open_enq(clink_outbox *ob, int status, void *ud) {
  if (status != 0) {
    fprintf(stderr, "open: %s: %s\n", clink_strerror(status), clink_outbox_last_error(ob));
    exit(1);
  }
}

static void on_closed(clink_outbox *ob, void *ud) { (*(int *)ud)++; }

typedef struct enq_result {
  double per_s, p50_us, p99_us;
  uint64_t transactions;
} enq_result;

static enq_result enqueue_bench(const char *name, unsigned batch, int total, int window) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s.db", dir, name);
  clink_outbox_config *cfg;
  clink_outbox_config_new(&cfg);
  clink_outbox_config_set_group_commit(cfg, batch, 0);
  enq_run r;
  memset(&r, 0, sizeof(r));
  r.total = total;
  r.window = window;
  r.lat_ns = calloc((size_t)total, sizeof(*r.lat_ns));
  slot *slots = calloc((size_t)window, sizeof(*slots));
  if (clink_outbox_open(&r.ob, loop, path, cfg, on_open_enq, NULL) != 0) exit(1);
  clink_outbox_config_free(cfg);
  r.t0 = uv_hrtime();
  for (int i = 0; i < window && i < total; i++) {
    slots[i].run = &r;
    submit(&r, &slots[i]);
  }
  while (r.acked < r.total) uv_run(loop, UV_RUN_ONCE);
  clink_outbox_stats st;
  st.struct_size = sizeof(st);
  clink_outbox_get_stats(r.ob, &st);
  int closed = 0;
  clink_outbox_close(r.ob, on_closed, &closed);
  while (!closed) uv_run(loop, UV_RUN_ONCE);
  if (r.failed) {
    fprintf(stderr, "%d enqueues failed\n", r.failed);
    exit(1);
  }
  qsort(r.lat_ns, (size_t)total, sizeof(*r.lat_ns), cmp_u64);
  enq_result res;
  res.per_s = total / ((double)(r.t1 - r.t0) / 1e9);
  res.p50_us = (double)r.lat_ns[total / 2] / 1e3;
  res.p99_us = (double)r.lat_ns[(size_t)total * 99 / 100] / 1e3;
  res.transactions = st.transactions;
  free(r.lat_ns);
  free(slots);
  return res;
}

/* ------------------------------------------------------------- deliver */

static int spawned, reports, delivered;
static uint64_t d_t0, d_t1;

static void on_pool_event(clink_pool *p, clink_pool_event ev, clink_client *c, const char *detail,
                          void *ud) {
  if (ev == CLINK_POOL_EVENT_SPAWNED) spawned++;
}

static void on_report(clink_outbox *ob, const clink_outbox_msg *m, void *ud) {
  reports++;
  if (clink_outbox_msg_state(m) == CLINK_OUTBOX_DELIVERED) delivered++;
  if (reports == *(int *)ud) d_t1 = uv_hrtime();
}

static void on_pool_closed(clink_pool *p, void *ud) { (*(int *)ud)++; }

static double deliver_bench(const char *cli, int total) {
  char path[512];
  snprintf(path, sizeof(path), "%s/deliver.db", dir);
  clink_outbox *ob;
  if (clink_outbox_open(&ob, loop, path, NULL, on_open_enq, NULL) != 0) exit(1);
  enq_run r;
  memset(&r, 0, sizeof(r));
  r.ob = ob;
  r.total = total;
  r.lat_ns = calloc((size_t)total, sizeof(*r.lat_ns));
  slot s = {&r, 0};
  for (int i = 0; i < total; i++) submit(&r, &s); /* the window is everything */
  while (r.acked < total) uv_run(loop, UV_RUN_ONCE);
  free(r.lat_ns);

  clink_options *o;
  clink_pool_config *pc;
  clink_pool *pool;
  clink_options_new(&o);
  clink_options_set_cli_path(o, cli);
  clink_pool_config_new(&pc);
  clink_pool_config_set_size(pc, 4, 4);
  if (clink_pool_new(&pool, loop, o, pc) != 0) exit(1);
  clink_options_free(o);
  clink_pool_config_free(pc);
  clink_pool_set_event_cb(pool, on_pool_event, NULL);
  while (spawned < 4) uv_run(loop, UV_RUN_ONCE); /* warm */

  clink_outbox_config *cfg;
  clink_outbox_config_new(&cfg);
  clink_outbox_config_set_concurrency(cfg, 64);
  int closed = 0;
  clink_outbox_close(ob, on_closed, &closed);
  while (!closed) uv_run(loop, UV_RUN_ONCE);
  if (clink_outbox_open(&ob, loop, path, cfg, on_open_enq, NULL) != 0) exit(1);
  clink_outbox_config_free(cfg);
  clink_outbox_deliver_via_pool(ob, pool);
  clink_outbox_set_report_cb(ob, on_report, &total);
  d_t0 = uv_hrtime();
  clink_outbox_start(ob);
  while (reports < total) uv_run(loop, UV_RUN_ONCE);
  closed = 0;
  clink_outbox_close(ob, on_closed, &closed);
  while (!closed) uv_run(loop, UV_RUN_ONCE);
  int pool_closed = 0;
  clink_pool_shutdown(pool, CLINK_POOL_DRAIN, on_pool_closed, &pool_closed);
  while (!pool_closed) uv_run(loop, UV_RUN_ONCE);
  if (delivered != total) {
    fprintf(stderr, "only %d of %d delivered\n", delivered, total);
    exit(1);
  }
  return total / ((double)(d_t1 - d_t0) / 1e9);
}

static void cleanup(void) {
  const char *names[] = {"group", "single", "deliver"};
  const char *sfx[] = {".db", ".db-wal", ".db-shm"};
  char p[600];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      snprintf(p, sizeof(p), "%s/%s%s", dir, names[i], sfx[j]);
      unlink(p);
    }
  rmdir(dir);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench-outbox FAKE_CLI [MESSAGES] [WINDOW]\n");
    return 2;
  }
  int total = argc > 2 ? atoi(argv[2]) : 20000;
  int window = argc > 3 ? atoi(argv[3]) : 256;
  if (total < 100 || window < 1) return 2;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof(dir), "%s/bench-outbox-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL) return 1;
  loop = uv_default_loop();

  /* One transaction per message is slow: a tenth of the messages does. */
  int single_total = total / 10 > 1000 ? total / 10 : 1000;
  enq_result g = enqueue_bench("group", CLINK_OUTBOX_DEFAULT_BATCH, total, window);
  enq_result s = enqueue_bench("single", 1, single_total, window);
  printf("durable enqueue, %d outstanding (WAL, synchronous=FULL):\n", window);
  printf("  %-28s %10s %10s %12s %12s\n", "", "msgs/s", "commits", "p50 latency", "p99 latency");
  printf("  %-28s %10.0f %10llu %9.0f us %9.0f us   (%d messages)\n", "group commit", g.per_s,
         (unsigned long long)g.transactions, g.p50_us, g.p99_us, total);
  printf("  %-28s %10.0f %10llu %9.0f us %9.0f us   (%d messages)\n",
         "one transaction per message", s.per_s, (unsigned long long)s.transactions, s.p50_us,
         s.p99_us, single_total);
  printf("  group commit / one per message: %.1fx (goal >= 20x)\n", g.per_s / s.per_s);
  fflush(stdout);

  double d = deliver_bench(argv[1], total);
  printf("delivery through a pool of 4 fake-CLI members, 64 in flight: %d messages, %.0f msgs/s"
         " (goal >= 5,000)\n",
         total, d);
  uv_loop_close(loop);
  cleanup();
  return 0;
}
