/* Fuzz target: the NDJSON line framer (lib/framer.c).
 *
 * Input: 5 header bytes, then the stream.
 *   h[0..1]  max_line = 1 + (h[0] << 8 | h[1]) % 320 (around the 64-byte
 *            prefix of long-line reports)
 *   h[2]     bits 0-1: chunk sizes (0: 1..4096, 1: 1..8, 2: 1..97, 3: 1..size)
 *            bit 2:    call clink__framer_stop() from the callback that
 *                      delivers event number 1 + h[3] % 8
 *            bit 3:    also commit(0) now and then
 *            bit 4:    small buffer (white-box): min_read = 1 + h[4] % 16 and
 *                      a first buffer of min_read + 1 + (h[4] >> 4) * 4
 *                      bytes, so that short inputs reach the compaction and
 *                      growth paths of reserve() (the real 64 KiB buffer and
 *                      16 KiB min_read need lines of tens of KiB)
 *   h[3]     seeds the chunking
 *
 * The stream is framed three times, cut differently each time: with
 * clink__framer_feed(), with reserve()/commit(), and alternating both. Each
 * time the events (lines and over-long-line reports, in order, with their
 * bytes) must equal those of a naive reference splitter run over the whole
 * stream (the semantics tests/test-framer.c documents), and on the way:
 *   - a line is non-empty, holds no '\n', is at most max_line bytes, and
 *     points into the framer's buffer;
 *   - a report has CLINK_ELINE_TOO_LONG, total_len > max_line, and a prefix
 *     of min(64, total_len) bytes;
 *   - bytes delivered + bytes reported never exceed the input;
 *   - until stop(), at most max_line + 1 bytes stay buffered and the buffer
 *     never grows past max(first size, max_line + 2 + min_read);
 *   - nothing is delivered after stop(); the counters match the events. */
#include <string.h>

#include <claudelink.h>

#include "wire/framer.h"
#include "fuzz.h"

enum { EV_LINE = 1, EV_LONG = 2 };

typedef struct {
  int kind;
  size_t off, len; /* bytes: the line, or the report's prefix */
  uint64_t total;
} event;

typedef struct {
  event *ev;
  size_t n, cap;
  char *bytes;
  size_t nbytes, bcap;
} events;

static void events_add(events *e, int kind, const char *p, size_t len, uint64_t total) {
  if (e->n == e->cap) {
    e->cap = e->cap ? e->cap * 2 : 16;
    e->ev = fuzz_xrealloc(e->ev, e->cap * sizeof(*e->ev));
  }
  if (e->nbytes + len > e->bcap) {
    while (e->nbytes + len > e->bcap) e->bcap = e->bcap ? e->bcap * 2 : 256;
    e->bytes = fuzz_xrealloc(e->bytes, e->bcap);
  }
  if (len > 0) memcpy(e->bytes + e->nbytes, p, len);
  e->ev[e->n++] = (event){kind, e->nbytes, len, total};
  e->nbytes += len;
}

static void events_free(events *e) {
  free(e->ev);
  free(e->bytes);
  memset(e, 0, sizeof(*e));
}

/* Whole input at once: a line is what precedes a '\n' (or the end), minus
 * one trailing '\r'; empty lines are skipped; longer than max_line is a
 * report. */
static void reference(const char *in, size_t len, size_t max_line, events *out) {
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(in + i, '\n', len - i);
    size_t seg_end = nl != NULL ? (size_t)(nl - in) : len;
    size_t n = seg_end - i;
    if (n > 0 && in[i + n - 1] == '\r') n--;
    if (n > max_line)
      events_add(out, EV_LONG, in + i, n < CLINK__FRAMER_PREFIX ? n : CLINK__FRAMER_PREFIX, n);
    else if (n > 0)
      events_add(out, EV_LINE, in + i, n, n);
    i = seg_end + 1;
  }
}

typedef struct {
  clink__framer f;
  events got;
  size_t input_len;
  uint64_t delivered; /* line bytes + reported lengths */
  size_t stop_at;     /* 0: never */
  int stopped;
} rec;

