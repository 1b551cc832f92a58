/* Outbound control requests waiting for their control_response: ids,
 * deadlines, completion. Pure code: time comes in as now_ms. A bounded table
 * (linear scans are cheaper than hashing at these sizes). */
#ifndef CLINK_CONTROL_H
#define CLINK_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "claudelink.h"

#define CLINK__CTL_ID_MAX 32

/* status: 0 (response is the success control_response), CLINK_ECONTROL_ERROR
 * (response is the error one), CLINK_ECONTROL_TIMEOUT, or the code given to
 * fail_all (response NULL). Called after the entry is removed, so the callback
 * may add requests or fail the table. */
typedef void (*clink__ctl_cb)(void *ud, int status, const clink_msg *response);

typedef struct clink__ctl_entry {
  char id[CLINK__CTL_ID_MAX];
  const char *subtype; /* static string, for error messages */
  uint64_t deadline_ms;
  clink__ctl_cb cb;
  void *ud;
  int used;
} clink__ctl_entry;

typedef struct clink__ctl {
  clink__ctl_entry *e;
  size_t cap, n;
  size_t max; /* the table grows up to this many entries */
  uint64_t counter;
  uint64_t rng;
} clink__ctl;

int clink__ctl_init(clink__ctl *c, size_t max_inflight, uint64_t seed);
void clink__ctl_free(clink__ctl *c);

/* Reserves an entry and writes its fresh id ("req_<n>_<8 hex>") to id_out.
 * Returns the entry index, CLINK_ETOO_MANY_REQUESTS, or UV_ENOMEM. */
int clink__ctl_add(clink__ctl *c, const char *subtype, uint64_t deadline_ms,
                   clink__ctl_cb cb, void *ud, char id_out[CLINK__CTL_ID_MAX]);
/* Forgets an entry without calling back (its request was never sent). */
void clink__ctl_cancel(clink__ctl *c, int index);

/* Routes a control_response. Returns 1 when it matched a pending request, 0
 * for unknown ids (late answers to timed-out requests are ignored). */
int clink__ctl_resolve(clink__ctl *c, const clink_msg *response);

/* Times out every entry whose deadline is <= now_ms; returns how many. */
size_t clink__ctl_expire(clink__ctl *c, uint64_t now_ms);
/* Earliest deadline, or UINT64_MAX when nothing is pending. */
uint64_t clink__ctl_next_deadline(const clink__ctl *c);
/* Fails every entry with status (process exited, client closed). */
void clink__ctl_fail_all(clink__ctl *c, int status);

#endif
