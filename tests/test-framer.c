/* Tests for the NDJSON line framer (lib/framer.c).
 *
 * Most tests compare what the framer delivers (lines and over-long-line
 * reports, in order) with a deliberately naive reference splitter run over
 * the whole input at once, for many different ways of cutting the input into
 * chunks. The framer's output must not depend on the chunking.
 *
 * Reference semantics (what lib/framer.h promises):
 *   - a line is the bytes before a '\n'; the bytes after the last '\n' are a
 *     final unterminated line, delivered by finish();
 *   - one trailing '\r' is stripped ("\r\n" terminator; for the unterminated
 *     final line a trailing '\r' is stripped too);
 *   - lines that are empty after stripping are skipped;
 *   - a line longer than max_line (terminator not counted, i.e. a '\r' just
 *     before the '\n' is not counted) is reported once through error_cb with
 *     CLINK_ELINE_TOO_LONG, its first min(64, len) bytes and its length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <claudelink.h>

#include "wire/framer.h"
#include "testutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ byte buffer */

typedef struct {
  char *p;
  size_t len, cap;
} bytes;

static void bytes_add(bytes *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + n) ncap *= 2;
    b->p = realloc(b->p, ncap);
    ck_assert_ptr_nonnull(b->p);
    b->cap = ncap;
  }
  if (n > 0) memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void bytes_adds(bytes *b, const char *s) { bytes_add(b, s, strlen(s)); }

static void bytes_addn(bytes *b, char c, size_t n) {
  for (size_t i = 0; i < n; i++) bytes_add(b, &c, 1);
}

static void bytes_free(bytes *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* ----------------------------------------------------------------- events */

enum { EV_LINE = 1, EV_LONG = 2 };

typedef struct {
  int kind;
  int err;
  size_t off, len; /* line bytes, or the prefix for EV_LONG */
  uint64_t total;  /* line length; total_len for EV_LONG */
} event;

typedef struct {
  event *ev;
  size_t n, cap;
  bytes data;
  size_t nlines, nlong;
} events;

static void events_add(events *e, int kind, int err, const char *p, size_t len,
                       uint64_t total) {
  if (e->n == e->cap) {
    e->cap = e->cap ? e->cap * 2 : 64;
    e->ev = realloc(e->ev, e->cap * sizeof(*e->ev));
    ck_assert_ptr_nonnull(e->ev);
  }
  event *v = &e->ev[e->n++];
  v->kind = kind;
  v->err = err;
  v->off = e->data.len;
  v->len = len;
  v->total = total;
  bytes_add(&e->data, p, len);
  if (kind == EV_LINE)
    e->nlines++;
  else
    e->nlong++;
}

static void events_clear(events *e) {
  e->n = 0;
  e->data.len = 0;
  e->nlines = e->nlong = 0;
}

static void events_free(events *e) {
  free(e->ev);
  bytes_free(&e->data);
  memset(e, 0, sizeof(*e));
}

static const char *ev_bytes(const events *e, size_t i) { return e->data.p + e->ev[i].off; }

/* The naive reference splitter over the whole input. */
static void reference(const char *in, size_t len, size_t max_line, events *out) {
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(in + i, '\n', len - i);
    size_t seg_end = nl != NULL ? (size_t)(nl - in) : len;
    size_t n = seg_end - i;
    if (n > 0 && in[i + n - 1] == '\r') n--;
    if (n > max_line)
      events_add(out, EV_LONG, CLINK_ELINE_TOO_LONG, in + i,
                 n < CLINK__FRAMER_PREFIX ? n : CLINK__FRAMER_PREFIX, n);
    else if (n > 0)
      events_add(out, EV_LINE, 0, in + i, n, n);
    i = seg_end + 1;
  }
}

static void expect_events(const events *got, const events *want, const char *ctx) {
  size_t n = got->n < want->n ? got->n : want->n;
  for (size_t i = 0; i < n; i++) {
    const event *g = &got->ev[i], *w = &want->ev[i];
    ck_assert_msg(g->kind == w->kind, "%s: event %zu is %s, want %s", ctx, i,
                  g->kind == EV_LINE ? "a line" : "a long-line report",
                  w->kind == EV_LINE ? "a line" : "a long-line report");
    ck_assert_msg(g->err == w->err, "%s: event %zu err %d, want %d", ctx, i, g->err, w->err);
    ck_assert_msg(g->total == w->total, "%s: event %zu length %llu, want %llu", ctx, i,
                  (unsigned long long)g->total, (unsigned long long)w->total);
    ck_assert_msg(g->len == w->len, "%s: event %zu byte count %zu, want %zu", ctx, i,
                  g->len, w->len);
    ck_assert_msg(memcmp(ev_bytes(got, i), ev_bytes(want, i), g->len) == 0,
                  "%s: event %zu bytes differ", ctx, i);
  }
  ck_assert_msg(got->n == want->n, "%s: %zu events, want %zu", ctx, got->n, want->n);
}

/* --------------------------------------------------------------- recorder */

typedef struct {
  clink__framer f;
  events got;
  size_t stop_at;      /* call stop() from the callback producing event #stop_at */
  int stop_called;
} rec;

static void on_line(void *ud, const char *line, size_t len) {
  rec *r = ud;
  ck_assert_msg(!r->stop_called, "line_cb called after stop()");
  ck_assert_uint_gt(len, 0);
  ck_assert_uint_le(len, r->f.max_line);
  /* Zero-copy: the line points into the framer's own buffer. */
  ck_assert_msg(line >= r->f.buf && line + len <= r->f.buf + r->f.cap,
                "line does not point into the framer's buffer");
  ck_assert_ptr_null(memchr(line, '\n', len));
  events_add(&r->got, EV_LINE, 0, line, len, len);
  if (r->stop_at != 0 && r->got.n == r->stop_at) {
    r->stop_called = 1;
    clink__framer_stop(&r->f);
  }
}

static void on_error(void *ud, int err, const char *prefix, size_t prefix_len,
                     uint64_t total_len) {
  rec *r = ud;
  ck_assert_msg(!r->stop_called, "error_cb called after stop()");
  ck_assert_uint_le(prefix_len, CLINK__FRAMER_PREFIX);
  if (err == CLINK_ELINE_TOO_LONG)
    ck_assert_uint_gt(total_len, r->f.max_line);
  else
    ck_assert_int_eq(err, UV_ENOMEM); /* given up by clink__framer_drop() */
  events_add(&r->got, EV_LONG, err, prefix, prefix_len, total_len);
  if (r->stop_at != 0 && r->got.n == r->stop_at) {
    r->stop_called = 1;
    clink__framer_stop(&r->f);
  }
}

static void rec_init(rec *r, size_t max_line) {
  memset(r, 0, sizeof(*r));
  ck_assert_int_eq(clink__framer_init(&r->f, max_line, on_line, on_error, r), 0);
}

static void rec_free(rec *r) {
  clink__framer_free(&r->f);
  events_free(&r->got);
}

