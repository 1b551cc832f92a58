/* What the kernel says about the machine and its processes: /proc/stat,
 * /proc/meminfo, /proc/<pid>/stat and statm, statvfs. The parsers take the
 * text (tested on fixed inputs); the readers do one bounded read each, with
 * no allocation. File I/O: callers run them on a timer, never per request.
 * Pure (no libuv); internal. */
#ifndef CLINK_PROCFS_H
#define CLINK_PROCFS_H

#include <stddef.h>
#include <stdint.h>

/* The aggregate "cpu" line of /proc/stat, in clock ticks. */
typedef struct clink__cpu_times {
  uint64_t busy;  /* everything but idle and iowait */
  uint64_t total; /* every column but guest/guest_nice (counted in user) */
  unsigned count; /* cpuN lines: CPUs online */
} clink__cpu_times;

/* 0, or UV_EINVAL when the text has no "cpu " line. */
int clink__parse_proc_stat(const char *text, clink__cpu_times *out);
/* Busy percent between two samples; -1 when they do not tell (no ticks
 * passed, or the counters went back). */
double clink__cpu_percent(const clink__cpu_times *before, const clink__cpu_times *after);

/* MemTotal and MemAvailable in bytes (kernels before 3.14 lack MemAvailable:
 * MemFree + Buffers + Cached then). 0, or UV_EINVAL without MemTotal. */
int clink__parse_meminfo(const char *text, uint64_t *total, uint64_t *avail);

/* /proc/<pid>/statm: VMS and RSS in bytes. */
int clink__parse_statm(const char *text, uint64_t page_size, uint64_t *rss, uint64_t *vms);

/* /proc/<pid>/stat: utime + stime in clock ticks (the command name may hold
 * spaces and parentheses: fields count from the last ')'). */
int clink__parse_pid_stat(const char *text, uint64_t *cpu_ticks);

/* Reads at most cap - 1 bytes of path into buf, NUL-terminated; the length,
 * or a negative libuv-style code (UV_ENOENT when the process is gone). */
long clink__read_small(const char *path, char *buf, size_t cap);

/* The system's CPU times (buf: scratch space for /proc/stat, whose size
 * grows with the CPU count; 64 KiB covers about a thousand). */
int clink__proc_cpu(char *buf, size_t cap, clink__cpu_times *out);
int clink__proc_meminfo(uint64_t *total, uint64_t *avail);
/* pid 0: this process. */
int clink__proc_mem(int pid, uint64_t *rss, uint64_t *vms);
int clink__proc_cpu_ticks(int pid, uint64_t *ticks);
/* Clock ticks per second (sysconf(_SC_CLK_TCK)). */
uint64_t clink__clock_ticks(void);
/* Used percent of the file system holding path, as df counts it: used /
 * (used + available to unprivileged users). */
int clink__disk_usage(const char *path, double *used_pct);

#endif
