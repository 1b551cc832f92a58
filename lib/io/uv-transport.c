#include "io/transport.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "wire/framer.h"
#include "base/internal.h"

/* After the child exits, how long stdout/stderr may stay open (a grandchild
 * holding them) before the exit is reported anyway. */
#define EXIT_EOF_WAIT_MS 1000
/* stderr lines longer than this reach the tail but not the line callback. */
#define STDERR_MAX_LINE ((size_t)64 * 1024)
/* Buffers start small (an idle session costs little) and grow while reads
 * keep filling them, up to READ_MAX per read (a streaming session reads in
 * big chunks). */
#define OUT_INITIAL_CAP ((size_t)4096)
#define ERR_INITIAL_CAP ((size_t)1024)
#define READ_MIN ((size_t)1024)
#define READ_MAX ((size_t)64 * 1024)
#define WRITE_IOV_MAX 64

typedef struct wreq {
  struct wreq *next;
  clink__write_cb cb;
  void *ud;
  size_t len; /* data plus '\n' */
  size_t off; /* bytes already sent */
  char data[];
} wreq;

enum close_phase { PHASE_NONE, PHASE_EOF, PHASE_TERM, PHASE_KILL };

struct clink__transport {
  uv_loop_t *loop;
  uv_process_t proc;
  uv_pipe_t out;
  uv_pipe_t err;
  uv_poll_t in_poll;
  uv_timer_t timer; /* exit EOF wait, then close escalation */
  uv_timer_t defer; /* runs close work on the next loop turn */
  int in_fd;        /* parent end of the stdin socketpair */
  int handles_open;

  clink__framer out_framer;
  clink__framer err_framer;
  size_t out_offered, err_offered; /* space given to the last read */
  char *tail;
  size_t tail_cap, tail_len, tail_pos;

  wreq *wq_head, *wq_tail;
  size_t wq_bytes, wq_lines, wq_max_bytes, wq_max_lines;
  unsigned polling : 1;
  unsigned want_drain : 1;
  unsigned input_ended : 1; /* end_input() called */
  unsigned in_shut : 1;     /* stdin EOF sent */
  unsigned in_broken : 1;   /* EPIPE seen */
  unsigned spawned : 1;
  unsigned exited : 1;
  unsigned out_eof : 1;
  unsigned err_eof : 1;
  unsigned exit_reported : 1;
  unsigned closing : 1;
  unsigned finishing : 1;
  unsigned delivering : 1; /* inside framer commit/finish: buffers in use */
  unsigned trim_wanted : 1;
  unsigned tail_lost : 1; /* stderr bytes missed the tail (no memory) */
  enum close_phase phase;
  int64_t exit_status;
  int term_signal;
  uint64_t eof_grace_ms, term_grace_ms;

  clink__transport_cbs cbs;
  void *ud;
  clink__transport_close_cb close_cb;
  void *close_ud;
};

static void finish_close(clink__transport *t);
static void maybe_report_exit(clink__transport *t);
static void signal_child(clink__transport *t, int sig);

/* ---------------------------------------------------------------- memory */

static void transport_free(clink__transport *t) {
  for (wreq *w = t->wq_head, *n; w; w = n) {
    n = w->next;
    clink__free(w);
  }
  if (t->in_fd >= 0) close(t->in_fd);
  clink__framer_free(&t->out_framer);
  clink__framer_free(&t->err_framer);
  clink__free(t->tail);
  clink__free(t);
}

static void on_handle_closed(uv_handle_t *h) {
  clink__transport *t = h->data;
  if (--t->handles_open > 0) return;
  clink__transport_close_cb cb = t->close_cb;
  void *ud = t->close_ud;
  transport_free(t);
  if (cb) cb(ud);
}

static void close_handle(clink__transport *t, uv_handle_t *h) {
  if (h->data == NULL || uv_is_closing(h)) return;
  uv_close(h, on_handle_closed);
}

/* ------------------------------------------------------------ reading */

/* Offers the framer's free space to the next read. When memory is short the
 * read first falls back to the smallest size; if the pending line alone then
 * fills the buffer, that line is given up (reported with UV_ENOMEM once it
 * ends, see clink__framer_drop()) so that reading goes on. Never an EOF,
 * never a stalled stream. */
