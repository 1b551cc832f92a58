/* Shared by the fuzz targets (tests/fuzz/README.md).
 *
 * A target is one LLVMFuzzerTestOneInput(). It is linked either with
 * libFuzzer (-Dfuzzing=true) or with fuzz-replay.c, whose main() runs the
 * files and directories named on the command line through it: that is how
 * the checked-in corpus runs as `meson test --suite fuzz-regress`.
 *
 * A broken invariant aborts with a message: libFuzzer and ASan report an
 * abort as a crash and keep the input, and the replay program dies with it. */
#ifndef CLINK_FUZZ_H
#define CLINK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                              \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, \
              #cond);                                                      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
      abort();                                                             \
    }                                                                      \
  } while (0)

/* Memory the target cannot do without: a failure here is the harness's, not
 * the code under test's. */
static inline void *fuzz_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n == 0 ? 1 : n);
  if (q == NULL) {
    fputs("fuzz harness: out of memory\n", stderr);
    abort();
  }
  return q;
}

/* Deterministic PRNG for choices derived from the input (splitmix64). */
static inline uint64_t fuzz_rng(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

#endif
