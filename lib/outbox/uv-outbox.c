/* clink_outbox, the loop side: requests go to the database thread
 * (uv-outbox-db.c) and come back through one uv_async_t; every callback to
 * the host (open, enqueue, get, deliver, report, event, close) runs from
 * that async callback or a timer, never inside the API call that caused it.
 *
 * Delivery: at most one lease request is out at a time; it asks for as many
 * messages as there are free delivery slots. When fewer come back than were
 * asked, nothing more is due ("dry") until something changes: an enqueue, an
 * outcome, or the timer set for the next backoff end, lease end or poll.
 *
 * Close: stop leasing, wait for the attempts in flight, queue the close
 * request behind everything else (the thread drains, closes the store and
 * exits), join the thread, close both handles, then the host's callback. */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "base/deadline.h"
#include "monitor/events-int.h"
#include "outbox/outbox.h"

static void pump(clink_outbox *ob);
static void on_timer(uv_timer_t *t);

/* ---------------------------------------------------------------- events */

/* The one place events leave the outbox: the library's event sink (copied
 * there, delivered from the loop). */
static void outbox_event(clink_outbox *ob, clink_log_level level, const char *name,
                         const clink_outbox_msg *m, int err, const char *text) {
  if (!clink__events_enabled(ob->sink, level)) return;
  clink_event_field f[7];
  size_t n = 0;
  if (m != NULL) {
    f[n++] = clink__f_int("id", m->id);
    f[n++] = clink__f_str("key", m->key);
    f[n++] = clink__f_str("session_id", m->session_id);
    f[n++] = clink__f_str("operation", m->operation);
    f[n++] = clink__f_int("attempts", m->attempts);
  }
  if (err != 0) f[n++] = clink__f_str("error", clink_err_name(err));
  if (text != NULL) f[n++] = clink__f_str("error_text", text);
  clink__events_emit(ob->sink, level, "outbox", name, f, n);
}

/* ------------------------------------------------------------ requests */

static ob_req *req_new(enum ob_req_kind kind) {
  ob_req *r = clink__calloc(1, sizeof(*r));
  if (r != NULL) r->kind = kind;
  return r;
}

static void submit(clink_outbox *ob, ob_req *r) {
  ob->outstanding++;
  if (r->counted) ob->host_queued++;
  uv_ref((uv_handle_t *)&ob->async); /* an answer is due: keep the loop alive */
  clink__ob_submit(ob, r);
}

static void maybe_queue_close(clink_outbox *ob) {
  if (!ob->closing || ob->close_queued || ob->lease_outstanding || ob->delivering) return;
  ob_req *r = req_new(OB_CLOSE);
  if (r == NULL) {
    /* Without memory for the request the thread cannot be told to stop;
     * try again on the next wakeup (the timer makes one). */
    uv_timer_start(&ob->timer, on_timer, 10, 0);
    return;
  }
  ob->close_queued = 1;
  submit(ob, r);
}

/* A lease this process will not use goes back (attempt count restored). */
static void release_row(clink_outbox *ob, clink_outbox_msg *m) {
  ob_req *r = req_new(OB_RELEASE);
  if (r != NULL) {
    r->id = m->id;
    r->attempt = m->attempts;
    submit(ob, r);
  } /* else the lease simply expires */
  clink__free(m);
}

/* ---------------------------------------------------------------- timer */

static void on_timer(uv_timer_t *t) {
  clink_outbox *ob = t->data;
  ob->dry = 0;
  pump(ob);
  maybe_queue_close(ob);
}

/* Nothing is due now: look again when something may be. */
static void arm_timer(clink_outbox *ob, uint64_t next_ms) {
  if (!ob->started || ob->closing) return;
  uint64_t delay = clink__until(next_ms, clink__ob_now_ms());
  if (ob->cfg.poll_ms > 0) delay = clink__earliest(delay, ob->cfg.poll_ms);
  if (delay == CLINK__NEVER) return;
  uv_timer_start(&ob->timer, on_timer, delay, 0);
}

static void pump(clink_outbox *ob) {
  if (!ob->started || ob->closing || !ob->opened || ob->dry || ob->lease_outstanding) return;
  if (ob->delivering >= ob->cfg.concurrency) return;
  ob_req *r = req_new(OB_LEASE);
  if (r == NULL) {
    arm_timer(ob, clink__deadline(clink__ob_now_ms(), 100));
    return;
  }
  r->max = ob->cfg.concurrency - ob->delivering;
  ob->lease_outstanding = 1;
  submit(ob, r);
}

