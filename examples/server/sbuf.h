/* A growable text buffer and the JSON writing helpers of the server. */
#ifndef SERVER_SBUF_H
#define SERVER_SBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct sbuf {
  char *p;
  size_t len, cap;
  int oom; /* an allocation failed: the content is incomplete */
} sbuf;

void sbuf_add(sbuf *b, const char *s, size_t n);
void sbuf_str(sbuf *b, const char *s);
__attribute__((format(printf, 2, 3))) void sbuf_printf(sbuf *b, const char *fmt, ...);
/* s as a JSON string, quotes included (NULL: null). Invalid UTF-8 bytes
 * become U+FFFD. */
void sbuf_json_str(sbuf *b, const char *s);
void sbuf_json_strn(sbuf *b, const char *s, size_t n);
/* "key": with a leading comma unless first. */
void sbuf_key(sbuf *b, const char *key, int *first);
void sbuf_free(sbuf *b);
/* Resets the length, keeps the memory. */
void sbuf_reset(sbuf *b);

/* 1 when s is valid UTF-8 (no overlong forms, no surrogates). */
int utf8_valid(const char *s);

/* ISO 8601 UTC with seconds: 2024-01-01T12:00:00Z */
void iso8601(char out[32], uint64_t unix_ms);
uint64_t wall_ms(void);

#endif
