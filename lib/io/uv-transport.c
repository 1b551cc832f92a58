/* The transport: one CLI process and its three pipes on the loop (spawn
 * through the exec shim, stdout framed into lines, a bounded write queue on
 * stdin, the stderr tail, exit after EOF, the close ladder EOF -> SIGTERM ->
 * SIGKILL with the process-group cleanup). Longer than the house's ~600
 * lines on purpose: these paths share one lifetime and one set of states
 * (a close may arrive during a spawn, a write or an exit), and keeping them
 * together keeps every transition in view. */
#include "io/transport.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#if __has_include(<sys/pidfd.h>)
#include <sys/pidfd.h>
#define HAVE_PIDFD_WRAPPERS 1
#endif
#endif

#include "base/deadline.h"
#include "wire/framer.h"
#include "base/internal.h"

/* pidfd signalling of a whole process group: Linux 6.9. */
#if defined(__linux__) && (defined(HAVE_PIDFD_WRAPPERS) || \
                           (defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)))
#define HAVE_PIDFD 1
#ifndef PIDFD_SIGNAL_PROCESS_GROUP
#define PIDFD_SIGNAL_PROCESS_GROUP (1U << 2)
#endif
#endif

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
/* After the CLI exits, how often we look whether the rest of its process
 * group is gone (backing off from the first to the last). */
#define GROUP_POLL_FIRST_MS 1
#define GROUP_POLL_MAX_MS 100

typedef struct wreq {
  struct wreq *next;
  clink__write_cb cb;
  void *ud;
  size_t len; /* data plus '\n' */
  size_t off; /* bytes already sent */
  char data[];
} wreq;

enum close_phase { PHASE_NONE, PHASE_EOF, PHASE_TERM, PHASE_KILL };
/* The rest of the process group once the CLI itself has exited. */
enum group_state { GROUP_LIVE, GROUP_TERM, GROUP_DONE };

struct clink__transport {
  uv_loop_t *loop;
  uv_process_t proc;
  uv_pipe_t out;
  uv_pipe_t err;
  uv_poll_t in_poll;
  uv_timer_t timer; /* exit EOF wait, then close escalation */
  uv_timer_t defer; /* runs close work on the next loop turn */
  uv_timer_t group_timer; /* the process group after the CLI's exit */
  int in_fd;        /* parent end of the stdin socketpair */
  int pidfd;        /* the CLI's pidfd, -1 when group pidfd signals are unsupported */
  int pgid;         /* the CLI's pid, which is its process group id */
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
  unsigned term_sent : 1; /* SIGTERM went to the group */
  unsigned kill_sent : 1; /* SIGKILL went to the group */
  unsigned delivering : 1; /* inside framer commit/finish: buffers in use */
  unsigned trim_wanted : 1;
  unsigned tail_lost : 1; /* stderr bytes missed the tail (no memory) */
  enum close_phase phase;
  enum group_state group;
  uint64_t term_sent_at, group_kill_at, group_poll_ms;
  int64_t exit_status;
  int term_signal;
  uint64_t eof_grace_ms, term_grace_ms;

  clink__transport_cbs cbs;
  void *ud;
  clink__transport_close_cb close_cb;
  void *close_ud;
};

static void maybe_finish_close(clink__transport *t);
static void maybe_report_exit(clink__transport *t);
static int send_signal(clink__transport *t, int sig);

/* ---------------------------------------------------------------- memory */