static void after_event(rec *r) {
  FUZZ_CHECK(r->delivered <= r->input_len, "%llu bytes delivered from %zu",
             (unsigned long long)r->delivered, r->input_len);
  if (r->stop_at != 0 && r->got.n == r->stop_at) {
    r->stopped = 1;
    clink__framer_stop(&r->f);
  }
}

static void on_line(void *ud, const char *line, size_t len) {
  rec *r = ud;
  FUZZ_CHECK(!r->stopped, "line after stop()");
  FUZZ_CHECK(len > 0, "empty line");
  FUZZ_CHECK(len <= r->f.max_line, "line of %zu bytes, max %zu", len, r->f.max_line);
  FUZZ_CHECK(memchr(line, '\n', len) == NULL, "line holds a newline");
  FUZZ_CHECK(line >= r->f.buf && line + len <= r->f.buf + r->f.cap,
             "line is not in the framer's buffer");
  events_add(&r->got, EV_LINE, line, len, len);
  r->delivered += len;
  after_event(r);
}

static void on_error(void *ud, int err, const char *prefix, size_t prefix_len,
                     uint64_t total_len) {
  rec *r = ud;
  FUZZ_CHECK(!r->stopped, "report after stop()");
  FUZZ_CHECK(err == CLINK_ELINE_TOO_LONG, "err %d", err);
  FUZZ_CHECK(total_len > r->f.max_line, "report of %llu bytes, max %zu",
             (unsigned long long)total_len, r->f.max_line);
  FUZZ_CHECK(prefix_len == (total_len < CLINK__FRAMER_PREFIX ? total_len : CLINK__FRAMER_PREFIX),
             "prefix of %zu bytes for a %llu-byte line", prefix_len,
             (unsigned long long)total_len);
  events_add(&r->got, EV_LONG, prefix, prefix_len, total_len);
  r->delivered += total_len;
  after_event(r);
}

static void check_pending(const rec *r, size_t cap0) {
  /* Not after stop(): process() then leaves the bytes after the last line
   * delivered where they are, and reserve() may grow the buffer once more to
   * offer min_read bytes after them (commit() no longer adds any). */
  if (!r->f.stopped) {
    FUZZ_CHECK(r->f.end - r->f.start <= r->f.max_line + 1, "%zu bytes pending, max %zu",
               r->f.end - r->f.start, r->f.max_line);
    size_t bound = r->f.max_line + 2 + r->f.min_read;
    if (bound < cap0) bound = cap0;
    FUZZ_CHECK(r->f.cap <= bound, "buffer of %zu bytes, bound %zu", r->f.cap, bound);
  }
  FUZZ_CHECK(r->f.start <= r->f.scan && r->f.scan <= r->f.end && r->f.end <= r->f.cap,
             "offsets %zu/%zu/%zu, cap %zu", r->f.start, r->f.scan, r->f.end, r->f.cap);
}

enum { PASS_FEED, PASS_ZERO_COPY, PASS_MIXED };

static size_t chunk_len(uint64_t *rng, int pattern, size_t left) {
  size_t n;
  switch (pattern) {
    case 1: n = 1 + fuzz_rng(rng) % 8; break;
    case 2: n = 1 + fuzz_rng(rng) % 97; break;
    case 3: n = 1 + fuzz_rng(rng) % (left == 0 ? 1 : left); break;
    default: n = 1 + fuzz_rng(rng) % 4096; break;
  }
  return n < left ? n : left;
}