/* Never more than one maximal line and a '\r' is held back (white-box). */
static void check_pending(const rec *r) {
  if (!r->f.stopped) ck_assert_uint_le(r->f.end - r->f.start, r->f.max_line + 1);
}

static void feed(rec *r, const char *p, size_t len) {
  ck_assert_int_eq(clink__framer_feed(&r->f, p, len), 0);
  check_pending(r);
}

/* The zero-copy path: reserve, write at most the offered space, commit. */
static void feed_zc(rec *r, const char *p, size_t len) {
  while (len > 0) {
    char *dst;
    size_t room;
    ck_assert_int_eq(clink__framer_reserve(&r->f, &dst, &room), 0);
    ck_assert_uint_ge(room, r->f.min_read);
    ck_assert_msg(dst >= r->f.buf && dst + room == r->f.buf + r->f.cap,
                  "reserve() space is not the tail of the buffer");
    size_t n = len < room ? len : room;
    memcpy(dst, p, n);
    ck_assert_int_eq(clink__framer_commit(&r->f, n), 0);
    check_pending(r);
    p += n;
    len -= n;
  }
}

static void expect_counters(const rec *r, const events *want) {
  ck_assert_uint_eq(r->f.lines, want->nlines);
  ck_assert_uint_eq(r->f.long_lines, want->nlong);
}

/* Feeds in[0..len) cut at cuts[0..ncuts) (non-decreasing), then finish(). */
static void run_cuts(const char *in, size_t len, size_t max_line, const size_t *cuts,
                     size_t ncuts, int zero_copy, const events *want, const char *ctx) {
  rec r;
  rec_init(&r, max_line);
  size_t at = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : len;
    if (zero_copy)
      feed_zc(&r, in + at, to - at);
    else
      feed(&r, in + at, to - at);
    at = to;
  }
  clink__framer_finish(&r.f);
  expect_events(&r.got, want, ctx);
  expect_counters(&r, want);
  rec_free(&r);
}

/* ------------------------------------------------------------------- PRNG */

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static size_t rng_below(uint64_t *s, size_t n) { return n == 0 ? 0 : (size_t)(rng_next(s) % n); }

/* ====================================================== 1. every split point */

/* Several lines: "\r\n", blank/empty lines, whitespace, a line that is a lone
 * '\r', a bare '\r' inside a line, lines around max_line 16, and an
 * unterminated final line ending in '\r'. */
static const char split_input[] =
    "{\"type\":\"a\"}\r\n"
    "\n"
    "\r\n"
    "plain line\n"
    "   \n"
    "\r\r\n"
    "mid\rdle\n"
    "\n\n"
    "abcdefghijklmnopqrstuvwxyz0123456789\r\n"
    "0123456789abcdef\r\n"
    "0123456789abcdefg\n"
    "0123456789abcde\r\r\n"
    "last\r";

static const size_t split_max_lines[] = {1024, 16, 4, 1};

START_TEST(two_chunks_every_offset) {
  const char *in = split_input;
  size_t len = sizeof(split_input) - 1;
  for (size_t m = 0; m < ARRAY_LEN(split_max_lines); m++) {
    events want = {0};
    reference(in, len, split_max_lines[m], &want);
    for (size_t cut = 0; cut <= len; cut++) {
      char ctx[96];
      snprintf(ctx, sizeof(ctx), "max_line %zu, cut %zu, %s", split_max_lines[m], cut,
               _i ? "reserve/commit" : "feed");
      run_cuts(in, len, split_max_lines[m], &cut, 1, _i, &want, ctx);
    }
    events_free(&want);
  }
}
END_TEST

static const char split3_input[] = "ab\r\n\ncd\r\r\nlonglonglong\r\nx\n\r\ne\rf\nlong\rlong\r";

START_TEST(three_chunks_every_pair) {
  const char *in = split3_input;
  size_t len = sizeof(split3_input) - 1;
  static const size_t max_lines[] = {1024, 4};
  for (size_t m = 0; m < 2; m++) {
    events want = {0};
    reference(in, len, max_lines[m], &want);
    for (size_t a = 0; a <= len; a++) {
      for (size_t b = a; b <= len; b++) {
        size_t cuts[2] = {a, b};
        char ctx[96];
        snprintf(ctx, sizeof(ctx), "max_line %zu, cuts %zu,%zu, %s", max_lines[m], a, b,
                 _i ? "reserve/commit" : "feed");
        run_cuts(in, len, max_lines[m], cuts, 2, _i, &want, ctx);
      }
    }
    events_free(&want);
  }
}
END_TEST

/* The reference itself, on a hand-checked input, so a broken reference cannot
 * make every comparison pass. */
START_TEST(reference_splitter_sanity) {
  events e = {0};
  reference(split3_input, sizeof(split3_input) - 1, 4, &e);
  /* "ab", "cd\r", long "longlonglong"(12), "x", "e\rf", long "long\rlong"(9) */
  ck_assert_uint_eq(e.n, 6);
  ck_assert_int_eq(e.ev[0].kind, EV_LINE);
  ck_assert_mem_eq(ev_bytes(&e, 0), "ab", 2);
  ck_assert_uint_eq(e.ev[1].len, 3);
  ck_assert_mem_eq(ev_bytes(&e, 1), "cd\r", 3);
  ck_assert_int_eq(e.ev[2].kind, EV_LONG);
  ck_assert_uint_eq(e.ev[2].total, 12);
  ck_assert_mem_eq(ev_bytes(&e, 3), "x", 1);
  ck_assert_mem_eq(ev_bytes(&e, 4), "e\rf", 3);
  ck_assert_int_eq(e.ev[5].kind, EV_LONG);
  ck_assert_uint_eq(e.ev[5].total, 9);
  events_free(&e);
}
END_TEST

/* ======================================================= 2. random chunking */

/* Lines of random length 0..3000 of random bytes other than '\n' (so '\r'
 * shows up inside lines too), "\n" or "\r\n" terminated, the last one
 * sometimes unterminated. */
static void random_input(uint64_t *s, bytes *in) {
  size_t nlines = rng_below(s, 24);
  for (size_t l = 0; l < nlines; l++) {
    size_t n = rng_below(s, 3001);
    /* Some lines are made of '\r' and one other byte, to put '\r' at chunk
     * boundaries often. */
    int cr_heavy = rng_below(s, 8) == 0;
    for (size_t i = 0; i < n; i++) {
      char c;
      if (cr_heavy) {
        c = rng_below(s, 2) ? '\r' : 'x';
      } else {
        do c = (char)rng_below(s, 256);
        while (c == '\n');
      }
      bytes_add(in, &c, 1);
    }
    if (l + 1 == nlines && rng_below(s, 3) == 0) break; /* unterminated */
    bytes_adds(in, rng_below(s, 2) ? "\r\n" : "\n");
  }
}

