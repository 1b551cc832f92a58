/* Counts the allocations of everything linked statically into a benchmark
 * (the library included) through -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc. Include in exactly one file of the program.
 *
 * With CLINK_BENCH_LIVE_BYTES defined first (and -Wl,--wrap=free), live_bytes
 * also follows the heap those allocations hold (malloc_usable_size). */
#ifndef CLINK_BENCH_ALLOC_COUNT_H
#define CLINK_BENCH_ALLOC_COUNT_H

#include <stddef.h>

static unsigned long n_alloc;
static size_t n_alloc_bytes;

#ifdef CLINK_BENCH_LIVE_BYTES
#include <malloc.h>
static long long live_bytes;
#define LIVE_ADD(p) ((p) ? (void)(live_bytes += (long long)malloc_usable_size(p)) : (void)0)
#define LIVE_SUB(p) ((p) ? (void)(live_bytes -= (long long)malloc_usable_size(p)) : (void)0)
void __real_free(void *p);
void __wrap_free(void *p);
void __wrap_free(void *p) {
  LIVE_SUB(p);
  __real_free(p);
}
#else
#define LIVE_ADD(p) ((void)0)
#define LIVE_SUB(p) ((void)0)
#endif

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n) {
  n_alloc++;
  n_alloc_bytes += n;
  void *q = __real_malloc(n);
  LIVE_ADD(q);
  return q;
}

void *__wrap_calloc(size_t n, size_t s) {
  n_alloc++;
  n_alloc_bytes += n * s;
  void *q = __real_calloc(n, s);
  LIVE_ADD(q);
  return q;
}

void *__wrap_realloc(void *p, size_t n) {
  n_alloc++;
  n_alloc_bytes += n;
  LIVE_SUB(p); /* p is still valid here; on failure it stays live */
  void *q = __real_realloc(p, n);
  if (q != NULL) {
    LIVE_ADD(q);
  } else if (n != 0) {
    LIVE_ADD(p);
  }
  return q;
}

#endif
