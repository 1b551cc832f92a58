/* Shared test helpers. */
#ifndef CLINK_TESTUTIL_H
#define CLINK_TESTUTIL_H

#include <check.h>
#include <uv.h>

/* Runs the suite (fork mode stays on unless CK_FORK=no) and returns the exit
 * status for main(). */
int clink_test_run(Suite *s);

/* Paths handed in by meson through the environment. */
const char *clink_test_fake_cli(void);
const char *clink_test_exec_shim(void);

/* Ends a test the libuv way: every handle closed, loop closes cleanly. */
#define CLINK_TEST_LOOP_DONE(loop)                            \
  do {                                                        \
    uv_run((loop), UV_RUN_DEFAULT);                           \
    ck_assert_int_eq(uv_loop_close(loop), 0);                 \
  } while (0)

#endif
