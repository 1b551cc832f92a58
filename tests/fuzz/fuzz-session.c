/* Fuzz target: the session core (lib/session), driven by the input as a
 * program of host calls, stdout lines, process events and time steps.
 *
 * Each step takes one byte: its low 4 bits pick the action, the high ones
 * an argument; a line action takes the bytes up to the next '\n' as the
 * line (any bytes: JSON or not). Invariants checked after every step:
 *   - every query completes exactly once (and never before it was made),
 *     every control request too;
 *   - nothing is written after close;
 *   - no message reaches a turn after its end;
 *   - after tick(now), the next deadline is later than now (a deadline
 *     that stays in the past would spin the host's loop);
 *   - events never refer to freed memory (ASan), no leak at the end. */
#include <string.h>

#include <cjson/cJSON.h>

#include <claudelink.h>

#include "fuzz.h"
#include "session/session.h"

#define MAX_OPS 4096

typedef struct op_rec {
  int done, status;
} op_rec;

static struct {
  clink__session *s;
  uint64_t now;
  int closed;
  size_t after_close;
  char last[512];
  op_rec *turns, *ctls;
  int nturns, nctls;
  clink_request *held[8];
  int nheld;
} F;

static int on_send(void *ud, const char *line, size_t len) {
  (void)ud;
  FUZZ_CHECK(memchr(line, '\n', len) == NULL, "a written line holds a newline");
  if (F.closed) F.after_close++;
  size_t n = len < sizeof(F.last) - 1 ? len : sizeof(F.last) - 1;
  memcpy(F.last, line, n);
  F.last[n] = '\0';
  return 0;
}

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  (void)c;
  (void)m;
  (void)ud;
}

static void on_request(clink_client *c, clink_request *r, void *ud) {
  (void)c;
  (void)r;
  (void)ud;
}

static void drain(void) {
  clink__ev_out e;
  while (clink__session_next_event(F.s, &e)) {
    switch (e.kind) {
      case CLINK__EV_MESSAGE:
        if (e.ud) FUZZ_CHECK(((op_rec *)e.ud)->done == 0, "message after its turn ended");
        break;
      case CLINK__EV_TURN_DONE:
      case CLINK__EV_CONTROL_DONE: {
        op_rec *o = e.ud;
        FUZZ_CHECK(o != NULL, "completion without its operation");
        FUZZ_CHECK(o->done == 0, "completed twice");
        o->done = 1;
        o->status = e.status;
        break;
      }
      case CLINK__EV_REQUEST:
        if (F.nheld < 8)
          F.held[F.nheld++] = e.req;
        else
          clink_request_fail(e.req, "full");
        break;
      case CLINK__ACT_PUMP:
        clink__session_pump(F.s, F.now);
        break;
      default:
        break;
    }
  }
  clink__session_line_done(F.s);
}

static void answer_last_request(unsigned arg) {
  if (F.nheld == 0) return;
  clink_request *r = F.held[--F.nheld];
  int rc;
  switch (arg % 4) {
    case 0: rc = clink_request_allow(r, NULL, NULL); break;
    case 1: rc = clink_request_deny(r, "no", (int)(arg & 4)); break;
    case 2: rc = clink_request_respond(r, "{\"ok\":true}"); break;
    default: rc = clink_request_fail(r, "bad"); break;
  }
  FUZZ_CHECK(rc == 0 || rc == CLINK_ECLOSING || rc == CLINK_EEXITED, "answer: %d", rc);
}