/* ------------------------------------------------------------ finishing */

static void hand_out(clink_outbox *ob, ob_req *r) {
  size_t n = r->n_rows;
  clink_outbox_msg **rows = r->rows;
  r->n_rows = 0;
  /* Slots first: a delivery finished from inside fn must not lease into
   * slots the rest of this batch is about to take. */
  ob->delivering += n;
  for (size_t i = 0; i < n; i++) {
    clink_outbox_msg *m = rows[i];
    rows[i] = NULL;
    clink_outbox_delivery *d = NULL;
    if (ob->started && !ob->closing && ob->deliver != NULL)
      d = clink__calloc(1, sizeof(*d));
    if (d == NULL) {
      ob->delivering--;
      release_row(ob, m);
      continue;
    }
    d->ob = ob;
    d->msg = m;
    ob->deliver(ob, d, ob->deliver_ud);
  }
}

static void finish_lease(clink_outbox *ob, ob_req *r) {
  ob->lease_outstanding = 0;
  if (r->status != 0) {
    outbox_event(ob, CLINK_LOG_ERROR, "outbox_store_error", NULL, r->status, ob->last_err);
    ob->dry = 1;
    arm_timer(ob, clink__deadline(clink__ob_now_ms(), ob->cfg.poll_ms ? ob->cfg.poll_ms : 1000));
    return;
  }
  for (size_t i = 0; i < r->n_dead; i++) {
    ob->dead_lettered++;
    clink_outbox_msg m;
    memset(&m, 0, sizeof(m));
    m.id = r->dead_ids[i];
    m.attempts = ob->cfg.max_attempts;
    outbox_event(ob, CLINK_LOG_WARNING, "message_dead_lettered", &m, UV_ETIMEDOUT, "lease expired");
  }
  int full = r->n_rows == r->max;
  if (!full) ob->dry = 1;
  hand_out(ob, r);
  if (!full) arm_timer(ob, r->next_ms);
}

static void finish_outcome(clink_outbox *ob, ob_req *r) {
  clink_outbox_msg *m = r->msg;
  if (r->status != 0) {
    /* Not recorded: the lease will expire and the message be delivered
     * again (at-least-once). */
    outbox_event(ob, CLINK_LOG_ERROR, "outbox_store_error", m, r->status, ob->last_err);
    return;
  }
  if (!r->outcome) return; /* a late outcome of an attempt whose lease was lost */
  ob->dry = 0;
  if (r->kind == OB_COMPLETE) {
    ob->deliveries++;
    outbox_event(ob, CLINK_LOG_INFO, "message_delivered", m, 0, NULL);
  } else if (r->kind == OB_DEAD) {
    ob->failures++;
    ob->dead_lettered++;
    outbox_event(ob, CLINK_LOG_ERROR, "message_dead_lettered", m, m->last_error, m->error_text);
  } else {
    ob->failures++;
  }
  if (ob->report) ob->report(ob, m, ob->report_ud);
}

static void finish_enqueue(clink_outbox *ob, ob_req *r) {
  int status = r->status;
  if (status == 0 && r->outcome < 0) status = r->outcome;
  if (status == 0 && r->outcome == CLINK__OB_NEW) {
    ob->enqueued++;
    ob->dry = 0;
    r->msg->id = r->id;
    outbox_event(ob, CLINK_LOG_INFO, "message_queued", r->msg, 0, NULL);
  }
  if (r->cb.enqueue) r->cb.enqueue(ob, status, status == 0 ? r->id : 0, r->ud);
}

/* The last handle closed: what is left of the outbox goes. */
static void outbox_free(clink_outbox *ob) {
  uv_mutex_destroy(&ob->mu);
  uv_cond_destroy(&ob->cv);
  clink__ob_config_clear(&ob->cfg);
  clink_retry_free(ob->backoff);
  clink_ask_options_free(ob->ask_opts);
  clink__free(ob->path);
  clink__free(ob);
}

static void on_handle_closed(uv_handle_t *h) {
  clink_outbox *ob = h->data;
  if (--ob->handles_open > 0) return;
  if (ob->close_cb) ob->close_cb(ob, ob->close_ud);
  outbox_free(ob);
}