static void reserve_read(clink__framer *f, size_t *offered, uv_buf_t *buf) {
  char *p;
  size_t len;
  int rc = clink__framer_reserve(f, &p, &len);
  if (rc != 0) {
    f->min_read = f->init_min_read;
    rc = clink__framer_reserve(f, &p, &len);
  }
  if (rc != 0) {
    clink__framer_drop(f, UV_ENOMEM);
    rc = clink__framer_reserve(f, &p, &len);
  }
  if (rc != 0) {
    buf->base = NULL; /* libuv reports UV_ENOBUFS */
    buf->len = 0;
    return;
  }
  if (len > UINT_MAX) len = UINT_MAX;
  *offered = len;
  *buf = uv_buf_init(p, (unsigned int)len);
}

/* A read that filled all the space offered: the next one gets more. */
static void note_read(clink__framer *f, size_t offered, size_t n) {
  if (n == offered && f->min_read < READ_MAX) f->min_read *= 2;
}

static int trim_now(clink__transport *t) {
  int a = clink__framer_shrink(&t->out_framer);
  int b = clink__framer_shrink(&t->err_framer);
  if (a == 0 && b == 0) t->trim_wanted = 0;
  return a != 0 ? a : b;
}

/* Line callbacks run inside commit/finish, with lines pointing into the
 * framer's buffer: a trim asked for there waits until they return. */
static void commit_read(clink__transport *t, clink__framer *f, size_t n) {
  t->delivering = 1;
  clink__framer_commit(f, n);
  t->delivering = 0;
  if (t->trim_wanted && !t->closing) trim_now(t);
}

static void finish_stream(clink__transport *t, clink__framer *f) {
  t->delivering = 1;
  clink__framer_finish(f);
  t->delivering = 0;
}

/* No buffer at all for a stream (only if even the initial one is gone):
 * nothing can be read on, and a child that cannot write would wait forever.
 * End the process so that its exit is reported. */
static void stream_unreadable(clink__transport *t) {
  signal_child(t, SIGKILL);
}

/* --------------------------------------------------------------- stdout */

static void on_out_line(void *ud, const char *line, size_t len) {
  clink__transport *t = ud;
  if (t->closing) return;
  t->cbs.on_line(t->ud, line, len);
  if (t->closing) clink__framer_stop(&t->out_framer);
}

static void on_out_line_error(void *ud, int err, const char *prefix, size_t plen,
                              uint64_t total) {
  clink__transport *t = ud;
  if (t->closing || t->cbs.on_line_error == NULL) return;
  t->cbs.on_line_error(t->ud, err, prefix, plen, total);
  if (t->closing) clink__framer_stop(&t->out_framer);
}

static void alloc_out(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  clink__transport *t = h->data;
  reserve_read(&t->out_framer, &t->out_offered, buf);
}

static void on_out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  clink__transport *t = s->data;
  if (n > 0) {
    note_read(&t->out_framer, t->out_offered, (size_t)n);
    /* While closing, keep draining so the child never blocks on a full pipe,
     * but deliver nothing. */
    if (!t->closing) commit_read(t, &t->out_framer, (size_t)n);
    return;
  }
  if (n == 0) return;
  uv_read_stop(s);
  t->out_eof = 1;
  if (n == UV_ENOBUFS) {
    /* Not an end of stream: say so. */
    if (!t->closing && t->cbs.on_line_error != NULL)
      t->cbs.on_line_error(t->ud, UV_ENOMEM, "", 0, 0);
    stream_unreadable(t);
  } else if (!t->closing) {
    finish_stream(t, &t->out_framer);
  }
  maybe_report_exit(t);
}

/* --------------------------------------------------------------- stderr */

static void tail_append(clink__transport *t, const char *p, size_t n) {
  /* Allocated on first use: most CLIs never write to stderr. */
  if (t->tail == NULL && (t->tail = malloc(t->tail_cap)) == NULL) {
    t->tail_lost = 1; /* said by clink__transport_stderr_tail() */
    return;
  }
  if (n >= t->tail_cap) {
    memcpy(t->tail, p + n - t->tail_cap, t->tail_cap);
    t->tail_pos = 0;
    t->tail_len = t->tail_cap;
    return;
  }
  size_t first = t->tail_cap - t->tail_pos;
  if (first > n) first = n;
  memcpy(t->tail + t->tail_pos, p, first);
  memcpy(t->tail, p + first, n - first);
  t->tail_pos = (t->tail_pos + n) % t->tail_cap;
  t->tail_len = t->tail_len + n > t->tail_cap ? t->tail_cap : t->tail_len + n;
}

