/* First assistant message from a pre-warmed pool.
 *
 * Usage: bench-pool-latency CLI [PROMPT]
 * Fills a pool (min idle 1), waits for the member to be connected, then
 * times acquire -> query -> first assistant message. Prints one JSON line:
 * warmup_ms (spawn to a ready member), acquire_first_assistant_ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <claudelink.h>

typedef struct run {
  uv_loop_t *loop;
  clink_pool *pool;
  const char *prompt;
  uint64_t t_start, t_ready, t_acquire, t_first;
  int status;
} run;

static double ms(uint64_t from, uint64_t to) { return (double)(to - from) / 1e6; }

static void on_pool_closed(clink_pool *p, void *ud) { (void)p, (void)ud; }

static void finish(run *r, int status) {
  r->status = status;
  clink_pool_shutdown(r->pool, CLINK_POOL_IMMEDIATE, on_pool_closed, r);
}

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  run *r = ud;
  if (clink_msg_get_kind(m) == CLINK_MSG_ASSISTANT && r->t_first == 0) r->t_first = uv_hrtime();
}

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  run *r = ud;
  clink_pool_release(r->pool, c);
  finish(r, status);
}

static void on_acquired(clink_pool *p, int status, clink_client *c, uint64_t retry_after,
                        void *ud) {
  run *r = ud;
  if (status == 0) status = clink_client_query(c, r->prompt, on_message, on_turn, r);
  if (status != 0) finish(r, status);
}

static void on_event(clink_pool *p, clink_pool_event ev, clink_client *c, const char *detail,
                     void *ud) {
  run *r = ud;
  if (ev != CLINK_POOL_EVENT_SPAWNED || r->t_ready) return;
  r->t_ready = uv_hrtime();
  /* Measured from here: the member is connected and initialized. */
  r->t_acquire = uv_hrtime();
  int rc = clink_pool_acquire(p, NULL, "bench-pool-latency", on_acquired, r);
  if (rc != 0) finish(r, rc);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CLI [PROMPT]\n", argv[0]);
    return 2;
  }
  run r;
  memset(&r, 0, sizeof(r));
  r.prompt = argc > 2 ? argv[2] : "ping";
  r.loop = uv_default_loop();
  clink_options *o;
  clink_pool_config *cfg;
  clink_options_new(&o);
  clink_options_set_cli_path(o, argv[1]);
  clink_options_set_close_grace_ms(o, 200, 200);
  clink_pool_config_new(&cfg);
  clink_pool_config_set_size(cfg, 1, 1);
  r.t_start = uv_hrtime();
  int rc = clink_pool_new(&r.pool, r.loop, o, cfg);
  clink_options_free(o);
  clink_pool_config_free(cfg);
  if (rc != 0) {
    fprintf(stderr, "bench-pool-latency: %s\n", clink_strerror(rc));
    return 1;
  }
  clink_pool_set_event_cb(r.pool, on_event, &r);
  uv_run(r.loop, UV_RUN_DEFAULT);
  uv_loop_close(r.loop);
  if (r.status != 0 || r.t_first == 0) {
    fprintf(stderr, "bench-pool-latency: %s\n", clink_strerror(r.status));
    return 1;
  }
  printf("{\"impl\":\"claudelink-pool\",\"warmup_ms\":%.2f,\"acquire_first_assistant_ms\":%.2f}\n",
         ms(r.t_start, r.t_ready), ms(r.t_acquire, r.t_first));
  return 0;
}
