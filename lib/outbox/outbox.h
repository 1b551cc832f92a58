/* The outbox object (loop side) and its database thread. The loop thread
 * submits requests to a bounded FIFO; the database thread takes everything
 * queued (up to a batch), runs the writes in one transaction, commits once,
 * and hands the batch back through a uv_async_t (coalescing: the loop drains
 * every finished request on each wakeup). Only the database thread touches
 * the store; only the loop thread touches the outbox's other fields.
 * Internal. */
#ifndef CLINK_OUTBOX_H
#define CLINK_OUTBOX_H

#include "base/internal.h"
#include "outbox/config.h"
#include "outbox/store.h"

enum ob_req_kind {
  OB_OPEN,
  OB_ENQUEUE,
  OB_LEASE,
  OB_COMPLETE,
  OB_RESCHEDULE,
  OB_DEAD,
  OB_RELEASE,
  OB_GET,
  OB_CLOSE
};

typedef struct ob_req {
  struct ob_req *next;
  enum ob_req_kind kind;
  int status;   /* result: 0 or a negative code */
  int outcome;  /* enqueue: CLINK__OB_NEW / EXISTED / CLINK_EOUTBOX_FULL;
                 * outcomes: 1 when the attempt still held */
  int counted;  /* a host request (counts against max_queued) */
  /* Inputs. */
  clink_outbox_msg *msg; /* enqueue: the new message's strings; outcome
                          * requests: a copy of the message (for reports);
                          * get: the result */
  int64_t id;
  uint32_t attempt;
  int err;
  uint64_t due_ms;
  size_t max; /* lease: how many */
  /* Lease results. */
  clink_outbox_msg **rows;
  size_t n_rows;
  uint64_t next_ms;
  int64_t *dead_ids; /* recovered leases that were dead-lettered */
  size_t n_dead;
  /* Completion. */
  union {
    clink_outbox_enqueue_cb enqueue;
    clink_outbox_get_cb get;
  } cb;
  void *ud;
} ob_req;

typedef struct ob_queue {
  ob_req *head, *tail;
} ob_queue;

struct clink_outbox_delivery {
  clink_outbox *ob;
  clink_outbox_msg *msg;
};

struct clink_outbox {
  uv_loop_t *loop;
  clink_outbox_config cfg;
  const clink__ob_store_vt *vt;
  char *path;
  clink_retry *backoff;

  /* Shared with the database thread, under mu. */
  uv_mutex_t mu;
  uv_cond_t cv;
  ob_queue todo, done;
  clink__ob_counts shared_counts;
  int counts_fresh;
  uint64_t shared_commits;
  char shared_err[256];
  uv_thread_t thread;
  uv_async_t async;

  /* Database thread only. */
  clink__ob_store *store;
  int open_status;

  /* Loop thread only. */
  uv_timer_t timer;
  int handles_open; /* close callbacks still to come */
  clink__ob_counts counts;
  uint64_t commits;
  char last_err[256];
  int opened;
  int started;
  int closing, close_queued, thread_running;
  int finished; /* the thread has stopped: only handle closes remain */
  int lease_outstanding;
  int dry; /* the last lease found nothing more due */
  uint64_t outstanding;  /* requests submitted, not yet back */
  uint64_t host_queued;  /* of which host requests (enqueue, get) */
  uint64_t delivering;   /* attempts handed to the host */
  uint64_t enqueued, deliveries, failures, dead_lettered;
  clink_outbox_open_cb open_cb;
  void *open_ud;
  clink_outbox_deliver_fn deliver;
  void *deliver_ud;
  clink_outbox_report_cb report;
  void *report_ud;
  clink_events *sink; /* borrowed */
  clink_ask_options *ask_opts; /* clink_outbox_deliver_via_pool()'s, owned */
  clink_outbox_close_cb close_cb;
  void *close_ud;
};

/* Database thread (uv-outbox-db.c). */
int clink__ob_thread_start(clink_outbox *ob);
/* Queues r (loop thread) and wakes the database thread. */
void clink__ob_submit(clink_outbox *ob, ob_req *r);
/* Takes every finished request (loop thread), in submission order. */
ob_req *clink__ob_take_done(clink_outbox *ob);
void clink__ob_req_free(ob_req *r);

/* Wall-clock ms: leases and timestamps are shared between processes. */
uint64_t clink__ob_now_ms(void);

#endif