static size_t random_chunk(uint64_t *s) {
  switch (rng_below(s, 4)) {
    case 0: return 1 + rng_below(s, 4);
    case 1: return 1 + rng_below(s, 64);
    case 2: return 1 + rng_below(s, 4096);
    default: return 1 + rng_below(s, 80000);
  }
}

static const size_t random_max_lines[] = {4096, 3000, 1500, 100, 17};

#define SEEDS_PER_ITER 50
#define SEED_ITERS 10 /* 500 seeds */

START_TEST(random_chunks_match_reference) {
  bytes in = {0};
  events want = {0};
  for (uint64_t seed = (uint64_t)_i * SEEDS_PER_ITER;
       seed < (uint64_t)(_i + 1) * SEEDS_PER_ITER; seed++) {
    uint64_t s = seed * 7919 + 1;
    in.len = 0;
    random_input(&s, &in);
    size_t max_line = random_max_lines[rng_below(&s, ARRAY_LEN(random_max_lines))];
    events_clear(&want);
    reference(in.p, in.len, max_line, &want);

    char ctx[96];
    /* feed() in random chunks. */
    rec r;
    rec_init(&r, max_line);
    for (size_t at = 0; at < in.len;) {
      size_t n = random_chunk(&s);
      if (n > in.len - at) n = in.len - at;
      feed(&r, in.p + at, n);
      at += n;
    }
    clink__framer_finish(&r.f);
    snprintf(ctx, sizeof(ctx), "seed %llu feed (max_line %zu, %zu bytes)",
             (unsigned long long)seed, max_line, in.len);
    expect_events(&r.got, &want, ctx);
    expect_counters(&r, &want);
    rec_free(&r);

    /* reserve()/commit(): a random piece no larger than the offered space. */
    rec_init(&r, max_line);
    for (size_t at = 0; at < in.len;) {
      char *dst;
      size_t room;
      ck_assert_int_eq(clink__framer_reserve(&r.f, &dst, &room), 0);
      ck_assert_uint_ge(room, r.f.min_read);
      ck_assert_msg(dst + room == r.f.buf + r.f.cap, "reserve() space overruns the buffer");
      size_t n = 1 + rng_below(&s, rng_below(&s, 2) ? 16 : room);
      if (n > room) n = room;
      if (n > in.len - at) n = in.len - at;
      memcpy(dst, in.p + at, n);
      ck_assert_int_eq(clink__framer_commit(&r.f, n), 0);
      at += n;
    }
    clink__framer_finish(&r.f);
    snprintf(ctx, sizeof(ctx), "seed %llu reserve/commit (max_line %zu, %zu bytes)",
             (unsigned long long)seed, max_line, in.len);
    expect_events(&r.got, &want, ctx);
    expect_counters(&r, &want);
    rec_free(&r);
  }
  events_free(&want);
  bytes_free(&in);
}
END_TEST

/* ================================================ 3. over-long lines anywhere */

#define SMALL_MAX 16

/* An over-long line of n bytes: lowercase letters in a non-repeating-looking
 * pattern (so a wrong prefix offset shows), never '\r' or '\n'. Short lines
 * use only uppercase letters and digits, so a leaked byte is visible. */
static void add_long(bytes *b, size_t n, size_t salt) {
  for (size_t i = 0; i < n; i++) {
    char c = (char)('a' + (i * 7 + salt + i / 26) % 26);
    bytes_add(b, &c, 1);
  }
}

static int has_lowercase(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] >= 'a' && p[i] <= 'z') return 1;
  return 0;
}

enum { POS_FIRST, POS_MIDDLE, POS_LAST, POS_LAST_UNTERMINATED, POS_ONLY, POS_TWICE, POS_COUNT };

static const size_t long_lens[] = {SMALL_MAX + 1, SMALL_MAX + 2, 63, 64, 65, 300, 5000};

/* Chunkings: whole, 1 byte, 7 bytes, max_line+1, max_line+2, and reserve/commit. */
static void feed_chunked(rec *r, const char *p, size_t len, int mode) {
  static const size_t step[] = {0, 1, 7, SMALL_MAX + 1, SMALL_MAX + 2};
  if (mode == 5) {
    for (size_t at = 0; at < len; at += 3) feed_zc(r, p + at, len - at < 3 ? len - at : 3);
    return;
  }
  size_t st = step[mode] ? step[mode] : len;
  for (size_t at = 0; at < len; at += st) feed(r, p + at, len - at < st ? len - at : st);
}

START_TEST(long_line_at_every_position) {
  bytes in = {0};
  events want = {0};
  for (size_t li = 0; li < ARRAY_LEN(long_lens); li++) {
    size_t n = long_lens[li];
    for (int pos = 0; pos < POS_COUNT; pos++) {
      for (int crlf = 0; crlf < 2; crlf++) {
        const char *term = crlf ? "\r\n" : "\n";
        size_t nlong = pos == POS_TWICE ? 2 : 1;
        in.len = 0;
        if (pos != POS_FIRST && pos != POS_ONLY) {
          bytes_adds(&in, "S1");
          bytes_adds(&in, term);
        }
        add_long(&in, n, 0);
        if (pos != POS_LAST_UNTERMINATED) bytes_adds(&in, term);
        if (pos == POS_TWICE) {
          add_long(&in, n + 5, 3);
          bytes_adds(&in, term);
        }
        if (pos == POS_FIRST || pos == POS_MIDDLE || pos == POS_TWICE) {
          bytes_adds(&in, "S2-SHORT");
          bytes_adds(&in, term);
        }
        events_clear(&want);
        reference(in.p, in.len, SMALL_MAX, &want);
        ck_assert_uint_eq(want.nlong, nlong);

        for (int mode = 0; mode < 6; mode++) {
          char ctx[96];
          snprintf(ctx, sizeof(ctx), "len %zu, position %d, %s, chunking %d", n, pos,
                   crlf ? "crlf" : "lf", mode);
          rec r;
          rec_init(&r, SMALL_MAX);
          feed_chunked(&r, in.p, in.len, mode);
          clink__framer_finish(&r.f);
          expect_events(&r.got, &want, ctx);
          expect_counters(&r, &want);

          /* Spelled out, independently of the reference. */
          size_t seen_long = 0;
          for (size_t i = 0; i < r.got.n; i++) {
            const event *e = &r.got.ev[i];
            if (e->kind == EV_LINE) {
              ck_assert_msg(!has_lowercase(ev_bytes(&r.got, i), e->len),
                            "%s: bytes of the long line leaked into a line", ctx);
              continue;
            }
            size_t want_len = seen_long == 0 ? n : n + 5;
            bytes pat = {0};
            add_long(&pat, want_len, seen_long == 0 ? 0 : 3);
            ck_assert_int_eq(e->err, CLINK_ELINE_TOO_LONG);
            /* The '\r' of "\r\n" is not counted in total_len. */
            ck_assert_uint_eq(e->total, want_len);
            ck_assert_uint_eq(e->len, want_len < 64 ? want_len : 64);
            ck_assert_mem_eq(ev_bytes(&r.got, i), pat.p, e->len);
            bytes_free(&pat);
            seen_long++;
          }
          ck_assert_uint_eq(seen_long, nlong);
          /* Resynchronised: the short line after it arrives intact. */
          if (pos == POS_FIRST || pos == POS_MIDDLE || pos == POS_TWICE) {
            const event *last = &r.got.ev[r.got.n - 1];
            ck_assert_int_eq(last->kind, EV_LINE);
            ck_assert_uint_eq(last->len, 8);
            ck_assert_mem_eq(ev_bytes(&r.got, r.got.n - 1), "S2-SHORT", 8);
          }
          rec_free(&r);
        }
      }
    }
  }
  events_free(&want);
  bytes_free(&in);
}
END_TEST

