/* PROVISIONAL renderings and request meter, from the pool's and the
 * breakers' read-outs and the sampled system figures. The health monitor
 * replaces this whole file: one snapshot rendered as /health/detailed,
 * /metrics (JSON and Prometheus), /health/stability and
 * application/health+json. Field names and nesting follow the seed. */
#include <stdio.h>
#include <string.h>

#include "backend-int.h"

const double meter_bounds[METER_BUCKETS] = {0.0005, 0.001, 0.005, 0.01, 0.05,
                                            0.1,    0.5,   1,     5,    30};

void backend_request_started(backend *b) { b->requests_in_progress++; }

void backend_observe_request(backend *b, const char *route, unsigned status,
                             uint64_t duration_us) {
  b->requests_total++;
  if (route && b->requests_in_progress) b->requests_in_progress--;
  /* 503 from the probes is their answer, not a failure of the server. */
  int probe = route && (strcmp(route, "readyz") == 0 || strcmp(route, "health") == 0);
  if ((status >= 500 || status == 0) && !probe) b->errors_total++;
  double s = (double)duration_us / 1e6;
  size_t i = 0;
  while (i < METER_BUCKETS && s > meter_bounds[i]) i++;
  b->hist[i]++;
  b->duration_sum_s += s;
}

typedef struct snap {
  uint64_t now_ms, wall;
  char ts[32];
  clink_pool_stats pool;
  int have_pool;
  size_t breakers_open;
  const char *status; /* healthy | degraded | unhealthy */
} snap;

static void take(backend *b, snap *s) {
  memset(s, 0, sizeof(*s));
  s->now_ms = uv_now(b->loop);
  s->wall = wall_ms();
  iso8601(s->ts, s->wall);
  s->pool.struct_size = sizeof(s->pool);
  s->have_pool = b->pool && clink_pool_get_stats(b->pool, &s->pool) == 0;
  int degraded = 0, unhealthy = 0;
  for (size_t i = 0; i < clink_breaker_registry_count(b->reg); i++) {
    clink_breaker *br = clink_breaker_registry_at(b->reg, i);
    clink_breaker_state st = clink_breaker_get_state(br, s->now_ms);
    if (st == CLINK_BREAKER_OPEN || st == CLINK_BREAKER_FORCED_OPEN) {
      s->breakers_open++;
      if (br == b->sdk_breaker) unhealthy = 1;
      else degraded = 1;
    } else if (st == CLINK_BREAKER_HALF_OPEN) {
      degraded = 1;
    }
  }
  if (s->have_pool && s->pool.size == 0 && s->pool.starting == 0 && b->cfg->pool_min > 0)
    degraded = 1;
  if (b->sys.mem_percent > 90) degraded = 1;
  if (b->view.sessions_active(b->view.ud) > 100) degraded = 1;
  s->status = unhealthy ? "unhealthy" : degraded ? "degraded" : "healthy";
}

static double error_rate(backend *b) {
  return b->requests_total ? 100.0 * (double)b->errors_total / (double)b->requests_total : 0;
}

static uint64_t uptime_s(backend *b, const snap *s) {
  return (s->wall - b->start_wall_ms) / 1000;
}

