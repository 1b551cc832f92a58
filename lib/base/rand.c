#include "base/rand.h"

#include <time.h>

uint64_t clink__seed(const void *salt) {
  struct timespec ts;
  uint64_t s = (uint64_t)(uintptr_t)salt;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
    s ^= (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
  uint64_t seed = clink__splitmix64(&s);
  return seed ? seed : 1;
}