/* A "\r\n" after an over-long line, with the cut between '\r' and '\n' (and
 * everywhere else): total_len never counts the '\r'; a '\r' that is followed
 * by something other than '\n' is content and is counted. */
START_TEST(long_line_cr_before_lf_not_counted) {
  bytes in = {0};
  add_long(&in, 40, 0);
  bytes_adds(&in, "\r\n");
  add_long(&in, 30, 1);
  bytes_adds(&in, "\rZ\r\r\n");       /* 30 + "\rZ\r" = 33 */
  add_long(&in, 20, 2);
  bytes_adds(&in, "\r");              /* unterminated: trailing '\r' stripped */
  static const uint64_t totals[] = {40, 33, 20};
  for (size_t cut = 0; cut <= in.len; cut++) {
    for (int zc = 0; zc < 2; zc++) {
      rec r;
      rec_init(&r, SMALL_MAX);
      if (zc) {
        feed_zc(&r, in.p, cut);
        feed_zc(&r, in.p + cut, in.len - cut);
      } else {
        feed(&r, in.p, cut);
        feed(&r, in.p + cut, in.len - cut);
      }
      clink__framer_finish(&r.f);
      ck_assert_uint_eq(r.got.n, 3);
      for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(r.got.ev[i].kind, EV_LONG);
        ck_assert_msg(r.got.ev[i].total == totals[i], "cut %zu: line %zu total %llu, want %llu",
                      cut, i, (unsigned long long)r.got.ev[i].total,
                      (unsigned long long)totals[i]);
        /* The prefix never includes a terminator's '\r'. */
        ck_assert_uint_eq(r.got.ev[i].len, totals[i]);
      }
      ck_assert_mem_eq(ev_bytes(&r.got, 1) + 30, "\rZ\r", 3);
      rec_free(&r);
    }
  }
  bytes_free(&in);
}
END_TEST

/* ============================================= 4. exactly max_line, and +1 */

START_TEST(exactly_max_line_delivered) {
  static const char *terms[] = {"\n", "\r\n", ""};
  for (size_t t = 0; t < 3; t++) {
    for (int lead = 0; lead < 2; lead++) {
      bytes in = {0};
      if (lead) bytes_adds(&in, "LEAD\n");
      for (size_t i = 0; i < SMALL_MAX; i++) bytes_addn(&in, (char)('A' + i), 1);
      bytes_adds(&in, terms[t]);
      for (size_t cut = 0; cut <= in.len; cut++) {
        rec r;
        rec_init(&r, SMALL_MAX);
        feed(&r, in.p, cut);
        feed(&r, in.p + cut, in.len - cut);
        /* Terminated: delivered before finish(). */
        if (t < 2) ck_assert_uint_eq(r.got.nlines, (size_t)lead + 1);
        clink__framer_finish(&r.f);
        ck_assert_uint_eq(r.got.nlong, 0);
        ck_assert_uint_eq(r.got.nlines, (size_t)lead + 1);
        size_t k = r.got.n - 1;
        ck_assert_uint_eq(r.got.ev[k].len, SMALL_MAX);
        ck_assert_mem_eq(ev_bytes(&r.got, k), "ABCDEFGHIJKLMNOP", SMALL_MAX);
        ck_assert_uint_eq(r.f.lines, (uint64_t)lead + 1);
        ck_assert_uint_eq(r.f.long_lines, 0);
        rec_free(&r);
      }
      bytes_free(&in);
    }
  }
}
END_TEST

START_TEST(max_line_plus_one_rejected) {
  static const char *terms[] = {"\n", "\r\n", ""};
  for (size_t t = 0; t < 3; t++) {
    bytes in = {0};
    for (size_t i = 0; i < SMALL_MAX + 1; i++) bytes_addn(&in, (char)('A' + i), 1);
    bytes_adds(&in, terms[t]);
    bytes_adds(&in, t < 2 ? "NEXT\n" : "");
    for (size_t cut = 0; cut <= in.len; cut++) {
      for (int zc = 0; zc < 2; zc++) {
        rec r;
        rec_init(&r, SMALL_MAX);
        if (zc) {
          feed_zc(&r, in.p, cut);
          feed_zc(&r, in.p + cut, in.len - cut);
        } else {
          feed(&r, in.p, cut);
          feed(&r, in.p + cut, in.len - cut);
        }
        clink__framer_finish(&r.f);
        ck_assert_uint_eq(r.got.nlong, 1);
        ck_assert_int_eq(r.got.ev[0].kind, EV_LONG);
        ck_assert_uint_eq(r.got.ev[0].total, SMALL_MAX + 1);
        ck_assert_uint_eq(r.got.ev[0].len, SMALL_MAX + 1);
        ck_assert_mem_eq(ev_bytes(&r.got, 0), "ABCDEFGHIJKLMNOPQ", SMALL_MAX + 1);
        ck_assert_uint_eq(r.f.long_lines, 1);
        if (t < 2) {
          ck_assert_uint_eq(r.got.n, 2);
          ck_assert_mem_eq(ev_bytes(&r.got, 1), "NEXT", 4);
        } else {
          ck_assert_uint_eq(r.got.n, 1);
        }
        rec_free(&r);
      }
    }
    bytes_free(&in);
  }
}
END_TEST

/* A max_line above the initial buffer: exactly max_line still fits whatever
 * the chunking, and with "\r\n" too. */
START_TEST(exactly_large_max_line_delivered) {
  const size_t max = 200000;
  for (int crlf = 0; crlf < 2; crlf++) {
    bytes in = {0};
    bytes_adds(&in, "HEAD\n");
    bytes_addn(&in, 'Q', max);
    bytes_adds(&in, crlf ? "\r\n" : "\n");
    bytes_addn(&in, 'R', max + 1);
    bytes_adds(&in, crlf ? "\r\n" : "\n");
    bytes_addn(&in, 'S', max);
    for (int mode = 0; mode < 3; mode++) {
      rec r;
      rec_init(&r, max);
      size_t st = mode == 0 ? in.len : mode == 1 ? 4093 : 65536;
      for (size_t at = 0; at < in.len; at += st) {
        size_t n = in.len - at < st ? in.len - at : st;
        if (mode == 2)
          feed_zc(&r, in.p + at, n);
        else
          feed(&r, in.p + at, n);
      }
      clink__framer_finish(&r.f);
      ck_assert_uint_eq(r.got.n, 4);
      ck_assert_uint_eq(r.got.ev[1].len, max);
      ck_assert_int_eq(ev_bytes(&r.got, 1)[0], 'Q');
      ck_assert_int_eq(r.got.ev[2].kind, EV_LONG);
      ck_assert_uint_eq(r.got.ev[2].total, max + 1);
      ck_assert_uint_eq(r.got.ev[3].len, max);
      ck_assert_int_eq(ev_bytes(&r.got, 3)[max - 1], 'S');
      ck_assert_uint_le(r.f.cap, max + 2 + r.f.min_read);
      rec_free(&r);
    }
    bytes_free(&in);
  }
}
END_TEST