static void transport_free(clink__transport *t) {
  for (wreq *w = t->wq_head, *n; w; w = n) {
    n = w->next;
    clink__free(w);
  }
  if (t->in_fd >= 0) close(t->in_fd);
  if (t->pidfd >= 0) close(t->pidfd);
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

/* Arms a one-shot timer; CLINK__NEVER leaves it stopped. */
static void arm(uv_timer_t *timer, uv_timer_cb cb, uint64_t ms) {
  uv_timer_stop(timer);
  if (ms != CLINK__NEVER) uv_timer_start(timer, cb, ms, 0);
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
  if (t->spawned && !t->exited) send_signal(t, SIGKILL);
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

/* --------------------------------------------------------- process group */

/* The CLI leads its own session and process group (UV_PROCESS_DETACHED: the
 * child calls setsid(), so pgid == pid, and a session leader can never move
 * to another group); the helpers it starts (MCP servers, Bash tool children)
 * inherit the group. Every signal goes to the whole group, once: the leader
 * is in it.
 *
 * A group id may be signalled only while it cannot name somebody else's
 * group. While the CLI is unreaped its pid, so the group id, is taken. Once
 * libuv has reaped it the id stays taken only while the group has members:
 * when the last one is gone the kernel may give the number to a new process,
 * which may lead a group of its own. So after the CLI's exit:
 * - with a pidfd (Linux >= 6.9), opened at spawn while the CLI was surely
 *   unreaped, pidfd_send_signal(PIDFD_SIGNAL_PROCESS_GROUP) reaches the group
 *   of that very process and nothing else (a reused number is another struct
 *   pid): SIGTERM, then SIGKILL after term_grace_ms unless the group is gone
 *   first;
 * - without one, the group gets one SIGTERM from the exit callback, in the
 *   loop iteration in which libuv reaped the CLI (a freed pid number comes
 *   back only after the allocator has gone round all of pid_max, which takes
 *   far longer than that), and never a later signal: helpers that ignore
 *   SIGTERM then survive. */

#ifdef HAVE_PIDFD
static int sys_pidfd_open(int pid) {
#ifdef HAVE_PIDFD_WRAPPERS
  return pidfd_open(pid, 0);
#else
  return (int)syscall(SYS_pidfd_open, pid, 0);
#endif
}

static int sys_pidfd_group_signal(int fd, int sig) {
#ifdef HAVE_PIDFD_WRAPPERS
  return pidfd_send_signal(fd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP);
#else
  return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP);
#endif
}
#endif

/* -1 when group signals through a pidfd are not available (old kernel,
 * valgrind, no fd left): the fallback above applies. */
static int open_group_pidfd(int pid) {
#ifdef HAVE_PIDFD
  int fd = sys_pidfd_open(pid);
  if (fd < 0) return -1;
  /* Signal 0 asks whether the kernel knows PIDFD_SIGNAL_PROCESS_GROUP. */
  if (sys_pidfd_group_signal(fd, 0) != 0) {
    close(fd);
    return -1;
  }
  return fd;
#else
  return -1;
#endif
}

/* 0: sent (for signal 0: the group has members); UV_ESRCH: the group is
 * empty; UV_ENOTSUP: there is no safe way to reach it any more. */
static int signal_group(clink__transport *t, int sig) {
  if (!t->spawned) return UV_ESRCH;
#ifdef HAVE_PIDFD
  if (t->pidfd >= 0) return sys_pidfd_group_signal(t->pidfd, sig) == 0 ? 0 : -errno;
#endif
  if (t->exited) return UV_ENOTSUP;
  return uv_kill(-t->pgid, sig);
}

int clink__transport_group_signals_after_exit(const clink__transport *t) {
  return t->pidfd >= 0;
}

static int send_signal(clink__transport *t, int sig) {
  if (sig == SIGTERM) {
    t->term_sent = 1;
    t->term_sent_at = uv_now(t->loop);
  } else if (sig == SIGKILL) {
    t->kill_sent = 1;
  }
  return signal_group(t, sig);
}

/* Whether a process of group pgid still runs, as opposed to members that
 * are dead but not yet reaped by their new parent (a container's init may
 * never do that). Only decides whether to stop waiting; never whom to
 * signal. 1 when unsure. */
static int group_has_running(int pgid) {
#ifdef __linux__
  DIR *d = opendir("/proc");
  if (d == NULL) return 1;
  int running = 0;
  struct dirent *e;
  while (!running && (e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    /* "pid (comm) state ppid pgrp ...": comm may hold anything. */
    char *p = strrchr(buf, ')');
    char state;
    int ppid, pgrp;
    if (p != NULL && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
        state != 'Z' && state != 'X')
      running = 1;
  }
  closedir(d);
  return running;
#else
  return 1;
#endif
}

static void group_done(clink__transport *t) {
  t->group = GROUP_DONE;
  uv_timer_stop(&t->group_timer);
  if (t->pidfd >= 0) { /* nothing more to signal: give the fd back now */
    close(t->pidfd);
    t->pidfd = -1;
  }
  maybe_finish_close(t);
}

static void arm_group_poll(clink__transport *t);

static void on_group_poll(uv_timer_t *timer) {
  clink__transport *t = timer->data;
  if (signal_group(t, 0) != 0 || !group_has_running(t->pgid)) {
    group_done(t);
    return;
  }
  if (uv_now(t->loop) >= t->group_kill_at) {
    send_signal(t, SIGKILL);
    group_done(t); /* SIGKILL cannot be ignored: nothing left to wait for */
    return;
  }
  if (t->group_poll_ms < GROUP_POLL_MAX_MS) t->group_poll_ms *= 2;
  if (t->group_poll_ms > GROUP_POLL_MAX_MS) t->group_poll_ms = GROUP_POLL_MAX_MS;
  arm_group_poll(t);
}

static void arm_group_poll(clink__transport *t) {
  uint64_t left = clink__until(t->group_kill_at, uv_now(t->loop));
  uv_timer_start(&t->group_timer, on_group_poll, clink__earliest(t->group_poll_ms, left), 0);
}

/* From the exit callback, once: the rest of the CLI's group. */
static void group_after_exit(clink__transport *t) {
  if (t->kill_sent) { /* the whole group got SIGKILL already */
    group_done(t);
    return;
  }
  if (t->pidfd < 0) {
    /* The fallback: the one moment the id is still safe (see above). */
    if (!t->term_sent) uv_kill(-t->pgid, SIGTERM);
    group_done(t);
    return;
  }
  if (signal_group(t, 0) != 0) { /* nobody left: the usual case */
    group_done(t);
    return;
  }
  if (!t->term_sent) send_signal(t, SIGTERM);
  t->group_kill_at = clink__deadline(t->term_sent_at, t->term_grace_ms);
  if (t->group_kill_at == CLINK__NEVER) { /* never SIGKILL: nothing to wait for */
    group_done(t);
    return;
  }
  t->group = GROUP_TERM;
  t->group_poll_ms = GROUP_POLL_FIRST_MS;
  arm_group_poll(t);
}

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
  if (t->closing) uv_timer_stop(&t->timer);
  /* First, in this very callback: the fallback relies on it. */
  group_after_exit(t);
  if (t->closing) return; /* group_after_exit() finishes the close */
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

static void on_escalate(uv_timer_t *timer) {
  clink__transport *t = timer->data;
  if (t->exited) return;
  if (t->phase == PHASE_EOF) {
    t->phase = PHASE_TERM;
    send_signal(t, SIGTERM);
    arm(&t->timer, on_escalate, t->term_grace_ms);
  } else if (t->phase == PHASE_TERM) {
    t->phase = PHASE_KILL;
    send_signal(t, SIGKILL);
    /* SIGKILL cannot be ignored; the exit callback ends the close. */
  }
}

int clink__transport_kill(clink__transport *t, int sig) {
  if (t == NULL) return UV_EINVAL;
  if (!t->spawned || t->exited) return CLINK_EEXITED;
  return send_signal(t, sig);
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
  close_handle(t, (uv_handle_t *)&t->group_timer);
}

/* The close ends once the close has started, the CLI is reaped (if it ever
 * ran) and its group is dealt with. */
static void maybe_finish_close(clink__transport *t) {
  if (t->closing && t->phase != PHASE_NONE &&
      (!t->spawned || (t->exited && t->group == GROUP_DONE)))
    finish_close(t);
}

static void on_close_start(uv_timer_t *timer) {
  clink__transport *t = timer->data;
  poll_stop(t);
  wq_pop_all(t, UV_ECANCELED);
  shut_input(t);
  t->phase = PHASE_EOF;
  if (!t->spawned || t->exited) {
    maybe_finish_close(t);
    return;
  }
  arm(&t->timer, on_escalate, t->eof_grace_ms);
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
  t->pidfd = -1;
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
  uv_timer_init(loop, &t->group_timer);
  init_handle(t, (uv_handle_t *)&t->group_timer);
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
    if (rc != 0) {
      if (errbuf != NULL && errlen > 0)
        snprintf(errbuf, errlen, "failed to start %s%s%s: %s", spec->file,
                 spec->cwd ? " in " : "", spec->cwd ? spec->cwd : "", clink_strerror(rc));
      rc = clink__spawn_error(rc);
    }
  }
  close(sv[1]);
  if (rc == 0) {
    t->spawned = 1;
    t->pgid = t->proc.pid;
    /* Now, while the child cannot have been reaped yet. */
    t->pidfd = open_group_pidfd(t->pgid);
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
    return rc;
  }
  *out = t;
  return 0;
}
