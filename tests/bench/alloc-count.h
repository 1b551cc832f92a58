/* Counts the allocations of everything linked statically into a benchmark
 * (the library included) through -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc. Include in exactly one file of the program. */
#ifndef CLINK_BENCH_ALLOC_COUNT_H
#define CLINK_BENCH_ALLOC_COUNT_H

#include <stddef.h>

static unsigned long n_alloc;
static size_t n_alloc_bytes;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n) {
  n_alloc++;
  n_alloc_bytes += n;
  return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t s) {
  n_alloc++;
  n_alloc_bytes += n * s;
  return __real_calloc(n, s);
}

void *__wrap_realloc(void *p, size_t n) {
  n_alloc++;
  n_alloc_bytes += n;
  return __real_realloc(p, n);
}

#endif