/* ================================================================ 5. finish */

START_TEST(finish_delivers_unterminated_line) {
  rec r;
  rec_init(&r, 1024);
  feed(&r, "one\ntw", 6);
  ck_assert_uint_eq(r.got.n, 1);
  feed(&r, "o", 1);
  ck_assert_uint_eq(r.got.n, 1);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 2);
  ck_assert_uint_eq(r.got.ev[1].len, 3);
  ck_assert_mem_eq(ev_bytes(&r.got, 1), "two", 3);
  ck_assert_uint_eq(r.f.lines, 2);
  /* A second finish() has nothing left to deliver. */
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 2);
  /* The framer is reusable after finish(). */
  feed(&r, "three", 5);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 3);
  ck_assert_mem_eq(ev_bytes(&r.got, 2), "three", 5);
  rec_free(&r);
}
END_TEST

START_TEST(finish_strips_trailing_cr) {
  rec r;
  rec_init(&r, 1024);
  feed(&r, "x\r", 2);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 1);
  ck_assert_uint_eq(r.got.ev[0].len, 1);
  ck_assert_mem_eq(ev_bytes(&r.got, 0), "x", 1);
  rec_free(&r);
}
END_TEST

START_TEST(finish_on_empty_is_silent) {
  static const char *inputs[] = {"", "\n", "\r\n", "\r", "a\n", "a\r\n\n\r\n", "\n\n\n"};
  for (size_t i = 0; i < ARRAY_LEN(inputs); i++) {
    rec r;
    rec_init(&r, 1024);
    feed(&r, inputs[i], strlen(inputs[i]));
    size_t before = r.got.n;
    clink__framer_finish(&r.f);
    ck_assert_msg(r.got.n == before, "input %zu: finish() delivered something", i);
    clink__framer_finish(&r.f);
    ck_assert_uint_eq(r.got.n, before);
    rec_free(&r);
  }
}
END_TEST

START_TEST(finish_reports_unterminated_long_line) {
  rec r;
  rec_init(&r, SMALL_MAX);
  bytes in = {0};
  add_long(&in, 1000, 0);
  feed(&r, in.p, in.len);
  /* Not known to be finished until EOF. */
  ck_assert_uint_eq(r.got.n, 0);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 1);
  ck_assert_int_eq(r.got.ev[0].kind, EV_LONG);
  ck_assert_uint_eq(r.got.ev[0].total, 1000);
  ck_assert_uint_eq(r.f.long_lines, 1);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 1);
  bytes_free(&in);
  rec_free(&r);
}
END_TEST

/* ================================================================== 6. stop */

static const char stop_input[] = "L1\nL2\r\nLONGLONGLONGLONGLONG\nL3\nL4";

START_TEST(stop_from_callback) {
  /* _i: the event (1-based) whose callback calls stop(); event 3 is the
   * long-line report. Feed whole, byte by byte, or by reserve/commit. */
  size_t len = sizeof(stop_input) - 1;
  for (int mode = 0; mode < 3; mode++) {
    rec r;
    rec_init(&r, SMALL_MAX);
    r.stop_at = (size_t)_i;
    if (mode == 0) {
      feed(&r, stop_input, len);
    } else if (mode == 1) {
      for (size_t i = 0; i < len; i++) feed(&r, stop_input + i, 1);
    } else {
      for (size_t i = 0; i < len; i += 2) feed_zc(&r, stop_input + i, len - i < 2 ? len - i : 2);
    }
    ck_assert(r.stop_called);
    ck_assert_uint_eq(r.got.n, (size_t)_i);
    /* Later calls deliver nothing either (the callbacks assert it too). */
    feed(&r, "more\n", 5);
    feed_zc(&r, "more\n", 5);
    clink__framer_finish(&r.f);
    ck_assert_uint_eq(r.got.n, (size_t)_i);
    ck_assert_uint_eq(r.f.lines, r.got.nlines);
    rec_free(&r);
  }
}
END_TEST

START_TEST(stop_in_the_middle_of_a_big_feed) {
  bytes in = {0};
  for (int i = 0; i < 50000; i++) bytes_adds(&in, "0123456789\n");
  rec r;
  rec_init(&r, 64);
  r.stop_at = 3;
  feed(&r, in.p, in.len);
  ck_assert_uint_eq(r.got.n, 3);
  ck_assert_uint_eq(r.f.lines, 3);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 3);
  rec_free(&r);
  bytes_free(&in);
}
END_TEST

/* A caller that keeps reading after stop() (reserve/commit on every read)
 * must not make the buffer grow without bound. */
START_TEST(stopped_framer_stays_bounded) {
  rec r;
  rec_init(&r, 1024);
  r.stop_at = 1;
  feed(&r, "a\nb\n", 4);
  ck_assert(r.stop_called);
  size_t cap0 = r.f.cap;
  for (int i = 0; i < 1000; i++) {
    char *p;
    size_t room;
    ck_assert_int_eq(clink__framer_reserve(&r.f, &p, &room), 0);
    memset(p, 'z', room);
    ck_assert_int_eq(clink__framer_commit(&r.f, room), 0);
    ck_assert_msg(r.f.cap <= cap0 + r.f.max_line + 2 + r.f.min_read,
                  "buffer grew to %zu after stop()", r.f.cap);
  }
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 1);
  rec_free(&r);
}
END_TEST

/* ========================================================== 7. bounded buffer */

#define MIB ((size_t)1 << 20)

