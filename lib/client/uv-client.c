/* clink_client: the lifecycle state machine, turns, outbound control
 * requests and routing of every stdout line. */
#include <stdio.h>

#include "client/client.h"
#include "base/internal.h"
#include "wire/json-out.h"

static void pump(clink_client *c);
static void arm_timer(clink_client *c);
static void maybe_free(clink_client *c);
static void schedule_defer(clink_client *c);

const char *clink_client_state_name(clink_client_state s) {
  switch (s) {
    case CLINK_CLIENT_DISCONNECTED: return "DISCONNECTED";
    case CLINK_CLIENT_CONNECTING: return "CONNECTING";
    case CLINK_CLIENT_CONNECTED: return "CONNECTED";
    case CLINK_CLIENT_CLOSING: return "CLOSING";
    case CLINK_CLIENT_CLOSED: return "CLOSED";
    case CLINK_CLIENT_ERROR: return "ERROR";
    case CLINK_CLIENT_RECOVERING: return "RECOVERING";
  }
  return "UNKNOWN";
}

/* Every legal transition; anything else is a bug in this file. */
static int transition_allowed(clink_client_state from, clink_client_state to) {
  switch (from) {
    case CLINK_CLIENT_DISCONNECTED:
      return to == CLINK_CLIENT_CONNECTING || to == CLINK_CLIENT_CLOSING;
    case CLINK_CLIENT_CONNECTING:
      return to == CLINK_CLIENT_CONNECTED || to == CLINK_CLIENT_ERROR ||
             to == CLINK_CLIENT_CLOSING;
    case CLINK_CLIENT_CONNECTED:
      return to == CLINK_CLIENT_ERROR || to == CLINK_CLIENT_CLOSING ||
             to == CLINK_CLIENT_RECOVERING;
    case CLINK_CLIENT_RECOVERING:
      return to == CLINK_CLIENT_CONNECTED || to == CLINK_CLIENT_ERROR ||
             to == CLINK_CLIENT_CLOSING;
    case CLINK_CLIENT_ERROR:
      return to == CLINK_CLIENT_CONNECTING || to == CLINK_CLIENT_CLOSING;
    case CLINK_CLIENT_CLOSING:
      return to == CLINK_CLIENT_CLOSED;
    case CLINK_CLIENT_CLOSED:
      return 0;
  }
  return 0;
}

void clink__client_set_state(clink_client *c, clink_client_state to) {
  clink_client_state from = c->state;
  if (from == to) return;
  if (!transition_allowed(from, to)) abort();
  c->state = to;
  /* A pending reconnection is work: it keeps the loop alive. */
  if (to == CLINK_CLIENT_RECOVERING)
    uv_ref((uv_handle_t *)&c->timer);
  else if (from == CLINK_CLIENT_RECOVERING && !c->close_turn_wait)
    uv_unref((uv_handle_t *)&c->timer);
  if (c->state_cb) c->state_cb(c, from, to, c->state_ud);
}

#define set_state clink__client_set_state

static uint64_t now_ms(const clink_client *c) { return uv_now(c->loop); }

uint64_t clink__client_now(clink_client *c) { return now_ms(c); }

void clink__client_count_error(clink_client *c, int err) {
  c->m.errors++;
  for (size_t i = 0; i < CLINK__ERR_SLOTS; i++) {
    if (c->errs[i].code == err || c->errs[i].code == 0) {
      c->errs[i].code = err;
      c->errs[i].count++;
      return;
    }
  }
}

static void report_error(clink_client *c, int err, const char *detail) {
  clink__client_count_error(c, err);
  if (c->error_cb && !c->closing) c->error_cb(c, err, detail, c->error_ud);
}

/* ---------------------------------------------------------------- turns */

static void turn_free(clink__turn *t) {
  if (t == NULL) return;
  cJSON_free(t->line);
  clink__free(t);
}

static void finish_turn(clink_client *c, clink__turn *t, int status, const clink_msg *result) {
  if (t->started_ms) {
    uint64_t took = now_ms(c) - t->started_ms;
    c->m.last_turn_ms = took;
    c->m.turn_ms_ewma =
        c->m.turn_ms_ewma ? (c->m.turn_ms_ewma * 4 + took) / 5 : (took ? took : 1);
  }
  if (status == 0)
    c->m.turns_ok++;
  else {
    c->m.turns_failed++;
    clink__client_count_error(c, status);
  }
  if (t->on_done) t->on_done(c, status, result, t->ud);
  turn_free(t);
}

