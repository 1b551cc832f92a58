/* clink_health: checks, sampling and snapshots on the host's loop. One
 * unref'd timer drives everything (check starts and deadlines, samples,
 * status notifications); the decisions are the pure ones of health.c; the
 * figures come from the attached objects' public read-outs and from
 * procfs.c, read on the timer only. */
#include <math.h>
#include <stdio.h>

#include <uv.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "monitor/events-int.h"
#include "monitor/events.h"
#include "monitor/health.h"
#include "monitor/procfs.h"

#define STATBUF_SIZE (64 * 1024)
#define COMPONENT "health_monitor"

typedef struct hcheck {
  clink__hcheck c;
  clink_health_check_fn fn;
  void *ud;
  clink_health_check *run; /* the run out, or NULL */
  unsigned removed : 1;
} hcheck;

struct clink_health_check {
  clink_health *h; /* NULL once the monitor closed */
  hcheck *chk;     /* NULL once the check was removed */
  char name[CLINK__HS_NAME];
};

typedef enum att_kind { ATT_POOL, ATT_CLIENT, ATT_BREAKERS, ATT_OUTBOX } att_kind;
typedef struct attachment {
  att_kind kind;
  void *obj;
} attachment;

struct clink_health {
  uv_loop_t *loop;
  uv_timer_t tick;
  int handle_open;
  unsigned ready : 1; /* the timer exists */
  unsigned closing : 1;
  unsigned finished : 1;
  unsigned in_tick : 1;
  unsigned notify_pending : 1;
  clink_health_close_cb close_cb;
  void *close_ud;
  clink_events *sink;
  clink_health_status_cb status_cb;
  void *status_ud;
  clink_health_status status, notified;
  char *service, *version, *disk_path;
  uint64_t started_ms;

  hcheck **checks;
  size_t n_checks, cap_checks;
  double mem_warn, mem_fail, sess_warn, sess_fail;

  /* The claude_sdk probe (one at a time: the check never runs twice). */
  clink_options *sdk_opts;
  struct {
    int active;               /* connecting a temporary CLI, or pinging */
    clink_health_check *run;  /* its run, until answered */
    clink_client *client;     /* the temporary CLI or the pinged member */
    clink_pool *pool;         /* the member's pool (NULL: temporary) */
    uint64_t start_ns;
  } probe;
  unsigned temp_closing; /* temporary CLIs whose close has not ended */

  attachment *att;
  size_t n_att, cap_att;
  clink_health_fallback_fn fb_fn;
  void *fb_ud;
  uint64_t clients_attached;

  /* The request meter. */
  uint64_t req_total, req_in_progress, req_errors;
  clink__histo req_latency;

  /* Counted as sessions are observed. */
  clink__tracker tr;
  uint64_t turns_ok, turns_failed, sess_errors, reconnects;
  clink__histo turn_latency, connect_time;
  uint64_t sessions_active;
  clink_client **scratch;
  size_t cap_scratch;

  /* Sampling. */
  uint64_t sample_ms, next_sample_ms;
  char *statbuf;
  clink__cpu_times cpu_prev;
  int cpu_prev_ok;
  clink__sys_sample sys;
  uint64_t clock_ticks; /* per second */
};

static void arm(clink_health *h);
static void sdk_check(clink_health *h, clink_health_check *run, void *ud);
static void memory_check(clink_health *h, clink_health_check *run, void *ud);
static void sessions_check(clink_health *h, clink_health_check *run, void *ud);

static uint64_t now_ms(const clink_health *h) { return uv_now(h->loop); }

/* ---------------------------------------------------------------- events */

static void emit_transition(clink_health *h, const hcheck *k, clink__hc_transition tr) {
  static const char *const names[] = {NULL, "health_check_failed", "health_check_degraded",
                                      "health_check_recovered"};
  clink_log_level level = tr == CLINK__HC_FAILED   ? (k->c.critical ? CLINK_LOG_ERROR
                                                                      : CLINK_LOG_WARNING)
                          : tr == CLINK__HC_DEGRADED ? CLINK_LOG_WARNING
                                                     : CLINK_LOG_INFO;
  if (tr == CLINK__HC_SAME || !clink__events_enabled(h->sink, level)) return;
  clink_event_field f[8] = {
      clink__f_str("check_name", k->c.name),
      clink__f_str("status", clink_check_status_name(k->c.status)),
      clink__f_bool("critical", k->c.critical),
      clink__f_dbl("observed_value", k->c.value),
      clink__f_str("observed_unit", k->c.unit),
      clink__f_str("message", k->c.message),
      clink__f_int("consecutive_failures", (int64_t)k->c.consecutive_failures),
      clink__f_int("duration_ms", (int64_t)k->c.duration_ms)};
  clink__events_emit(h->sink, level, COMPONENT, names[tr], f, 8);
}

static void update_status(clink_health *h) {
  const clink__hcheck *list[64];
  const clink__hcheck **v = h->n_checks <= 64 ? list : NULL;
  clink_health_status st = CLINK_HEALTH_HEALTHY;
  if (v) {
    size_t n = 0;
    for (size_t i = 0; i < h->n_checks; i++)
      if (!h->checks[i]->removed) v[n++] = &h->checks[i]->c;
    st = clink__health_aggregate(v, n);
  } else {
    for (size_t i = 0; i < h->n_checks; i++) {
      const clink__hcheck *c = &h->checks[i]->c;
      if (h->checks[i]->removed) continue;
      clink_health_status one = clink__health_aggregate(&c, 1);
      if (one > st) st = one;
    }
  }
  if (st == h->status) return;
  clink_health_status from = h->status;
  h->status = st;
  h->notify_pending = 1;
  clink_log_level level = st == CLINK_HEALTH_HEALTHY    ? CLINK_LOG_INFO
                          : st == CLINK_HEALTH_DEGRADED ? CLINK_LOG_WARNING
                                                        : CLINK_LOG_ERROR;
  if (clink__events_enabled(h->sink, level)) {
    clink_event_field f[2] = {clink__f_str("from_status", clink_health_status_name(from)),
                              clink__f_str("status", clink_health_status_name(st))};
    clink__events_emit(h->sink, level, COMPONENT, "health_status_changed", f, 2);
  }
}