START_TEST(huge_line_keeps_buffer_bounded) {
  const size_t max = MIB, huge = 10 * MIB;
  char *in = malloc(huge + 16);
  ck_assert_ptr_nonnull(in);
  for (size_t i = 0; i < huge; i++) in[i] = (char)('a' + i % 26);
  memcpy(in + huge, "\r\nAFTER\n", 8);
  size_t total = huge + 8;

  rec r;
  rec_init(&r, max);
  size_t cap0 = r.f.cap;
  /* The implementation's bound: a pending line of max_line + 1 bytes (a '\r'
   * may follow) plus the min_read that reserve() always offers. */
  size_t bound = max + 2 + r.f.min_read;
  if (bound < cap0) bound = cap0;
  switch (_i) {
    case 0: /* one feed() */
      feed(&r, in, total);
      ck_assert_uint_le(r.f.cap, bound);
      break;
    case 1: /* 64 KiB feeds */
      for (size_t at = 0; at < total; at += 65536) {
        feed(&r, in + at, total - at < 65536 ? total - at : 65536);
        ck_assert_uint_le(r.f.cap, bound);
      }
      break;
    default: /* reserve/commit filling all the offered space */
      for (size_t at = 0; at < total;) {
        char *p;
        size_t room;
        ck_assert_int_eq(clink__framer_reserve(&r.f, &p, &room), 0);
        ck_assert_uint_le(r.f.cap, bound);
        size_t n = total - at < room ? total - at : room;
        memcpy(p, in + at, n);
        ck_assert_int_eq(clink__framer_commit(&r.f, n), 0);
        at += n;
      }
      break;
  }
  clink__framer_finish(&r.f);
  ck_assert_uint_le(r.f.cap, bound);
  ck_assert_uint_eq(r.got.n, 2);
  ck_assert_int_eq(r.got.ev[0].kind, EV_LONG);
  ck_assert_uint_eq(r.got.ev[0].total, huge);
  ck_assert_uint_eq(r.got.ev[0].len, 64);
  ck_assert_mem_eq(ev_bytes(&r.got, 0), in, 64);
  ck_assert_uint_eq(r.got.ev[1].len, 5);
  ck_assert_mem_eq(ev_bytes(&r.got, 1), "AFTER", 5);
  rec_free(&r);
  free(in);
}
END_TEST

START_TEST(no_allocation_per_line) {
  const int nlines = 100000;
  bytes in = {0};
  uint64_t s = 42;
  for (int i = 0; i < nlines; i++) {
    char line[48];
    int n = snprintf(line, sizeof(line), "{\"n\":%d,\"pad\":\"%.*s\"}", i,
                     (int)rng_below(&s, 20), "xxxxxxxxxxxxxxxxxxxx");
    bytes_add(&in, line, (size_t)n);
    bytes_adds(&in, i % 3 == 0 ? "\r\n" : "\n");
  }
  rec r;
  rec_init(&r, MIB);
  /* Warm-up: the first 1000 lines. */
  size_t warm = 0;
  for (int k = 0; k < 1000; warm++)
    if (in.p[warm] == '\n') k++;
  feed(&r, in.p, warm);
  ck_assert_uint_eq(r.f.lines, 1000);
  char *buf0 = r.f.buf;
  size_t cap0 = r.f.cap;
  for (size_t at = warm; at < in.len;) {
    size_t n = 1 + rng_below(&s, 5000);
    if (n > in.len - at) n = in.len - at;
    if (rng_below(&s, 2))
      feed(&r, in.p + at, n);
    else
      feed_zc(&r, in.p + at, n);
    at += n;
    ck_assert_ptr_eq(r.f.buf, buf0);
    ck_assert_uint_eq(r.f.cap, cap0);
  }
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.f.lines, (uint64_t)nlines);
  ck_assert_uint_eq(r.got.n, (size_t)nlines);
  ck_assert_ptr_eq(r.f.buf, buf0);
  ck_assert_uint_eq(r.f.cap, cap0);
  rec_free(&r);
  bytes_free(&in);
}
END_TEST

/* Lines well below the initial capacity never make it grow. (The buffer keeps
 * min_read bytes free for reserve(), so the largest line that cannot cause
 * growth is cap - min_read - 1 with its '\r'.) */
START_TEST(no_growth_for_lines_below_initial_cap) {
  rec r;
  rec_init(&r, MIB);
  char *buf0 = r.f.buf;
  size_t cap0 = r.f.cap;
  size_t limit = cap0 - r.f.min_read - 2;
  uint64_t s = 7;
  bytes in = {0};
  for (int i = 0; i < 200; i++) {
    size_t n = i % 10 == 0 ? limit : rng_below(&s, limit + 1);
    bytes_addn(&in, 'y', n);
    bytes_adds(&in, "\r\n");
  }
  for (size_t at = 0; at < in.len;) {
    size_t n = 1 + rng_below(&s, 40000);
    if (n > in.len - at) n = in.len - at;
    if (rng_below(&s, 2))
      feed(&r, in.p + at, n);
    else
      feed_zc(&r, in.p + at, n);
    at += n;
    ck_assert_ptr_eq(r.f.buf, buf0);
    ck_assert_uint_eq(r.f.cap, cap0);
  }
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.f.long_lines, 0);
  rec_free(&r);
  bytes_free(&in);
}
END_TEST

/* ====================================================== 8. init and counters */

START_TEST(init_rejects_bad_arguments) {
  clink__framer f;
  ck_assert_int_eq(clink__framer_init(&f, 0, on_line, on_error, NULL), UV_EINVAL);
  ck_assert_int_eq(clink__framer_init(&f, 16, NULL, on_error, NULL), UV_EINVAL);
  ck_assert_int_eq(clink__framer_init(NULL, 16, on_line, on_error, NULL), UV_EINVAL);
  /* error_cb is optional. */
  ck_assert_int_eq(clink__framer_init(&f, 1, on_line, NULL, NULL), 0);
  ck_assert_uint_eq(f.lines, 0);
  ck_assert_uint_eq(f.long_lines, 0);
  clink__framer_free(&f);
  ck_assert_ptr_null(f.buf);
  clink__framer_free(&f); /* idempotent */
  clink__framer_free(NULL);
}
END_TEST

START_TEST(commit_more_than_reserved_is_einval) {
  rec r;
  rec_init(&r, 64);
  char *p;
  size_t room;
  ck_assert_int_eq(clink__framer_reserve(&r.f, &p, &room), 0);
  memcpy(p, "ok\n", 3);
  ck_assert_int_eq(clink__framer_commit(&r.f, room + 1), UV_EINVAL);
  ck_assert_uint_eq(r.got.n, 0);
  ck_assert_int_eq(clink__framer_commit(&r.f, 3), 0);
  ck_assert_uint_eq(r.got.n, 1);
  rec_free(&r);
}
END_TEST

START_TEST(counters_count_lines_and_long_lines) {
  static const char in[] =
      "a\n\nbb\r\n\r\nTOO-LONG-LINE\nccc\nALSO-TOO-LONG\r\nd\nLAST-IS-TOO-LONG";
  rec r;
  rec_init(&r, 4);
  feed(&r, in, sizeof(in) - 1);
  ck_assert_uint_eq(r.f.lines, 4);
  ck_assert_uint_eq(r.f.long_lines, 2);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.f.lines, 4);
  ck_assert_uint_eq(r.f.long_lines, 3);
  ck_assert_uint_eq(r.got.nlines, 4);
  ck_assert_uint_eq(r.got.nlong, 3);
  rec_free(&r);
}
END_TEST

static size_t null_err_lines;
static void count_line(void *ud, const char *line, size_t len) {
  (void)ud;
  ck_assert_ptr_null(memchr(line, 'X', len));
  null_err_lines++;
}

