#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int grow(sbuf *b, size_t need) {
  if (b->oom) return -1;
  if (b->len + need + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + need + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (p == NULL) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void sbuf_add(sbuf *b, const char *s, size_t n) {
  if (grow(b, n) != 0) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void sbuf_str(sbuf *b, const char *s) { sbuf_add(b, s, strlen(s)); }

void sbuf_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof(tmp)) {
    sbuf_add(b, tmp, (size_t)n);
    return;
  }
  if (grow(b, (size_t)n) != 0) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

int utf8_valid(const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t l = utf8_len(u + i, n - i);
    if (l == 0) return 0;
    i += l;
  }
  return 1;
}

void sbuf_json_strn(sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (grow(b, n + 2) != 0) return;
  b->p[b->len++] = '"';
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' && u[run] != '\\') run++;
    if (run > i) {
      sbuf_add(b, s + i, run - i);
      i = run;
      continue;
    }
    unsigned char c = u[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sbuf_add(b, e, 2);
      i++;
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      if (c == '\n') sbuf_add(b, "\\n", 2);
      else if (c == '\r') sbuf_add(b, "\\r", 2);
      else if (c == '\t') sbuf_add(b, "\\t", 2);
      else sbuf_add(b, e, 6);
      i++;
    } else {
      size_t l = utf8_len(u + i, n - i);
      if (l == 0) {
        sbuf_add(b, "\xef\xbf\xbd", 3);
        i++;
      } else {
        sbuf_add(b, s + i, l);
        i += l;
      }
    }
  }
  sbuf_add(b, "\"", 1);
}

void sbuf_json_str(sbuf *b, const char *s) {
  if (s == NULL)
    sbuf_add(b, "null", 4);
  else
    sbuf_json_strn(b, s, strlen(s));
}

void sbuf_key(sbuf *b, const char *key, int *first) {
  if (!*first) sbuf_add(b, ",", 1);
  *first = 0;
  sbuf_json_str(b, key);
  sbuf_add(b, ":", 1);
}

void sbuf_free(sbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}

void sbuf_reset(sbuf *b) {
  b->len = 0;
  b->oom = 0;
  if (b->p) b->p[0] = '\0';
}

uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void iso8601(char out[32], uint64_t unix_ms) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