static void breakers_json(backend *b, const snap *s, sbuf *o) {
  sbuf_str(o, "{\"circuit_breakers\":{");
  for (size_t i = 0; i < clink_breaker_registry_count(b->reg); i++) {
    clink_breaker *br = clink_breaker_registry_at(b->reg, i);
    clink_breaker_stats st;
    st.struct_size = sizeof(st);
    clink_breaker_get_stats(br, s->now_ms, &st);
    char state[32];
    snprintf(state, sizeof(state), "%s", clink_breaker_state_name(st.state));
    for (char *p = state; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    if (i) sbuf_add(o, ",", 1);
    sbuf_json_str(o, clink_breaker_name(br));
    sbuf_printf(o,
                ":{\"state\":\"%s\",\"failure_count\":%u,\"can_execute\":%s,"
                "\"total_calls\":%llu,\"total_failures\":%llu,\"total_rejected\":%llu,"
                "\"opened_count\":%llu,\"retry_after_ms\":%llu}",
                state, st.consecutive_failures,
                st.state == CLINK_BREAKER_OPEN || st.state == CLINK_BREAKER_FORCED_OPEN ? "false"
                                                                                         : "true",
                (unsigned long long)st.total_calls, (unsigned long long)st.total_failures,
                (unsigned long long)st.total_rejected, (unsigned long long)st.opened_count,
                (unsigned long long)st.until_half_open_ms);
  }
  sbuf_str(o, "}}");
}

static void fallback_json(backend *b, sbuf *o) {
  const chat_stats *c = &b->chat;
  sbuf_printf(o,
              "{\"operations\":{\"chat\":{\"total_calls\":%llu,\"primary_success\":%llu,"
              "\"fallback_used\":%llu,\"cache_hits\":%llu,\"cache_misses\":%llu,"
              "\"mock_used\":%llu,\"alternative_used\":%llu,\"queued\":%llu,"
              "\"failures\":%llu}}}",
              (unsigned long long)c->total_calls, (unsigned long long)c->primary_success,
              (unsigned long long)c->fallback_used, (unsigned long long)c->cache_hits,
              (unsigned long long)c->cache_misses, (unsigned long long)c->mock_used,
              (unsigned long long)c->alternative_used, (unsigned long long)c->queued,
              (unsigned long long)c->failures);
}

void backend_health_detailed(backend *b, sbuf *o) {
  snap s;
  take(b, &s);
  const sysinfo *si = &b->sys;
  char last_check[32];
  iso8601(last_check, b->last_check_ms ? b->last_check_ms : s.wall);
  sbuf_printf(o,
              "{\"status\":\"%s\",\"service\":\"Claude Chat API\",\"version\":\"%s\","
              "\"uptime_seconds\":%llu,\"timestamp\":\"%s\",",
              s.status, clink_version_string(), (unsigned long long)uptime_s(b, &s), s.ts);
  sbuf_printf(o, "\"sessions\":{\"active_count\":%zu,\"total_created\":%llu,\"active_sessions\":[",
              b->view.sessions_active(b->view.ud),
              (unsigned long long)b->view.sessions_created(b->view.ud));
  b->view.sessions_ids(b->view.ud, o, 100);
  sbuf_printf(o, "],\"session_configs\":%d},", b->alt_pool ? 2 : 1);
  sbuf_printf(o,
              "\"system\":{\"cpu\":{\"usage_percent\":%.1f,\"count\":%u,"
              "\"load_average\":[%.2f,%.2f,%.2f]},\"memory\":{\"total_gb\":%.2f,"
              "\"available_gb\":%.2f,\"usage_percent\":%.1f,\"process_rss_mb\":%.1f,"
              "\"process_vms_mb\":%.1f},\"disk\":{\"usage_percent\":%.1f}},",
              si->cpu_percent, si->cpu_count, si->load[0], si->load[1], si->load[2],
              si->mem_total_gb, si->mem_available_gb, si->mem_percent, si->rss_mb, si->vms_mb,
              si->disk_percent);
  int connected = s.have_pool && s.pool.idle + s.pool.in_use > 0;
  sbuf_printf(o,
              "\"claude_sdk\":{\"status\":\"%s\",\"connection_time_ms\":%.1f,"
              "\"last_check\":\"%s\"},",
              connected ? "connected" : "disconnected", b->connection_time_ms, last_check);
  sbuf_printf(o,
              "\"performance\":{\"requests_total\":%llu,\"requests_in_progress\":%llu,"
              "\"errors_total\":%llu,\"error_rate\":%.2f},",
              (unsigned long long)b->requests_total,
              (unsigned long long)b->requests_in_progress, (unsigned long long)b->errors_total,
              error_rate(b));
  sbuf_str(o, "\"stability\":");
  breakers_json(b, &s, o);
  sbuf_str(o, ",\"fallback_stats\":");
  fallback_json(b, o);
  /* Beyond the seed: the pool, for the status page. */
  sbuf_printf(o,
              ",\"pool\":{\"size\":%u,\"idle\":%u,\"in_use\":%u,\"starting\":%u,"
              "\"pending_acquires\":%u,\"created\":%llu,\"closed\":%llu,\"timeouts\":%llu,"
              "\"max\":%u}",
              s.pool.size, s.pool.idle, s.pool.in_use, s.pool.starting, s.pool.pending_acquires,
              (unsigned long long)s.pool.created, (unsigned long long)s.pool.closed,
              (unsigned long long)s.pool.timeouts, b->cfg->pool_max);
  sbuf_str(o, "}");
}

void backend_metrics_json(backend *b, sbuf *o) {
  snap s;
  take(b, &s);
  sbuf_printf(o,
              "{\"requests_total\":%llu,\"requests_in_progress\":%llu,\"errors_total\":%llu,"
              "\"sessions_created\":%llu,\"sessions_active\":%zu,\"uptime_seconds\":%llu,"
              "\"fallbacks_used\":%llu,\"circuit_breakers_open\":%zu,"
              "\"memory_usage_percent\":%.1f,\"cpu_usage_percent\":%.1f}",
              (unsigned long long)b->requests_total,
              (unsigned long long)b->requests_in_progress, (unsigned long long)b->errors_total,
              (unsigned long long)b->view.sessions_created(b->view.ud),
              b->view.sessions_active(b->view.ud), (unsigned long long)uptime_s(b, &s),
              (unsigned long long)b->chat.fallback_used, s.breakers_open, b->sys.mem_percent,
              b->sys.cpu_percent);
}

void backend_health_stability(backend *b, sbuf *o) {
  snap s;
  take(b, &s);
  sbuf_printf(o, "{\"status\":\"%s\",\"stability\":", s.status);
  breakers_json(b, &s, o);
  sbuf_str(o, ",\"fallback_stats\":");
  fallback_json(b, o);
  sbuf_printf(o, ",\"timestamp\":\"%s\"}", s.ts);
}

static void check(sbuf *o, int *first, const char *key, const char *status, double value,
                  const char *unit, const char *ts, const char *output) {
  sbuf_key(o, key, first);
  sbuf_printf(o, "[{\"status\":\"%s\",\"observedValue\":%.2f,\"observedUnit\":\"%s\",\"time\":\"%s\"",
              status, value, unit, ts);
  if (output) {
    sbuf_str(o, ",\"output\":");
    sbuf_json_str(o, output);
  }
  sbuf_str(o, "}]");
}

void backend_health_json(backend *b, sbuf *o, int *failing) {
  snap s;
  take(b, &s);
  const char *st = strcmp(s.status, "healthy") == 0    ? "pass"
                   : strcmp(s.status, "degraded") == 0 ? "warn"
                                                       : "fail";
  *failing = strcmp(st, "fail") == 0;
  sbuf_printf(o,
              "{\"status\":\"%s\",\"version\":\"1\",\"releaseId\":\"%s\","
              "\"serviceId\":\"claudelink-server\",\"description\":\"Claude Chat API\",\"checks\":{",
              st, clink_version_string());
  int first = 1;
  clink_breaker_state bs = clink_breaker_get_state(b->sdk_breaker, s.now_ms);
  int open = bs == CLINK_BREAKER_OPEN || bs == CLINK_BREAKER_FORCED_OPEN;
  check(o, &first, "claude_sdk:connectivity",
        open ? "fail" : bs == CLINK_BREAKER_HALF_OPEN ? "warn" : "pass", b->connection_time_ms,
        "ms", s.ts, open ? "circuit breaker open" : NULL);
  check(o, &first, "memory:utilization", b->sys.mem_percent > 90 ? "warn" : "pass",
        b->sys.mem_percent, "percent", s.ts, NULL);
  size_t n = b->view.sessions_active(b->view.ud);
  check(o, &first, "sessions:count", n > 100 ? "warn" : "pass", (double)n, "sessions", s.ts,
        NULL);
  check(o, &first, "pool:idle", s.pool.idle + s.pool.in_use > 0 ? "pass" : "warn",
        (double)s.pool.idle, "sessions", s.ts, NULL);
  sbuf_str(o, "}}");
}

/* Prometheus text exposition 0.0.4. */
static void prom_head(sbuf *o, const char *name, const char *type, const char *help) {
  sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_label(sbuf *o, const char *v) {
  for (; *v; v++) {
    if (*v == '\\') sbuf_str(o, "\\\\");
    else if (*v == '"') sbuf_str(o, "\\\"");
    else if (*v == '\n') sbuf_str(o, "\\n");
    else sbuf_add(o, v, 1);
  }
}

void backend_metrics_prometheus(backend *b, sbuf *o) {
  snap s;
  take(b, &s);
  const sysinfo *si = &b->sys;
  prom_head(o, "claudelink_http_requests_total", "counter", "HTTP requests answered.");
  sbuf_printf(o, "claudelink_http_requests_total %llu\n", (unsigned long long)b->requests_total);
  prom_head(o, "claudelink_http_requests_in_progress", "gauge", "HTTP requests being served.");
  sbuf_printf(o, "claudelink_http_requests_in_progress %llu\n",
              (unsigned long long)b->requests_in_progress);
  prom_head(o, "claudelink_http_errors_total", "counter", "HTTP requests answered with 5xx.");
  sbuf_printf(o, "claudelink_http_errors_total %llu\n", (unsigned long long)b->errors_total);
  prom_head(o, "claudelink_http_request_duration_seconds", "histogram",
            "Time from request headers to the end of the answer.");
  uint64_t cum = 0;
  for (size_t i = 0; i < METER_BUCKETS; i++) {
    cum += b->hist[i];
    sbuf_printf(o, "claudelink_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                meter_bounds[i], (unsigned long long)cum);
  }
  cum += b->hist[METER_BUCKETS];
  sbuf_printf(o, "claudelink_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
              (unsigned long long)cum);
  sbuf_printf(o, "claudelink_http_request_duration_seconds_sum %.6f\n", b->duration_sum_s);
  sbuf_printf(o, "claudelink_http_request_duration_seconds_count %llu\n",
              (unsigned long long)cum);
  prom_head(o, "claudelink_sessions_active", "gauge", "Server sessions alive.");
  sbuf_printf(o, "claudelink_sessions_active %zu\n", b->view.sessions_active(b->view.ud));
  prom_head(o, "claudelink_sessions_created_total", "counter", "Server sessions created.");
  sbuf_printf(o, "claudelink_sessions_created_total %llu\n",
              (unsigned long long)b->view.sessions_created(b->view.ud));
  prom_head(o, "claudelink_pool_members", "gauge", "Pooled CLI processes by state.");
  sbuf_printf(o,
              "claudelink_pool_members{state=\"idle\"} %u\nclaudelink_pool_members{state=\"in_use\"} "
              "%u\nclaudelink_pool_members{state=\"starting\"} %u\n",
              s.pool.idle, s.pool.in_use, s.pool.starting);
  prom_head(o, "claudelink_pool_acquire_timeouts_total", "counter", "Pool acquires that timed out.");
  sbuf_printf(o, "claudelink_pool_acquire_timeouts_total %llu\n",
              (unsigned long long)s.pool.timeouts);
  prom_head(o, "claudelink_circuit_breaker_open", "gauge",
            "1 when the circuit breaker rejects calls.");
  for (size_t i = 0; i < clink_breaker_registry_count(b->reg); i++) {
    clink_breaker *br = clink_breaker_registry_at(b->reg, i);
    clink_breaker_state st = clink_breaker_get_state(br, s.now_ms);
    sbuf_str(o, "claudelink_circuit_breaker_open{name=\"");
    prom_label(o, clink_breaker_name(br));
    sbuf_printf(o, "\"} %d\n", st == CLINK_BREAKER_OPEN || st == CLINK_BREAKER_FORCED_OPEN);
  }
  prom_head(o, "claudelink_circuit_breakers_open", "gauge", "Circuit breakers open.");
  sbuf_printf(o, "claudelink_circuit_breakers_open %zu\n", s.breakers_open);
  prom_head(o, "claudelink_fallbacks_used_total", "counter", "Chat answers from a fallback.");
  sbuf_printf(o, "claudelink_fallbacks_used_total{operation=\"chat\"} %llu\n",
              (unsigned long long)b->chat.fallback_used);
  prom_head(o, "claudelink_uptime_seconds", "gauge", "Seconds since the server started.");
  sbuf_printf(o, "claudelink_uptime_seconds %llu\n", (unsigned long long)uptime_s(b, &s));
  prom_head(o, "claudelink_memory_usage_percent", "gauge", "Machine memory in use.");
  sbuf_printf(o, "claudelink_memory_usage_percent %.1f\n", si->mem_percent);
  prom_head(o, "claudelink_cpu_usage_percent", "gauge", "Machine CPU in use.");
  sbuf_printf(o, "claudelink_cpu_usage_percent %.1f\n", si->cpu_percent);
  prom_head(o, "claudelink_process_resident_memory_bytes", "gauge", "Server RSS.");
  sbuf_printf(o, "claudelink_process_resident_memory_bytes %llu\n",
              (unsigned long long)si->rss_bytes);
}