/* ------------------------------------------------------------- sampling */

static int reserve_scratch(clink_health *h, size_t n) {
  if (n <= h->cap_scratch) return 0;
  return clink__hs_reserve((void **)&h->scratch, &h->cap_scratch, n, sizeof(*h->scratch));
}

/* Snapshot strings: truncated to fit (no snprintf: it is per session). */
static void copy_trunc(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) n = cap - 1;
  memcpy(dst, src ? src : "", n);
  dst[n] = '\0';
}

static int is_active(clink_client_state st) {
  return st == CLINK_CLIENT_CONNECTING || st == CLINK_CLIENT_CONNECTED ||
         st == CLINK_CLIENT_RECOVERING;
}

typedef struct observation {
  clink_health_snapshot *s; /* NULL: counting only */
  clink__tcount acc;
  uint64_t active;
  uint64_t now;
  double hz; /* clock ticks per second */
} observation;

static void see(clink_health *h, observation *o, clink_client *c, int pooled) {
  clink_client_metrics m;
  m.struct_size = sizeof(m);
  if (clink_client_get_metrics(c, &m) != 0) return;
  int pid = clink_client_pid(c);
  clink__tsess *e = clink__tracker_see(&h->tr, c, pid, &m, &o->acc);
  if (e == NULL) return; /* attached twice (a client of an attached pool) */
  clink_client_state st = clink_client_get_state(c);
  if (is_active(st)) o->active++;
  clink_health_snapshot *s = o->s;
  if (s == NULL) return;
  if (pid > 0) {
    s->cli_processes++;
    s->cli_rss_sum += e->rss;
    if (e->rss > s->cli_rss_max) s->cli_rss_max = e->rss;
    if (e->cpu_known) s->cli_cpu_pct += e->cpu_pct;
  }
  clink__hs_session *x = &s->sess[s->n_sess++];
  copy_trunc(x->id, sizeof(x->id), clink_client_session_id(c));
  x->state = st;
  x->pooled = pooled;
  x->connect_ms = m.connect_ms;
  x->turns_ok = m.turns_ok;
  x->turns_failed = m.turns_failed;
  x->last_turn_ms = m.last_turn_ms;
  x->turn_ms_ewma = m.turn_ms_ewma;
  x->cpu_pct = e->cpu_known ? e->cpu_pct : -1;
  clink_session_health *sh = &x->health;
  memset(sh, 0, sizeof(*sh));
  sh->struct_size = sizeof(*sh);
  sh->uptime_ms = st == CLINK_CLIENT_CONNECTED || st == CLINK_CLIENT_RECOVERING ? m.uptime_ms : 0;
  sh->messages = m.messages_in + m.messages_out;
  sh->errors = m.errors;
  clink__session_grade(sh);
  sh->pid = pid;
  sh->rss_bytes = e->rss;
  sh->vms_bytes = e->vms;
  sh->cpu_seconds = (double)e->cpu_ticks / o->hz;
}

static void pool_add(clink_pool_stats *sum, const clink_pool_stats *p) {
  sum->size += p->size;
  sum->idle += p->idle;
  sum->in_use += p->in_use;
  sum->starting += p->starting;
  sum->pending_acquires += p->pending_acquires;
  sum->created += p->created;
  sum->closed += p->closed;
  for (int i = 0; i < CLINK_POOL_CLOSE_REASON_SLOTS; i++)
    sum->closed_by_reason[i] += p->closed_by_reason[i];
  sum->acquired += p->acquired;
  sum->acquired_idle += p->acquired_idle;
  sum->acquired_waited += p->acquired_waited;
  sum->timeouts += p->timeouts;
  sum->rejected += p->rejected;
  sum->leaks += p->leaks;
  for (int i = 0; i < CLINK_POOL_WAIT_BUCKETS; i++) sum->wait_hist[i] += p->wait_hist[i];
  sum->wait_total_us += p->wait_total_us;
  if (p->wait_max_us > sum->wait_max_us) sum->wait_max_us = p->wait_max_us;
}

/* One pass over every attached session: counters move (monotonic), the
 * tracker follows them; with s, the snapshot's session part is filled. No
 * file is read here. */