#define TAIL_LOST_NOTE "(stderr incomplete: out of memory) "

size_t clink__transport_stderr_tail(const clink__transport *t, char *buf, size_t len) {
  if (len == 0) return 0;
  size_t at = 0;
  if (t->tail_lost) {
    at = sizeof(TAIL_LOST_NOTE) - 1 < len - 1 ? sizeof(TAIL_LOST_NOTE) - 1 : len - 1;
    memcpy(buf, TAIL_LOST_NOTE, at);
  }
  if (t->tail == NULL) {
    buf[at] = '\0';
    return at;
  }
  size_t room = len - 1 - at;
  size_t n = t->tail_len < room ? t->tail_len : room;
  /* The newest n bytes end at tail_pos. */
  size_t start = (t->tail_pos + t->tail_cap - n) % t->tail_cap;
  size_t first = t->tail_cap - start;
  if (first > n) first = n;
  memcpy(buf + at, t->tail + start, first);
  memcpy(buf + at + first, t->tail, n - first);
  buf[at + n] = '\0';
  return at + n;
}

static void on_err_line(void *ud, const char *line, size_t len) {
  clink__transport *t = ud;
  if (t->closing || t->cbs.on_stderr_line == NULL) return;
  t->cbs.on_stderr_line(t->ud, line, len);
  if (t->closing) clink__framer_stop(&t->err_framer);
}

static void alloc_err(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  clink__transport *t = h->data;
  reserve_read(&t->err_framer, &t->err_offered, buf);
}

static void on_err_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  clink__transport *t = s->data;
  if (n > 0) {
    note_read(&t->err_framer, t->err_offered, (size_t)n);
    tail_append(t, buf->base, (size_t)n);
    if (!t->closing) commit_read(t, &t->err_framer, (size_t)n);
    return;
  }
  if (n == 0) return;
  uv_read_stop(s);
  t->err_eof = 1;
  if (n == UV_ENOBUFS)
    stream_unreadable(t);
  else if (!t->closing)
    finish_stream(t, &t->err_framer);
  maybe_report_exit(t);
}

int clink__transport_trim(clink__transport *t) {
  if (t == NULL) return UV_EINVAL;
  if (t->closing) return 0; /* everything is freed soon */
  t->trim_wanted = 1;
  if (t->delivering) return UV_EBUSY;
  return trim_now(t);
}

size_t clink__transport_heap_bytes(const clink__transport *t) {
  return sizeof(*t) + t->out_framer.cap + t->err_framer.cap + (t->tail ? t->tail_cap : 0) +
         t->wq_bytes + t->wq_lines * sizeof(wreq);
}

/* --------------------------------------------------------------- writes */

static void wq_pop_all(clink__transport *t, int status) {
  /* Detach first: a callback may queue new writes (which then fail fast) or
   * close the transport. */
  wreq *w = t->wq_head;
  t->wq_head = t->wq_tail = NULL;
  t->wq_bytes = t->wq_lines = 0;
  while (w) {
    wreq *n = w->next;
    if (w->cb) w->cb(w->ud, status);
    clink__free(w);
    w = n;
  }
}

static void poll_stop(clink__transport *t) {
  if (t->polling) {
    uv_poll_stop(&t->in_poll);
    t->polling = 0;
  }
}

/* Sends stdin EOF (shutdown, not close: the fd is still registered with the
 * poll handle until that handle is closed). */
static void shut_input(clink__transport *t) {
  if (t->in_shut || t->in_fd < 0) return;
  poll_stop(t);
  shutdown(t->in_fd, SHUT_WR);
  t->in_shut = 1;
}

static int write_error_status(const clink__transport *t) {
  return t->exited ? CLINK_EEXITED : UV_EPIPE;
}

