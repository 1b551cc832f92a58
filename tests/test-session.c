/* The session core without processes: replays of the real CLI's transcripts
 * (tests/session/transcripts), and a randomized run against invariants.
 *
 * The test plays the driver: it feeds the session what the CLI wrote (with
 * the request ids the session chose put in place of the transcript's), pops
 * every event after every input, answers inbound requests the way the
 * transcript's driver did, and checks what came out against a reference
 * model computed from the transcript alone: turns end in order with the
 * status their result says, each turn gets exactly the lines written while
 * it ran, control requests get their answers, and nothing is written after
 * close. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/deadline.h"
#include "base/rand.h"
#include "session/session.h"
#include "testutil.h"

#define MAX_TURNS 16
#define MAX_MAP 16
#define MAX_HELD 8

typedef struct turn_rec {
  int done, status, msgs, result_seen;
} turn_rec;

typedef struct ctl_rec {
  int done, status;
} ctl_rec;

static struct {
  clink__session *s;
  clink_options *o;
  uint64_t now;
  int closed;
  size_t sent, sent_after_close;
  char last_sent[65536];
  turn_rec turns[MAX_TURNS];
  int nturns;
  ctl_rec ctls[MAX_TURNS];
  int nctls;
  struct {
    char from[64], to[64];
  } map[MAX_MAP];
  int nmap;
  clink_request *held[MAX_HELD];
  int nheld, requests;
  int connects, connect_status;
  int errors, unsolicited;
  int stops, end_inputs, kills, attempts;
  int proc_up;
  clink_client_state state;
} R;

static int send_line(void *ud, const char *line, size_t len) {
  (void)ud;
  R.sent++;
  if (R.closed) R.sent_after_close++;
  ck_assert_uint_lt(len, sizeof(R.last_sent));
  memcpy(R.last_sent, line, len);
  R.last_sent[len] = '\0';
  ck_assert_ptr_null(memchr(line, '\n', len));
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

static void setup(void) {
  memset(&R, 0, sizeof(R));
  ck_assert_int_eq(clink_options_new(&R.o), 0);
  ck_assert_int_eq(clink_options_set_permission_cb(R.o, on_request, NULL), 0);
  ck_assert_int_eq(clink__session_new(&R.s, R.o, send_line, NULL, NULL), 0);
}

static void teardown(void) {
  for (int i = 0; i < R.nheld; i++)
    if (R.held[i]) clink_request_fail(R.held[i], "test over");
  clink__session_free(R.s);
  clink_options_free(R.o);
}

/* Pops every event: what the driver does, minus user code. */
static void drain(void) {
  clink__ev_out e;
  while (clink__session_next_event(R.s, &e)) {
    switch (e.kind) {
      case CLINK__EV_STATE:
        ck_assert_int_ne(e.from, e.to);
        R.state = e.to;
        break;
      case CLINK__EV_CONNECT:
        R.connects++;
        R.connect_status = e.status;
        break;
      case CLINK__EV_MESSAGE:
        if (e.ud) {
          turn_rec *t = e.ud;
          ck_assert_int_eq(t->done, 0); /* never a message after the turn's end */
          t->msgs++;
        } else {
          R.unsolicited++;
        }
        break;
      case CLINK__EV_TURN_DONE: {
        turn_rec *t = e.ud;
        ck_assert_int_eq(t->done, 0); /* exactly once */
        t->done = 1;
        t->status = e.status;
        t->result_seen = e.msg != NULL;
        break;
      }
      case CLINK__EV_CONTROL_DONE: {
        ctl_rec *c = e.ud;
        ck_assert_int_eq(c->done, 0);
        c->done = 1;
        c->status = e.status;
        break;
      }
      case CLINK__EV_REQUEST:
        R.requests++;
        ck_assert_int_lt(R.nheld, MAX_HELD);
        R.held[R.nheld++] = e.req;
        break;
      case CLINK__EV_ERROR:
        R.errors++;
        break;
      case CLINK__EV_RECOVERY:
        break;
      case CLINK__ACT_STOP:
        R.stops++;
        R.proc_up = 0;
        break;
      case CLINK__ACT_END_INPUT:
        R.end_inputs++;
        break;
      case CLINK__ACT_KILL:
        R.kills++;
        break;
      case CLINK__ACT_ATTEMPT:
      case CLINK__ACT_SPAWN:
        R.attempts++;
        break;
      case CLINK__ACT_SETTLE:
      case CLINK__ACT_IDLE:
        break;
      case CLINK__ACT_PUMP:
        clink__session_pump(R.s, R.now);
        break;
    }
  }
  clink__session_line_done(R.s);
  /* Time: whatever is due now has been done. */
  clink__session_tick(R.s, R.now);
  ck_assert_uint_gt(clink__session_next_deadline(R.s), R.now);
  if (clink__session_has_events(R.s)) drain();
}

