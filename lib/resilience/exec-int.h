/* An extension point of clink_execute for the layers above resilience
 * (fallback/uv-exec-fallback.c: clink_execute_with_fallback). Resilience
 * knows nothing of what extends it: the extension is told the final status
 * before done runs and may hold the report to finish it later. Internal. */
#ifndef CLINK_EXEC_INT_H
#define CLINK_EXEC_INT_H

#include "claudelink.h"

typedef struct clink__exec_hooks {
  /* The execution ended with status (0, its final error, or UV_ECANCELED),
   * from the loop, before done. Return 0 to report now, 1 to report later
   * with clink__exec_finish(). */
  int (*ending)(clink_exec *ex, int status, void *ext);
  /* The execution is freed (after done returned): free ext. */
  void (*free)(void *ext);
} clink__exec_hooks;

/* clink_execute() with an extension (hooks borrowed, ext owned by them). */
int clink__execute_ext(clink_exec **out, uv_loop_t *loop, clink_breaker *breaker,
                       const clink_retry_policy *policy, clink_exec_op op, clink_exec_cb done,
                       void *ud, const clink__exec_hooks *hooks, void *ext);
/* The extension of ex, or NULL. */
void *clink__exec_ext(const clink_exec *ex);
/* Whether op's attempt is running (between op and its clink_exec_done()). */
int clink__exec_running(const clink_exec *ex);
/* Reports a held execution: done runs now with status. */
void clink__exec_finish(clink_exec *ex, int status);

#endif
