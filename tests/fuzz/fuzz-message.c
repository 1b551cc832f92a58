/* Fuzz target: parsing one stdout line into a clink_msg (lib/message.c) and
 * everything that reads a parsed message (accessors, ref/unref, the control
 * table's routing in lib/control.c).
 *
 * The input is one line, in a malloc'd buffer of exactly its size with no NUL
 * after it (how the framer hands lines over), so ASan catches any read past
 * its end, cJSON's included. Checked:
 *   - the result is 0, CLINK_EBAD_JSON or CLINK_EPROTOCOL. UV_ENOMEM cannot
 *     happen here (nothing fails to allocate), so it would mean the
 *     allocation-free validator (clink__json_object_valid) accepted a line
 *     cJSON rejected: the validator must never be laxer than cJSON;
 *   - conversely a line the validator accepts is never CLINK_EBAD_JSON;
 *   - clink_msg_parse() (heap, copied) agrees with the borrowed parse, and so
 *     does the heap copy clink_msg_ref() makes of a borrowed message;
 *   - every accessor stays inside the tree and agrees with the kind: result
 *     accessors answer only for results, control ones only for control
 *     messages, blocks only for assistant/user messages, and block i ==
 *     count is out of range;
 *   - a borrowed message's raw bytes are the caller's buffer, a heap one's
 *     are a NUL-terminated copy;
 *   - parsing again into a borrowed message releases the earlier tree. */
#include <string.h>

#include <cjson/cJSON.h>

#include <claudelink.h>

#include "session/ctl-out.h"
#include "fuzz.h"
#include "wire/message.h"

static volatile size_t sink; /* keeps the reads of returned strings */

static void touch(const char *s) {
  if (s != NULL) sink += strlen(s);
}

static void touch_json(const cJSON *j) {
  /* Only walks: the tree can be 1000 levels deep, so no recursion. */
  for (const cJSON *it = j; it != NULL; it = it->next) {
    touch(it->string);
    if (cJSON_IsString(it)) touch(it->valuestring);
    if (it->child != NULL) sink += (size_t)it->child->type;
  }
}

static int is_str(const char *a, const char *b) { return a != NULL && b != NULL && strcmp(a, b) == 0; }

static int same_str(const char *a, const char *b) {
  return (a == NULL && b == NULL) || is_str(a, b);
}

static void check_blocks(const clink_msg *m) {
  clink_msg_kind k = clink_msg_get_kind(m);
  size_t n = clink_msg_block_count(m);
  if (k != CLINK_MSG_ASSISTANT && k != CLINK_MSG_USER)
    FUZZ_CHECK(n == 0, "%zu blocks in a message of kind %d", n, (int)k);
  /* block_at() walks the list: look at the first and last ones only. */
  for (size_t i = 0; i <= n; i++) {
    if (i == 64 && n > 80) i = n - 8;
    clink_block_kind bk = clink_msg_block_kind(m, i);
    const char *text = clink_msg_block_text(m, i);
    const char *id = clink_msg_block_tool_id(m, i);
    const char *name = clink_msg_block_tool_name(m, i);
    const cJSON *input = clink_msg_block_tool_input(m, i);
    const cJSON *json = clink_msg_block_json(m, i);
    touch(text);
    touch(id);
    touch(name);
    touch_json(input);
    if (i == n) {
      FUZZ_CHECK(bk == CLINK_BLOCK_UNKNOWN && text == NULL && id == NULL && name == NULL &&
                     input == NULL && json == NULL,
                 "block %zu of %zu answered", i, n);
      break;
    }
    FUZZ_CHECK(json != NULL, "block %zu of %zu has no JSON", i, n);
    if (bk != CLINK_BLOCK_TOOL_USE) FUZZ_CHECK(name == NULL && input == NULL, "tool fields");
    if (bk != CLINK_BLOCK_TOOL_USE && bk != CLINK_BLOCK_TOOL_RESULT)
      FUZZ_CHECK(id == NULL, "tool id on block kind %d", (int)bk);
    if (bk == CLINK_BLOCK_UNKNOWN || bk == CLINK_BLOCK_TOOL_USE)
      FUZZ_CHECK(text == NULL, "text on block kind %d", (int)bk);
  }
}