static int observe(clink_health *h, clink_health_snapshot *s) {
  size_t n = 0;
  for (size_t i = 0; i < h->n_att; i++) {
    if (h->att[i].kind == ATT_POOL)
      n += clink_pool_clients(h->att[i].obj, NULL, 0);
    else if (h->att[i].kind == ATT_CLIENT)
      n++;
  }
  if (reserve_scratch(h, n) != 0 || clink__tracker_begin(&h->tr, n) != 0) return UV_ENOMEM;
  observation o;
  memset(&o, 0, sizeof(o));
  o.s = s;
  o.acc.turn_latency = &h->turn_latency;
  o.acc.connect_time = &h->connect_time;
  o.now = now_ms(h);
  o.hz = (double)h->clock_ticks;
  uint64_t created = h->clients_attached, configs = 0;
  if (s) {
    if (clink__hs_reserve((void **)&s->sess, &s->cap_sess, n, sizeof(*s->sess)) != 0) {
      clink__tracker_end(&h->tr); /* an empty pass: sessions come back next time */
      return UV_ENOMEM;
    }
    s->n_sess = 0;
    s->n_pools = 0;
    memset(&s->pool, 0, sizeof(s->pool));
    s->pool.struct_size = sizeof(s->pool);
    s->cli_processes = s->cli_rss_sum = s->cli_rss_max = 0;
    s->cli_cpu_pct = 0;
  }
  for (size_t i = 0; i < h->n_att; i++) {
    if (h->att[i].kind == ATT_POOL) {
      clink_pool *p = h->att[i].obj;
      clink_pool_stats ps;
      memset(&ps, 0, sizeof(ps));
      ps.struct_size = sizeof(ps);
      if (clink_pool_get_stats(p, &ps) == 0) {
        created += ps.created;
        if (s) {
          pool_add(&s->pool, &ps);
          s->n_pools++;
        }
      }
      configs++;
      size_t k = clink_pool_clients(p, h->scratch, h->cap_scratch);
      if (k > h->cap_scratch) k = h->cap_scratch;
      for (size_t j = 0; j < k && (s == NULL || s->n_sess < s->cap_sess); j++)
        see(h, &o, h->scratch[j], 1);
    } else if (h->att[i].kind == ATT_CLIENT) {
      configs++;
      if (s == NULL || s->n_sess < s->cap_sess) see(h, &o, h->att[i].obj, 0);
    }
  }
  clink__tracker_end(&h->tr);
  h->turns_ok += o.acc.turns_ok;
  h->turns_failed += o.acc.turns_failed;
  h->sess_errors += o.acc.errors;
  h->reconnects += o.acc.recovery_attempts;
  h->sessions_active = o.active;
  if (s) {
    s->sessions_active = o.active;
    s->sessions_created = created;
    s->session_configs = configs;
  }
  return 0;
}

/* The CLIs' memory and CPU: a bounded slice of the sessions each sample. */
static void sample_processes(clink_health *h, uint64_t now) {
  clink__tracker *t = &h->tr;
  if (t->cap == 0) return;
  uint64_t hz = h->clock_ticks;
  size_t reads = 0;
  for (size_t k = 0; k < t->cap && reads < CLINK_HEALTH_PROC_READS_PER_SAMPLE; k++) {
    size_t i = (t->proc_cursor + k) & (t->cap - 1);
    clink__tsess *e = &t->slots[i];
    if (e->key == NULL || e->pid <= 0) continue;
    reads++;
    uint64_t ticks;
    if (clink__proc_mem(e->pid, &e->rss, &e->vms) == 0) e->proc_known = 1;
    if (clink__proc_cpu_ticks(e->pid, &ticks) == 0) {
      if (e->proc_known && e->cpu_at_ms && now > e->cpu_at_ms && ticks >= e->cpu_ticks) {
        e->cpu_pct = 100.0 * ((double)(ticks - e->cpu_ticks) / (double)hz) /
                     ((double)(now - e->cpu_at_ms) / 1000.0);
        e->cpu_known = 1;
      }
      e->cpu_ticks = ticks;
      e->cpu_at_ms = now;
    }
    t->proc_cursor = (i + 1) & (t->cap - 1);
  }
}

static void sample_system(clink_health *h) {
  clink__cpu_times cur;
  if (clink__proc_cpu(h->statbuf, STATBUF_SIZE, &cur) == 0) {
    if (h->cpu_prev_ok) {
      double pct = clink__cpu_percent(&h->cpu_prev, &cur);
      if (pct >= 0) h->sys.cpu_pct = pct;
    }
    h->cpu_prev = cur;
    h->cpu_prev_ok = 1;
    h->sys.cpu_count = cur.count;
  }
  if (h->sys.cpu_count == 0) h->sys.cpu_count = uv_available_parallelism();
  uint64_t total, avail;
  if (clink__proc_meminfo(&total, &avail) != 0) {
    total = uv_get_total_memory();
    avail = uv_get_free_memory();
  }
  h->sys.mem_total = total;
  h->sys.mem_avail = avail;
  h->sys.mem_used_pct = total ? 100.0 * (double)(total - avail) / (double)total : 0.0;
  if (clink__proc_mem(0, &h->sys.proc_rss, &h->sys.proc_vms) != 0) {
    size_t rss = 0;
    if (uv_resident_set_memory(&rss) == 0) h->sys.proc_rss = rss;
  }
  uv_loadavg(h->sys.load);
  double pct;
  h->sys.disk_used_pct = clink__disk_usage(h->disk_path, &pct) == 0 ? pct : -1.0;
}

static void sample(clink_health *h, uint64_t now) {
  sample_system(h);
  if (observe(h, NULL) == 0) sample_processes(h, now);
}

/* --------------------------------------------------------------- checks */

static hcheck *find_check(const clink_health *h, const char *name) {
  if (name == NULL) return NULL;
  for (size_t i = 0; i < h->n_checks; i++)
    if (!h->checks[i]->removed && strcmp(h->checks[i]->c.name, name) == 0) return h->checks[i];
  return NULL;
}

static void start_run(clink_health *h, hcheck *k, uint64_t now) {
  clink_health_check *run = clink__calloc(1, sizeof(*run));
  if (run == NULL) {
    /* No memory for a run: that is a failure of the check, now. */
    clink__hc_start(&k->c, now);
    clink__hc_transition tr = clink__hc_finish(&k->c, now, clink__wall_ms(), CLINK_CHECK_FAIL,
                                               0, NULL, "out of memory", NULL);
    emit_transition(h, k, tr);
    update_status(h);
    return;
  }
  run->h = h;
  run->chk = k;
  memcpy(run->name, k->c.name, sizeof(run->name));
  k->run = run;
  clink__hc_start(&k->c, now);
  k->fn(h, run, k->ud);
}

