/* PROVISIONAL (replaced by the health monitor's system metrics): CPU,
 * memory, load and disk, sampled once a second on an unref'd timer, never
 * per request. */
#ifndef SERVER_SYSINFO_H
#define SERVER_SYSINFO_H

#include <stdint.h>
#include <uv.h>

typedef struct sysinfo {
  double cpu_percent; /* whole machine, over the last sample */
  unsigned cpu_count;
  double load[3];
  double mem_total_gb, mem_available_gb, mem_percent;
  double rss_mb, vms_mb;
  uint64_t rss_bytes;
  double disk_percent;
  /* sampler state */
  uint64_t prev_busy, prev_total;
  uv_timer_t timer;
} sysinfo;

void sysinfo_start(sysinfo *si, uv_loop_t *loop);
void sysinfo_sample(sysinfo *si);
void sysinfo_stop(sysinfo *si, uv_close_cb cb);

#endif