static void check_result(const clink_msg *m) {
  int is_result = clink_msg_get_kind(m) == CLINK_MSG_RESULT;
  int is_error = clink_msg_result_is_error(m);
  int status = clink_msg_result_api_error_status(m);
  const char *text = clink_msg_result_text(m);
  const char *reason = clink_msg_result_terminal_reason(m);
  int64_t d = clink_msg_result_duration_ms(m);
  int64_t da = clink_msg_result_duration_api_ms(m);
  int turns = clink_msg_result_num_turns(m);
  double cost = clink_msg_result_total_cost_usd(m);
  const cJSON *usage = clink_msg_result_usage(m);
  const cJSON *denials = clink_msg_result_permission_denials(m);
  touch(text);
  touch(reason);
  touch_json(usage);
  touch_json(denials);
  if (!is_result)
    FUZZ_CHECK(!is_error && status == 0 && text == NULL && reason == NULL && d == 0 && da == 0 &&
                   turns == 0 && cost == 0.0 && usage == NULL && denials == NULL,
               "result fields on a message of kind %d", (int)clink_msg_get_kind(m));
  if (usage != NULL) FUZZ_CHECK(cJSON_IsObject(usage), "usage is not an object");
  if (denials != NULL) FUZZ_CHECK(cJSON_IsArray(denials), "denials are not an array");
}

static int n_ctl_calls, last_ctl_status;

static void on_ctl(void *ud, int status, const clink_msg *response) {
  (void)ud;
  n_ctl_calls++;
  last_ctl_status = status;
  touch(clink__msg_response_subtype(response));
}

static void check_control(const clink_msg *m) {
  clink_msg_kind k = clink_msg_get_kind(m);
  const char *rid = clink__msg_request_id(m);
  const cJSON *req = clink__msg_request(m);
  const char *req_st = clink__msg_request_subtype(m);
  const cJSON *resp = clink__msg_response(m);
  const char *resp_st = clink__msg_response_subtype(m);
  touch(rid);
  touch(req_st);
  touch(resp_st);
  touch_json(req);
  touch_json(resp);
  if (k != CLINK_MSG_CONTROL_REQUEST && k != CLINK_MSG_CONTROL_RESPONSE &&
      k != CLINK_MSG_CONTROL_CANCEL_REQUEST)
    FUZZ_CHECK(rid == NULL, "request id on a message of kind %d", (int)k);
  if (k != CLINK_MSG_CONTROL_REQUEST) FUZZ_CHECK(req == NULL && req_st == NULL, "request");
  if (k != CLINK_MSG_CONTROL_RESPONSE) FUZZ_CHECK(resp == NULL && resp_st == NULL, "response");
  if (req != NULL) FUZZ_CHECK(cJSON_IsObject(req), "request is not an object");
  if (resp != NULL) FUZZ_CHECK(cJSON_IsObject(resp), "response is not an object");

  /* Routing: one unrelated pending request, and one whose id is the line's. */
  clink__ctl ctl;
  FUZZ_CHECK(clink__ctl_init(&ctl, 4, 1) == 0, "ctl init");
  char id[CLINK__CTL_ID_MAX];
  FUZZ_CHECK(clink__ctl_add(&ctl, "interrupt", 10, on_ctl, NULL, id) >= 0, "ctl add");
  int planted = -1;
  if (rid != NULL && strlen(rid) < CLINK__CTL_ID_MAX && strcmp(rid, id) != 0) {
    char id2[CLINK__CTL_ID_MAX];
    planted = clink__ctl_add(&ctl, "initialize", 20, on_ctl, NULL, id2);
    FUZZ_CHECK(planted >= 0, "ctl add");
    memcpy(ctl.e[planted].id, rid, strlen(rid) + 1); /* white-box */
  }
  n_ctl_calls = 0;
  int hit = clink__ctl_resolve(&ctl, m);
  FUZZ_CHECK(hit == (rid != NULL && (planted >= 0 || strcmp(rid, id) == 0)), "resolve %d", hit);
  FUZZ_CHECK(n_ctl_calls == hit, "%d callbacks for %d hits", n_ctl_calls, hit);
  if (hit)
    FUZZ_CHECK(last_ctl_status == (is_str(m->control_subtype, "success") ? 0 : CLINK_ECONTROL_ERROR),
               "status %d", last_ctl_status);
  FUZZ_CHECK(clink__ctl_resolve(&ctl, m) == 0, "resolved twice");
  clink__ctl_fail_all(&ctl, CLINK_EEXITED);
  FUZZ_CHECK(ctl.n == 0, "entries left after fail_all");
  clink__ctl_free(&ctl);
}

