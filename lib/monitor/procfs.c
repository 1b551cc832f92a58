/* /proc and statvfs readers (see procfs.h). */
#include "monitor/procfs.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/internal.h"

/* ----------------------------------------------------------- parsers */

/* Skips to the start of the next line; NULL at the end. */
static const char *next_line(const char *p) {
  const char *nl = strchr(p, '\n');
  return nl ? nl + 1 : NULL;
}

int clink__parse_proc_stat(const char *text, clink__cpu_times *out) {
  int found = 0;
  memset(out, 0, sizeof(*out));
  for (const char *p = text; p && *p; p = next_line(p)) {
    if (strncmp(p, "cpu", 3) != 0) {
      if (found) break; /* the cpu lines come first, together */
      continue;
    }
    if (p[3] == ' ') {
      /* user nice system idle iowait irq softirq steal guest guest_nice */
      uint64_t v[10] = {0};
      const char *q = p + 3;
      for (int i = 0; i < 10; i++) {
        char *end;
        while (*q == ' ') q++;
        if (*q < '0' || *q > '9') break;
        v[i] = strtoull(q, &end, 10);
        q = end;
      }
      /* guest and guest_nice are already part of user and nice. */
      uint64_t total = 0;
      for (int i = 0; i < 8; i++) total += v[i];
      out->total = total;
      out->busy = total - v[3] - v[4];
      found = 1;
    } else if (p[3] >= '0' && p[3] <= '9') {
      out->count++;
    }
  }
  return found ? 0 : UV_EINVAL;
}

double clink__cpu_percent(const clink__cpu_times *a, const clink__cpu_times *b) {
  if (b->total <= a->total || b->busy < a->busy) return -1.0;
  double pct = 100.0 * (double)(b->busy - a->busy) / (double)(b->total - a->total);
  return pct > 100.0 ? 100.0 : pct;
}

/* The kB value of "Name:   123 kB"; 1 when found. */
static int meminfo_field(const char *text, const char *name, uint64_t *bytes) {
  size_t n = strlen(name);
  for (const char *p = text; p && *p; p = next_line(p)) {
    if (strncmp(p, name, n) == 0 && p[n] == ':') {
      *bytes = strtoull(p + n + 1, NULL, 10) * 1024u;
      return 1;
    }
  }
  return 0;
}

int clink__parse_meminfo(const char *text, uint64_t *total, uint64_t *avail) {
  uint64_t t, a, free_b, buffers = 0, cached = 0;
  if (!meminfo_field(text, "MemTotal", &t)) return UV_EINVAL;
  if (!meminfo_field(text, "MemAvailable", &a)) {
    if (!meminfo_field(text, "MemFree", &free_b)) return UV_EINVAL;
    meminfo_field(text, "Buffers", &buffers);
    meminfo_field(text, "Cached", &cached);
    a = free_b + buffers + cached;
  }
  *total = t;
  *avail = a < t ? a : t;
  return 0;
}

int clink__parse_statm(const char *text, uint64_t page_size, uint64_t *rss, uint64_t *vms) {
  char *end;
  uint64_t size = strtoull(text, &end, 10);
  if (end == text) return UV_EINVAL;
  const char *q = end;
  uint64_t resident = strtoull(q, &end, 10);
  if (end == q) return UV_EINVAL;
  *vms = size * page_size;
  *rss = resident * page_size;
  return 0;
}

int clink__parse_pid_stat(const char *text, uint64_t *cpu_ticks) {
  const char *p = strrchr(text, ')');
  if (p == NULL) return UV_EINVAL;
  p++;
  /* Fields after the name: state(3) ppid pgrp session tty_nr tpgid flags
   * minflt cminflt majflt cmajflt utime(14) stime(15). */
  uint64_t utime = 0, stime = 0;
  for (int field = 3; field <= 15; field++) {
    while (*p == ' ') p++;
    if (*p == '\0' || *p == '\n') return UV_EINVAL;
    if (field == 14 || field == 15) {
      char *end;
      uint64_t v = strtoull(p, &end, 10);
      if (end == p) return UV_EINVAL;
      if (field == 14)
        utime = v;
      else
        stime = v;
      p = end;
    } else {
      while (*p && *p != ' ' && *p != '\n') p++;
    }
  }
  *cpu_ticks = utime + stime;
  return 0;
}

/* ----------------------------------------------------------- readers */

long clink__read_small(const char *path, char *buf, size_t cap) {
  if (cap == 0) return UV_EINVAL;
  int fd;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return -errno;
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = -errno;
      close(fd);
      return err;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  return (long)len;
}

int clink__proc_cpu(char *buf, size_t cap, clink__cpu_times *out) {
  long n = clink__read_small("/proc/stat", buf, cap);
  if (n < 0) return (int)n;
  return clink__parse_proc_stat(buf, out);
}

int clink__proc_meminfo(uint64_t *total, uint64_t *avail) {
  char buf[4096];
  long n = clink__read_small("/proc/meminfo", buf, sizeof(buf));
  if (n < 0) return (int)n;
  return clink__parse_meminfo(buf, total, avail);
}

static void pid_path(char *out, size_t cap, int pid, const char *what) {
  if (pid == 0)
    snprintf(out, cap, "/proc/self/%s", what);
  else
    snprintf(out, cap, "/proc/%d/%s", pid, what);
}

int clink__proc_mem(int pid, uint64_t *rss, uint64_t *vms) {
  char path[64], buf[256];
  pid_path(path, sizeof(path), pid, "statm");
  long n = clink__read_small(path, buf, sizeof(buf));
  if (n < 0) return (int)n;
  long page = sysconf(_SC_PAGESIZE);
  return clink__parse_statm(buf, page > 0 ? (uint64_t)page : 4096u, rss, vms);
}

int clink__proc_cpu_ticks(int pid, uint64_t *ticks) {
  char path[64], buf[1024];
  pid_path(path, sizeof(path), pid, "stat");
  long n = clink__read_small(path, buf, sizeof(buf));
  if (n < 0) return (int)n;
  return clink__parse_pid_stat(buf, ticks);
}

uint64_t clink__clock_ticks(void) {
  long t = sysconf(_SC_CLK_TCK);
  return t > 0 ? (uint64_t)t : 100u;
}

int clink__disk_usage(const char *path, double *used_pct) {
  struct statvfs v;
  if (statvfs(path, &v) != 0) return -errno;
  uint64_t used = (uint64_t)(v.f_blocks - v.f_bfree);
  uint64_t denom = used + (uint64_t)v.f_bavail;
  *used_pct = denom ? 100.0 * (double)used / (double)denom : 0.0;
  return 0;
}
