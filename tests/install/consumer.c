/* Built outside the tree against an installed prefix with
 * `cc consumer.c $(pkg-config --cflags --libs claudelink)`: one turn through
 * the fake CLI given as argv[1]. */
#include <stdio.h>
#include <string.h>

#include <claudelink.h>

static int status = -1;

static void on_closed(clink_client *c, void *ud) { (void)c, (void)ud; }

static void on_done(clink_client *c, int st, const clink_msg *result, void *ud) {
  (void)ud;
  status = st;
  printf("result: %s\n", result ? clink_msg_result_text(result) : "(none)");
  clink_client_close(c, on_closed, NULL);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  printf("libclaudelink %s\n", clink_version_string());
  clink_options *o;
  clink_client *c;
  clink_options_new(&o);
  clink_options_set_cli_path(o, argv[1]);
  clink_options_set_env(o, "FAKE_ECHO", "1");
  if (clink_client_new(&c, uv_default_loop(), o) != 0) return 1;
  clink_options_free(o);
  int rc = clink_client_connect(c, NULL, NULL);
  if (rc == 0) rc = clink_client_query(c, "hello from outside", NULL, on_done, NULL);
  if (rc != 0) {
    fprintf(stderr, "%s: %s\n", clink_err_name(rc), clink_client_last_error(c));
    return 1;
  }
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  return status == 0 ? 0 : 1;
}