/* Frees removed checks (never while a tick walks the list). */
static void compact_checks(clink_health *h) {
  size_t w = 0;
  for (size_t i = 0; i < h->n_checks; i++) {
    if (h->checks[i]->removed)
      clink__free(h->checks[i]);
    else
      h->checks[w++] = h->checks[i];
  }
  h->n_checks = w;
}

static void notify(clink_health *h) {
  while (h->notify_pending && !h->closing) {
    h->notify_pending = 0;
    clink_health_status from = h->notified, to = h->status;
    if (from == to) continue;
    h->notified = to;
    if (h->status_cb) h->status_cb(h, from, to, h->status_ud);
  }
}

static void on_tick(uv_timer_t *t) {
  clink_health *h = t->data;
  uint64_t now = now_ms(h);
  h->in_tick = 1;
  uint64_t unix_ms = clink__wall_ms();
  for (size_t i = 0; i < h->n_checks; i++) {
    hcheck *k = h->checks[i];
    if (k->removed) continue;
    emit_transition(h, k, clink__hc_expire(&k->c, now, unix_ms));
  }
  update_status(h);
  if (now >= h->next_sample_ms) {
    sample(h, now);
    h->next_sample_ms = clink__deadline(now, h->sample_ms);
  }
  /* Starts, by index: a check may add, remove or close anything. */
  for (size_t i = 0; i < h->n_checks && !h->closing; i++) {
    hcheck *k = h->checks[i];
    if (!k->removed && clink__hc_due(&k->c, now)) start_run(h, k, now);
  }
  notify(h);
  h->in_tick = 0;
  compact_checks(h);
  if (!h->closing) arm(h);
}

static void arm(clink_health *h) {
  if (!h->ready || h->closing || h->in_tick) return;
  uint64_t now = now_ms(h), due = h->next_sample_ms;
  for (size_t i = 0; i < h->n_checks; i++)
    if (!h->checks[i]->removed) due = clink__earliest(due, clink__hc_next_due(&h->checks[i]->c));
  if (h->notify_pending) due = now;
  if (due == CLINK__NEVER) {
    uv_timer_stop(&h->tick);
    return;
  }
  uv_timer_start(&h->tick, on_tick, clink__until(due, now), 0);
}

int clink_health_add_check(clink_health *h, const char *name, uint64_t interval_ms,
                           uint64_t timeout_ms, int critical, clink_health_check_fn fn,
                           void *ud) {
  if (h == NULL || name == NULL || name[0] == '\0' || fn == NULL || interval_ms == 0 ||
      strlen(name) >= CLINK__HS_NAME)
    return UV_EINVAL;
  if (h->closing) return CLINK_ECLOSING;
  if (find_check(h, name)) return UV_EEXIST;
  if (clink__hs_reserve((void **)&h->checks, &h->cap_checks, h->n_checks + 1,
                        sizeof(*h->checks)) != 0)
    return UV_ENOMEM;
  hcheck *k = clink__calloc(1, sizeof(*k));
  if (k == NULL) return UV_ENOMEM;
  clink__hc_init(&k->c, name, interval_ms, timeout_ms, critical, now_ms(h));
  k->fn = fn;
  k->ud = ud;
  h->checks[h->n_checks++] = k;
  arm(h);
  return 0;
}

int clink_health_set_check_schedule(clink_health *h, const char *name, uint64_t interval_ms,
                                    uint64_t timeout_ms) {
  if (h == NULL || interval_ms == 0) return UV_EINVAL;
  hcheck *k = find_check(h, name);
  if (k == NULL) return UV_ENOENT;
  k->c.interval_ms = interval_ms;
  k->c.timeout_ms = clink__timeout_norm(timeout_ms);
  if (k->c.running && !k->c.timed_out)
    k->c.deadline_ms = clink__deadline(k->c.started_ms, k->c.timeout_ms);
  if (!k->c.running) {
    uint64_t next = clink__deadline(k->c.started_ms, interval_ms);
    if (k->c.runs == 0) next = k->c.next_ms;
    k->c.next_ms = next;
  }
  arm(h);
  return 0;
}

int clink_health_set_check_critical(clink_health *h, const char *name, int critical) {
  if (h == NULL) return UV_EINVAL;
  hcheck *k = find_check(h, name);
  if (k == NULL) return UV_ENOENT;
  k->c.critical = critical != 0;
  update_status(h);
  arm(h);
  return 0;
}

int clink_health_remove_check(clink_health *h, const char *name) {
  if (h == NULL) return UV_EINVAL;
  hcheck *k = find_check(h, name);
  if (k == NULL) return UV_ENOENT;
  if (k->run) {
    k->run->chk = NULL;
    k->run = NULL;
  }
  k->removed = 1;
  if (!h->in_tick) compact_checks(h);
  update_status(h);
  arm(h);
  return 0;
}

int clink_health_run_checks(clink_health *h, const char *name) {
  if (h == NULL) return UV_EINVAL;
  if (h->closing) return CLINK_ECLOSING;
  uint64_t now = now_ms(h);
  if (name) {
    hcheck *k = find_check(h, name);
    if (k == NULL) return UV_ENOENT;
    clink__hc_request(&k->c, now);
  } else {
    for (size_t i = 0; i < h->n_checks; i++) clink__hc_request(&h->checks[i]->c, now);
  }
  arm(h);
  return 0;
}

const char *clink_health_check_name(const clink_health_check *run) {
  return run ? run->name : NULL;
}