/* Fails a turn later, from the loop (we may be inside an API call). */
static void fail_turn_deferred(clink_client *c, clink__turn *t, int status) {
  t->next = NULL;
  t->status = status;
  if (c->failed_tail)
    c->failed_tail->next = t;
  else
    c->failed_head = t;
  c->failed_tail = t;
  schedule_defer(c);
}

static void fail_queue_deferred(clink_client *c, int status) {
  clink__turn *t = c->queue_head;
  c->queue_head = c->queue_tail = NULL;
  c->queued = 0;
  while (t) {
    clink__turn *n = t->next;
    fail_turn_deferred(c, t, status);
    t = n;
  }
}

static void fail_queue_now(clink_client *c, int status) {
  clink__turn *t = c->queue_head;
  c->queue_head = c->queue_tail = NULL;
  c->queued = 0;
  while (t) {
    clink__turn *n = t->next;
    finish_turn(c, t, status, NULL);
    t = n;
  }
}

static int write_line(clink_client *c, const char *line) {
  if (c->t == NULL) return CLINK_ENOT_CONNECTED;
  size_t len = strlen(line);
  int rc = clink__transport_write(c->t, line, len, NULL, NULL);
  if (rc == 0) {
    c->m.messages_out++;
    c->m.bytes_out += len + 1;
    c->last_activity_ms = now_ms(c);
  }
  return rc;
}

int clink__client_write_line(clink_client *c, char *line) {
  if (line == NULL) return UV_ENOMEM;
  int rc = write_line(c, line);
  cJSON_free(line);
  return rc;
}

/* Detaches the queue now; its turns fail from the loop. */
void clink__client_fail_queue(clink_client *c, int status) { fail_queue_deferred(c, status); }

/* Starts the next queued turn when the client is idle. */
void clink__client_pump(clink_client *c) { pump(c); }

static void pump(clink_client *c) {
  while (c->active == NULL && c->queue_head && c->state == CLINK_CLIENT_CONNECTED &&
         !c->closing) {
    clink__turn *t = c->queue_head;
    c->queue_head = t->next;
    if (c->queue_head == NULL) c->queue_tail = NULL;
    c->queued--;
    t->next = NULL;
    /* The line stays with the turn: recovery may send it again. */
    int rc = write_line(c, t->line);
    if (rc != 0) {
      fail_turn_deferred(c, t, rc);
      continue;
    }
    t->started_ms = now_ms(c);
    c->active = t;
  }
}

static int enqueue(clink_client *c, cJSON *content, clink_message_cb on_message,
                   clink_turn_cb on_done, void *ud) {
  if (c->closing) {
    cJSON_Delete(content);
    return CLINK_ECLOSING;
  }
  if (c->state != CLINK_CLIENT_CONNECTED && c->state != CLINK_CLIENT_CONNECTING &&
      c->state != CLINK_CLIENT_RECOVERING) {
    cJSON_Delete(content);
    return CLINK_ENOT_CONNECTED;
  }
  if (c->queued >= c->opts->max_queued_queries) {
    cJSON_Delete(content);
    return CLINK_EQUEUE_FULL;
  }
  clink__turn *t = clink__calloc(1, sizeof(*t));
  if (t == NULL) {
    cJSON_Delete(content);
    return UV_ENOMEM;
  }
  /* "default" as the Python SDK's client writes; the CLI keeps its own id. */
  t->line = clink__wire_user("default", content);
  if (t->line == NULL) {
    clink__free(t);
    return UV_ENOMEM;
  }
  t->on_message = on_message;
  t->on_done = on_done;
  t->ud = ud;
  if (c->queue_tail)
    c->queue_tail->next = t;
  else
    c->queue_head = t;
  c->queue_tail = t;
  c->queued++;
  /* Writing now is safe: completions only come from stdout lines. */
  pump(c);
  return 0;
}

int clink_client_query(clink_client *c, const char *prompt, clink_message_cb on_message,
                       clink_turn_cb on_done, void *ud) {
  if (c == NULL || prompt == NULL) return UV_EINVAL;
  cJSON *content = cJSON_CreateString(prompt);
  if (content == NULL) return UV_ENOMEM;
  return enqueue(c, content, on_message, on_done, ud);
}