static const char *sent_request_id(void) {
  static char id[64];
  cJSON *j = cJSON_Parse(R.last_sent);
  const cJSON *rid = cJSON_GetObjectItemCaseSensitive(j, "request_id");
  ck_assert(cJSON_IsString(rid));
  snprintf(id, sizeof(id), "%s", rid->valuestring);
  cJSON_Delete(j);
  return id;
}

static void map_id(const char *from) {
  ck_assert_int_lt(R.nmap, MAX_MAP);
  snprintf(R.map[R.nmap].from, sizeof(R.map[0].from), "%s", from);
  snprintf(R.map[R.nmap].to, sizeof(R.map[0].to), "%s", sent_request_id());
  R.nmap++;
}

/* The transcript's control_response ids become ours. */
static void rewrite_ids(cJSON *data) {
  cJSON *resp = cJSON_GetObjectItemCaseSensitive(data, "response");
  cJSON *rid = cJSON_GetObjectItemCaseSensitive(resp, "request_id");
  if (!cJSON_IsString(rid)) return;
  for (int i = 0; i < R.nmap; i++)
    if (strcmp(rid->valuestring, R.map[i].from) == 0)
      cJSON_SetValuestring(rid, R.map[i].to);
}

/* ----------------------------------------------------------- the model */

/* What the transcript alone says each turn should get: lines belong to the
 * oldest unfinished turn; a result ends it. */
typedef struct model {
  int turns, results;
  int msgs[MAX_TURNS];
  int is_error[MAX_TURNS];
  int has_result[MAX_TURNS];
  int active; /* index of the oldest unfinished turn, or turns */
  int unsolicited;
} model;

static void model_line(model *m, const cJSON *data) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(data, "type");
  const char *t = cJSON_IsString(type) ? type->valuestring : "";
  if (strncmp(t, "control_", 8) == 0 || strcmp(t, "keep_alive") == 0) return;
  if (m->active >= m->turns) {
    m->unsolicited++;
    return;
  }
  m->msgs[m->active]++;
  if (strcmp(t, "result") == 0) {
    m->is_error[m->active] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "is_error"));
    m->has_result[m->active] = 1;
    m->active++;
  }
}

/* ------------------------------------------------------------- replay */

typedef struct replay_opts {
  int skip_noinit; /* the transcript never initialized */
} replay_opts;

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static const char *transcripts_dir(void) {
  const char *d = getenv("CLINK_TEST_TRANSCRIPTS");
  ck_assert_msg(d != NULL, "CLINK_TEST_TRANSCRIPTS is not set");
  return d;
}