int clink_health_check_done(clink_health_check *run, clink_check_status status,
                            double value, const char *unit, const char *message) {
  if (run == NULL || (status != CLINK_CHECK_PASS && status != CLINK_CHECK_WARN &&
                      status != CLINK_CHECK_FAIL))
    return UV_EINVAL;
  clink_health *h = run->h;
  hcheck *k = run->chk;
  clink__free(run);
  if (h == NULL) return CLINK_ECLOSING;
  if (k == NULL) return UV_ECANCELED;
  k->run = NULL;
  int ignored = 0;
  clink__hc_transition tr = clink__hc_finish(&k->c, now_ms(h), clink__wall_ms(), status,
                                             isfinite(value) ? value : 0.0, unit, message,
                                             &ignored);
  emit_transition(h, k, tr);
  update_status(h);
  arm(h);
  return ignored ? UV_ETIMEDOUT : 0;
}

/* ------------------------------------------------------- built-in checks */

static void maybe_finish(clink_health *h);

static double probe_ms(const clink_health *h) {
  return (double)(uv_hrtime() - h->probe.start_ns) / 1e6;
}

static void probe_answer(clink_health *h, clink_check_status st, double ms, const char *msg) {
  clink_health_check *run = h->probe.run;
  h->probe.run = NULL;
  if (run) (void)clink_health_check_done(run, st, ms, "ms", msg);
}

/* Closes a temporary CLI; the monitor's close waits for it. */
static void close_temp(clink_health *h, clink_client *c);

static void on_temp_closed(clink_client *c, void *ud) {
  clink_health *h = ud;
  h->temp_closing--;
  if (h->probe.client == c) {
    /* Closed before it connected (the monitor closed it). */
    probe_answer(h, CLINK_CHECK_FAIL, probe_ms(h), "closed before it connected");
    h->probe.active = 0;
    h->probe.client = NULL;
  }
  maybe_finish(h);
}

static void close_temp(clink_health *h, clink_client *c) {
  if (clink_client_close(c, on_temp_closed, h) == 0) h->temp_closing++;
}

static void on_temp_connect(clink_client *c, int status, void *ud) {
  clink_health *h = ud;
  double ms = probe_ms(h);
  char msg[CLINK__HS_MSG];
  if (status == 0)
    snprintf(msg, sizeof(msg), "connected in %.1f ms", ms);
  else
    snprintf(msg, sizeof(msg), "%s: %s", clink_err_name(status), clink_client_last_error(c));
  h->probe.active = 0;
  h->probe.client = NULL;
  probe_answer(h, status == 0 ? CLINK_CHECK_PASS : CLINK_CHECK_FAIL, ms, msg);
  close_temp(h, c); /* no-op when the monitor's close closed it already */
}

static void on_probe_ping(clink_client *c, int status, const clink_msg *response, void *ud) {
  clink_health *h = ud;
  (void)response;
  double ms = probe_ms(h);
  char msg[CLINK__HS_MSG];
  if (status == 0)
    snprintf(msg, sizeof(msg), "pooled session answered in %.1f ms", ms);
  else
    snprintf(msg, sizeof(msg), "pooled session did not answer: %s", clink_err_name(status));
  clink_pool *pool = h->probe.pool;
  h->probe.client = NULL;
  h->probe.pool = NULL;
  (void)clink_pool_release(pool, c);
  probe_answer(h, status == 0 ? CLINK_CHECK_PASS : CLINK_CHECK_FAIL, ms, msg);
  h->probe.active = 0;
  maybe_finish(h);
}

/* An idle pooled member, pinged; 1 when a probe is out (or answered). */
static int probe_pool(clink_health *h, clink_health_check *run, uint64_t timeout) {
  for (size_t i = 0; i < h->n_att; i++) {
    if (h->att[i].kind != ATT_POOL) continue;
    clink_pool *p = h->att[i].obj;
    clink_client *c;
    if (clink_pool_try_acquire(p, &c) != 0) continue;
    h->probe.run = run;
    h->probe.pool = p;
    h->probe.client = c;
    h->probe.start_ns = uv_hrtime();
    int rc = clink_client_ping(c, timeout == CLINK__NEVER ? 0 : timeout, on_probe_ping, h);
    if (rc != 0) {
      h->probe.pool = NULL;
      h->probe.client = NULL;
      (void)clink_pool_release(p, c);
      char msg[CLINK__HS_MSG];
      snprintf(msg, sizeof(msg), "ping refused: %s", clink_err_name(rc));
      probe_answer(h, CLINK_CHECK_FAIL, 0, msg);
      return 1;
    }
    h->probe.active = 1;
    return 1;
  }
  return 0;
}