static void run_pass(const char *in, size_t len, size_t max_line, int pattern, int pass,
                     int commit_zero, size_t stop_at, int geometry, uint64_t seed,
                     const events *want) {
  rec r;
  memset(&r, 0, sizeof(r));
  r.input_len = len;
  r.stop_at = stop_at;
  FUZZ_CHECK(clink__framer_init(&r.f, max_line, on_line, on_error, &r) == 0, "init");
  if (geometry >= 0) {
    /* The framer keeps no other state about its buffer's size. */
    r.f.min_read = 1 + (size_t)(geometry % 16);
    r.f.cap = r.f.min_read + 1 + (size_t)(geometry >> 4) * 4;
    r.f.buf = fuzz_xrealloc(r.f.buf, r.f.cap);
  }
  size_t cap0 = r.f.cap;
  uint64_t rng = seed;
  size_t at = 0;
  int use_zc = pass == PASS_ZERO_COPY;
  while (at < len) {
    size_t n = chunk_len(&rng, pattern, len - at);
    if (pass == PASS_MIXED) use_zc = !use_zc;
    if (!use_zc) {
      FUZZ_CHECK(clink__framer_feed(&r.f, in + at, n) == 0, "feed");
      at += n;
    } else {
      char *dst;
      size_t room;
      FUZZ_CHECK(clink__framer_reserve(&r.f, &dst, &room) == 0, "reserve");
      FUZZ_CHECK(room >= r.f.min_read, "reserve offered %zu bytes", room);
      FUZZ_CHECK(dst >= r.f.buf && dst + room == r.f.buf + r.f.cap,
                 "reserved space is not the buffer's tail");
      if (n > room) n = room;
      memcpy(dst, in + at, n);
      FUZZ_CHECK(clink__framer_commit(&r.f, n) == 0, "commit");
      at += n;
      if (commit_zero && fuzz_rng(&rng) % 4 == 0)
        FUZZ_CHECK(clink__framer_commit(&r.f, 0) == 0, "commit(0)");
    }
    check_pending(&r, cap0);
  }
  clink__framer_finish(&r.f);

  /* Same events as the reference, cut short by stop(). */
  size_t n_want = want->n;
  if (stop_at != 0 && n_want > stop_at) n_want = stop_at;
  static const char *const pass_name[] = {"feed", "reserve/commit", "mixed"};
  FUZZ_CHECK(r.got.n == n_want, "%s: %zu events, want %zu", pass_name[pass], r.got.n, n_want);
  uint64_t lines = 0, longs = 0;
  for (size_t i = 0; i < n_want; i++) {
    const event *g = &r.got.ev[i], *w = &want->ev[i];
    FUZZ_CHECK(g->kind == w->kind && g->total == w->total && g->len == w->len &&
                   memcmp(r.got.bytes + g->off, want->bytes + w->off, g->len) == 0,
               "%s: event %zu differs from the reference (kind %d/%d, length %llu/%llu)",
               pass_name[pass], i, g->kind, w->kind, (unsigned long long)g->total,
               (unsigned long long)w->total);
    if (g->kind == EV_LINE)
      lines++;
    else
      longs++;
  }
  FUZZ_CHECK(r.f.lines == lines && r.f.long_lines == longs, "counters %llu/%llu, want %llu/%llu",
             (unsigned long long)r.f.lines, (unsigned long long)r.f.long_lines,
             (unsigned long long)lines, (unsigned long long)longs);
  clink__framer_free(&r.f);
  events_free(&r.got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 5) return 0;
  size_t max_line = 1 + (((size_t)data[0] << 8) | data[1]) % 320;
  int pattern = data[2] & 3;
  size_t stop_at = (data[2] & 4) ? 1 + data[3] % 8 : 0;
  int commit_zero = (data[2] & 8) != 0;
  int geometry = (data[2] & 16) ? data[4] : -1;
  uint64_t seed = ((uint64_t)data[3] << 8) | data[2];
  const char *in = (const char *)data + 5;
  size_t len = size - 5;

  events want;
  memset(&want, 0, sizeof(want));
  reference(in, len, max_line, &want);
  for (int pass = PASS_FEED; pass <= PASS_MIXED; pass++)
    run_pass(in, len, max_line, pattern, pass, commit_zero, stop_at, geometry,
             seed + (uint64_t)pass, &want);
  events_free(&want);
  return 0;
}
