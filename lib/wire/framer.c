#include "wire/framer.h"

#include <string.h>

#include "base/internal.h"

#define FRAMER_INITIAL_CAP ((size_t)64 * 1024)
#define FRAMER_MIN_READ ((size_t)16 * 1024)

int clink__framer_init_sized(clink__framer *f, size_t max_line, size_t cap,
                             size_t min_read, clink__framer_line_cb line_cb,
                             clink__framer_error_cb error_cb, void *ud) {
  if (f == NULL || max_line == 0 || line_cb == NULL || min_read == 0 || min_read > cap)
    return UV_EINVAL;
  memset(f, 0, sizeof(*f));
  f->cap = cap;
  f->buf = malloc(f->cap);
  if (f->buf == NULL) return UV_ENOMEM;
  f->max_line = max_line;
  f->min_read = min_read;
  f->init_cap = cap;
  f->init_min_read = min_read;
  f->line_cb = line_cb;
  f->error_cb = error_cb;
  f->ud = ud;
  return 0;
}

int clink__framer_init(clink__framer *f, size_t max_line,
                       clink__framer_line_cb line_cb,
                       clink__framer_error_cb error_cb, void *ud) {
  return clink__framer_init_sized(f, max_line, FRAMER_INITIAL_CAP, FRAMER_MIN_READ, line_cb,
                                  error_cb, ud);
}

void clink__framer_free(clink__framer *f) {
  if (f == NULL) return;
  clink__free(f->buf);
  f->buf = NULL;
  f->cap = f->start = f->scan = f->end = 0;
}

void clink__framer_stop(clink__framer *f) { f->stopped = 1; }

static void report_long_line(clink__framer *f) {
  int err = f->skip_err != 0 ? f->skip_err : CLINK_ELINE_TOO_LONG;
  if (f->skip_err != 0)
    f->dropped_lines++;
  else
    f->long_lines++;
  f->skip_err = 0;
  if (f->error_cb != NULL && !f->stopped)
    f->error_cb(f->ud, err, f->prefix, f->prefix_len, f->skipped_total);
  f->skipping = 0;
  f->skipped_total = 0;
  f->prefix_len = 0;
}

/* Accounts n more bytes of the over-long line being skipped, topping up the
 * prefix until it holds CLINK__FRAMER_PREFIX bytes. */
static void skip_bytes(clink__framer *f, const char *p, size_t n) {
  size_t k = CLINK__FRAMER_PREFIX - f->prefix_len;
  if (k > n) k = n;
  memcpy(f->prefix + f->prefix_len, p, k);
  f->prefix_len += k;
  f->skipped_total += n;
}

static void begin_skip(clink__framer *f, const char *line, size_t len) {
  f->skipping = 1;
  f->prefix_len = 0;
  f->skipped_total = 0;
  skip_bytes(f, line, len);
}

/* A complete line (without its '\n'). */
static void emit(clink__framer *f, const char *line, size_t len) {
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len == 0) return;
  if (len > f->max_line) {
    begin_skip(f, line, len);
    report_long_line(f);
    return;
  }
  f->lines++;
  f->line_cb(f->ud, line, len);
}

/* Frames everything between f->scan and f->end. */
static void process(clink__framer *f) {
  while (!f->stopped && f->scan < f->end) {
    char *from = f->buf + f->scan;
    char *nl = memchr(from, '\n', f->end - f->scan);
    if (nl == NULL) break;
    size_t nl_off = (size_t)(nl - f->buf);
    if (f->skipping) {
      size_t n = nl_off - f->start;
      if (n > 0 && f->buf[nl_off - 1] == '\r') n--; /* "\r\n" terminator */
      skip_bytes(f, f->buf + f->start, n);
      report_long_line(f);
    } else {
      emit(f, f->buf + f->start, nl_off - f->start);
    }
    f->start = f->scan = nl_off + 1;
  }
  if (f->stopped) return;
  f->scan = f->end;
  size_t pending = f->end - f->start;
  /* A trailing '\r' may be the first half of a "\r\n": it is kept (and not
   * yet counted) until the next byte shows whether it is content. */
  size_t cr = pending > 0 && f->buf[f->end - 1] == '\r' ? 1 : 0;
  if (f->skipping || pending > f->max_line + 1) {
    /* +1: a trailing '\r' is not part of the line. Nothing else of a skipped
     * line is kept. */
    if (f->skipping)
      skip_bytes(f, f->buf + f->start, pending - cr);
    else
      begin_skip(f, f->buf + f->start, pending - cr);
    if (cr) f->buf[0] = '\r';
    f->start = 0;
    f->scan = f->end = cr;
  } else if (pending == 0) {
    f->start = f->scan = f->end = 0;
  }
}

