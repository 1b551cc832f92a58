/* claudelink-bench [--cli PATH] [PROMPT]
 *
 * One turn through the client, timed from before the spawn to the end of the
 * close. Prints one JSON line with the fields of the TypeScript SDK anchor
 * (../shared/bench/ts-sdk-anchor): impl, messages, text_bytes,
 * first_assistant_ms, wall_ms, cpu_ms, msgs_per_s, rss_mb (plus peak_rss_mb
 * connect_ms: spawn to initialize response, and query_first_assistant_ms: a
 * query on the connected client to its first assistant message).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <claudelink.h>

typedef struct bench {
  const char *prompt;
  uint64_t t0, t_query;
  double query_first_assistant_ms;
  uint64_t messages, text_bytes;
  double first_assistant_ms;
  int status;
  clink_client *client;
  uint64_t connect_ms;
} bench;

static double ms_since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e6; }

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  bench *b = ud;
  b->messages++;
  if (clink_msg_get_kind(m) != CLINK_MSG_ASSISTANT) return;
  if (b->first_assistant_ms < 0) {
    b->first_assistant_ms = ms_since(b->t0);
    b->query_first_assistant_ms = ms_since(b->t_query);
  }
  size_t n = clink_msg_block_count(m);
  for (size_t i = 0; i < n; i++) {
    const char *text = clink_msg_block_kind(m, i) == CLINK_BLOCK_TEXT
                           ? clink_msg_block_text(m, i) : NULL;
    if (text) b->text_bytes += strlen(text);
  }
}

static void on_closed(clink_client *c, void *ud) { (void)c, (void)ud; }

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  bench *b = ud;
  b->status = status;
  clink_client_metrics m = {.struct_size = sizeof(m)};
  clink_client_get_metrics(c, &m);
  b->connect_ms = m.connect_ms;
  clink_client_close(c, on_closed, b);
}

/* The query goes out once connected, so its latency is a warm one. */
static void on_connect(clink_client *c, int status, void *ud) {
  bench *b = ud;
  if (status == 0) {
    b->t_query = uv_hrtime();
    status = clink_client_query(c, b->prompt, on_message, on_turn, b);
  }
  if (status != 0) {
    b->status = status;
    clink_client_close(c, on_closed, b);
  }
}

static double rss_mb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double kb = 0;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof(line), f))
    if (strncmp(line, field, n) == 0) kb = atof(line + n);
  if (f) fclose(f);
  return kb / 1024.0;
}

int main(int argc, char **argv) {
  const char *cli = NULL, *prompt = "ping";
  int i = 1;
  if (i + 1 < argc && strcmp(argv[i], "--cli") == 0) {
    cli = argv[i + 1];
    i += 2;
  }
  if (i < argc) prompt = argv[i];

  bench b = {.first_assistant_ms = -1, .prompt = prompt};
  b.t0 = uv_hrtime();
  uv_loop_t *loop = uv_default_loop();
  clink_options *o;
  clink_options_new(&o);
  if (cli) clink_options_set_cli_path(o, cli);
  /* The anchor's TS SDK waits 2 s after EOF; EOF is all the fake needs. */
  int rc = clink_client_new(&b.client, loop, o);
  clink_options_free(o);
  if (rc == 0) rc = clink_client_connect(b.client, on_connect, &b);
  if (rc != 0) {
    fprintf(stderr, "claudelink-bench: %s\n",
            b.client && clink_client_last_error(b.client)[0] ? clink_client_last_error(b.client)
                                                             : clink_strerror(rc));
    return 1;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  double wall = ms_since(b.t0);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  printf("{\"impl\":\"claudelink\",\"messages\":%llu,\"text_bytes\":%llu,"
         "\"first_assistant_ms\":%.2f,\"wall_ms\":%.2f,\"cpu_ms\":%.2f,\"msgs_per_s\":%.0f,"
         "\"rss_mb\":%.1f,\"peak_rss_mb\":%.1f,\"connect_ms\":%llu,"
         "\"query_first_assistant_ms\":%.2f,\"status\":\"%s\"}\n",
         (unsigned long long)b.messages, (unsigned long long)b.text_bytes,
         b.first_assistant_ms, wall, cpu, (double)b.messages / wall * 1000.0, rss_mb("VmRSS:"),
         rss_mb("VmHWM:"), (unsigned long long)b.connect_ms, b.query_first_assistant_ms,
         clink_err_name(b.status));
  uv_loop_close(loop);
  return b.status == 0 ? 0 : 1;
}
