/* Client-path benchmark: what one message costs on the way from the CLI's
 * stdout to the host's callback, as figures (nothing is asserted).
 *
 * Usage: bench-client FAKE_CLI [MESSAGES] [TEXT_BYTES]
 *
 * One connected client runs one turn of MESSAGES assistant messages of
 * TEXT_BYTES each from the fake CLI. Printed: messages/s, and allocations
 * per message split into the library's own (everything linked statically,
 * through -Wl,--wrap) and cJSON's (routed to the same counters with
 * cJSON_InitHooks(), as a host may do: the library itself never does).
 * The framer and the transport allocate nothing per line; parsing a line
 * into a cJSON tree allocates per JSON node, and that is what the client
 * path costs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <claudelink.h>

#include "alloc-count.h"

static unsigned long n_cjson;

static void *cjson_malloc(size_t n) {
  n_cjson++;
  return __real_malloc(n);
}

static struct {
  uint64_t msgs, t_first, t_end;
  unsigned long lib_before, cjson_before;
  unsigned long lib_during, cjson_during;
  int done, status, connected;
} B;

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  (void)c;
  (void)ud;
  if (clink_msg_get_kind(m) != CLINK_MSG_ASSISTANT) return;
  if (B.msgs++ == 0) {
    B.t_first = uv_hrtime();
    B.lib_before = n_alloc;
    B.cjson_before = n_cjson;
  }
}

static void on_done(clink_client *c, int status, const clink_msg *r, void *ud) {
  (void)c;
  (void)r;
  (void)ud;
  B.t_end = uv_hrtime();
  B.lib_during = n_alloc - B.lib_before;
  B.cjson_during = n_cjson - B.cjson_before;
  B.done = 1;
  B.status = status;
}

static void on_connect(clink_client *c, int status, void *ud) {
  (void)ud;
  B.connected = 1;
  if (status == 0) clink_client_query(c, "bench", on_message, on_done, NULL);
}

static void on_closed(clink_client *c, void *ud) {
  (void)c;
  (void)ud;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench-client FAKE_CLI [MESSAGES] [TEXT_BYTES]\n");
    return 2;
  }
  const char *msgs = argc > 2 ? argv[2] : "200000";
  const char *bytes = argc > 3 ? argv[3] : "100";
  cJSON_Hooks hooks = {cjson_malloc, free};
  cJSON_InitHooks(&hooks);
  uv_loop_t *loop = uv_default_loop();
  clink_options *o;
  clink_options_new(&o);
  clink_options_set_cli_path(o, argv[1]);
  clink_options_set_exec_shim(o, NULL);
  clink_options_set_env(o, "FAKE_MSGS", msgs);
  clink_options_set_env(o, "FAKE_BYTES", bytes);
  clink_client *c;
  if (clink_client_new(&c, loop, o) != 0 || clink_client_connect(c, on_connect, NULL) != 0) {
    fprintf(stderr, "bench-client: cannot start %s\n", argv[1]);
    return 1;
  }
  clink_options_free(o);
  while (!B.done && uv_run(loop, UV_RUN_ONCE)) {
  }
  clink_client_close(c, on_closed, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  if (B.status != 0 || B.msgs < 2) {
    fprintf(stderr, "bench-client: the turn failed: %s\n", clink_err_name(B.status));
    return 1;
  }
  double secs = (double)(B.t_end - B.t_first) / 1e9;
  double n = (double)(B.msgs - 1); /* counted from the first message on */
  printf("client path, %llu messages x %s bytes: %.0f msgs/s\n", (unsigned long long)B.msgs,
         bytes, n / secs);
  printf("allocations per message: library %.2f, cJSON %.2f (parse of one line), total %.2f\n",
         (double)B.lib_during / n, (double)B.cjson_during / n,
         (double)(B.lib_during + B.cjson_during) / n);
  uv_loop_close(loop);
  return 0;
}
