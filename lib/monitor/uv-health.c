/* clink_health: the object's life. Creation, setters, attachments, the
 * request meter and the close; see uv-health-int.h for the design. */
#include "monitor/uv-health-int.h"

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
  if (rc == 0) rc = clink__health_add_builtins(h);
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
  clink__health_sample_system(h);
  h->next_sample_ms = clink__deadline(h->started_ms, h->sample_ms);
  clink__health_arm(h);
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
  clink__health_arm(h);
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

/* ----------------------------------------------------------------- close */

void clink__health_maybe_finish(clink_health *h) {
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
  clink__health_maybe_finish(h);
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
    clink__health_close_temp(h, h->probe.client);
  uv_close((uv_handle_t *)&h->tick, on_tick_closed);
  return 0;
}