/* Replays one transcript; returns the model. */
static model replay(const char *name) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s.transcript.jsonl", transcripts_dir(), name);
  char *text = read_file(path);
  model m;
  memset(&m, 0, sizeof(m));
  int connected = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *rec = cJSON_Parse(line);
    ck_assert_ptr_nonnull(rec);
    const char *dir = cJSON_GetObjectItemCaseSensitive(rec, "dir")->valuestring;
    double t = cJSON_GetObjectItemCaseSensitive(rec, "t")->valuedouble;
    uint64_t now = (uint64_t)t + 1000; /* the session's clock need not start at 0 */
    if (now > R.now) R.now = now;
    cJSON *data = cJSON_GetObjectItemCaseSensitive(rec, "data");
    const char *type = NULL;
    if (data) {
      const cJSON *ty = cJSON_GetObjectItemCaseSensitive(data, "type");
      type = cJSON_IsString(ty) ? ty->valuestring : NULL;
    }
    if (strcmp(dir, "in") == 0 && type && strcmp(type, "control_request") == 0) {
      cJSON *req = cJSON_GetObjectItemCaseSensitive(data, "request");
      const char *st = cJSON_GetObjectItemCaseSensitive(req, "subtype")->valuestring;
      const char *rid = cJSON_GetObjectItemCaseSensitive(data, "request_id")->valuestring;
      if (strcmp(st, "initialize") == 0) {
        ck_assert_int_eq(clink__session_connect(R.s, NULL, NULL, R.now), 0);
        R.proc_up = 1;
        connected = 1;
      } else {
        cJSON *fields = cJSON_Duplicate(req, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(fields, "subtype");
        ck_assert_int_lt(R.nctls, MAX_TURNS);
        ck_assert_int_eq(clink__session_control(R.s, st, fields, 60000, NULL,
                                                &R.ctls[R.nctls++], R.now),
                         0);
      }
      map_id(rid);
    } else if (strcmp(dir, "in") == 0 && type && strcmp(type, "user") == 0) {
      if (!connected) {
        /* d-noinit: the CLI worked without initialize; our session always
         * sends one, so the CLI's lines arrive with the turn queued. */
        ck_assert_int_eq(clink__session_connect(R.s, NULL, NULL, R.now), 0);
        R.proc_up = 1;
        connected = 1;
      }
      cJSON *msg = cJSON_GetObjectItemCaseSensitive(data, "message");
      cJSON *content = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(msg, "content"), 1);
      ck_assert_int_lt(R.nturns, MAX_TURNS);
      ck_assert_int_eq(clink__session_query(R.s, content, on_message, NULL, &R.turns[R.nturns++],
                                            R.now),
                       0);
      m.turns++;
    } else if (strcmp(dir, "in") == 0 && type && strcmp(type, "control_response") == 0) {
      /* The transcript's driver answered a request: we answer the same. */
      cJSON *resp = cJSON_GetObjectItemCaseSensitive(data, "response");
      const char *rid = cJSON_GetObjectItemCaseSensitive(resp, "request_id")->valuestring;
      cJSON *inner = cJSON_GetObjectItemCaseSensitive(resp, "response");
      int found = 0;
      for (int i = 0; i < R.nheld; i++) {
        if (R.held[i] == NULL) continue;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(
            clink_msg_json(clink_request_msg(R.held[i])), "request_id");
        if (strcmp(id->valuestring, rid) != 0) continue;
        char *json = cJSON_PrintUnformatted(inner);
        size_t before = R.sent;
        ck_assert_int_eq(clink_request_respond(R.held[i], json), 0);
        free(json);
        R.held[i] = NULL;
        ck_assert_uint_eq(R.sent, before + 1);
        /* Our answer says what theirs said, to the same request. */
        cJSON *ours = cJSON_Parse(R.last_sent);
        cJSON *ours_resp = cJSON_GetObjectItemCaseSensitive(ours, "response");
        ck_assert_str_eq(
            cJSON_GetObjectItemCaseSensitive(ours_resp, "request_id")->valuestring, rid);
        ck_assert(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(ours_resp, "response"),
                                inner, 1));
        cJSON_Delete(ours);
        found = 1;
      }
      ck_assert_msg(found, "no held request %s", rid);
    } else if (strcmp(dir, "out") == 0 && data) {
      rewrite_ids(data);
      char *out = cJSON_PrintUnformatted(data);
      model_line(&m, data);
      clink__session_recv_line(R.s, out, strlen(out), R.now);
      free(out);
    } else if (strcmp(dir, "out") == 0) {
      const char *raw = cJSON_GetObjectItemCaseSensitive(rec, "line")->valuestring;
      int before = R.errors;
      clink__session_recv_line(R.s, raw, strlen(raw), R.now);
      drain();
      ck_assert_int_eq(R.errors, before + 1); /* reported, the stream goes on */
    } else if (strcmp(dir, "step") == 0) {
      cJSON *step = cJSON_GetObjectItemCaseSensitive(rec, "step");
      if (cJSON_GetObjectItemCaseSensitive(step, "closeStdin") && connected && !R.closed) {
        ck_assert_int_eq(clink__session_close(R.s, R.now), 0);
        R.closed = 1;
      }
    } else if (strcmp(dir, "meta") == 0 && cJSON_GetObjectItemCaseSensitive(rec, "exit")) {
      clink__session_process_exited(R.s, R.now);
      R.proc_up = 0;
    }
    drain();
    cJSON_Delete(rec);
  }
  free(text);
  if (!R.closed) {
    ck_assert_int_eq(clink__session_close(R.s, R.now), 0);
    R.closed = 1;
  }
  drain();
  /* A close waiting for a turn whose process is gone ends at its deadline. */
  R.now = clink__sat_add(R.now, 60000);
  drain();
  ck_assert_int_eq(clink__session_closed(R.s), 1);
  return m;
}

