/* clink_events: the sink. Events are made (copied, redacted) when they
 * happen and delivered from the loop by a 0 ms timer, so user code never
 * runs inside the library call that caused the event. Bounded: past
 * max_pending they are dropped and counted. */
#include <errno.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "base/internal.h"
#include "monitor/events.h"
#include "monitor/events-int.h"

struct clink_events {
  uv_loop_t *loop;
  uv_timer_t timer;
  clink_log_level level;
  clink_event_cb cb;
  void *ud;
  int fd;
  size_t max_pending, pending;
  uint64_t dropped;
  clink__event_rec *head, *tail;
  unsigned closing : 1;
  unsigned delivering : 1;
  clink_events_close_cb close_cb;
  void *close_ud;
};

int clink_events_new(clink_events **out, uv_loop_t *loop) {
  if (out == NULL || loop == NULL) return UV_EINVAL;
  clink_events *e = clink__calloc(1, sizeof(*e));
  if (e == NULL) return UV_ENOMEM;
  e->loop = loop;
  e->level = CLINK_LOG_INFO;
  e->fd = -1;
  e->max_pending = CLINK_DEFAULT_EVENTS_PENDING;
  uv_timer_init(loop, &e->timer);
  e->timer.data = e;
  uv_unref((uv_handle_t *)&e->timer);
  *out = e;
  return 0;
}

int clink_events_set_level(clink_events *e, clink_log_level level) {
  if (e == NULL || level < CLINK_LOG_DEBUG || level > CLINK_LOG_CRITICAL) return UV_EINVAL;
  e->level = level;
  return 0;
}

clink_log_level clink_events_get_level(const clink_events *e) {
  return e ? e->level : CLINK_LOG_CRITICAL;
}

void clink_events_set_cb(clink_events *e, clink_event_cb cb, void *ud) {
  if (e == NULL) return;
  e->cb = cb;
  e->ud = ud;
}

int clink_events_set_jsonl_fd(clink_events *e, int fd) {
  if (e == NULL || fd < -1) return UV_EINVAL;
  e->fd = fd;
  return 0;
}

int clink_events_set_max_pending(clink_events *e, size_t n) {
  if (e == NULL || n == 0) return UV_EINVAL;
  e->max_pending = n;
  return 0;
}

uint64_t clink_events_dropped(const clink_events *e) { return e ? e->dropped : 0; }

int clink__events_enabled(const clink_events *e, clink_log_level level) {
  return e != NULL && !e->closing && level >= e->level && (e->cb || e->fd >= 0);
}

/* Writes the whole line (a log line: small, to a pipe or tty). */
static void write_line(int fd, const char *line) {
  size_t n = strlen(line), off = 0;
  while (off < n) {
    ssize_t w = write(fd, line + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* a log that cannot be written is not worth a crash */
    off += (size_t)w;
  }
  while (write(fd, "\n", 1) < 0 && errno == EINTR) {
  }
}

static void deliver(clink_events *e) {
  e->delivering = 1;
  clink__event_rec *r;
  while ((r = e->head) != NULL) {
    e->head = r->next;
    if (e->head == NULL) e->tail = NULL;
    e->pending--;
    if (e->fd >= 0) {
      char *line = clink__event_json(&r->ev);
      if (line) write_line(e->fd, line);
      cJSON_free(line);
    }
    if (e->cb) e->cb(e, &r->ev, e->ud);
    clink__free(r);
  }
  e->delivering = 0;
}

static void on_closed(uv_handle_t *h) {
  clink_events *e = h->data;
  if (e->close_cb) e->close_cb(e, e->close_ud);
  clink__free(e);
}

static void on_timer(uv_timer_t *t) {
  clink_events *e = t->data;
  deliver(e);
  uv_unref((uv_handle_t *)&e->timer); /* nothing waits any more */
  if (e->closing && !uv_is_closing((uv_handle_t *)&e->timer))
    uv_close((uv_handle_t *)&e->timer, on_closed);
}

int clink__events_emit_at(clink_events *e, uint64_t unix_ms, clink_log_level level,
                          const char *component, const char *event,
                          const clink_event_field *fields, size_t n) {
  if (!clink__events_enabled(e, level)) return 0;
  if (e->pending >= e->max_pending) {
    e->dropped++;
    return CLINK_EQUEUE_FULL;
  }
  clink__event_rec *r = clink__event_rec_make(unix_ms, level, component, event, fields, n);
  if (r == NULL) {
    e->dropped++;
    return UV_ENOMEM;
  }
  if (e->tail)
    e->tail->next = r;
  else
    e->head = r;
  e->tail = r;
  e->pending++;
  if (!e->delivering && !uv_is_active((uv_handle_t *)&e->timer)) {
    /* Events waiting are work: the loop runs until they are out. */
    uv_ref((uv_handle_t *)&e->timer);
    uv_timer_start(&e->timer, on_timer, 0, 0);
  }
  return 0;
}

int clink__events_emit(clink_events *e, clink_log_level level, const char *component,
                       const char *event, const clink_event_field *fields, size_t n) {
  if (!clink__events_enabled(e, level)) return 0;
  return clink__events_emit_at(e, clink__wall_ms(), level, component, event, fields, n);
}

int clink_events_emit(clink_events *e, clink_log_level level, const char *component,
                      const char *event, const clink_event_field *fields, size_t n) {
  if (e == NULL || (n > 0 && fields == NULL)) return UV_EINVAL;
  if (e->closing) return CLINK_ECLOSING;
  return clink__events_emit(e, level, component, event, fields, n);
}

int clink_events_close(clink_events *e, clink_events_close_cb cb, void *ud) {
  if (e == NULL) return UV_EINVAL;
  if (e->closing) return UV_EBUSY;
  /* What is pending still goes out, from the loop. */
  int pending = e->head != NULL;
  e->closing = 1;
  e->close_cb = cb;
  e->close_ud = ud;
  /* Closed from a delivery callback: the drain goes on with what is
   * pending, and the timer callback closes the handle after it. */
  if (e->delivering) return 0;
  if (pending) {
    uv_ref((uv_handle_t *)&e->timer);
    if (!uv_is_active((uv_handle_t *)&e->timer)) uv_timer_start(&e->timer, on_timer, 0, 0);
  } else {
    uv_close((uv_handle_t *)&e->timer, on_closed);
  }
  return 0;
}
