/* The outbox's database thread: the only code that touches the store. It
 * takes every queued request (up to the batch size, waiting up to the group
 * commit window for more), runs the writes of the batch in one transaction,
 * commits once, then hands the whole batch back to the loop: a request is
 * acknowledged only after the commit that made it durable. A storage failure
 * fails every write of its batch (none of them was committed). */
#include <time.h>

#include "outbox/outbox.h"

uint64_t clink__ob_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void clink__ob_req_free(ob_req *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n_rows; i++) clink__free(r->rows[i]);
  clink__free(r->rows);
  clink__free(r->dead_ids);
  clink__free(r->msg);
  clink__free(r);
}

static void push(ob_queue *q, ob_req *r) {
  r->next = NULL;
  if (q->tail)
    q->tail->next = r;
  else
    q->head = r;
  q->tail = r;
}

void clink__ob_submit(clink_outbox *ob, ob_req *r) {
  uv_mutex_lock(&ob->mu);
  push(&ob->todo, r);
  uv_cond_signal(&ob->cv);
  uv_mutex_unlock(&ob->mu);
}

ob_req *clink__ob_take_done(clink_outbox *ob) {
  uv_mutex_lock(&ob->mu);
  ob_req *head = ob->done.head;
  ob->done.head = ob->done.tail = NULL;
  uv_mutex_unlock(&ob->mu);
  return head;
}

static int is_write(const ob_req *r) {
  return r->kind != OB_GET && r->kind != OB_OPEN && r->kind != OB_CLOSE;
}

/* One write inside the open transaction; < 0 fails the transaction. */
static int run_write(clink_outbox *ob, ob_req *r, uint64_t now) {
  const clink__ob_store_vt *vt = ob->vt;
  clink__ob_store *s = ob->store;
  switch (r->kind) {
    case OB_ENQUEUE: {
      clink__ob_strs strs = {r->msg->prompt, r->msg->operation, r->msg->session_id,
                             r->msg->key, r->msg->metadata, NULL, NULL};
      return vt->enqueue(s, &strs, ob->cfg.max_messages, now, &r->id, &r->outcome);
    }
    case OB_LEASE: {
      size_t n_req, n_dead;
      int64_t dead[64];
      int rc = vt->recover(s, ob->cfg.max_attempts, now, dead, CLINK__ARRAY_SIZE(dead), &n_req,
                           &n_dead);
      if (rc != 0) return rc;
      if (n_dead > 0) {
        size_t keep = n_dead < CLINK__ARRAY_SIZE(dead) ? n_dead : CLINK__ARRAY_SIZE(dead);
        r->dead_ids = clink__calloc(keep, sizeof(*r->dead_ids));
        if (r->dead_ids != NULL) {
          memcpy(r->dead_ids, dead, keep * sizeof(*dead));
          r->n_dead = keep;
        }
      }
      r->rows = clink__calloc(r->max, sizeof(*r->rows));
      if (r->rows == NULL) return UV_ENOMEM;
      return vt->lease(s, r->max, ob->cfg.lease_ms, now, r->rows, &r->n_rows, &r->next_ms);
    }
    case OB_COMPLETE:
      return vt->complete(s, r->id, r->attempt, r->msg->response, now, &r->outcome);
    case OB_RESCHEDULE:
      return vt->reschedule(s, r->id, r->attempt, r->err, r->msg->error_text, r->due_ms, now,
                            &r->outcome);
    case OB_DEAD:
      return vt->dead_letter(s, r->id, r->attempt, r->err, r->msg->error_text, now, &r->outcome);
    case OB_RELEASE:
      return vt->release(s, r->id, r->attempt, now, &r->outcome);
    default:
      return 0;
  }
}

static void undo_lease(ob_req *r) {
  for (size_t i = 0; i < r->n_rows; i++) clink__free(r->rows[i]);
  r->n_rows = 0;
  r->n_dead = 0;
}

/* Runs a batch (FIFO order); returns 1 when a close request ended the
 * thread's work. */
