#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

int clink_test_run(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static const char *need_env(const char *name) {
  const char *v = getenv(name);
  if (v == NULL || v[0] == '\0') {
    fprintf(stderr, "%s is not set: run the tests through `meson test`\n", name);
    abort();
  }
  return v;
}

const char *clink_test_fake_cli(void) { return need_env("CLINK_TEST_FAKE_CLI"); }

const char *clink_test_exec_shim(void) { return need_env("CLINK_TEST_EXEC_SHIM"); }

void clink_test_expect_states(int n_seen, const clink_client_state *from,
                              const clink_client_state *to, int n,
                              const clink_client_state *want) {
  ck_assert_int_eq(n_seen, n);
  clink_client_state prev = CLINK_CLIENT_DISCONNECTED;
  for (int i = 0; i < n; i++) {
    ck_assert_msg(to[i] == want[i], "transition %d: got %s, want %s", i,
                  clink_client_state_name(to[i]), clink_client_state_name(want[i]));
    ck_assert_int_eq(from[i], prev);
    prev = to[i];
  }
}