static void flush_writes(clink__transport *t) {
  while (t->wq_head && !t->closing) {
    struct iovec iov[WRITE_IOV_MAX];
    int n = 0;
    for (wreq *w = t->wq_head; w && n < WRITE_IOV_MAX; w = w->next, n++) {
      iov[n].iov_base = w->data + w->off;
      iov[n].iov_len = w->len - w->off;
    }
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t sent = sendmsg(t->in_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      int err = errno; /* before poll_stop(), which may change errno */
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      t->in_broken = 1;
      poll_stop(t);
      /* libuv codes are -errno on Unix. */
      wq_pop_all(t, err == EPIPE || err == ECONNRESET ? write_error_status(t) : -err);
      return;
    }
    size_t left = (size_t)sent;
    while (t->wq_head && left > 0) {
      wreq *w = t->wq_head;
      size_t rest = w->len - w->off;
      if (left < rest) {
        w->off += left;
        break;
      }
      left -= rest;
      t->wq_head = w->next;
      if (t->wq_head == NULL) t->wq_tail = NULL;
      t->wq_bytes -= w->len;
      t->wq_lines--;
      if (w->cb) w->cb(w->ud, 0);
      clink__free(w);
      if (t->closing) return;
    }
  }
  if (t->wq_head == NULL && !t->closing) {
    poll_stop(t);
    if (t->input_ended) shut_input(t);
    if (t->want_drain) {
      t->want_drain = 0;
      if (t->cbs.on_drain) t->cbs.on_drain(t->ud);
    }
  }
}

static void on_in_writable(uv_poll_t *p, int status, int events) {
  clink__transport *t = p->data;
  if (status < 0) {
    /* libuv reports EPOLLERR as UV_EBADF: for a socket that is the peer
     * going away, which writers know as EPIPE. */
    t->in_broken = 1;
    poll_stop(t);
    wq_pop_all(t, write_error_status(t));
    return;
  }
  flush_writes(t);
}

int clink__transport_write(clink__transport *t, const char *data, size_t len,
                           clink__write_cb cb, void *cb_ud) {
  if (t == NULL || data == NULL || len == 0 || memchr(data, '\n', len) != NULL)
    return UV_EINVAL;
  if (t->closing || t->input_ended) return CLINK_ECLOSING;
  if (t->exited) return CLINK_EEXITED;
  if (t->in_broken) return UV_EPIPE;
  if (t->wq_lines + 1 > t->wq_max_lines || t->wq_bytes + len + 1 > t->wq_max_bytes) {
    t->want_drain = 1;
    return CLINK_EWRITE_QUEUE_FULL;
  }
  wreq *w = malloc(sizeof(*w) + len + 1);
  if (w == NULL) return UV_ENOMEM;
  w->next = NULL;
  w->cb = cb;
  w->ud = cb_ud;
  w->len = len + 1;
  w->off = 0;
  memcpy(w->data, data, len);
  w->data[len] = '\n';
  if (t->wq_tail)
    t->wq_tail->next = w;
  else
    t->wq_head = w;
  t->wq_tail = w;
  t->wq_bytes += w->len;
  t->wq_lines++;
  /* Sent from the loop, so the completion is never inside this call. */
  if (!t->polling) {
    int rc = uv_poll_start(&t->in_poll, UV_WRITABLE, on_in_writable);
    if (rc != 0) {
      t->wq_tail = NULL; /* only valid if w was the sole entry: it is */
      t->wq_head = NULL;
      t->wq_bytes = t->wq_lines = 0;
      clink__free(w);
      return rc;
    }
    t->polling = 1;
  }
  return 0;
}

int clink__transport_end_input(clink__transport *t) {
  if (t == NULL) return UV_EINVAL;
  if (t->closing) return CLINK_ECLOSING;
  t->input_ended = 1;
  if (t->wq_head == NULL) shut_input(t);
  return 0;
}

void clink__transport_write_queue(const clink__transport *t, size_t *bytes,
                                  size_t *lines) {
  if (bytes) *bytes = t->wq_bytes;
  if (lines) *lines = t->wq_lines;
}

int clink__transport_pid(const clink__transport *t) { return t->proc.pid; }

/* ------------------------------------------------------------- exit path */