static void sdk_check(clink_health *h, clink_health_check *run, void *ud) {
  hcheck *k = ud;
  uint64_t timeout = k->c.timeout_ms;
  if (h->probe.active) {
    /* Cannot happen (a run out blocks the next one); never two probes. */
    (void)clink_health_check_done(run, CLINK_CHECK_FAIL, 0, "ms", "a probe is still out");
    return;
  }
  if (probe_pool(h, run, timeout)) return;
  /* Pools attached but every member busy: they are serving, a spawn would
   * only add load. */
  if (h->sdk_opts == NULL) {
    for (size_t i = 0; i < h->n_att; i++) {
      if (h->att[i].kind != ATT_POOL) continue;
      clink_pool_stats ps;
      memset(&ps, 0, sizeof(ps));
      ps.struct_size = sizeof(ps);
      if (clink_pool_get_stats(h->att[i].obj, &ps) == 0 && ps.in_use > 0) {
        char msg[CLINK__HS_MSG];
        snprintf(msg, sizeof(msg), "no idle pooled session: %u in use", (unsigned)ps.in_use);
        (void)clink_health_check_done(run, CLINK_CHECK_PASS, k->c.value, "ms", msg);
        return;
      }
    }
  }
  /* A temporary CLI: spawn and initialize, as the seed's check does. */
  clink_options *o = NULL;
  int rc = h->sdk_opts ? clink_options_dup(&o, h->sdk_opts) : clink_options_new(&o);
  if (rc == 0 && timeout != CLINK__NEVER) rc = clink_options_set_connect_timeout_ms(o, timeout);
  clink_client *c = NULL;
  if (rc == 0) rc = clink_client_new(&c, h->loop, o);
  clink_options_free(o);
  if (rc != 0) {
    (void)clink_health_check_done(run, CLINK_CHECK_FAIL, 0, "ms", clink_strerror(rc));
    return;
  }
  h->probe.run = run;
  h->probe.start_ns = uv_hrtime();
  rc = clink_client_connect(c, on_temp_connect, h);
  if (rc != 0) {
    char msg[CLINK__HS_MSG];
    snprintf(msg, sizeof(msg), "%s: %s", clink_err_name(rc), clink_client_last_error(c));
    probe_answer(h, CLINK_CHECK_FAIL, 0, msg);
    close_temp(h, c);
    return;
  }
  h->probe.client = c;
  h->probe.pool = NULL;
  h->probe.active = 1;
}

static void memory_check(clink_health *h, clink_health_check *run, void *ud) {
  (void)ud;
  uint64_t total, avail;
  if (clink__proc_meminfo(&total, &avail) == 0) {
    h->sys.mem_total = total;
    h->sys.mem_avail = avail;
    h->sys.mem_used_pct = total ? 100.0 * (double)(total - avail) / (double)total : 0.0;
  }
  double pct = h->sys.mem_used_pct;
  clink_check_status st = clink__threshold(pct, h->mem_warn, h->mem_fail);
  char msg[CLINK__HS_MSG];
  snprintf(msg, sizeof(msg), "memory %.1f %% used", pct);
  (void)clink_health_check_done(run, st, pct, "percent", msg);
}

static void sessions_check(clink_health *h, clink_health_check *run, void *ud) {
  (void)ud;
  (void)observe(h, NULL);
  double n = (double)h->sessions_active;
  clink_check_status st = clink__threshold(n, h->sess_warn, h->sess_fail);
  char msg[CLINK__HS_MSG];
  snprintf(msg, sizeof(msg), "%llu active sessions", (unsigned long long)h->sessions_active);
  (void)clink_health_check_done(run, st, n, "sessions", msg);
}

/* ---------------------------------------------------------------- create */

static void free_all(clink_health *h) {
  for (size_t i = 0; i < h->n_checks; i++) clink__free(h->checks[i]);
  clink__free(h->checks);
  clink__free(h->att);
  clink__free(h->scratch);
  clink__free(h->statbuf);
  clink__free(h->service);
  clink__free(h->version);
  clink__free(h->disk_path);
  clink_options_free(h->sdk_opts);
  clink__tracker_free(&h->tr);
  clink__free(h);
}

static int add_builtin(clink_health *h, const char *name, uint64_t interval, uint64_t timeout,
                       int critical, clink_health_check_fn fn) {
  int rc = clink_health_add_check(h, name, interval, timeout, critical, fn, NULL);
  if (rc == 0) h->checks[h->n_checks - 1]->ud = h->checks[h->n_checks - 1];
  return rc;
}

int clink_health_new(clink_health **out, uv_loop_t *loop) {
  if (out == NULL || loop == NULL) return UV_EINVAL;
  clink_health *h = clink__calloc(1, sizeof(*h));
  if (h == NULL) return UV_ENOMEM;
  h->loop = loop;
  h->started_ms = uv_now(loop);
  h->sample_ms = CLINK_HEALTH_DEFAULT_SAMPLE_MS;
  h->mem_warn = CLINK_HEALTH_DEFAULT_MEMORY_WARN_PCT;
  h->sess_warn = CLINK_HEALTH_DEFAULT_SESSIONS_WARN;
  h->sys.disk_used_pct = -1;
  h->sys.cpu_pct = -1;
  h->clock_ticks = clink__clock_ticks();
  h->service = clink__strdup("claudelink");
  h->version = clink__strdup(clink_version_string());
  h->disk_path = clink__strdup("/");
  h->statbuf = malloc(STATBUF_SIZE);
  int rc = h->service && h->version && h->disk_path && h->statbuf ? 0 : UV_ENOMEM;
  if (rc == 0)
    rc = add_builtin(h, CLINK_HEALTH_CHECK_SDK, CLINK_HEALTH_DEFAULT_SDK_INTERVAL_MS,
                     CLINK_HEALTH_DEFAULT_SDK_TIMEOUT_MS, 1, sdk_check);
  if (rc == 0)
    rc = add_builtin(h, CLINK_HEALTH_CHECK_MEMORY, CLINK_HEALTH_DEFAULT_INTERVAL_MS,
                     CLINK_HEALTH_DEFAULT_TIMEOUT_MS, 0, memory_check);
  if (rc == 0)
    rc = add_builtin(h, CLINK_HEALTH_CHECK_SESSIONS, CLINK_HEALTH_DEFAULT_INTERVAL_MS,
                     CLINK_HEALTH_DEFAULT_TIMEOUT_MS, 0, sessions_check);
  if (rc != 0) {
    free_all(h);
    return rc;
  }
  uv_timer_init(loop, &h->tick);
  h->tick.data = h;
  uv_unref((uv_handle_t *)&h->tick);
  h->handle_open = 1;
  h->ready = 1;
  /* A first sample now, so that the next one has deltas to compare. */
  sample_system(h);
  h->next_sample_ms = clink__deadline(h->started_ms, h->sample_ms);
  arm(h);
  *out = h;
  return 0;
}

