/* The renderings' writer: text appended into the caller's buffer (counting
 * past its end, snprintf-like) or into a growing one, and on it a streaming
 * JSON writer (no tree, no allocation per field, numbers without printf). */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/internal.h"
#include "monitor/health.h"

/* ---------------------------------------------------------------- text */

int clink__w_room(clink__wbuf *w, size_t n) {
  if (!w->grow) return 0;
  if (w->oom) return -1;
  if (w->len + n + 1 <= w->cap) return 0;
  size_t c = w->cap ? w->cap : 256;
  while (c < w->len + n + 1) c *= 2;
  char *p = realloc(w->buf, c);
  if (p == NULL) {
    w->oom = 1;
    return -1;
  }
  w->buf = p;
  w->cap = c;
  return 0;
}

void clink__w_put(clink__wbuf *w, const char *s, size_t n) {
  /* Fits with its NUL: the same test in both modes, no growth to check. */
  if (w->len < w->cap && n < w->cap - w->len) {
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return;
  }
  if (clink__w_room(w, n) == 0 && w->len < w->cap) {
    size_t fit = w->cap - 1 - w->len;
    memcpy(w->buf + w->len, s, n < fit ? n : fit);
  }
  w->len += n;
}

void clink__w_str(clink__wbuf *w, const char *s) { clink__w_put(w, s, strlen(s)); }

/* Digits of v, written backwards ending at end; returns the first. */
static char *u64_digits(char *end, uint64_t v) {
  do {
    *--end = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return end;
}

void clink__w_u64(clink__wbuf *w, uint64_t v) {
  char tmp[24];
  char *p = u64_digits(tmp + sizeof(tmp), v);
  clink__w_put(w, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Whether s (n bytes) needs no JSON escape: no control character, quote
 * or backslash. Eight bytes at a time ("has a byte less than" tricks: any
 * match is found, never a false one). */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
static int json_plain(const char *s, size_t n) {
  uint64_t hit = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v, q, b;
    memcpy(&v, s + i, 8);
    q = v ^ (ONES * '"');
    b = v ^ (ONES * '\\');
    hit |= ((v - ONES * 0x20) & ~v) | ((q - ONES) & ~q) | ((b - ONES) & ~b);
  }
  if (hit & HIGHS) return 0;
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == '"' || c == '\\') return 0;
  }
  return 1;
}

void clink__w_json_str(clink__wbuf *w, const char *s) {
  static const char hex[] = "0123456789abcdef";
  if (s == NULL) s = ""; /* as cJSON prints a NULL string */
  size_t n = strlen(s);
  if (json_plain(s, n)) {
    if (clink__w_room(w, n + 2) == 0 && w->len + n + 2 < w->cap) {
      char *p = w->buf + w->len;
      p[0] = '"';
      memcpy(p + 1, s, n);
      p[n + 1] = '"';
      w->len += n + 2;
      return;
    }
    clink__w_put(w, "\"", 1);
    clink__w_put(w, s, n);
    clink__w_put(w, "\"", 1);
    return;
  }
  clink__w_put(w, "\"", 1);
  const char *run = s;
  for (const char *p = s; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    clink__w_put(w, run, (size_t)(p - run));
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
    switch (c) { /* the short escapes where JSON has one, as cJSON writes them */
      case '"': case '\\': esc[1] = (char)c; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      default: break;
    }
    clink__w_put(w, esc, esc[1] == 'u' ? 6 : 2);
    run = p + 1;
  }
  clink__w_str(w, run);
  clink__w_put(w, "\"", 1);
}

void clink__w_fmt(clink__wbuf *w, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof(tmp)) {
    clink__w_put(w, tmp, (size_t)n);
    return;
  }
  /* Longer than the scratch: format in place. */
  if (clink__w_room(w, (size_t)n) == 0 && w->len + (size_t)n < w->cap) {
    va_start(ap, fmt);
    vsnprintf(w->buf + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
  }
  w->len += (size_t)n;
}

/* ---------------------------------------------------------------- JSON */

static void sep(clink__jw *j) {
  if (!j->first) clink__w_put(j->w, ",", 1);
  j->first = 0;
}

void clink__jw_open(clink__jw *j, char c) {
  clink__w_put(j->w, &c, 1);
  j->first = 1;
}