int clink_client_query_blocks(clink_client *c, const char *content_json,
                              clink_message_cb on_message, clink_turn_cb on_done, void *ud) {
  if (c == NULL || content_json == NULL) return UV_EINVAL;
  cJSON *content = cJSON_Parse(content_json);
  if (!cJSON_IsArray(content) || cJSON_GetArraySize(content) == 0) {
    cJSON_Delete(content);
    return UV_EINVAL;
  }
  return enqueue(c, content, on_message, on_done, ud);
}

/* --------------------------------------------------------------- control */

typedef struct ctl_call {
  clink_client *c;
  clink_control_cb cb;
  void *ud;
} ctl_call;

static void on_ctl_done(void *ud, int status, const clink_msg *response) {
  ctl_call *call = ud;
  clink_client *c = call->c;
  if (status == CLINK_ECONTROL_TIMEOUT) c->m.control_timeouts++;
  if (status != 0) clink__client_count_error(c, status);
  if (call->cb) call->cb(c, status, response, call->ud);
  clink__free(call);
}

/* Sends a control request; fields (owned) may be NULL. */
int clink__client_send_control(clink_client *c, const char *subtype, cJSON *fields,
                               uint64_t timeout_ms, clink__ctl_cb done, void *done_ud) {
  char id[CLINK__CTL_ID_MAX];
  /* Deadlines count from now: the loop's cached time is stale when the host
   * blocked before this call, which would shorten (or expire) the timeout. */
  uv_update_time(c->loop);
  int idx = clink__ctl_add(&c->ctl, subtype, now_ms(c) + timeout_ms, done, done_ud, id);
  if (idx < 0) {
    cJSON_Delete(fields);
    return idx;
  }
  int rc = clink__client_write_line(c, clink__wire_control_request(id, subtype, fields));
  if (rc != 0) {
    clink__ctl_cancel(&c->ctl, idx);
    return rc;
  }
  c->m.control_requests++;
  arm_timer(c);
  return 0;
}

static int control(clink_client *c, const char *subtype, cJSON *fields, clink_control_cb cb,
                   void *ud) {
  if (c->closing) {
    cJSON_Delete(fields);
    return CLINK_ECLOSING;
  }
  if (c->state != CLINK_CLIENT_CONNECTED) {
    cJSON_Delete(fields);
    return CLINK_ENOT_CONNECTED;
  }
  ctl_call *call = malloc(sizeof(*call));
  if (call == NULL) {
    cJSON_Delete(fields);
    return UV_ENOMEM;
  }
  call->c = c;
  call->cb = cb;
  call->ud = ud;
  int rc = clink__client_send_control(c, subtype, fields, c->opts->control_timeout_ms,
                                      on_ctl_done, call);
  if (rc != 0) clink__free(call);
  return rc;
}

int clink_client_interrupt(clink_client *c, clink_control_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  return control(c, "interrupt", NULL, cb, ud);
}

int clink_client_set_permission_mode(clink_client *c, clink_permission_mode mode,
                                     clink_control_cb cb, void *ud) {
  static const char *const names[] = {"default", "acceptEdits", "plan",
                                      "bypassPermissions", "dontAsk", "auto"};
  if (c == NULL || (int)mode < 0 || (int)mode > CLINK_PERMISSION_AUTO) return UV_EINVAL;
  cJSON *f = cJSON_CreateObject();
  if (f == NULL || !cJSON_AddStringToObject(f, "mode", names[mode])) {
    cJSON_Delete(f);
    return UV_ENOMEM;
  }
  return control(c, "set_permission_mode", f, cb, ud);
}

int clink_client_set_model(clink_client *c, const char *model, clink_control_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  cJSON *f = cJSON_CreateObject();
  cJSON *v = model ? cJSON_CreateString(model) : cJSON_CreateNull();
  if (f == NULL || v == NULL) {
    cJSON_Delete(f);
    cJSON_Delete(v);
    return UV_ENOMEM;
  }
  cJSON_AddItemToObject(f, "model", v);
  return control(c, "set_model", f, cb, ud);
}

int clink_client_control(clink_client *c, const char *subtype, const char *fields_json,
                         clink_control_cb cb, void *ud) {
  if (c == NULL || subtype == NULL || subtype[0] == '\0') return UV_EINVAL;
  cJSON *f = NULL;
  if (fields_json) {
    f = cJSON_Parse(fields_json);
    if (!cJSON_IsObject(f) || cJSON_GetObjectItemCaseSensitive(f, "subtype")) {
      cJSON_Delete(f);
      return UV_EINVAL;
    }
  }
  return control(c, subtype, f, cb, ud);
}

