/* The subprocess transport: the only object that touches libuv handles.
 *
 * One `claude` process with stdin/stdout/stderr. stdout is framed into lines
 * (framer.h); stderr is kept as a bounded tail and optionally delivered line by
 * line; writes go through a bounded queue. stdin is the parent end of a
 * socketpair written with send(MSG_NOSIGNAL), so a dead child is UV_EPIPE and
 * never a SIGPIPE that kills the host.
 *
 * Every callback may call clink__transport_close(). No callback is made from
 * inside the call that caused it.
 */
#ifndef CLINK_TRANSPORT_H
#define CLINK_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "spawn/options.h"

typedef struct clink__transport clink__transport;

typedef struct clink__transport_cbs {
  /* One complete stdout line, borrowed until return. */
  void (*on_line)(void *ud, const char *line, size_t len);
  /* A stdout line was skipped: err is CLINK_ELINE_TOO_LONG (it exceeded
   * max_line_bytes) or UV_ENOMEM (no memory to hold it; the stream goes on
   * with the next line). prefix holds its first bytes, total_len its length.
   * UV_ENOMEM with total_len 0: stdout could not be read at all; the process
   * is then killed, so its exit follows. */
  void (*on_line_error)(void *ud, int err, const char *prefix, size_t prefix_len,
                        uint64_t total_len);
  /* One stderr line (optional). */
  void (*on_stderr_line)(void *ud, const char *line, size_t len);
  /* The write queue emptied after a write was refused as full (optional). */
  void (*on_drain)(void *ud);
  /* The process ended: exit_status, or term_signal != 0. Called once, after
   * stdout/stderr reached EOF (or a bounded wait after exit). Not called when
   * the exit happens after clink__transport_close(). */
  void (*on_exit)(void *ud, int64_t exit_status, int term_signal);
} clink__transport_cbs;

/* status: 0, UV_EPIPE (child closed stdin), CLINK_EEXITED (child exited
 * first), UV_ECANCELED (transport closed) or another libuv code. */
typedef void (*clink__write_cb)(void *ud, int status);
typedef void (*clink__transport_close_cb)(void *ud);

/* Starts the process. cbs are copied. On error nothing is left running, *out
 * is untouched and errbuf (may be NULL) says why; CLINK_ESPAWN means exec or
 * chdir failed; UV_EMFILE, UV_ENFILE, UV_EAGAIN and UV_ENOMEM mean the host ran
 * out of descriptors, processes or memory (transient: retryable). Internal
 * handles may still need one loop turn to close. */
int clink__transport_spawn(clink__transport **out, uv_loop_t *loop,
                           const clink__spawn_spec *spec,
                           const clink__transport_cbs *cbs, void *ud,
                           char *errbuf, size_t errlen);

/* Queues data plus a '\n' (data must not contain one). Copies data. Returns 0,
 * CLINK_EWRITE_QUEUE_FULL, CLINK_EEXITED, CLINK_ECLOSING, UV_EPIPE, UV_EINVAL
 * or UV_ENOMEM; cb (may be NULL) is then not called. */
int clink__transport_write(clink__transport *t, const char *data, size_t len,
                           clink__write_cb cb, void *cb_ud);

/* Close stdin once queued writes are flushed (end of input). */
int clink__transport_end_input(clink__transport *t);

/* The one async close: pending writes fail with UV_ECANCELED, then stdin EOF,
 * eof grace, SIGTERM, term grace, SIGKILL (signals go to the CLI's process
 * group); always reaped. Once the CLI has exited, helpers left in its group
 * get SIGTERM and, term grace later, SIGKILL (see the process group notes in
 * uv-transport.c); the close waits for that, at most term grace. cb runs
 * exactly once, from the loop, after every handle is closed; the memory is
 * freed after it returns. Returns UV_EBUSY on a second call. An unexpected
 * exit deals with the group the same way, without waiting for a close. */
int clink__transport_close(clink__transport *t, clink__transport_close_cb cb,
                           void *ud);

/* Signals the child's process group now (a hung CLI); its exit is then
 * reported through on_exit as usual. CLINK_EEXITED if it already exited. */
int clink__transport_kill(clink__transport *t, int sig);

/* Gives back the memory a big line left behind (call it when a turn ends):
 * the stdout and stderr buffers go back to their initial capacity and the
 * read size to its minimum. Returns 0 when done; UV_EBUSY when a partial line
 * is pending or when called from a line callback: the trim then happens as
 * soon as it can (after the callback returns, once the line is complete);
 * UV_ENOMEM when the smaller allocation failed (nothing lost, retried on the
 * next read). Callable from any callback. */
int clink__transport_trim(clink__transport *t);

/* 1 when the CLI's process group can still be signalled after the CLI has
 * exited (a pidfd, Linux >= 6.9): helpers then get SIGTERM, and SIGKILL term
 * grace later; 0: they get SIGTERM at the exit only. Meaningful until the
 * exit. */
int clink__transport_group_signals_after_exit(const clink__transport *t);

/* Heap the transport holds now (struct, read buffers, stderr tail, queued
 * writes); libuv's own allocations not included. */
size_t clink__transport_heap_bytes(const clink__transport *t);

int clink__transport_pid(const clink__transport *t);
/* Copies the stderr tail (NUL-terminated); returns its length. */
size_t clink__transport_stderr_tail(const clink__transport *t, char *buf, size_t len);
void clink__transport_write_queue(const clink__transport *t, size_t *bytes,
                                  size_t *lines);

#endif
