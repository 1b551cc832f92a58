/* NDJSON line framer: sans-I/O, no allocation per line.
 *
 * Bytes go in (copied with feed(), or read straight into the framer's own
 * buffer with reserve()/commit()); each complete line comes out through
 * line_cb as a pointer into the framer's buffer, valid until the callback
 * returns. Terminators "\n" and "\r\n" are stripped; empty lines are skipped.
 *
 * A line longer than max_line bytes (terminator not counted) is never
 * buffered whole: once it is known to be too long the rest of it is skipped,
 * the stream resynchronises at the next "\n", and error_cb reports it once,
 * with the first bytes of the line and its total length.
 */
#ifndef CLINK_FRAMER_H
#define CLINK_FRAMER_H

#include <stddef.h>
#include <stdint.h>

#define CLINK__FRAMER_PREFIX 64

typedef void (*clink__framer_line_cb)(void *ud, const char *line, size_t len);
/* err is CLINK_ELINE_TOO_LONG; prefix holds the first prefix_len bytes of the
 * line; total_len is its full length (terminator not counted). */
typedef void (*clink__framer_error_cb)(void *ud, int err, const char *prefix,
                                       size_t prefix_len, uint64_t total_len);

typedef struct clink__framer {
  char *buf;
  size_t cap;
  size_t start;   /* first byte of the pending (incomplete) line */
  size_t scan;    /* bytes before this offset hold no '\n' */
  size_t end;     /* end of valid data */
  size_t max_line;
  size_t min_read; /* reserve() always offers at least this much */
  size_t init_cap, init_min_read; /* what shrink() goes back to */
  int skipping;   /* inside an over-long (or dropped) line */
  int skip_err;   /* what the skipped line is reported as */
  int stopped;    /* set by clink__framer_stop(): deliver nothing more */
  uint64_t skipped_total;
  size_t prefix_len;
  char prefix[CLINK__FRAMER_PREFIX];
  clink__framer_line_cb line_cb;
  clink__framer_error_cb error_cb;
  void *ud;
  uint64_t lines;       /* lines delivered */
  uint64_t long_lines;  /* over-long lines dropped */
  uint64_t dropped_lines; /* lines dropped by clink__framer_drop() */
} clink__framer;

/* Allocates the initial buffer (64 KiB, reads of at least 16 KiB). Returns 0
 * or UV_ENOMEM / UV_EINVAL. */
int clink__framer_init(clink__framer *f, size_t max_line,
                       clink__framer_line_cb line_cb,
                       clink__framer_error_cb error_cb, void *ud);
/* The same with a chosen initial capacity and minimum read size (min_read <=
 * cap); a caller may raise f->min_read later to read in bigger chunks. */
int clink__framer_init_sized(clink__framer *f, size_t max_line, size_t cap,
                             size_t min_read, clink__framer_line_cb line_cb,
                             clink__framer_error_cb error_cb, void *ud);
void clink__framer_free(clink__framer *f);

/* Copies len bytes in and delivers every line they complete. Returns 0 or
 * UV_ENOMEM (the framer is then unusable). */
int clink__framer_feed(clink__framer *f, const char *data, size_t len);

/* Zero-copy input: *p and *len receive writable space (len >= min_read) for the
 * next read; commit(n) then frames the n bytes written there. UV_ENOMEM when
 * the buffer must grow and cannot (see clink__framer_drop()). */
int clink__framer_reserve(clink__framer *f, char **p, size_t *len);
int clink__framer_commit(clink__framer *f, size_t n);

/* End of stream: delivers a final line that had no terminator (or reports it
 * as too long). */
void clink__framer_finish(clink__framer *f);

/* Callable from line_cb/error_cb: no further callbacks are made by the
 * current or any later call. */
void clink__framer_stop(clink__framer *f);

/* For a reader that cannot get memory for a growing line (reserve() returned
 * UV_ENOMEM): the pending partial line is given up. Its bytes so far and the
 * rest of it up to the next '\n' are skipped, as for an over-long line, and
 * error_cb reports it once with err (e.g. UV_ENOMEM), its first bytes and its
 * total length; the stream goes on with the next line. Afterwards reserve()
 * needs no memory as long as min_read < cap. No-op when no line is pending or
 * one is already being skipped. Not callable from line_cb/error_cb. */
void clink__framer_drop(clink__framer *f, int err);

/* Gives memory back when idle: when no partial line is pending the buffer
 * goes back to its initial capacity, and min_read to its initial value
 * either way. Returns 0 (small on return), UV_EBUSY (a partial line is
 * pending: nothing shrunk) or UV_ENOMEM (the smaller reallocation failed; the
 * framer is unchanged and still usable). Not callable from line_cb/error_cb:
 * the line they are given lives in the buffer. */
int clink__framer_shrink(clink__framer *f);

#endif
