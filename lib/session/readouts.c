/* What the session tells its driver: state, identity, errors, metrics. */
#include <stdarg.h>
#include <stdio.h>

#include "base/internal.h"
#include "session/session-int.h"

void clink__session_count_error(clink__session *s, int err) {
  s->m.errors++;
  for (size_t i = 0; i < CLINK__ERR_SLOTS; i++) {
    if (s->errs[i].code == err || s->errs[i].code == 0) {
      s->errs[i].code = err;
      s->errs[i].count++;
      return;
    }
  }
}

static void vformat(char *buf, size_t cap, size_t off, const char *fmt, va_list ap) {
  if (off >= cap) return;
  vsnprintf(buf + off, cap - off, fmt, ap);
}

void clink__session_set_last_error(clink__session *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vformat(s->last_error, sizeof(s->last_error), 0, fmt, ap);
  va_end(ap);
}

void clink__session_append_last_error(clink__session *s, const char *fmt, ...) {
  size_t n = strlen(s->last_error);
  if (n > 0 && n + 2 < sizeof(s->last_error)) {
    memcpy(s->last_error + n, "; ", 3);
    n += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vformat(s->last_error, sizeof(s->last_error), n, fmt, ap);
  va_end(ap);
}

clink_client_state clink__session_state(const clink__session *s) { return s->state; }
int clink__session_closing(const clink__session *s) { return s->closing; }
const char *clink__session_id(const clink__session *s) { return s->session_id; }
const clink_msg *clink__session_server_info(const clink__session *s) { return s->server_info; }
const char *clink__session_last_error(const clink__session *s) { return s->last_error; }
const char *clink__session_last_error_result(const clink__session *s) {
  return s->last_error_result;
}
int clink__session_kill_cause(const clink__session *s) { return s->kill_cause; }

size_t clink__session_turns_pending(const clink__session *s) {
  return s->queued + (s->active != NULL);
}

int clink__session_get_metrics(const clink__session *s, uint64_t now,
                               clink_client_metrics *out) {
  if (out == NULL || out->struct_size < sizeof(size_t)) return UV_EINVAL;
  clink_client_metrics m = s->m;
  if (now < s->now) now = s->now;
  m.uptime_ms = s->connected_at_ms ? now - s->connected_at_ms : 0;
  m.last_activity_ms = s->last_activity_ms ? now - s->last_activity_ms : 0;
  size_t n = out->struct_size < sizeof(m) ? out->struct_size : sizeof(m);
  m.struct_size = n;
  memcpy(out, &m, n);
  return 0;
}

uint64_t clink__session_error_count(const clink__session *s, int err) {
  for (size_t i = 0; i < CLINK__ERR_SLOTS; i++)
    if (s->errs[i].code == err) return s->errs[i].count;
  return 0;
}

const char *clink__session_resume_id(const clink__session *s) {
  return s->resume_lost ? NULL : s->session_id;
}

uint64_t clink__session_turns_done(const clink__session *s) {
  return s->m.turns_ok + s->m.turns_failed;
}
