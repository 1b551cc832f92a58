#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
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

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void clink_test_rm_rf(const char *path) {
  if (path[0]) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void clink_test_join(char *out, const char *dir, const char *name) {
  int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
  ck_assert(n > 0 && n < PATH_MAX);
}

void clink_test_write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fputs(text, f) >= 0, 1);
  ck_assert_int_eq(fclose(f), 0);
}