int clink_health_set_service(clink_health *h, const char *service, const char *version) {
  if (h == NULL || service == NULL || version == NULL) return UV_EINVAL;
  char *s = clink__strdup(service), *v = clink__strdup(version);
  if (s == NULL || v == NULL) {
    clink__free(s);
    clink__free(v);
    return UV_ENOMEM;
  }
  clink__free(h->service);
  clink__free(h->version);
  h->service = s;
  h->version = v;
  return 0;
}

int clink_health_set_sample_interval_ms(clink_health *h, uint64_t ms) {
  if (h == NULL || ms < 10 || ms == CLINK__NEVER) return UV_EINVAL;
  h->sample_ms = ms;
  h->next_sample_ms = clink__deadline(now_ms(h), ms);
  arm(h);
  return 0;
}

int clink_health_set_disk_path(clink_health *h, const char *path) {
  if (h == NULL || path == NULL || path[0] == '\0') return UV_EINVAL;
  return clink__set_str(&h->disk_path, path);
}

void clink_health_set_events(clink_health *h, clink_events *sink) {
  if (h) h->sink = sink;
}

void clink_health_set_status_cb(clink_health *h, clink_health_status_cb cb, void *ud) {
  if (h == NULL) return;
  h->status_cb = cb;
  h->status_ud = ud;
}

int clink_health_set_sdk_options(clink_health *h, const clink_options *opts) {
  if (h == NULL) return UV_EINVAL;
  clink_options *copy = NULL;
  if (opts) {
    int rc = clink_options_dup(&copy, opts);
    if (rc != 0) return rc;
  }
  clink_options_free(h->sdk_opts);
  h->sdk_opts = copy;
  return 0;
}

int clink_health_set_memory_thresholds(clink_health *h, double warn_pct, double fail_pct) {
  if (h == NULL || !(warn_pct >= 0 && warn_pct <= 100) || !(fail_pct >= 0 && fail_pct <= 100))
    return UV_EINVAL;
  h->mem_warn = warn_pct;
  h->mem_fail = fail_pct;
  return 0;
}

int clink_health_set_session_thresholds(clink_health *h, uint64_t warn, uint64_t fail) {
  if (h == NULL) return UV_EINVAL;
  h->sess_warn = (double)warn;
  h->sess_fail = (double)fail;
  return 0;
}

clink_health_status clink_health_get_status(const clink_health *h) {
  return h ? h->status : CLINK_HEALTH_UNHEALTHY;
}

/* ------------------------------------------------------------ attachments */

static int attach(clink_health *h, att_kind kind, void *obj) {
  if (h == NULL || obj == NULL) return UV_EINVAL;
  if (h->closing) return CLINK_ECLOSING;
  for (size_t i = 0; i < h->n_att; i++)
    if (h->att[i].obj == obj) return UV_EEXIST;
  if (clink__hs_reserve((void **)&h->att, &h->cap_att, h->n_att + 1, sizeof(*h->att)) != 0)
    return UV_ENOMEM;
  h->att[h->n_att].kind = kind;
  h->att[h->n_att].obj = obj;
  h->n_att++;
  if (kind == ATT_CLIENT) h->clients_attached++;
  return 0;
}

int clink_health_attach_pool(clink_health *h, clink_pool *pool) {
  return attach(h, ATT_POOL, pool);
}
int clink_health_attach_client(clink_health *h, clink_client *client) {
  return attach(h, ATT_CLIENT, client);
}
int clink_health_attach_breakers(clink_health *h, clink_breaker_registry *reg) {
  return attach(h, ATT_BREAKERS, reg);
}
int clink_health_attach_outbox(clink_health *h, clink_outbox *ob) {
  return attach(h, ATT_OUTBOX, ob);
}

/* The provider for a fallback registry: its operations' public stats. */
static void registry_provider(clink_health_fallbacks *out, void *ud) {
  const clink_fallback_registry *reg = ud;
  for (size_t i = 0; i < clink_fallback_registry_count(reg); i++) {
    clink_fallback *fb = clink_fallback_registry_at(reg, i);
    clink_fallback_stats st;
    memset(&st, 0, sizeof(st));
    st.struct_size = sizeof(st);
    if (clink_fallback_get_stats(fb, &st) != 0) continue;
    clink_health_fallback_op op = {sizeof(op), st.total_calls, st.primary_success,
                                   st.fallback_used, st.cache_hits};
    clink_health_fallbacks_add(out, clink_fallback_operation(fb), &op);
  }
}

int clink_health_attach_fallbacks(clink_health *h, clink_fallback_registry *reg) {
  if (reg == NULL) return clink_health_set_fallback_provider(h, NULL, NULL);
  return clink_health_set_fallback_provider(h, registry_provider, reg);
}

int clink_health_set_fallback_provider(clink_health *h, clink_health_fallback_fn fn, void *ud) {
  if (h == NULL) return UV_EINVAL;
  h->fb_fn = fn;
  h->fb_ud = ud;
  return 0;
}

int clink_health_detach(clink_health *h, const void *obj) {
  if (h == NULL || obj == NULL) return UV_EINVAL;
  for (size_t i = 0; i < h->n_att; i++) {
    if (h->att[i].obj != obj) continue;
    memmove(&h->att[i], &h->att[i + 1], (h->n_att - i - 1) * sizeof(*h->att));
    h->n_att--;
    return 0;
  }
  return UV_ENOENT;
}

/* ------------------------------------------------------------ the meter */

void clink_health_request_begin(clink_health *h) {
  if (h == NULL) return;
  h->req_total++;
  h->req_in_progress++;
}

