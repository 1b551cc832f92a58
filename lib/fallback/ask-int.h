/* What clink_execute_with_fallback() (resilience/uv-execute.c) uses of the
 * ask driver: a call that runs only the fallback chain. Internal. */
#ifndef CLINK_FALLBACK_ASK_INT_H
#define CLINK_FALLBACK_ASK_INT_H

#include "claudelink.h"

/* Walks fb's chain for a failure err of an operation that is not a pool turn:
 * request is the key's prompt part (copied), pool steps are skipped, the
 * chain starts from the loop (never inside this call) and cb reports once,
 * from the loop, with the same read-outs as clink_ask() (answer, source...);
 * attempts is what the primary made (for events). The call is counted in
 * fb's statistics. *out (may be NULL) is for clink_ask_cancel(). */
int clink__ask_chain_only(clink_ask_call **out, uv_loop_t *loop, clink_fallback *fb,
                          const char *request, int err, unsigned int attempts,
                          clink_ask_cb cb, void *ud);

#endif