/* What every replay must show, whatever the case. */
static void check_common(const model *m, const char *name) {
  ck_assert_uint_eq(R.sent_after_close, 0);
  ck_assert_int_eq(R.nturns, m->turns);
  for (int i = 0; i < m->turns; i++) {
    turn_rec *t = &R.turns[i];
    ck_assert_msg(t->done == 1, "%s: turn %d did not end", name, i);
    if (m->has_result[i]) {
      ck_assert_msg(t->status == (m->is_error[i] ? CLINK_ETURN_FAILED : 0),
                    "%s: turn %d status %s", name, i, clink_err_name(t->status));
      ck_assert_int_eq(t->result_seen, 1);
      ck_assert_msg(t->msgs == m->msgs[i], "%s: turn %d got %d messages, want %d", name, i,
                    t->msgs, m->msgs[i]);
    } else {
      /* No result: the process died, or the close ended it. */
      ck_assert_msg(t->status == CLINK_EEXITED || t->status == UV_ECANCELED,
                    "%s: turn %d status %s", name, i, clink_err_name(t->status));
    }
  }
  for (int i = 0; i < R.nctls; i++) ck_assert_int_eq(R.ctls[i].done, 1);
  ck_assert_int_eq(R.state, CLINK_CLIENT_CLOSING);
}

static const char *const cases[] = {
    "b-content-blocks", "b-multiturn",        "b-partial",         "c-sdklike",
    "e-down",             "e-err400",          "e-err401",
    "e-err429",         "e-err500",           "e-err529",          "e-fast500-continue",
    "e-retryafter",     "f-bogus",            "f-malformed",       "f-malformed-midturn",
    "g-sigint-midturn", "g-sigterm-idle",     "g-sigterm",         "h-interrupt",
    "i-tool-deny",      "i-tool-noprompt",    "i-tool-touch",      "i-tool-twoblocks",
    "i-tool-write",     "i-tool",             "j-eof-midturn",     "k-drop-always",
    "k-drop-once",      "k-minheaders",       "k-noevent",         "k-sse-ct-json",
    "l-bypass-root",    "l-bypass-sandbox",   "l-maxturns",        "l-noverbose",
};

START_TEST(replay_every_transcript) {
  const char *name = cases[_i];
  model m = replay(name);
  check_common(&m, name);
}
END_TEST

/* ---------------------------------------------- what specific cases show */

START_TEST(replay_multiturn) {
  model m = replay("b-multiturn");
  check_common(&m, "b-multiturn");
  ck_assert_int_eq(R.nturns, 2);
  ck_assert_int_eq(R.turns[0].status, 0);
  ck_assert_int_eq(R.turns[1].status, 0);
  ck_assert_int_eq(R.turns[0].msgs, 3); /* system/init, assistant, result */
  ck_assert_int_eq(R.connects, 1);
  ck_assert_int_eq(R.connect_status, 0);
  ck_assert_str_eq(clink__session_id(R.s) ? "set" : "unset", "set");
  ck_assert_ptr_nonnull(clink__session_server_info(R.s));
}
END_TEST

START_TEST(replay_api_errors) {
  static const char *const names[] = {"e-err400", "e-err429", "e-err500", "e-err529"};
  model m = replay(names[_i]);
  check_common(&m, names[_i]);
  ck_assert_int_eq(R.turns[0].status, CLINK_ETURN_FAILED);
  ck_assert_ptr_nonnull(strstr(clink__session_last_error(R.s), "turn failed"));
}
END_TEST