/* --------------------------------------------------------------- timers */

static void on_transport_closed(void *ud);

/* Detaches the live process and closes it (EOF, grace, signals). */
void clink__client_stop_process(clink_client *c) {
  clink__transport *t = c->t;
  if (t == NULL) return;
  c->t = NULL;
  clink__transport_close(t, on_transport_closed, c);
}

static void on_timer(uv_timer_t *timer) {
  clink_client *c = timer->data;
  uint64_t now = now_ms(c);
  clink__ctl_expire(&c->ctl, now);
  if (c->close_turn_wait && now >= c->close_deadline_ms && c->t) {
    c->close_turn_wait = 0;
    if (c->active) {
      clink__turn *t = c->active;
      c->active = NULL;
      finish_turn(c, t, UV_ECANCELED, NULL);
    }
    clink__client_stop_process(c);
  }
  clink__recovery_tick(c, now);
  arm_timer(c);
}

void clink__client_arm_timer(clink_client *c) { arm_timer(c); }

static void arm_timer(clink_client *c) {
  if (c->freeing) return;
  uint64_t d = clink__ctl_next_deadline(&c->ctl);
  if (c->close_turn_wait && c->close_deadline_ms < d) d = c->close_deadline_ms;
  uint64_t r = clink__recovery_next_due(c);
  if (r < d) d = r;
  if (d == UINT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  uint64_t now = now_ms(c);
  uv_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0);
}

/* ------------------------------------------------------------- routing */

static void remember_session(clink_client *c, const clink_msg *m) {
  const char *sid = m->session_id;
  if (sid == NULL || sid[0] == '\0') return;
  if (c->session_id && strcmp(c->session_id, sid) == 0) return;
  clink__set_str(&c->session_id, sid);
}

static void on_result(clink_client *c, const clink_msg *m) {
  remember_session(c, m);
  int is_error = clink_msg_result_is_error(m);
  if (is_error) {
    const char *text = clink_msg_result_text(m);
    snprintf(c->last_error_result, sizeof(c->last_error_result), "%s%s%s",
             m->subtype ? m->subtype : "result", text ? ": " : "", text ? text : "");
    snprintf(c->last_error, sizeof(c->last_error), "turn failed: %s", c->last_error_result);
  }
  clink__turn *t = c->active;
  if (t == NULL) {
    if (c->unsolicited_cb && !c->closing) c->unsolicited_cb(c, m, c->unsolicited_ud);
    return;
  }
  if (t->on_message) t->on_message(c, m, t->ud);
  /* on_message closed the client without a turn wait: close already handed
   * the turn to the deferred failures (UV_ECANCELED). */
  if (c->active != t) return;
  c->active = NULL;
  finish_turn(c, t, is_error ? CLINK_ETURN_FAILED : 0, m);
  if (c->closing && c->close_turn_wait && c->t) {
    /* The turn close was waiting for has ended. */
    c->close_turn_wait = 0;
    clink__client_stop_process(c);
    arm_timer(c);
    return;
  }
  pump(c);
}

static void route(clink_client *c, const clink_msg *m) {
  switch (m->kind) {
    case CLINK_MSG_CONTROL_RESPONSE:
      clink__ctl_resolve(&c->ctl, m);
      arm_timer(c);
      return;
    case CLINK_MSG_CONTROL_REQUEST:
      clink__client_request_dispatch(c, m);
      return;
    case CLINK_MSG_CONTROL_CANCEL_REQUEST:
      clink__client_request_cancel(c, m);
      return;
    case CLINK_MSG_KEEP_ALIVE:
      return;
    case CLINK_MSG_RESULT:
      on_result(c, m);
      return;
    case CLINK_MSG_SYSTEM:
      if (m->subtype && strcmp(m->subtype, "init") == 0) remember_session(c, m);
      break;
    default:
      break;
  }
  if (c->active) {
    if (c->active->on_message) c->active->on_message(c, m, c->active->ud);
  } else if (c->unsolicited_cb && !c->closing) {
    c->unsolicited_cb(c, m, c->unsolicited_ud);
  }
}

