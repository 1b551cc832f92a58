/* The body of clink_health and what lib/monitor/uv-health*.c share: the
 * object's life (uv-health.c), the check scheduler and the built-in checks
 * (uv-health-checks.c), sampling and snapshots (uv-health-sample.c).
 *
 * One unref'd timer drives everything (check starts and deadlines, samples,
 * status notifications); the decisions are the pure ones of health.c; the
 * figures come from the attached objects' public read-outs and from
 * procfs.c, read on the timer only. */
#ifndef CLINK_UV_HEALTH_INT_H
#define CLINK_UV_HEALTH_INT_H

#include <uv.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "monitor/health.h"
#include "monitor/procfs.h"

#define STATBUF_SIZE (64 * 1024)

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

static inline uint64_t now_ms(const clink_health *h) { return uv_now(h->loop); }

/* uv-health.c: ends the close once nothing is out any more. */
void clink__health_maybe_finish(clink_health *h);

/* uv-health-checks.c */
/* Adds the built-in checks (claude_sdk, memory, sessions), in that order. */
int clink__health_add_builtins(clink_health *h);
/* (Re)starts the timer for the earliest due: a sample, a check, a notify. */
void clink__health_arm(clink_health *h);
/* Closes a temporary CLI; the monitor's close waits for it. */
void clink__health_close_temp(clink_health *h, clink_client *c);

/* uv-health-sample.c */
void clink__health_sample_system(clink_health *h);
void clink__health_sample(clink_health *h, uint64_t now);
/* One pass over every attached session (with s, fills its session part). */
int clink__health_observe(clink_health *h, clink_health_snapshot *s);

#endif