START_TEST(replay_interrupt) {
  model m = replay("h-interrupt");
  check_common(&m, "h-interrupt");
  ck_assert_int_eq(R.turns[0].status, CLINK_ETURN_FAILED); /* error_during_execution */
  ck_assert_int_eq(R.turns[1].status, 0);
  ck_assert_int_eq(R.nctls, 2); /* interrupt, set_permission_mode */
  ck_assert_int_eq(R.ctls[0].status, 0);
  ck_assert_int_eq(R.ctls[1].status, 0);
}
END_TEST

START_TEST(replay_unknown_control) {
  model m = replay("f-bogus");
  check_common(&m, "f-bogus");
  ck_assert_int_eq(R.nctls, 1);
  ck_assert_int_eq(R.ctls[0].status, CLINK_ECONTROL_ERROR);
}
END_TEST

START_TEST(replay_permission_round_trip) {
  static const char *const names[] = {"i-tool-touch", "i-tool-deny", "i-tool-write"};
  model m = replay(names[_i]);
  check_common(&m, names[_i]);
  ck_assert_int_eq(R.requests, 1);
  ck_assert_int_eq(R.turns[0].status, 0);
}
END_TEST

START_TEST(replay_death_mid_turn) {
  static const char *const names[] = {"f-malformed-midturn", "g-sigint-midturn", "g-sigterm"};
  model m = replay(names[_i]);
  check_common(&m, names[_i]);
  ck_assert_int_eq(R.turns[0].status, CLINK_EEXITED);
}
END_TEST

START_TEST(replay_death_at_startup) {
  static const char *const names[] = {"l-bypass-root", "l-noverbose"};
  model m = replay(names[_i]);
  check_common(&m, names[_i]);
  ck_assert_int_eq(R.connects, 1);
  ck_assert_int_eq(R.connect_status, CLINK_EEXITED);
}
END_TEST

/* The CLI also works without initialize; our session always sends one and
 * writes turns only once it is answered, so this CLI's lines come while the
 * turn is still queued: outside any turn, and the turn ends with the close. */
START_TEST(replay_without_initialize) {
  model m = replay("d-noinit");
  ck_assert_uint_eq(R.sent_after_close, 0);
  ck_assert_int_eq(R.nturns, 1);
  ck_assert_int_eq(R.turns[0].done, 1);
  ck_assert_int_eq(R.turns[0].status, UV_ECANCELED); /* still queued at the close */
  ck_assert_int_eq(R.unsolicited, m.msgs[0]);
  ck_assert_int_eq(R.connect_status, UV_ECANCELED); /* closed before it was answered */
}
END_TEST

/* stdin EOF mid-turn: the CLI finishes the turn; close waited for it. */
START_TEST(replay_eof_mid_turn) {
  model m = replay("j-eof-midturn");
  check_common(&m, "j-eof-midturn");
  ck_assert_int_eq(R.end_inputs, 1);
  ck_assert_int_eq(R.turns[0].status, 0);
  ck_assert_int_eq(R.turns[0].result_seen, 1);
}
END_TEST

/* ================================================= randomized invariants */

/* Random lines and host calls, checked against the invariants the issue
 * names: every query completes exactly once, nothing is written after
 * close, deadlines never stay in the past. */
static const char *const random_lines[] = {
    "{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s1\"}",
    "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}}",
    "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"session_id\":\"s1\"}",
    "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"api_error_status\":529}",
    "{\"type\":\"user\",\"message\":{\"content\":\"x\"}}",
    "{\"type\":\"keep_alive\"}",
    "not json at all",
    "{\"type\":\"control_request\",\"request_id\":\"r-1\",\"request\":{\"subtype\":\"can_use_tool\",\"tool_name\":\"Bash\",\"input\":{}}}",
    "{\"type\":\"control_request\",\"request_id\":\"r-2\",\"request\":{\"subtype\":\"bogus\"}}",
    "{\"type\":\"control_cancel_request\",\"request_id\":\"r-1\"}",
    "{\"type\":\"stream_event\",\"event\":{}}",
    "{\"type\":\"bogus\"}",
};

