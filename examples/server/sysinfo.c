/* PROVISIONAL: see sysinfo.h. */
#include "sysinfo.h"

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static void read_cpu(sysinfo *si) {
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return;
  unsigned long long v[10] = {0};
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
  fclose(f);
  if (n < 4) return;
  uint64_t total = 0;
  for (int i = 0; i < 8; i++) total += v[i];
  uint64_t idle = v[3] + v[4];
  uint64_t busy = total - idle;
  if (si->prev_total && total > si->prev_total) {
    si->cpu_percent =
        100.0 * (double)(busy - si->prev_busy) / (double)(total - si->prev_total);
  }
  si->prev_busy = busy;
  si->prev_total = total;
}

static uint64_t meminfo_kb(const char *key) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (f == NULL) return 0;
  char line[256];
  size_t kl = strlen(key);
  unsigned long long kb = 0;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
      sscanf(line + kl + 1, "%llu", &kb);
      break;
    }
  fclose(f);
  return kb;
}

void sysinfo_sample(sysinfo *si) {
  read_cpu(si);
  si->cpu_count = uv_available_parallelism();
  uv_loadavg(si->load);
  double total = (double)uv_get_total_memory();
  double avail = (double)meminfo_kb("MemAvailable") * 1024.0;
  si->mem_total_gb = total / (1 << 30);
  si->mem_available_gb = avail / (1 << 30);
  si->mem_percent = total > 0 ? 100.0 * (total - avail) / total : 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    unsigned long long size = 0, res = 0;
    if (fscanf(f, "%llu %llu", &size, &res) == 2) {
      double page = (double)sysconf(_SC_PAGESIZE);
      si->rss_bytes = (uint64_t)(res * page);
      si->rss_mb = (double)res * page / (1 << 20);
      si->vms_mb = (double)size * page / (1 << 20);
    }
    fclose(f);
  }
  struct statvfs sv;
  if (statvfs("/", &sv) == 0 && sv.f_blocks) {
    double used = (double)(sv.f_blocks - sv.f_bfree);
    double avail_blocks = (double)sv.f_bavail;
    si->disk_percent = 100.0 * used / (used + avail_blocks);
  }
}

static void on_tick(uv_timer_t *t) { sysinfo_sample(t->data); }

void sysinfo_start(sysinfo *si, uv_loop_t *loop) {
  sysinfo_sample(si);
  uv_timer_init(loop, &si->timer);
  si->timer.data = si;
  uv_timer_start(&si->timer, on_tick, 1000, 1000);
  uv_unref((uv_handle_t *)&si->timer);
}

void sysinfo_stop(sysinfo *si, uv_close_cb cb) {
  uv_timer_stop(&si->timer);
  uv_close((uv_handle_t *)&si->timer, cb);
}