int clink__framer_reserve(clink__framer *f, char **p, size_t *len) {
  if (f->cap - f->end < f->min_read && f->start > 0) {
    size_t pending = f->end - f->start;
    memmove(f->buf, f->buf + f->start, pending);
    f->scan -= f->start;
    f->end = pending;
    f->start = 0;
  }
  if (f->cap - f->end < f->min_read) {
    /* The pending line fills the buffer: grow, bounded by max_line. */
    size_t want = f->end + f->min_read;
    size_t ncap = f->cap * 2;
    if (ncap < want) ncap = want;
    size_t limit = f->max_line + 2 + f->min_read;
    if (ncap > limit) ncap = limit < want ? want : limit;
    char *nbuf = realloc(f->buf, ncap);
    if (nbuf == NULL) return UV_ENOMEM;
    f->buf = nbuf;
    f->cap = ncap;
  }
  *p = f->buf + f->end;
  *len = f->cap - f->end;
  return 0;
}

int clink__framer_commit(clink__framer *f, size_t n) {
  if (n > f->cap - f->end) return UV_EINVAL;
  if (f->stopped) return 0; /* nothing more is delivered: don't buffer it */
  f->end += n;
  process(f);
  return 0;
}

int clink__framer_feed(clink__framer *f, const char *data, size_t len) {
  while (len > 0 && !f->stopped) {
    char *p;
    size_t room;
    int rc = clink__framer_reserve(f, &p, &room);
    if (rc != 0) return rc;
    size_t n = len < room ? len : room;
    memcpy(p, data, n);
    data += n;
    len -= n;
    clink__framer_commit(f, n);
  }
  return 0;
}

void clink__framer_drop(clink__framer *f, int err) {
  size_t pending = f->end - f->start;
  if (f->skipping || pending == 0) return;
  /* As process() does for an over-long line: a trailing '\r' may be half of
   * a "\r\n" and is kept until the next byte tells. */
  size_t cr = f->buf[f->end - 1] == '\r' ? 1 : 0;
  begin_skip(f, f->buf + f->start, pending - cr);
  f->skip_err = err;
  if (cr) f->buf[0] = '\r';
  f->start = 0;
  f->scan = f->end = cr;
}

int clink__framer_shrink(clink__framer *f) {
  f->min_read = f->init_min_read;
  if (f->end > f->start) return UV_EBUSY;
  f->start = f->scan = f->end = 0;
  if (f->cap <= f->init_cap) return 0;
  /* A new block rather than realloc(): nothing to copy, and a big buffer
   * (mmap'd by the allocator) goes back whole instead of being cut down. */
  char *nbuf = malloc(f->init_cap);
  if (nbuf == NULL) return UV_ENOMEM; /* the big buffer is still valid */
  clink__free(f->buf);
  f->buf = nbuf;
  f->cap = f->init_cap;
  return 0;
}

void clink__framer_finish(clink__framer *f) {
  if (f->stopped) return;
  if (f->skipping) {
    report_long_line(f);
  } else if (f->end > f->start) {
    emit(f, f->buf + f->start, f->end - f->start);
  }
  f->start = f->scan = f->end = 0;
}