static void on_line(void *ud, const char *line, size_t len) {
  clink_client *c = ud;
  c->m.messages_in++;
  c->m.bytes_in += len + 1;
  c->last_activity_ms = now_ms(c);
  int rc = line[0] == '{' ? clink__msg_parse_borrowed(&c->cur, line, len) : CLINK_EBAD_JSON;
  if (rc != 0) {
    /* Debug noise or a corrupt line: report it, keep the stream. */
    char detail[96];
    size_t n = len < 80 ? len : 80;
    snprintf(detail, sizeof(detail), "%.*s%s", (int)n, line, len > n ? "..." : "");
    report_error(c, rc, detail);
    return;
  }
  route(c, &c->cur);
  clink__msg_clear(&c->cur);
}

static void on_line_error(void *ud, int err, const char *prefix, size_t plen, uint64_t total) {
  clink_client *c = ud;
  char detail[160];
  snprintf(detail, sizeof(detail), "line of %llu bytes skipped: %.*s...",
           (unsigned long long)total, (int)(plen < 64 ? plen : 64), prefix);
  report_error(c, err, detail);
}

static void on_stderr_line(void *ud, const char *line, size_t len) {
  clink_client *c = ud;
  if (c->opts->stderr_cb && !c->closing) c->opts->stderr_cb(c, line, len, c->opts->stderr_ud);
}

static void on_transport_closed(void *ud) {
  clink_client *c = ud;
  c->transports_open--;
  maybe_free(c);
}

static void describe_exit(clink_client *c, int64_t status, int sig) {
  char tail[1024];
  size_t n = c->t ? clink__transport_stderr_tail(c->t, tail, sizeof(tail)) : 0;
  while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r')) tail[--n] = '\0';
  int off = sig ? snprintf(c->last_error, sizeof(c->last_error),
                           "claude (pid %d) was killed by signal %d", clink_client_pid(c), sig)
                : snprintf(c->last_error, sizeof(c->last_error),
                           "claude (pid %d) exited with code %lld", clink_client_pid(c),
                           (long long)status);
  if (off < 0 || (size_t)off >= sizeof(c->last_error)) return;
  if (c->probe_killed) {
    c->probe_killed = 0;
    off += snprintf(c->last_error + off, sizeof(c->last_error) - (size_t)off,
                    " after it did not answer an idle probe within %llu ms",
                    (unsigned long long)c->opts->probe_timeout_ms);
    if ((size_t)off >= sizeof(c->last_error)) return;
  }
  if (c->last_error_result[0])
    off += snprintf(c->last_error + off, sizeof(c->last_error) - (size_t)off,
                    "; last error result: %s", c->last_error_result);
  if (n > 0 && (size_t)off < sizeof(c->last_error))
    snprintf(c->last_error + off, sizeof(c->last_error) - (size_t)off, "; stderr: %s", tail);
}

static void on_exit_cb(void *ud, int64_t status, int sig) {
  clink_client *c = ud;
  describe_exit(c, status, sig);
  clink__client_count_error(c, CLINK_EEXITED);
  clink__client_stop_process(c);
  c->probe_inflight = 0;
  clink_client_state was = c->state;
  int recover = !c->closing && c->retry != NULL &&
                (was == CLINK_CLIENT_CONNECTED || was == CLINK_CLIENT_RECOVERING);
  /* Take the dead process's turns before any callback runs: a callback may
   * connect again, and the new process's queue and state are not ours. With
   * recovery the queue waits for the next process instead, and the running
   * turn may go back to its head, once. */
  clink__turn *turn = c->active;
  c->active = NULL;
  clink__turn *queued = NULL;
  if (!recover) {
    queued = c->queue_head;
    c->queue_head = c->queue_tail = NULL;
    c->queued = 0;
  } else if (turn && c->opts->resend_interrupted_turn && !turn->resent) {
    turn->resent = 1;
    turn->next = c->queue_head;
    c->queue_head = turn;
    if (c->queue_tail == NULL) c->queue_tail = turn;
    c->queued++;
    turn = NULL;
  }
  /* During a recovery attempt this fails its initialize, which schedules the
   * next attempt (clink__recovery_attempt_done). */
  clink__ctl_fail_all(&c->ctl, CLINK_EEXITED);
  if (recover && was == CLINK_CLIENT_CONNECTED && c->state == CLINK_CLIENT_CONNECTED)
    clink__recovery_start(c, CLINK_EEXITED);
  arm_timer(c);
  if (!recover && !c->closing && c->t == NULL) set_state(c, CLINK_CLIENT_ERROR);
  if (turn) finish_turn(c, turn, CLINK_EEXITED, NULL);
  while (queued) {
    clink__turn *n = queued->next;
    finish_turn(c, queued, CLINK_EEXITED, NULL);
    queued = n;
  }
}