static void close_handles(clink_outbox *ob) {
  ob->handles_open = 2;
  uv_close((uv_handle_t *)&ob->timer, on_handle_closed);
  uv_close((uv_handle_t *)&ob->async, on_handle_closed);
}

static void finish(clink_outbox *ob, ob_req *r) {
  switch (r->kind) {
    case OB_OPEN:
      ob->opened = r->status == 0;
      if (ob->open_cb) ob->open_cb(ob, r->status, ob->open_ud);
      break;
    case OB_ENQUEUE:
      finish_enqueue(ob, r);
      break;
    case OB_LEASE:
      finish_lease(ob, r);
      break;
    case OB_COMPLETE:
    case OB_RESCHEDULE:
    case OB_DEAD:
      finish_outcome(ob, r);
      break;
    case OB_RELEASE:
      if (r->status == 0 && r->outcome) ob->dry = 0;
      break;
    case OB_GET:
      if (r->cb.get) r->cb.get(ob, r->status, r->status == 0 ? r->msg : NULL, r->ud);
      break;
    case OB_CLOSE:
      /* The thread posted this as its last act: the join is immediate. */
      uv_thread_join(&ob->thread);
      ob->thread_running = 0;
      ob->finished = 1;
      break;
  }
}

static void on_async(uv_async_t *a) {
  clink_outbox *ob = a->data;
  if (ob->finished) return;
  ob_req *r = clink__ob_take_done(ob);
  uv_mutex_lock(&ob->mu);
  if (ob->counts_fresh) ob->counts = ob->shared_counts;
  ob->commits = ob->shared_commits;
  memcpy(ob->last_err, ob->shared_err, sizeof(ob->last_err));
  uv_mutex_unlock(&ob->mu);
  while (r != NULL) {
    ob_req *next = r->next;
    ob->outstanding--;
    if (r->counted) ob->host_queued--;
    finish(ob, r);
    clink__ob_req_free(r);
    r = next;
  }
  if (ob->finished) {
    close_handles(ob);
    return;
  }
  if (ob->outstanding == 0) uv_unref((uv_handle_t *)&ob->async);
  pump(ob);
  maybe_queue_close(ob);
}

/* ------------------------------------------------------------------ API */

/* The store behind clink_outbox_open(); NULL when built without one. */
static const clink__ob_store_vt *default_store(void) {
#ifdef CLINK__HAVE_SQLITE
  return &clink__ob_store_sqlite;
#else
  return NULL;
#endif
}

/* Frees an outbox whose open failed before the thread started (no user
 * callback: open returned the error). */
static void on_early_closed(uv_handle_t *h) {
  clink_outbox *ob = h->data;
  if (--ob->handles_open > 0) return;
  outbox_free(ob);
}

int clink_outbox_open(clink_outbox **out, uv_loop_t *loop, const char *path,
                      const clink_outbox_config *cfg, clink_outbox_open_cb cb, void *ud) {
  if (out == NULL) return UV_EINVAL;
  *out = NULL;
  if (loop == NULL || path == NULL || *path == '\0') return UV_EINVAL;
  const clink__ob_store_vt *store = default_store();
  if (store == NULL) return UV_ENOTSUP;
  clink_outbox *ob = clink__calloc(1, sizeof(*ob));
  if (ob == NULL) return UV_ENOMEM;
  clink_outbox_config *defaults = NULL;
  int rc = 0;
  if (cfg == NULL) rc = clink_outbox_config_new(&defaults);
  if (rc == 0) rc = clink__ob_config_copy(&ob->cfg, cfg ? cfg : defaults);
  clink_outbox_config_free(defaults);
  if (rc == 0 && (ob->path = clink__strdup(path)) == NULL) rc = UV_ENOMEM;
  if (rc == 0) rc = clink__ob_backoff_new(&ob->backoff, ob->cfg.backoff, 0);
  ob_req *r = rc == 0 ? req_new(OB_OPEN) : NULL;
  if (rc == 0 && r == NULL) rc = UV_ENOMEM;
  if (rc == 0 && (rc = uv_mutex_init(&ob->mu)) == 0 && (rc = uv_cond_init(&ob->cv)) != 0)
    uv_mutex_destroy(&ob->mu);
  if (rc != 0) {
    clink__free(r);
    clink__ob_config_clear(&ob->cfg);
    clink_retry_free(ob->backoff);
    clink__free(ob->path);
    clink__free(ob);
    return rc;
  }
  ob->loop = loop;
  ob->vt = store;
  ob->open_cb = cb;
  ob->open_ud = ud;
  if ((rc = uv_async_init(loop, &ob->async, on_async)) != 0) {
    clink__free(r);
    uv_mutex_destroy(&ob->mu);
    uv_cond_destroy(&ob->cv);
    clink__ob_config_clear(&ob->cfg);
    clink_retry_free(ob->backoff);
    clink__free(ob->path);
    clink__free(ob);
    return rc;
  }
  uv_timer_init(loop, &ob->timer);
  ob->async.data = ob;
  ob->timer.data = ob;
  submit(ob, r);
  if ((rc = clink__ob_thread_start(ob)) != 0) {
    clink__ob_req_free(ob->todo.head); /* the open request, never taken */
    ob->handles_open = 2;
    uv_close((uv_handle_t *)&ob->timer, on_early_closed);
    uv_close((uv_handle_t *)&ob->async, on_early_closed);
    return rc;
  }
  ob->thread_running = 1;
  *out = ob;
  return 0;
}