void clink_health_request_end(clink_health *h, int failed, uint64_t duration_us) {
  if (h == NULL) return;
  if (h->req_in_progress) h->req_in_progress--;
  if (failed) h->req_errors++;
  clink__histo_add(&h->req_latency, duration_us);
}

/* ------------------------------------------------------------- snapshot */

static int take_breakers(clink_health *h, clink_health_snapshot *s, uint64_t now) {
  s->n_brk = 0;
  s->breakers_open = 0;
  for (size_t i = 0; i < h->n_att; i++) {
    if (h->att[i].kind != ATT_BREAKERS) continue;
    clink_breaker_registry *reg = h->att[i].obj;
    size_t n = clink_breaker_registry_count(reg);
    if (clink__hs_reserve((void **)&s->brk, &s->cap_brk, s->n_brk + n, sizeof(*s->brk)) != 0)
      return UV_ENOMEM;
    for (size_t j = 0; j < n; j++) {
      clink_breaker *b = clink_breaker_registry_at(reg, j);
      clink_breaker_stats st;
      memset(&st, 0, sizeof(st));
      st.struct_size = sizeof(st);
      if (b == NULL || clink_breaker_get_stats(b, now, &st) != 0) continue;
      clink__hs_breaker *x = &s->brk[s->n_brk++];
      copy_trunc(x->name, sizeof(x->name), clink_breaker_name(b));
      x->state = st.state;
      x->failure_count = st.consecutive_failures;
      x->can_execute = st.state != CLINK_BREAKER_OPEN && st.state != CLINK_BREAKER_FORCED_OPEN;
      x->total_calls = st.total_calls;
      x->total_successes = st.total_successes;
      x->total_failures = st.total_failures;
      x->total_rejected = st.total_rejected;
      x->opened_count = st.opened_count;
      x->failure_rate_pct = st.failure_rate_pct;
      if (!x->can_execute) s->breakers_open++;
    }
  }
  return 0;
}

int clink_health_snapshot_take(clink_health *h, clink_health_snapshot *s) {
  if (h == NULL || s == NULL) return UV_EINVAL;
  uint64_t now = now_ms(h);
  s->unix_ms = clink__wall_ms();
  s->uptime_ms = now - h->started_ms;
  copy_trunc(s->service, sizeof(s->service), h->service);
  copy_trunc(s->version, sizeof(s->version), h->version);
  copy_trunc(s->disk_path, sizeof(s->disk_path), h->disk_path);
  int rc = observe(h, s);
  if (rc != 0) return rc;
  s->turns_ok = h->turns_ok;
  s->turns_failed = h->turns_failed;
  s->session_errors = h->sess_errors;
  s->reconnection_attempts = h->reconnects;
  s->turn_latency = h->turn_latency;
  s->connect_time = h->connect_time;

  s->sys = h->sys;

  s->requests_total = h->req_total;
  s->requests_in_progress = h->req_in_progress;
  s->errors_total = h->req_errors;
  s->request_latency = h->req_latency;

  rc = take_breakers(h, s, now);
  if (rc == 0) rc = clink__hs_collect_fallbacks(s, h->fb_fn, h->fb_ud);
  if (rc != 0) return rc;

  s->have_outbox = 0;
  for (size_t i = 0; i < h->n_att; i++) {
    if (h->att[i].kind != ATT_OUTBOX) continue;
    memset(&s->outbox, 0, sizeof(s->outbox));
    s->outbox.struct_size = sizeof(s->outbox);
    s->have_outbox = clink_outbox_get_stats(h->att[i].obj, &s->outbox) == 0;
    break;
  }

  if (clink__hs_reserve((void **)&s->chk, &s->cap_chk, h->n_checks, sizeof(*s->chk)) != 0)
    return UV_ENOMEM;
  s->n_chk = 0;
  s->sdk_known = 0;
  s->sdk_connection_ms = 0;
  s->sdk_last_unix_ms = 0;
  for (size_t i = 0; i < h->n_checks; i++) {
    const hcheck *k = h->checks[i];
    if (k->removed) continue;
    s->chk[s->n_chk++].c = k->c;
    if (strcmp(k->c.name, CLINK_HEALTH_CHECK_SDK) == 0 && k->c.status != CLINK_CHECK_PENDING) {
      s->sdk_known = 1;
      s->sdk_status = k->c.status;
      s->sdk_connection_ms = k->c.value;
      s->sdk_last_unix_ms = k->c.answered_unix_ms;
    }
  }
  s->status = h->status;
  return 0;
}

/* ----------------------------------------------------------------- close */

static void maybe_finish(clink_health *h) {
  if (!h->closing || h->finished || h->handle_open || h->probe.active || h->temp_closing ||
      h->in_tick)
    return;
  h->finished = 1;
  if (h->close_cb) h->close_cb(h, h->close_ud);
  free_all(h);
}

static void on_tick_closed(uv_handle_t *handle) {
  clink_health *h = handle->data;
  h->handle_open = 0;
  maybe_finish(h);
}

int clink_health_close(clink_health *h, clink_health_close_cb cb, void *ud) {
  if (h == NULL) return UV_EINVAL;
  if (h->closing) return UV_EBUSY;
  h->closing = 1;
  h->close_cb = cb;
  h->close_ud = ud;
  for (size_t i = 0; i < h->n_checks; i++) {
    hcheck *k = h->checks[i];
    if (k->run) {
      k->run->h = NULL;
      k->run = NULL;
    }
  }
  /* The temporary CLI goes now; a pinged member comes back when its ping
   * ends (bounded by the check's timeout). */
  if (h->probe.active && h->probe.pool == NULL && h->probe.client)
    close_temp(h, h->probe.client);
  uv_close((uv_handle_t *)&h->tick, on_tick_closed);
  return 0;
}