/* -------------------------------------------------------------- connect */

static void on_initialized(void *ud, int status, const clink_msg *response) {
  clink_client *c = ud;
  if (status == CLINK_ECONTROL_TIMEOUT) status = CLINK_EINIT_TIMEOUT;
  if (c->state == CLINK_CLIENT_RECOVERING && !c->closing) {
    if (status == 0) {
      clink_msg_unref(c->server_info);
      c->server_info = clink_msg_ref(response);
      c->connected_at_ms = now_ms(c);
      c->m.connect_ms = uv_hrtime() / 1000000 - c->spawned_at_ms;
    } else {
      clink__client_count_error(c, status);
      clink__client_stop_process(c);
    }
    clink__recovery_attempt_done(c, status);
    return;
  }
  clink_connect_cb cb = c->connect_cb;
  void *cb_ud = c->connect_ud;
  c->connect_cb = NULL;
  /* close() ran after the answer was read but before its deferred cancel:
   * CLOSING -> CONNECTED is not a transition. */
  if (status == 0 && c->closing) status = UV_ECANCELED;
  if (status == 0) {
    c->server_info = clink_msg_ref(response);
    c->connected_at_ms = now_ms(c);
    c->m.connect_ms = uv_hrtime() / 1000000 - c->spawned_at_ms;
    c->ever_connected = 1;
    set_state(c, CLINK_CLIENT_CONNECTED);
    if (cb) cb(c, 0, c->connect_ud);
    pump(c);
    return;
  }
  if (status == CLINK_EINIT_TIMEOUT)
    snprintf(c->last_error, sizeof(c->last_error),
             "claude did not answer initialize within %llu ms",
             (unsigned long long)c->opts->connect_timeout_ms);
  clink__client_count_error(c, status);
  clink__client_stop_process(c);
  fail_queue_now(c, status);
  if (!c->closing) set_state(c, CLINK_CLIENT_ERROR);
  if (cb) cb(c, status, cb_ud);
}

static cJSON *initialize_fields(const clink_options *o) {
  cJSON *f = o->initialize_extra ? cJSON_Parse(o->initialize_extra) : cJSON_CreateObject();
  if (f == NULL) return NULL;
  if (o->hook_events.n == 0) {
    if (!cJSON_GetObjectItemCaseSensitive(f, "hooks")) cJSON_AddNullToObject(f, "hooks");
    return f;
  }
  /* {"PreToolUse":[{"matcher":"Bash","hookCallbackIds":["hook_0"],"timeout":30}]} */
  cJSON *hooks = cJSON_CreateObject();
  cJSON_DeleteItemFromObjectCaseSensitive(f, "hooks");
  cJSON_AddItemToObject(f, "hooks", hooks);
  for (size_t i = 0; i < o->hook_events.n; i++) {
    cJSON *list = cJSON_GetObjectItemCaseSensitive(hooks, o->hook_events.v[i]);
    if (list == NULL) list = cJSON_AddArrayToObject(hooks, o->hook_events.v[i]);
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddItemToArray(list, entry);
    if (o->hook_matchers.v[i])
      cJSON_AddStringToObject(entry, "matcher", o->hook_matchers.v[i]);
    else
      cJSON_AddNullToObject(entry, "matcher");
    char id[32];
    snprintf(id, sizeof(id), "hook_%zu", i);
    cJSON *ids = cJSON_AddArrayToObject(entry, "hookCallbackIds");
    cJSON_AddItemToArray(ids, cJSON_CreateString(id));
    unsigned long timeout = strtoul(o->hook_timeouts.v[i], NULL, 10);
    if (timeout) cJSON_AddNumberToObject(entry, "timeout", (double)timeout);
  }
  return f;
}