int clink_outbox_enqueue(clink_outbox *ob, const char *prompt, const char *operation,
                         const char *session_id, const char *key, const char *metadata_json,
                         clink_outbox_enqueue_cb cb, void *ud) {
  if (ob == NULL || prompt == NULL) return UV_EINVAL;
  if ((session_id && !*session_id) || (key && !*key) || (operation && !*operation))
    return UV_EINVAL;
  if (ob->closing) return CLINK_ECLOSING;
  if (metadata_json != NULL) {
    cJSON *j = cJSON_ParseWithOpts(metadata_json, NULL, 1);
    if (j == NULL) return UV_EINVAL;
    cJSON_Delete(j);
  }
  if (ob->host_queued >= ob->cfg.max_queued) return CLINK_EQUEUE_FULL;
  ob_req *r = req_new(OB_ENQUEUE);
  if (r == NULL) return UV_ENOMEM;
  clink__ob_strs strs = {prompt, operation ? operation : "chat", session_id, key, metadata_json,
                         NULL, NULL};
  if ((r->msg = clink__ob_msg_new(&strs)) == NULL) {
    clink__free(r);
    return UV_ENOMEM;
  }
  r->counted = 1;
  r->cb.enqueue = cb;
  r->ud = ud;
  submit(ob, r);
  return 0;
}

int clink_outbox_get(clink_outbox *ob, int64_t id, clink_outbox_get_cb cb, void *ud) {
  if (ob == NULL || cb == NULL) return UV_EINVAL;
  if (ob->closing) return CLINK_ECLOSING;
  if (ob->host_queued >= ob->cfg.max_queued) return CLINK_EQUEUE_FULL;
  ob_req *r = req_new(OB_GET);
  if (r == NULL) return UV_ENOMEM;
  r->id = id;
  r->counted = 1;
  r->cb.get = cb;
  r->ud = ud;
  submit(ob, r);
  return 0;
}

int clink_outbox_set_deliver(clink_outbox *ob, clink_outbox_deliver_fn fn, void *ud) {
  if (ob == NULL) return UV_EINVAL;
  if (ob->closing) return CLINK_ECLOSING;
  ob->deliver = fn;
  ob->deliver_ud = ud;
  return 0;
}

void clink_outbox_set_report_cb(clink_outbox *ob, clink_outbox_report_cb cb, void *ud) {
  if (ob == NULL) return;
  ob->report = cb;
  ob->report_ud = ud;
}

void clink_outbox_set_events(clink_outbox *ob, clink_events *sink) {
  if (ob) ob->sink = sink;
}

int clink_outbox_start(clink_outbox *ob) {
  if (ob == NULL || ob->deliver == NULL) return UV_EINVAL;
  if (ob->closing) return CLINK_ECLOSING;
  ob->started = 1;
  ob->dry = 0;
  /* The first lease waits for the loop (and for the open to finish). */
  uv_timer_start(&ob->timer, on_timer, 0, 0);
  return 0;
}

