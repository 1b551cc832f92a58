/* clink_health's figures: sampling the system and the CLIs' processes,
 * observing the attached sessions, and clink_health_snapshot_take. */
#include "monitor/events.h"
#include "monitor/uv-health-int.h"

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
int clink__health_observe(clink_health *h, clink_health_snapshot *s) {
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

void clink__health_sample_system(clink_health *h) {
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

void clink__health_sample(clink_health *h, uint64_t now) {
  clink__health_sample_system(h);
  if (clink__health_observe(h, NULL) == 0) sample_processes(h, now);
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
  int rc = clink__health_observe(h, s);
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
