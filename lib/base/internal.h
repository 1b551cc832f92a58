/* Internal helpers shared by the library's files. Not installed. */
#ifndef CLINK_INTERNAL_H
#define CLINK_INTERNAL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "claudelink.h"
#include "base/uv-codes.h"

#define CLINK__CONTAINER_OF(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#define CLINK__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void *clink__calloc(size_t n, size_t size) {
  if (size != 0 && n > SIZE_MAX / size) return NULL;
  return calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

/* free() that keeps errno, so error paths can free before reporting. */
static inline void clink__free(void *p) {
  int saved = errno;
  free(p);
  errno = saved;
}

/* strdup that maps NULL to NULL. */
char *clink__strdup(const char *s);

/* Replace *slot with a copy of s (NULL clears). Returns 0 or UV_ENOMEM. */
int clink__set_str(char **slot, const char *s);

#endif
