/* Shared test helpers. */
#ifndef CLINK_TESTUTIL_H
#define CLINK_TESTUTIL_H

#include <check.h>
#include <uv.h>

#include <claudelink.h>

/* Runs the suite (fork mode stays on unless CK_FORK=no) and returns the exit
 * status for main(). */
int clink_test_run(Suite *s);

/* Paths handed in by meson through the environment. */
const char *clink_test_fake_cli(void);
const char *clink_test_exec_shim(void);

/* Asserts that the recorded transitions (from[i] -> to[i], n_seen of them)
 * are exactly want[0..n), starting from DISCONNECTED. */
void clink_test_expect_states(int n_seen, const clink_client_state *from,
                              const clink_client_state *to, int n,
                              const clink_client_state *want);

/* Ends a test the libuv way: every handle closed, loop closes cleanly. */
/* Files for tests that build a directory tree (real CLI homes, configs). */
/* Removes path and everything below it (missing is fine; "" is a no-op). */
void clink_test_rm_rf(const char *path);
/* out (PATH_MAX bytes) = dir/name; fails the test when it does not fit. */
void clink_test_join(char *out, const char *dir, const char *name);
/* Writes text to path (created or truncated); fails the test on error. */
void clink_test_write_file(const char *path, const char *text);

#define CLINK_TEST_LOOP_DONE(loop)                            \
  do {                                                        \
    uv_run((loop), UV_RUN_DEFAULT);                           \
    ck_assert_int_eq(uv_loop_close(loop), 0);                 \
  } while (0)

#endif