START_TEST(long_lines_without_error_cb_are_dropped_silently) {
  clink__framer f;
  ck_assert_int_eq(clink__framer_init(&f, 4, count_line, NULL, NULL), 0);
  null_err_lines = 0;
  ck_assert_int_eq(clink__framer_feed(&f, "XXXXXXXXXX\nok\nXXXXX", 19), 0);
  ck_assert_int_eq(clink__framer_feed(&f, "XXXXX\r\nfine\n", 12), 0);
  clink__framer_finish(&f);
  ck_assert_uint_eq(null_err_lines, 2);
  ck_assert_uint_eq(f.lines, 2);
  ck_assert_uint_eq(f.long_lines, 2);
  clink__framer_free(&f);
}
END_TEST

/* ============================================================ 9. guard page */

typedef struct {
  char *base;
  size_t page;
} guarded;

/* Two pages, the second PROT_NONE; returns the address of the guard. */
static char *guard_alloc(guarded *g) {
  g->page = (size_t)sysconf(_SC_PAGESIZE);
  g->base = mmap(NULL, 2 * g->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(g->base, MAP_FAILED);
  ck_assert_int_eq(mprotect(g->base + g->page, g->page, PROT_NONE), 0);
  return g->base + g->page;
}

static void guard_free(guarded *g) { ck_assert_int_eq(munmap(g->base, 2 * g->page), 0); }

static const char *guard_inputs[] = {
    "", "a", "a\n", "a\r", "a\r\n", "\n", "\r", "\r\n", "one\ntwo", "one\ntwo\n", "one\ntwo\r",
    "0123456789abcdef", "0123456789abcdef\n", "0123456789abcdefg", "0123456789abcdefg\r\n",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n",
};

/* Input placed so its last byte is the last readable byte. */
START_TEST(input_ending_at_guard_page) {
  guarded g;
  char *guard = guard_alloc(&g);
  for (size_t i = 0; i < ARRAY_LEN(guard_inputs); i++) {
    const char *src = guard_inputs[i];
    size_t len = strlen(src);
    char *in = guard - len;
    memcpy(in, src, len);
    events want = {0};
    reference(in, len, SMALL_MAX, &want);
    for (size_t cut = 0; cut <= len; cut++) {
      rec r;
      rec_init(&r, SMALL_MAX);
      feed(&r, in, cut);
      feed(&r, in + cut, len - cut); /* ends exactly at the guard */
      clink__framer_finish(&r.f);
      char ctx[64];
      snprintf(ctx, sizeof(ctx), "guard input %zu, cut %zu", i, cut);
      expect_events(&r.got, &want, ctx);
      rec_free(&r);
    }
    events_free(&want);
  }
  guard_free(&g);
}
END_TEST

/* White-box: the framer's own buffer ends at a guard page (we swap in a
 * page-sized buffer with min_read 1 so that it never reallocates), and the
 * data fills it to the last byte. Catches reads past the buffer's end while
 * scanning. */
START_TEST(framer_buffer_ending_at_guard_page) {
  guarded g;
  char *guard = guard_alloc(&g);
  static const char *tails[] = {"", "\n", "\r", "\r\n", "X", "X\r"};
  for (size_t t = 0; t < ARRAY_LEN(tails); t++) {
    for (int zc = 0; zc < 2; zc++) {
      size_t page = g.page;
      bytes in = {0};
      bytes_adds(&in, "first\n");
      bytes_addn(&in, 'm', page - in.len - strlen(tails[t]));
      bytes_adds(&in, tails[t]);
      ck_assert_uint_eq(in.len, page);

      rec r;
      rec_init(&r, page);
      char *own = r.f.buf;
      size_t own_cap = r.f.cap;
      r.f.buf = guard - page;
      r.f.cap = page;
      r.f.min_read = 1;
      if (zc) {
        char *p;
        size_t room;
        ck_assert_int_eq(clink__framer_reserve(&r.f, &p, &room), 0);
        ck_assert_ptr_eq(p + room, guard);
        ck_assert_uint_eq(room, page);
        memcpy(p, in.p, page);
        ck_assert_int_eq(clink__framer_commit(&r.f, page), 0);
      } else {
        feed(&r, in.p, page);
      }
      ck_assert_ptr_eq(r.f.buf, guard - page);
      clink__framer_finish(&r.f);
      events want = {0};
      reference(in.p, in.len, page, &want);
      char ctx[64];
      snprintf(ctx, sizeof(ctx), "guarded buffer, tail %zu, %s", t, zc ? "reserve/commit" : "feed");
      expect_events(&r.got, &want, ctx);
      events_free(&want);
      r.f.buf = own;
      r.f.cap = own_cap;
      rec_free(&r);
      bytes_free(&in);
    }
  }
  guard_free(&g);
}
END_TEST

/* ================================================ 9. memory: drop and shrink */

/* A reader that cannot grow the buffer gives the pending line up: reported
 * once with the error it names, its first bytes and its full length; the
 * stream goes on with the next line, and no memory is needed for that. */
START_TEST(drop_gives_up_the_pending_line_and_resyncs) {
  rec r;
  rec_init(&r, MIB);
  bytes in = {0};
  bytes_adds(&in, "first\n");
  bytes_addn(&in, 'q', 100000);
  bytes_adds(&in, "\r\nnext\n");
  size_t cut = 6 + 40000;
  feed_zc(&r, in.p, cut);
  char *buf0 = r.f.buf;
  size_t cap0 = r.f.cap;
  clink__framer_drop(&r.f, UV_ENOMEM);
  ck_assert_uint_eq(r.f.end - r.f.start, 0);
  /* The rest goes through the buffer as it is. */
  r.f.min_read = r.f.init_min_read;
  feed_zc(&r, in.p + cut, in.len - cut);
  ck_assert_ptr_eq(r.f.buf, buf0);
  ck_assert_uint_eq(r.f.cap, cap0);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 3);
  ck_assert_int_eq(r.got.ev[0].kind, EV_LINE);
  ck_assert_int_eq(r.got.ev[1].kind, EV_LONG);
  ck_assert_int_eq(r.got.ev[1].err, UV_ENOMEM);
  ck_assert_uint_eq(r.got.ev[1].total, 100000); /* the "\r\n" is not counted */
  ck_assert_uint_eq(r.got.ev[1].len, CLINK__FRAMER_PREFIX);
  ck_assert_mem_eq(ev_bytes(&r.got, 1), in.p + 6, CLINK__FRAMER_PREFIX);
  ck_assert_int_eq(r.got.ev[2].kind, EV_LINE);
  ck_assert_mem_eq(ev_bytes(&r.got, 2), "next", 4);
  ck_assert_uint_eq(r.f.lines, 2);
  ck_assert_uint_eq(r.f.long_lines, 0);
  ck_assert_uint_eq(r.f.dropped_lines, 1);
  rec_free(&r);
  bytes_free(&in);
}
END_TEST