static void random_run(uint64_t seed, int steps) {
  uint64_t rng = seed;
  R.now = 1000;
  turn_rec *turns = calloc((size_t)steps + 1, sizeof(*turns));
  ctl_rec *ctls = calloc((size_t)steps + 1, sizeof(*ctls));
  int nt = 0, nc = 0;
  uint64_t last_deadline_check = 0;
  for (int i = 0; i < steps; i++) {
    uint64_t r = clink__splitmix64(&rng);
    R.now += r % 3 == 0 ? (r >> 8) % 5000 : 0;
    switch ((r >> 20) % 14) {
      case 0:
        if (clink__session_connect(R.s, NULL, NULL, R.now) == 0) R.proc_up = 1;
        break;
      case 1:
      case 2: {
        int rc = clink__session_query(R.s, cJSON_CreateString("q"), on_message, NULL, &turns[nt],
                                      R.now);
        if (rc == 0) nt++;
        break;
      }
      case 3: {
        int rc = clink__session_control(R.s, "interrupt", NULL, 30000, NULL, &ctls[nc], R.now);
        if (rc == 0) nc++;
        break;
      }
      case 4: {
        /* The initialize's answer, or any control response. */
        if (R.last_sent[0] == '\0') break;
        cJSON *j = cJSON_Parse(R.last_sent);
        const cJSON *rid = cJSON_GetObjectItemCaseSensitive(j, "request_id");
        if (cJSON_IsString(rid)) {
          char line[256];
          snprintf(line, sizeof(line),
                   "{\"type\":\"control_response\",\"response\":{\"subtype\":\"%s\","
                   "\"request_id\":\"%s\",\"response\":{}}}",
                   (r >> 40) % 4 ? "success" : "error", rid->valuestring);
          clink__session_recv_line(R.s, line, strlen(line), R.now);
        }
        cJSON_Delete(j);
        break;
      }
      case 5:
        if (!R.closed && (r >> 32) % 50 == 0) {
          ck_assert_int_eq(clink__session_close(R.s, R.now), 0);
          R.closed = 1;
        }
        break;
      case 6:
        if ((r >> 32) % 10 == 0) clink__session_process_exited(R.s, R.now);
        break;
      case 7:
        for (int k = 0; k < R.nheld; k++) {
          if (R.held[k] == NULL) continue;
          int rc = (r >> 33) % 2 ? clink_request_allow(R.held[k], NULL, NULL)
                                 : clink_request_deny(R.held[k], "no", 0);
          ck_assert(rc == 0 || rc == CLINK_ECLOSING || rc == CLINK_EEXITED);
          R.held[k] = NULL;
        }
        break;
      default: {
        const char *l = random_lines[(r >> 36) % (sizeof(random_lines) / sizeof(*random_lines))];
        clink__session_recv_line(R.s, l, strlen(l), R.now);
        break;
      }
    }
    /* Held requests beyond the table: free slots by answering. */
    if (R.nheld == MAX_HELD) {
      for (int k = 0; k < R.nheld; k++)
        if (R.held[k]) clink_request_fail(R.held[k], "x");
      R.nheld = 0;
    }
    drain();
    uint64_t d = clink__session_next_deadline(R.s);
    ck_assert_uint_gt(d, R.now);
    last_deadline_check = d;
  }
  (void)last_deadline_check;
  if (!R.closed) {
    ck_assert_int_eq(clink__session_close(R.s, R.now), 0);
    R.closed = 1;
  }
  clink__session_process_exited(R.s, R.now);
  R.now = clink__sat_add(R.now, 120000);
  drain();
  ck_assert_uint_eq(R.sent_after_close, 0);
  for (int i = 0; i < nt; i++) ck_assert_msg(turns[i].done == 1, "seed %llu: turn %d",
                                             (unsigned long long)seed, i);
  for (int i = 0; i < nc; i++) ck_assert_int_eq(ctls[i].done, 1);
  ck_assert_int_eq(clink__session_closed(R.s), 1);
  free(turns);
  free(ctls);
}

START_TEST(random_sequences_keep_the_invariants) {
  for (uint64_t seed = 1; seed <= 200; seed++) {
    teardown();
    setup();
    random_run(seed * 7919 + (uint64_t)_i, 400);
  }
}
END_TEST


/* Inbound requests waiting for the host are bounded: past the limit the CLI
 * gets an error answer at once (never silence), the host hears nothing. */