static void check_all(const clink_msg *m) {
  clink_msg_kind k = clink_msg_get_kind(m);
  FUZZ_CHECK((int)k >= CLINK_MSG_UNKNOWN && (int)k <= CLINK_MSG_KEEP_ALIVE, "kind %d", (int)k);
  const char *type = clink_msg_type(m);
  FUZZ_CHECK(type != NULL, "a parsed message has no type");
  touch(type);
  touch(clink_msg_subtype(m));
  touch(clink_msg_session_id(m));
  touch(clink_msg_uuid(m));
  touch(clink_msg_parent_tool_use_id(m));
  const cJSON *root = clink_msg_json(m);
  FUZZ_CHECK(cJSON_IsObject(root), "root is not an object");
  touch_json(root->child);
  check_blocks(m);
  check_result(m);
  check_control(m);
}

/* Two parses of the same line give the same answers. */
static void check_same(const clink_msg *a, const clink_msg *b) {
  FUZZ_CHECK(clink_msg_get_kind(a) == clink_msg_get_kind(b), "kinds differ");
  FUZZ_CHECK(same_str(clink_msg_type(a), clink_msg_type(b)) &&
                 same_str(clink_msg_subtype(a), clink_msg_subtype(b)) &&
                 same_str(clink_msg_session_id(a), clink_msg_session_id(b)) &&
                 same_str(clink_msg_uuid(a), clink_msg_uuid(b)) &&
                 same_str(clink__msg_request_id(a), clink__msg_request_id(b)),
             "fields differ");
  FUZZ_CHECK(clink_msg_block_count(a) == clink_msg_block_count(b), "block counts differ");
  size_t la, lb;
  const char *ra = clink_msg_raw(a, &la), *rb = clink_msg_raw(b, &lb);
  FUZZ_CHECK(la == lb && memcmp(ra, rb, la) == 0, "raw bytes differ");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *line = fuzz_xrealloc(NULL, size);
  if (size > 0) memcpy(line, data, size);

  int valid = clink__json_object_valid(line, size);
  clink_msg m;
  memset(&m, 0, sizeof(m));
  int rc = clink__msg_parse_borrowed(&m, line, size);
  FUZZ_CHECK(rc == 0 || rc == CLINK_EBAD_JSON || rc == CLINK_EPROTOCOL,
             "parse returned %d (UV_ENOMEM: the validator accepted what cJSON rejected)", rc);
  if (valid) FUZZ_CHECK(rc != CLINK_EBAD_JSON, "cJSON rejected a line the validator accepts");

  clink_msg *heap = NULL;
  int rc2 = clink_msg_parse(&heap, line, size);
  FUZZ_CHECK(rc2 == rc, "heap parse %d, borrowed parse %d", rc2, rc);

  if (rc == 0) {
    size_t len;
    const char *raw = clink_msg_raw(&m, &len);
    FUZZ_CHECK(raw == line && len == size, "borrowed raw is not the caller's buffer");
    check_all(&m);
    clink_msg_unref(&m); /* a no-op on a borrowed message */

    raw = clink_msg_raw(heap, &len);
    FUZZ_CHECK(raw != line && len == size && raw[len] == '\0', "heap raw is not a copy");
    check_all(heap);
    check_same(&m, heap);
    FUZZ_CHECK(clink_msg_ref(heap) == heap, "ref of a heap message is not the same object");
    clink_msg_unref(heap);

    clink_msg *copy = clink_msg_ref(&m);
    FUZZ_CHECK(copy != NULL && copy != &m, "ref of a borrowed message");
    check_same(&m, copy);
    clink_msg_unref(copy);

    /* Re-parse into the same borrowed message: the old tree goes. */
    FUZZ_CHECK(clink__msg_parse_borrowed(&m, line, size) == 0, "second parse");
    check_same(&m, heap);
  } else {
    FUZZ_CHECK(heap == NULL, "heap message on error");
    FUZZ_CHECK(clink_msg_json(&m) == NULL && clink_msg_ref(&m) == NULL,
               "a failed parse left a tree");
    size_t len = 1;
    FUZZ_CHECK(clink_msg_raw(&m, &len) == NULL && len == 0, "raw after a failed parse");
  }
  clink_msg_unref(heap);
  clink__msg_clear(&m);
  free(line);
  return 0;
}
