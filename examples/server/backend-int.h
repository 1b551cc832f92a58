/* The backend's state, shared by backend.c and the PROVISIONAL renderings
 * (backend-render.c). */
#ifndef SERVER_BACKEND_INT_H
#define SERVER_BACKEND_INT_H

#include "backend.h"
#include "sysinfo.h"

/* Request duration histogram bounds (seconds), for Prometheus. */
#define METER_BUCKETS 10
extern const double meter_bounds[METER_BUCKETS];

typedef struct chat_stats {
  uint64_t total_calls, primary_success, fallback_used, cache_hits, cache_misses;
  uint64_t mock_used, alternative_used, queued, failures;
} chat_stats;

struct backend {
  uv_loop_t *loop;
  const server_config *cfg;
  clink_events *events;
  server_view view;
  clink_breaker_registry *reg;
  clink_pool *pool, *alt_pool;
  clink_breaker *sdk_breaker, *alt_breaker;
  clink_outbox *outbox;
  int outbox_ready;
  chat_stats chat; /* PROVISIONAL: becomes the fallback object's stats */
  /* PROVISIONAL request meter (becomes the monitor's). */
  uint64_t requests_total, requests_in_progress, errors_total;
  uint64_t hist[METER_BUCKETS + 1];
  double duration_sum_s;
  uint64_t start_wall_ms;
  /* claude_sdk connectivity as last seen */
  double connection_time_ms;
  uint64_t last_check_ms;
  sysinfo sys; /* PROVISIONAL */
  /* shutdown */
  int closing;
  unsigned closes_pending;
  backend_closed_fn closed_cb;
  void *closed_ud;
};

#endif
