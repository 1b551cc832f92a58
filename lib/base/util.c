#include "base/internal.h"

char *clink__strdup(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}

int clink__set_str(char **slot, const char *s) {
  char *d = NULL;
  if (s != NULL && (d = clink__strdup(s)) == NULL) return UV_ENOMEM;
  clink__free(*slot);
  *slot = d;
  return 0;
}