/* Spawns a process and sends its initialize; on error nothing is left. */
int clink__client_spawn(clink_client *c, const char *resume) {
  clink__spawn_spec spec;
  c->last_error[0] = '\0';
  c->last_error_result[0] = '\0';
  const clink_options *o = c->opts;
  clink_options *tmp = NULL;
  if (resume) {
    /* The same profile, picking the conversation up where it stopped: that
     * session exactly, so neither --continue (the cwd's most recent
     * conversation, maybe another client's) nor --fork-session (a new
     * session on every recovery). */
    int rc = clink_options_dup(&tmp, c->opts);
    if (rc == 0) rc = clink_options_set_resume(tmp, resume);
    if (rc == 0) rc = clink_options_set_session_id(tmp, NULL);
    if (rc == 0) rc = clink_options_set_continue(tmp, 0);
    if (rc == 0) rc = clink_options_set_fork_session(tmp, 0);
    if (rc != 0) {
      clink_options_free(tmp);
      return rc;
    }
    o = tmp;
  }
  int rc = clink__spawn_spec_build(&spec, o, c->last_error, sizeof(c->last_error));
  clink_options_free(tmp);
  if (rc != 0) {
    clink__client_count_error(c, rc);
    return rc;
  }
  static const clink__transport_cbs cbs = {on_line, on_line_error, on_stderr_line, NULL,
                                           on_exit_cb};
  clink__transport *t;
  rc = clink__transport_spawn(&t, c->loop, &spec, &cbs, c, c->last_error,
                              sizeof(c->last_error));
  clink__spawn_spec_free(&spec);
  if (rc != 0) {
    clink__client_count_error(c, rc);
    return rc;
  }
  c->t = t;
  c->transports_open++;
  c->m.spawns++;
  /* Not uv_now(): the loop time is stale when connect runs before uv_run or
   * after blocking work, and connect_ms would count that wait. */
  c->spawned_at_ms = uv_hrtime() / 1000000;
  cJSON *fields = initialize_fields(c->opts);
  rc = fields ? clink__client_send_control(c, "initialize", fields,
                                           c->opts->connect_timeout_ms, on_initialized, c)
              : UV_ENOMEM;
  if (rc != 0) clink__client_stop_process(c);
  return rc;
}

int clink_client_connect(clink_client *c, clink_connect_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  if (c->closing) return CLINK_ECLOSING;
  if (c->state != CLINK_CLIENT_DISCONNECTED && c->state != CLINK_CLIENT_ERROR) return UV_EBUSY;
  /* A new conversation: forget the old one's identity. */
  free(c->session_id);
  c->session_id = NULL;
  clink_msg_unref(c->server_info);
  c->server_info = NULL;
  int rc = clink__client_spawn(c, NULL);
  if (rc != 0) return rc;
  c->connect_cb = cb;
  c->connect_ud = ud;
  set_state(c, CLINK_CLIENT_CONNECTING);
  return 0;
}

/* ----------------------------------------------------------- lifetime */

int clink_client_new(clink_client **out, uv_loop_t *loop, const clink_options *opts) {
  if (out == NULL || loop == NULL || opts == NULL) return UV_EINVAL;
  clink_client *c = clink__calloc(1, sizeof(*c));
  if (c == NULL) return UV_ENOMEM;
  c->loop = loop;
  int rc = clink_options_dup(&c->opts, opts);
  if (rc == 0)
    rc = clink__ctl_init(&c->ctl, opts->max_control_inflight,
                         uv_hrtime() ^ (uint64_t)(uintptr_t)c);
  if (rc == 0 && opts->recovery) rc = clink_retry_new(&c->retry, opts->recovery, 0);
  if (rc != 0) {
    clink__ctl_free(&c->ctl);
    clink_options_free(c->opts);
    clink__free(c);
    return rc;
  }
  uv_timer_init(loop, &c->timer);
  uv_timer_init(loop, &c->defer);
  c->timer.data = c->defer.data = c;
  uv_unref((uv_handle_t *)&c->timer); /* never keeps the host's loop alive */
  uv_unref((uv_handle_t *)&c->defer);
  c->handles_open = 2;
  c->state = CLINK_CLIENT_DISCONNECTED;
  *out = c;
  return 0;
}

static void on_handle_closed(uv_handle_t *h) {
  clink_client *c = h->data;
  if (--c->handles_open > 0) return;
  clink_close_cb cb = c->close_cb;
  void *ud = c->close_ud;
  set_state(c, CLINK_CLIENT_CLOSED);
  if (cb) cb(c, ud);
  clink__ctl_free(&c->ctl);
  clink_retry_free(c->retry);
  clink_msg_unref(c->server_info);
  clink__free(c->session_id);
  clink_options_free(c->opts);
  clink__free(c);
}