int clink_outbox_stop(clink_outbox *ob) {
  if (ob == NULL) return UV_EINVAL;
  ob->started = 0;
  uv_timer_stop(&ob->timer);
  return 0;
}

const clink_outbox_msg *clink_outbox_delivery_msg(const clink_outbox_delivery *d) {
  return d ? d->msg : NULL;
}

static int attempt_finish(clink_outbox_delivery *d, int status, const char *response, int final) {
  if (d == NULL || status > 0 || (final && status == 0)) return UV_EINVAL;
  clink_outbox *ob = d->ob;
  const clink_outbox_msg *m = d->msg;
  enum ob_req_kind kind = OB_COMPLETE;
  if (status != 0)
    kind = final || m->attempts >= ob->cfg.max_attempts ? OB_DEAD : OB_RESCHEDULE;
  const char *err_text = status != 0 ? (response ? response : clink_strerror(status)) : NULL;
  clink__ob_strs strs = {m->prompt, m->operation, m->session_id, m->key, m->metadata,
                         status == 0 ? response : NULL, err_text};
  ob_req *r = req_new(kind);
  clink_outbox_msg *copy = r ? clink__ob_msg_new(&strs) : NULL;
  if (copy == NULL) {
    clink__free(r);
    return UV_ENOMEM; /* d untouched: the host may try again */
  }
  uint64_t now = clink__ob_now_ms();
  copy->id = m->id;
  copy->attempts = m->attempts;
  copy->created_ms = m->created_ms;
  copy->updated_ms = now;
  copy->last_error = status != 0 ? status : m->last_error;
  if (kind == OB_COMPLETE) {
    copy->state = CLINK_OUTBOX_DELIVERED;
  } else if (kind == OB_DEAD) {
    copy->state = CLINK_OUTBOX_DEAD;
  } else {
    copy->state = CLINK_OUTBOX_PENDING;
    copy->due_ms = clink__deadline(now, clink__ob_backoff(ob->backoff, m->attempts));
  }
  r->msg = copy;
  r->id = m->id;
  r->attempt = m->attempts;
  r->err = status;
  r->due_ms = copy->due_ms;
  clink__free(d->msg);
  clink__free(d);
  ob->delivering--;
  submit(ob, r);
  pump(ob);
  maybe_queue_close(ob);
  return 0;
}

int clink_outbox_delivery_done(clink_outbox_delivery *d, int status, const char *response) {
  return attempt_finish(d, status, response, 0);
}

int clink_outbox_delivery_reject(clink_outbox_delivery *d, int status, const char *error_text) {
  return attempt_finish(d, status, error_text, 1);
}

int clink_outbox_get_stats(const clink_outbox *ob, clink_outbox_stats *out) {
  if (ob == NULL || out == NULL || out->struct_size < sizeof(size_t)) return UV_EINVAL;
  clink_outbox_stats s;
  memset(&s, 0, sizeof(s));
  s.pending = ob->counts.pending;
  s.in_flight = ob->counts.leased;
  s.delivered = ob->counts.delivered;
  s.dead = ob->counts.dead;
  if (ob->counts.oldest_pending_created_ms != 0) {
    uint64_t now = clink__ob_now_ms(), t = ob->counts.oldest_pending_created_ms;
    s.oldest_pending_age_ms = now > t ? now - t : 0;
  }
  s.delivering = ob->delivering;
  s.queued = ob->outstanding;
  s.enqueued = ob->enqueued;
  s.deliveries = ob->deliveries;
  s.failures = ob->failures;
  s.dead_lettered = ob->dead_lettered;
  s.transactions = ob->commits;
  size_t n = out->struct_size < sizeof(s) ? out->struct_size : sizeof(s);
  s.struct_size = n;
  memcpy(out, &s, n);
  return 0;
}

const char *clink_outbox_last_error(const clink_outbox *ob) {
  return ob ? ob->last_err : "";
}

int clink_outbox_close(clink_outbox *ob, clink_outbox_close_cb cb, void *ud) {
  if (ob == NULL) return UV_EINVAL;
  if (ob->closing) return UV_EBUSY;
  ob->closing = 1;
  ob->started = 0;
  ob->close_cb = cb;
  ob->close_ud = ud;
  uv_timer_stop(&ob->timer);
  maybe_queue_close(ob);
  return 0;
}