static int run_batch(clink_outbox *ob, ob_req *batch, int *committed) {
  const clink__ob_store_vt *vt = ob->vt;
  uint64_t now = clink__ob_now_ms();
  int writes = 0, stop = 0;
  *committed = 0;
  for (ob_req *r = batch; r; r = r->next) {
    if (r->kind == OB_OPEN) {
      char err[256] = "";
      ob->open_status = vt->open(&ob->store, ob->path, now, err, sizeof(err));
      r->status = ob->open_status;
      if (r->status != 0) {
        uv_mutex_lock(&ob->mu);
        snprintf(ob->shared_err, sizeof(ob->shared_err), "%s", err);
        uv_mutex_unlock(&ob->mu);
      }
    } else if (is_write(r)) {
      writes++;
    }
  }
  if (ob->store == NULL) {
    for (ob_req *r = batch; r; r = r->next) {
      if (r->kind == OB_CLOSE) stop = 1;
      if (r->kind != OB_OPEN && r->kind != OB_CLOSE) r->status = ob->open_status;
    }
    return stop;
  }
  if (writes > 0) {
    int rc = vt->begin(ob->store, now);
    for (ob_req *r = batch; r && rc == 0; r = r->next)
      if (is_write(r)) rc = run_write(ob, r, now);
    if (rc == 0) rc = vt->commit(ob->store, now);
    if (rc != 0) {
      vt->rollback(ob->store);
      for (ob_req *r = batch; r; r = r->next) {
        if (!is_write(r)) continue;
        r->status = rc;
        if (r->kind == OB_LEASE) undo_lease(r);
      }
      uv_mutex_lock(&ob->mu);
      snprintf(ob->shared_err, sizeof(ob->shared_err), "%s", vt->errmsg(ob->store));
      uv_mutex_unlock(&ob->mu);
    } else {
      *committed = 1;
    }
  }
  for (ob_req *r = batch; r; r = r->next) {
    if (r->kind == OB_GET) {
      clink__free(r->msg);
      r->msg = NULL;
      r->status = vt->get(ob->store, r->id, now, &r->msg);
    } else if (r->kind == OB_CLOSE) {
      stop = 1;
    }
  }
  clink__ob_counts c;
  int have_counts = vt->stats(ob->store, now, &c) == 0;
  if (stop) {
    vt->close(ob->store);
    ob->store = NULL;
  }
  uv_mutex_lock(&ob->mu);
  if (have_counts) {
    ob->shared_counts = c;
    ob->counts_fresh = 1;
  }
  ob->shared_commits += (uint64_t)*committed;
  uv_mutex_unlock(&ob->mu);
  return stop;
}

/* Moves queued requests onto the batch until it holds max (mutex held). */
static void take(ob_queue *q, unsigned int max, unsigned int *n, ob_queue *batch) {
  while (q->head && *n < max) {
    ob_req *r = q->head;
    q->head = r->next;
    if (q->head == NULL) q->tail = NULL;
    push(batch, r);
    (*n)++;
  }
}

static void thread_main(void *arg) {
  clink_outbox *ob = arg;
  for (;;) {
    uv_mutex_lock(&ob->mu);
    while (ob->todo.head == NULL) uv_cond_wait(&ob->cv, &ob->mu);
    unsigned int n = 0;
    ob_queue batch = {NULL, NULL};
    take(&ob->todo, ob->cfg.batch, &n, &batch);
    /* Group commit window: later requests may join before the commit.
     * Nothing follows a close. */
    if (ob->cfg.batch_wait_ms > 0) {
      uint64_t end = uv_hrtime() + ob->cfg.batch_wait_ms * 1000000u;
      while (n < ob->cfg.batch && batch.tail->kind != OB_CLOSE) {
        uint64_t t = uv_hrtime();
        if (t >= end) break;
        int timed_out = uv_cond_timedwait(&ob->cv, &ob->mu, end - t) != 0;
        take(&ob->todo, ob->cfg.batch, &n, &batch);
        if (timed_out) break;
      }
    }
    uv_mutex_unlock(&ob->mu);

    int committed;
    int stop = run_batch(ob, batch.head, &committed);

    uv_mutex_lock(&ob->mu);
    if (ob->done.tail)
      ob->done.tail->next = batch.head;
    else
      ob->done.head = batch.head;
    ob->done.tail = batch.tail;
    uv_mutex_unlock(&ob->mu);
    uv_async_send(&ob->async);
    if (stop) return;
  }
}

int clink__ob_thread_start(clink_outbox *ob) {
  return uv_thread_create(&ob->thread, thread_main, ob);
}