START_TEST(drop_edge_cases) {
  rec r;
  /* A pending '\r' may be half of "\r\n": kept, not counted. */
  rec_init(&r, MIB);
  feed(&r, "abc\r", 4);
  clink__framer_drop(&r.f, UV_ENOMEM);
  feed(&r, "\nnext\n", 6);
  ck_assert_uint_eq(r.got.n, 2);
  ck_assert_int_eq(r.got.ev[0].err, UV_ENOMEM);
  ck_assert_uint_eq(r.got.ev[0].total, 3);
  ck_assert_mem_eq(ev_bytes(&r.got, 0), "abc", 3);
  ck_assert_mem_eq(ev_bytes(&r.got, 1), "next", 4);
  rec_free(&r);

  /* Nothing pending: nothing to give up. */
  rec_init(&r, MIB);
  feed(&r, "a\n", 2);
  clink__framer_drop(&r.f, UV_ENOMEM);
  feed(&r, "b\n", 2);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 2);
  ck_assert_uint_eq(r.f.dropped_lines, 0);
  rec_free(&r);

  /* A line already skipped as too long stays reported as too long. */
  rec_init(&r, 10);
  bytes in = {0};
  bytes_addn(&in, 'x', 20);
  feed(&r, in.p, in.len);
  clink__framer_drop(&r.f, UV_ENOMEM);
  feed(&r, "\n", 1);
  ck_assert_uint_eq(r.got.n, 1);
  ck_assert_int_eq(r.got.ev[0].err, CLINK_ELINE_TOO_LONG);
  ck_assert_uint_eq(r.got.ev[0].total, 20);
  rec_free(&r);
  bytes_free(&in);

  /* The stream ends inside a given-up line: finish() reports it. */
  rec_init(&r, MIB);
  feed(&r, "zzz", 3);
  clink__framer_drop(&r.f, UV_ENOMEM);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 1);
  ck_assert_int_eq(r.got.ev[0].err, UV_ENOMEM);
  ck_assert_uint_eq(r.got.ev[0].total, 3);
  rec_free(&r);
}
END_TEST

/* An idle framer gives back what a big line made it take. */
START_TEST(shrink_returns_to_initial_capacity) {
  rec r;
  rec_init(&r, 16 * MIB);
  size_t cap0 = r.f.cap, min0 = r.f.min_read;
  bytes in = {0};
  bytes_addn(&in, 'b', 3 * MIB);
  bytes_adds(&in, "\ntail-part");
  r.f.min_read = 64 * 1024; /* as a reader that grew its reads would have */
  feed_zc(&r, in.p, in.len);
  ck_assert_uint_gt(r.f.cap, 3 * MIB);
  /* A partial line is pending: nothing to give back yet, but reads are
   * small again. */
  ck_assert_int_eq(clink__framer_shrink(&r.f), UV_EBUSY);
  ck_assert_uint_gt(r.f.cap, 3 * MIB);
  ck_assert_uint_eq(r.f.min_read, min0);
  feed(&r, "\n", 1);
  ck_assert_int_eq(clink__framer_shrink(&r.f), 0);
  ck_assert_uint_eq(r.f.cap, cap0);
  ck_assert_int_eq(clink__framer_shrink(&r.f), 0); /* already small */
  ck_assert_uint_eq(r.f.cap, cap0);
  /* And it still frames, lines longer than the small buffer included. */
  bytes_free(&in);
  bytes_addn(&in, 'c', cap0 * 3);
  bytes_adds(&in, "\nafter\n");
  feed_zc(&r, in.p, in.len);
  clink__framer_finish(&r.f);
  ck_assert_uint_eq(r.got.n, 4);
  ck_assert_uint_eq(r.got.ev[0].total, 3 * MIB);
  ck_assert_mem_eq(ev_bytes(&r.got, 1), "tail-part", 9);
  ck_assert_uint_eq(r.got.ev[2].total, cap0 * 3);
  ck_assert_mem_eq(ev_bytes(&r.got, 3), "after", 5);
  rec_free(&r);
  bytes_free(&in);
}
END_TEST

/* ================================================================== suite */

static Suite *framer_suite(void) {
  Suite *s = suite_create("framer");
  TCase *tc;

  tc = tcase_create("split_points");
  tcase_add_test(tc, reference_splitter_sanity);
  tcase_add_loop_test(tc, two_chunks_every_offset, 0, 2);
  tcase_add_loop_test(tc, three_chunks_every_pair, 0, 2);
  suite_add_tcase(s, tc);

  tc = tcase_create("random_chunking");
  tcase_add_loop_test(tc, random_chunks_match_reference, 0, SEED_ITERS);
  suite_add_tcase(s, tc);

  tc = tcase_create("long_lines");
  tcase_add_test(tc, long_line_at_every_position);
  tcase_add_test(tc, long_line_cr_before_lf_not_counted);
  tcase_add_test(tc, finish_reports_unterminated_long_line);
  tcase_add_test(tc, long_lines_without_error_cb_are_dropped_silently);
  suite_add_tcase(s, tc);

  tc = tcase_create("max_line_boundary");
  tcase_add_test(tc, exactly_max_line_delivered);
  tcase_add_test(tc, max_line_plus_one_rejected);
  tcase_add_test(tc, exactly_large_max_line_delivered);
  suite_add_tcase(s, tc);

  tc = tcase_create("finish");
  tcase_add_test(tc, finish_delivers_unterminated_line);
  tcase_add_test(tc, finish_strips_trailing_cr);
  tcase_add_test(tc, finish_on_empty_is_silent);
  suite_add_tcase(s, tc);

  tc = tcase_create("stop");
  tcase_add_loop_test(tc, stop_from_callback, 1, 5);
  tcase_add_test(tc, stop_in_the_middle_of_a_big_feed);
  tcase_add_test(tc, stopped_framer_stays_bounded);
  suite_add_tcase(s, tc);

  tc = tcase_create("bounded_buffer");
  tcase_add_loop_test(tc, huge_line_keeps_buffer_bounded, 0, 3);
  tcase_add_test(tc, no_allocation_per_line);
  tcase_add_test(tc, no_growth_for_lines_below_initial_cap);
  suite_add_tcase(s, tc);

  tc = tcase_create("init_and_counters");
  tcase_add_test(tc, init_rejects_bad_arguments);
  tcase_add_test(tc, commit_more_than_reserved_is_einval);
  tcase_add_test(tc, counters_count_lines_and_long_lines);
  suite_add_tcase(s, tc);

  tc = tcase_create("memory");
  tcase_add_test(tc, drop_gives_up_the_pending_line_and_resyncs);
  tcase_add_test(tc, drop_edge_cases);
  tcase_add_test(tc, shrink_returns_to_initial_capacity);
  suite_add_tcase(s, tc);

  tc = tcase_create("guard_page");
  tcase_add_test(tc, input_ending_at_guard_page);
  tcase_add_test(tc, framer_buffer_ending_at_guard_page);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) { return clink_test_run(framer_suite()); }