static void maybe_free(clink_client *c) {
  if (!c->closing || c->freeing || c->transports_open > 0 || c->defer_pending) return;
  c->freeing = 1;
  clink__client_requests_detach(c);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->defer, on_handle_closed);
}

static void on_defer(uv_timer_t *timer) {
  clink_client *c = timer->data;
  c->defer_pending = 0;
  clink__turn *t = c->failed_head;
  c->failed_head = c->failed_tail = NULL;
  while (t) {
    clink__turn *n = t->next;
    finish_turn(c, t, t->status, NULL);
    t = n;
  }
  if (c->closing) {
    clink__ctl_fail_all(&c->ctl, UV_ECANCELED);
    if (!c->close_turn_wait) clink__client_stop_process(c);
    arm_timer(c);
    maybe_free(c);
  }
}

static void schedule_defer(clink_client *c) {
  if (c->defer_pending) return;
  c->defer_pending = 1;
  uv_ref((uv_handle_t *)&c->defer);
  uv_timer_start(&c->defer, on_defer, 0, 0);
}

int clink_client_close(clink_client *c, clink_close_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  if (c->closing) return UV_EBUSY;
  c->closing = 1;
  c->close_cb = cb;
  c->close_ud = ud;
  clink__recovery_stop(c);
  set_state(c, CLINK_CLIENT_CLOSING);
  fail_queue_deferred(c, UV_ECANCELED);
  if (c->active && c->t && c->opts->close_turn_wait_ms > 0) {
    /* Let the running turn end: EOF now, the CLI finishes and exits. */
    c->close_turn_wait = 1;
    uv_update_time(c->loop); /* as in send_control() */
    c->close_deadline_ms = now_ms(c) + c->opts->close_turn_wait_ms;
    clink__transport_end_input(c->t);
    uv_ref((uv_handle_t *)&c->timer);
    arm_timer(c);
  } else if (c->active) {
    /* No wait allowed: it fails with the close. */
    clink__turn *t = c->active;
    c->active = NULL;
    fail_turn_deferred(c, t, UV_ECANCELED);
  }
  schedule_defer(c);
  return 0;
}

/* ------------------------------------------------------------ read-outs */

void clink_client_set_user_data(clink_client *c, void *ud) { c->user_data = ud; }
void *clink_client_get_user_data(const clink_client *c) { return c->user_data; }

void clink_client_set_state_cb(clink_client *c, clink_state_cb cb, void *ud) {
  c->state_cb = cb;
  c->state_ud = ud;
}

void clink_client_set_error_cb(clink_client *c, clink_error_cb cb, void *ud) {
  c->error_cb = cb;
  c->error_ud = ud;
}

void clink_client_set_recovery_cb(clink_client *c, clink_recovery_cb cb, void *ud) {
  c->recovery_cb = cb;
  c->recovery_ud = ud;
}

void clink_client_set_breaker(clink_client *c, clink_breaker *b) { c->breaker = b; }

void clink_client_set_unsolicited_cb(clink_client *c, clink_unsolicited_cb cb, void *ud) {
  c->unsolicited_cb = cb;
  c->unsolicited_ud = ud;
}

clink_client_state clink_client_get_state(const clink_client *c) { return c->state; }
const char *clink_client_session_id(const clink_client *c) { return c->session_id; }
const clink_msg *clink_client_server_info(const clink_client *c) { return c->server_info; }
const char *clink_client_last_error(const clink_client *c) { return c->last_error; }
int clink_client_pid(const clink_client *c) { return c->t ? clink__transport_pid(c->t) : 0; }

int clink_client_get_metrics(const clink_client *c, clink_client_metrics *out) {
  if (c == NULL || out == NULL || out->struct_size < sizeof(size_t)) return UV_EINVAL;
  clink_client_metrics m = c->m;
  uint64_t now = now_ms(c);
  m.uptime_ms = c->connected_at_ms ? now - c->connected_at_ms : 0;
  m.last_activity_ms = c->last_activity_ms ? now - c->last_activity_ms : 0;
  size_t n = out->struct_size < sizeof(m) ? out->struct_size : sizeof(m);
  m.struct_size = n;
  memcpy(out, &m, n);
  return 0;
}

uint64_t clink_client_error_count(const clink_client *c, int err) {
  for (size_t i = 0; i < CLINK__ERR_SLOTS; i++)
    if (c->errs[i].code == err) return c->errs[i].count;
  return 0;
}