static void report_exit(clink__transport *t) {
  if (t->exit_reported) return;
  t->exit_reported = 1;
  uv_timer_stop(&t->timer);
  /* Stop listening to a grandchild that still holds the pipes. */
  if (!t->out_eof) uv_read_stop((uv_stream_t *)&t->out);
  if (!t->err_eof) uv_read_stop((uv_stream_t *)&t->err);
  if (!t->closing && t->cbs.on_exit) t->cbs.on_exit(t->ud, t->exit_status, t->term_signal);
}

static void maybe_report_exit(clink__transport *t) {
  if (!t->closing && t->exited && t->out_eof && t->err_eof) report_exit(t);
}

static void on_exit_eof_timeout(uv_timer_t *timer) {
  report_exit(timer->data);
}

static void on_proc_exit(uv_process_t *p, int64_t exit_status, int term_signal) {
  clink__transport *t = p->data;
  t->exited = 1;
  t->exit_status = exit_status;
  t->term_signal = term_signal;
  if (t->closing) {
    uv_timer_stop(&t->timer);
    if (t->phase != PHASE_NONE) finish_close(t);
    return;
  }
  shut_input(t);
  wq_pop_all(t, CLINK_EEXITED);
  if (t->closing) return;
  if (t->out_eof && t->err_eof) {
    report_exit(t);
  } else {
    uv_timer_start(&t->timer, on_exit_eof_timeout, EXIT_EOF_WAIT_MS, 0);
  }
}

/* ----------------------------------------------------------------- close */

/* The child leads its own process group (setsid at spawn), so signalling the
 * group reaches its helpers too. Only done while it is unreaped, when its pid
 * (and so the group id) cannot have been reused. */
static void signal_child(clink__transport *t, int sig) {
  if (!t->spawned || t->exited) return;
  uv_kill(-t->proc.pid, sig);
  uv_process_kill(&t->proc, sig);
}

static void on_escalate(uv_timer_t *timer) {
  clink__transport *t = timer->data;
  if (t->exited) return;
  if (t->phase == PHASE_EOF) {
    t->phase = PHASE_TERM;
    signal_child(t, SIGTERM);
    uv_timer_start(&t->timer, on_escalate, t->term_grace_ms, 0);
  } else if (t->phase == PHASE_TERM) {
    t->phase = PHASE_KILL;
    signal_child(t, SIGKILL);
    /* SIGKILL cannot be ignored; the exit callback ends the close. */
  }
}

int clink__transport_kill(clink__transport *t, int sig) {
  if (t == NULL) return UV_EINVAL;
  if (!t->spawned || t->exited) return CLINK_EEXITED;
  signal_child(t, sig);
  return 0;
}

static void finish_close(clink__transport *t) {
  if (t->finishing) return;
  t->finishing = 1;
  uv_timer_stop(&t->timer);
  close_handle(t, (uv_handle_t *)&t->proc);
  close_handle(t, (uv_handle_t *)&t->out);
  close_handle(t, (uv_handle_t *)&t->err);
  close_handle(t, (uv_handle_t *)&t->in_poll);
  close_handle(t, (uv_handle_t *)&t->timer);
  close_handle(t, (uv_handle_t *)&t->defer);
}

static void on_close_start(uv_timer_t *timer) {
  clink__transport *t = timer->data;
  poll_stop(t);
  wq_pop_all(t, UV_ECANCELED);
  shut_input(t);
  t->phase = PHASE_EOF;
  if (!t->spawned || t->exited) {
    finish_close(t);
    return;
  }
  uv_timer_stop(&t->timer);
  uv_timer_start(&t->timer, on_escalate, t->eof_grace_ms, 0);
}

int clink__transport_close(clink__transport *t, clink__transport_close_cb cb, void *ud) {
  if (t == NULL) return UV_EINVAL;
  if (t->closing) return UV_EBUSY;
  t->closing = 1;
  t->close_cb = cb;
  t->close_ud = ud;
  clink__framer_stop(&t->out_framer);
  clink__framer_stop(&t->err_framer);
  /* Write callbacks must not run inside this call. */
  uv_timer_start(&t->defer, on_close_start, 0, 0);
  return 0;
}

/* ----------------------------------------------------------------- spawn */

static void init_handle(clink__transport *t, uv_handle_t *h) {
  h->data = t;
  t->handles_open++;
}