void clink__jw_close(clink__jw *j, char c) {
  clink__w_put(j->w, &c, 1);
  j->first = 0; /* the parent has a member now */
}

void clink__jw_keylit(clink__jw *j, const char *quoted, size_t n) {
  sep(j);
  clink__w_put(j->w, quoted, n);
}

void clink__jw_key(clink__jw *j, const char *name) {
  sep(j);
  clink__w_json_str(j->w, name);
  clink__w_put(j->w, ":", 1);
}

void clink__jw_elem(clink__jw *j) { sep(j); }

/* Below 10^15 a figure's digits are what cJSON wrote (%1.15g of an exact
 * double); from there on its own spelling is kept. */
#define PLAIN_DIGITS 1e15

void clink__jw_u64(clink__jw *j, uint64_t v) {
  if ((double)v < PLAIN_DIGITS)
    clink__w_u64(j->w, v);
  else
    clink__jw_double(j, (double)v);
}

void clink__jw_i64(clink__jw *j, int64_t v) {
  if (!(fabs((double)v) < PLAIN_DIGITS)) {
    clink__jw_double(j, (double)v);
    return;
  }
  char tmp[24];
  char *p = u64_digits(tmp + sizeof(tmp), v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
  if (v < 0) *--p = '-';
  clink__w_put(j->w, p, (size_t)(tmp + sizeof(tmp) - p));
}

void clink__jw_bool(clink__jw *j, int v) {
  if (v)
    clink__w_put(j->w, "true", 4);
  else
    clink__w_put(j->w, "false", 5);
}

void clink__jw_null(clink__jw *j) { clink__w_put(j->w, "null", 4); }

void clink__jw_str(clink__jw *j, const char *s) { clink__w_json_str(j->w, s); }

void clink__jw_double(clink__jw *j, double d) {
  if (!isfinite(d)) {
    clink__jw_null(j); /* JSON has no NaN or Infinity; cJSON writes null */
    return;
  }
  if (d == trunc(d) && fabs(d) < PLAIN_DIGITS && !signbit(d)) {
    clink__w_u64(j->w, (uint64_t)d);
    return;
  }
  /* cJSON's spelling, kept so that the documents did not change: 15
   * significant digits when they read back within an ulp, else 17. */
  char tmp[32];
  int n = snprintf(tmp, sizeof(tmp), "%1.15g", d);
  double back = strtod(tmp, NULL);
  if (!(fabs(back - d) <= fmax(fabs(back), fabs(d)) * DBL_EPSILON))
    n = snprintf(tmp, sizeof(tmp), "%1.17g", d);
  if (n <= 0 || (size_t)n >= sizeof(tmp)) return;
  for (int i = 0; i < n; i++) /* a host's LC_NUMERIC may use a comma */
    if (!strchr("0123456789+-e", tmp[i])) tmp[i] = '.';
  clink__w_put(j->w, tmp, (size_t)n);
}

void clink__jw_fixed(clink__jw *j, double x, int decimals) {
  /* The same unit constants as the rounding always used: the same q. */
  static const double unit[] = {1, 0.1, 0.01, 0.001, 0.0001};
  static const uint64_t scale[] = {1, 10, 100, 1000, 10000};
  if (decimals < 0 || decimals > 4) decimals = 4;
  double q = isfinite(x) ? round(x / unit[decimals]) : 0.0;
  /* Beyond 15 digits the text of q / scale is no longer how cJSON spelled
   * q * unit: its way then. */
  if (!(fabs(q) < PLAIN_DIGITS)) {
    clink__jw_double(j, q * unit[decimals]);
    return;
  }
  uint64_t a = (uint64_t)fabs(q), ip = a / scale[decimals], fp = a % scale[decimals];
  char tmp[32];
  char *end = tmp + sizeof(tmp), *p = end;
  if (fp) {
    int d = decimals;
    for (; fp % 10 == 0; d--) fp /= 10; /* no trailing zero, as %g */
    for (; d > 0; d--, fp /= 10) *--p = (char)('0' + fp % 10);
    *--p = '.';
  }
  p = u64_digits(p, ip);
  if (signbit(q)) *--p = '-'; /* -0 too, as cJSON's %g */
  clink__w_put(j->w, p, (size_t)(end - p));
}