START_TEST(inbound_requests_are_bounded) {
  ck_assert_int_eq(clink_options_set_max_inbound_requests(R.o, 2), 0);
  clink__session_free(R.s);
  ck_assert_int_eq(clink__session_new(&R.s, R.o, send_line, NULL, NULL), 0);
  R.now = 1000;
  ck_assert_int_eq(clink__session_connect(R.s, NULL, NULL, R.now), 0);
  char line[256];
  snprintf(line, sizeof(line),
           "{\"type\":\"control_response\",\"response\":{\"subtype\":\"success\","
           "\"request_id\":\"%s\",\"response\":{}}}", sent_request_id());
  clink__session_recv_line(R.s, line, strlen(line), R.now);
  drain();
  for (int i = 0; i < 3; i++) {
    snprintf(line, sizeof(line),
             "{\"type\":\"control_request\",\"request_id\":\"r%d\",\"request\":"
             "{\"subtype\":\"can_use_tool\",\"tool_name\":\"Bash\",\"input\":{}}}", i);
    size_t sent = R.sent;
    clink__session_recv_line(R.s, line, strlen(line), R.now);
    drain();
    ck_assert_uint_eq(R.sent, sent + (i == 2)); /* the third: answered at once */
  }
  ck_assert_int_eq(R.requests, 2);
  ck_assert_ptr_nonnull(strstr(R.last_sent, "\"request_id\":\"r2\""));
  ck_assert_ptr_nonnull(strstr(R.last_sent, "\"subtype\":\"error\""));
  ck_assert_uint_eq(clink__session_error_count(R.s, CLINK_ETOO_MANY_REQUESTS), 1);
  /* Answering frees room. */
  ck_assert_int_eq(clink_request_deny(R.held[0], "no", 0), 0);
  R.held[0] = NULL;
  clink__session_recv_line(R.s, "{\"type\":\"control_request\",\"request_id\":\"r3\","
                                "\"request\":{\"subtype\":\"can_use_tool\",\"input\":{}}}",
                           strlen("{\"type\":\"control_request\",\"request_id\":\"r3\","
                                  "\"request\":{\"subtype\":\"can_use_tool\",\"input\":{}}}"),
                           R.now);
  drain();
  ck_assert_int_eq(R.requests, 3);
}
END_TEST

/* "Never" never wraps: a connect timeout of CLINK_NEVER has no deadline. */
START_TEST(never_timeouts_have_no_deadline) {
  ck_assert_int_eq(clink_options_set_connect_timeout_ms(R.o, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_options_set_turn_inactivity_ms(R.o, CLINK_NEVER), 0);
  clink__session_free(R.s);
  ck_assert_int_eq(clink__session_new(&R.s, R.o, send_line, NULL, NULL), 0);
  R.now = UINT64_MAX - 5;
  ck_assert_int_eq(clink__session_connect(R.s, NULL, NULL, R.now), 0);
  drain();
  ck_assert_uint_eq(clink__session_next_deadline(R.s), CLINK_NEVER);
  clink__session_tick(R.s, UINT64_MAX - 1);
  drain();
  ck_assert_int_eq(R.connects, 0); /* no CLINK_EINIT_TIMEOUT */
  ck_assert_int_eq(clink__session_state(R.s), CLINK_CLIENT_CONNECTING);
}
END_TEST

int main(void) {
  Suite *s = suite_create("session");
  TCase *tc = tcase_create("replay");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, replay_every_transcript, 0, (int)(sizeof(cases) / sizeof(*cases)));
  tcase_add_test(tc, replay_multiturn);
  tcase_add_loop_test(tc, replay_api_errors, 0, 4);
  tcase_add_test(tc, replay_interrupt);
  tcase_add_test(tc, replay_unknown_control);
  tcase_add_loop_test(tc, replay_permission_round_trip, 0, 3);
  tcase_add_loop_test(tc, replay_death_mid_turn, 0, 3);
  tcase_add_loop_test(tc, replay_death_at_startup, 0, 2);
  tcase_add_test(tc, replay_eof_mid_turn);
  tcase_add_test(tc, replay_without_initialize);
  suite_add_tcase(s, tc);
  tc = tcase_create("invariants");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, random_sequences_keep_the_invariants, 0, 4);
  tcase_add_test(tc, never_timeouts_have_no_deadline);
  tcase_add_test(tc, inbound_requests_are_bounded);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