static int start_reading(clink__transport *t) {
  int rc = uv_read_start((uv_stream_t *)&t->out, alloc_out, on_out_read);
  if (rc == 0) rc = uv_read_start((uv_stream_t *)&t->err, alloc_err, on_err_read);
  return rc;
}

int clink__transport_spawn(clink__transport **out, uv_loop_t *loop,
                           const clink__spawn_spec *spec,
                           const clink__transport_cbs *cbs, void *ud,
                           char *errbuf, size_t errlen) {
  if (out == NULL || loop == NULL || spec == NULL || cbs == NULL || cbs->on_line == NULL ||
      spec->file == NULL || spec->argv == NULL)
    return UV_EINVAL;
  clink__transport *t = clink__calloc(1, sizeof(*t));
  if (t == NULL) return UV_ENOMEM;
  t->loop = loop;
  t->in_fd = -1;
  t->cbs = *cbs;
  t->ud = ud;
  t->wq_max_bytes = spec->write_queue_bytes;
  t->wq_max_lines = spec->write_queue_lines;
  t->eof_grace_ms = spec->eof_grace_ms;
  t->term_grace_ms = spec->term_grace_ms;
  t->tail_cap = spec->stderr_tail_bytes ? spec->stderr_tail_bytes : 1;
  int rc = t->wq_max_bytes == 0 || t->wq_max_lines == 0 ? UV_EINVAL : 0;
  if (rc == 0)
    rc = clink__framer_init_sized(&t->out_framer, spec->max_line_bytes, OUT_INITIAL_CAP,
                                  READ_MIN, on_out_line, on_out_line_error, t);
  if (rc == 0)
    rc = clink__framer_init_sized(&t->err_framer, STDERR_MAX_LINE, ERR_INITIAL_CAP,
                                  READ_MIN, on_err_line, NULL, t);
  if (rc != 0) {
    transport_free(t);
    return rc;
  }

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    rc = (-errno);
    if (errbuf != NULL && errlen > 0)
      snprintf(errbuf, errlen, "failed to start %s: its stdin: %s", spec->file,
               clink_strerror(rc));
    transport_free(t);
    return rc;
  }
  t->in_fd = sv[0];
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);

  /* From here on every handle is closed through the loop, even on failure. */
  uv_pipe_init(loop, &t->out, 0);
  init_handle(t, (uv_handle_t *)&t->out);
  uv_pipe_init(loop, &t->err, 0);
  init_handle(t, (uv_handle_t *)&t->err);
  uv_timer_init(loop, &t->timer);
  init_handle(t, (uv_handle_t *)&t->timer);
  uv_timer_init(loop, &t->defer);
  init_handle(t, (uv_handle_t *)&t->defer);
  rc = uv_poll_init(loop, &t->in_poll, t->in_fd);
  if (rc == 0) init_handle(t, (uv_handle_t *)&t->in_poll);

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_INHERIT_FD;
  stdio[0].data.fd = sv[1];
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&t->out;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)&t->err;

  uv_process_options_t po;
  memset(&po, 0, sizeof(po));
  po.exit_cb = on_proc_exit;
  po.file = spec->file;
  po.args = spec->argv;
  po.env = spec->env;
  po.cwd = spec->cwd;
  po.flags = UV_PROCESS_DETACHED; /* own session and process group */
  po.stdio_count = 3;
  po.stdio = stdio;

  if (rc == 0) {
    /* uv_spawn needs a close even when it fails. */
    rc = uv_spawn(loop, &t->proc, &po);
    init_handle(t, (uv_handle_t *)&t->proc);
    if (rc != 0 && errbuf != NULL && errlen > 0)
      snprintf(errbuf, errlen, "failed to start %s%s%s: %s", spec->file,
               spec->cwd ? " in " : "", spec->cwd ? spec->cwd : "", clink_strerror(rc));
  }
  close(sv[1]);
  if (rc == 0) {
    t->spawned = 1;
    rc = start_reading(t);
  }
  if (rc != 0) {
    if (t->spawned) {
      /* Started but unusable: close kills and reaps it. */
      t->eof_grace_ms = 0;
      t->term_grace_ms = 0;
    }
    t->closing = 1;
    t->close_cb = NULL;
    uv_timer_start(&t->defer, on_close_start, 0, 0);
    return t->spawned ? rc : CLINK_ESPAWN;
  }
  *out = t;
  return 0;
}