/* The id of the control request written last, for a matching answer. */
static void answer_last_control(unsigned arg) {
  cJSON *j = cJSON_Parse(F.last);
  const cJSON *rid = cJSON_GetObjectItemCaseSensitive(j, "request_id");
  if (cJSON_IsString(rid)) {
    char line[256];
    snprintf(line, sizeof(line),
             "{\"type\":\"control_response\",\"response\":{\"subtype\":\"%s\","
             "\"request_id\":\"%s\",\"response\":{}}}",
             arg & 1 ? "error" : "success", rid->valuestring);
    clink__session_recv_line(F.s, line, strlen(line), F.now);
  }
  cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  memset(&F, 0, sizeof(F));
  F.turns = calloc(MAX_OPS, sizeof(op_rec));
  F.ctls = calloc(MAX_OPS, sizeof(op_rec));
  FUZZ_CHECK(F.turns && F.ctls, "harness memory");
  clink_options *o;
  FUZZ_CHECK(clink_options_new(&o) == 0, "options");
  clink_options_set_permission_cb(o, on_request, NULL);
  clink_options_set_turn_inactivity_ms(o, 500);
  clink_options_set_idle_probe(o, 700, 300);
  clink_options_set_close_turn_wait_ms(o, 2000);
  clink_options_set_max_queued_queries(o, 8);
  if (size > 0 && (data[0] & 1)) {
    clink_retry_policy *p;
    clink_retry_policy_new(&p);
    clink_options_set_recovery(o, p);
    clink_retry_policy_free(p);
    clink_options_set_resend_interrupted_turn(o, (data[0] & 2) != 0);
  }
  FUZZ_CHECK(clink__session_new(&F.s, o, on_send, NULL, NULL) == 0, "session");
  F.now = 1000;
  size_t i = size > 0 ? 1 : 0;
  while (i < size) {
    unsigned b = data[i++], act = b & 15, arg = b >> 4;
    switch (act) {
      case 0:
        clink__session_connect(F.s, NULL, NULL, F.now);
        break;
      case 1:
      case 2:
        if (F.nturns < MAX_OPS &&
            clink__session_query(F.s, cJSON_CreateString("q"), on_message, NULL,
                                 &F.turns[F.nturns], F.now) == 0)
          F.nturns++;
        break;
      case 3:
        if (F.nctls < MAX_OPS &&
            clink__session_control(F.s, arg & 1 ? "interrupt" : "mcp_status", NULL,
                                   arg ? arg * 100 : CLINK_NEVER, NULL, &F.ctls[F.nctls],
                                   F.now) == 0)
          F.nctls++;
        break;
      case 4:
        answer_last_control(arg);
        break;
      case 5:
        if (!F.closed && arg == 15) {
          FUZZ_CHECK(clink__session_close(F.s, F.now) == 0, "close");
          F.closed = 1;
        }
        break;
      case 6:
        clink__session_process_exited(F.s, F.now);
        break;
      case 7:
        answer_last_request(arg);
        break;
      case 8:
        F.now += (uint64_t)arg * arg * 37;
        clink__session_tick(F.s, F.now);
        break;
      case 9:
        /* A recovery attempt, the way the driver plays it. */
        if (arg & 1)
          clink__session_attempt_rejected(F.s, CLINK_ECIRCUIT_OPEN, arg * 10, F.now);
        else if (clink__session_attempt_admitted(F.s, F.now) && clink__session_spawn_wanted(F.s))
          (void)(arg & 2 ? clink__session_attempt_started(F.s, F.now)
                         : (clink__session_attempt_spawn_failed(F.s, CLINK_ESPAWN, F.now), 0));
        break;
      default: {
        /* A stdout line: the bytes up to '\n'. */
        size_t start = i;
        while (i < size && data[i] != '\n') i++;
        clink__session_recv_line(F.s, (const char *)data + start, i - start, F.now);
        if (i < size) i++;
        break;
      }
    }
    drain();
    clink__session_tick(F.s, F.now);
    drain();
    uint64_t d = clink__session_next_deadline(F.s);
    FUZZ_CHECK(d > F.now, "next deadline %llu is not later than now %llu",
               (unsigned long long)d, (unsigned long long)F.now);
    FUZZ_CHECK(F.after_close == 0, "%zu line(s) written after close", F.after_close);
  }
  /* The end: close, the process goes, time passes: everything completes. */
  if (!F.closed) clink__session_close(F.s, F.now);
  F.closed = 1;
  drain();
  clink__session_process_exited(F.s, F.now);
  drain();
  F.now += 1000000;
  clink__session_tick(F.s, F.now);
  drain();
  FUZZ_CHECK(F.after_close == 0, "%zu line(s) written after close", F.after_close);
  for (int k = 0; k < F.nturns; k++) FUZZ_CHECK(F.turns[k].done, "turn %d never ended", k);
  for (int k = 0; k < F.nctls; k++) FUZZ_CHECK(F.ctls[k].done, "control %d never ended", k);
  FUZZ_CHECK(clink__session_closed(F.s), "session not closed at the end");
  while (F.nheld) clink_request_fail(F.held[--F.nheld], "end");
  clink__session_free(F.s);
  clink_options_free(o);
  free(F.turns);
  free(F.ctls);
  return 0;
}
