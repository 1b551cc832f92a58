/* Fuzz target: the JSON lines the library writes to the CLI (lib/wire.c).
 *
 * The input is split at NUL bytes into up to four strings (missing ones are
 * ""): an id, a session id / subtype, a text, and a member name. Any bytes
 * go: quotes, backslashes, control characters, "\n", invalid UTF-8. Each
 * builder's line must
 *   - be one line (no raw '\n': the stream is NDJSON),
 *   - be strict JSON (clink__json_object_valid(), stricter than cJSON),
 *   - parse back (clink_msg_parse) to the kind and the exact strings that
 *     went in, with no member added or lost: a string can never break out
 *     of its JSON string (no injection). */
#include <string.h>

#include <cjson/cJSON.h>

#include <claudelink.h>

#include "fuzz.h"
#include "wire/message.h"
#include "wire/json-out.h"

static int count_members(const cJSON *obj) {
  int n = 0;
  for (const cJSON *it = obj ? obj->child : NULL; it != NULL; it = it->next) n++;
  return n;
}

static const char *member_str(const cJSON *obj, const char *key) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int is_str(const char *a, const char *b) { return a != NULL && strcmp(a, b) == 0; }

/* Checks the line as NDJSON and parses it; the caller unrefs. */
static clink_msg *parse_line(char *line, const char *what) {
  FUZZ_CHECK(line != NULL, "%s: builder failed", what);
  size_t len = strlen(line);
  FUZZ_CHECK(memchr(line, '\n', len) == NULL, "%s: the line holds a newline", what);
  FUZZ_CHECK(clink__json_object_valid(line, len), "%s: not strict JSON: %s", what, line);
  clink_msg *m = NULL;
  int rc = clink_msg_parse(&m, line, len);
  FUZZ_CHECK(rc == 0, "%s: parse back failed (%d): %s", what, rc, line);
  cJSON_free(line);
  return m;
}

static void user_string(const char *session, const char *text) {
  clink_msg *m = parse_line(clink__wire_user(session, cJSON_CreateString(text)), "user");
  const cJSON *root = clink_msg_json(m);
  FUZZ_CHECK(clink_msg_get_kind(m) == CLINK_MSG_USER, "kind");
  FUZZ_CHECK(count_members(root) == 4, "%d members", count_members(root));
  FUZZ_CHECK(is_str(clink_msg_session_id(m), session), "session id");
  FUZZ_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "parent_tool_use_id")),
             "parent_tool_use_id");
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");
  FUZZ_CHECK(count_members(msg) == 2 && is_str(member_str(msg, "role"), "user"), "message");
  FUZZ_CHECK(clink_msg_block_count(m) == 1 && clink_msg_block_kind(m, 0) == CLINK_BLOCK_TEXT &&
                 is_str(clink_msg_block_text(m, 0), text),
             "content");
  clink_msg_unref(m);
}

static void user_blocks(const char *text) {
  cJSON *blocks = cJSON_CreateArray();
  cJSON *block = cJSON_CreateObject();
  FUZZ_CHECK(blocks && block && cJSON_AddStringToObject(block, "type", "text") &&
                 cJSON_AddStringToObject(block, "text", text),
             "building blocks");
  cJSON_AddItemToArray(blocks, block);
  clink_msg *m = parse_line(clink__wire_user(NULL, blocks), "user blocks");
  FUZZ_CHECK(is_str(clink_msg_session_id(m), ""), "NULL session id is not \"\"");
  FUZZ_CHECK(clink_msg_block_count(m) == 1 && clink_msg_block_kind(m, 0) == CLINK_BLOCK_TEXT &&
                 is_str(clink_msg_block_text(m, 0), text),
             "block");
  clink_msg_unref(m);
}

static void control_request(const char *id, const char *subtype, const char *key,
                            const char *text) {
  /* A member named "subtype" would duplicate the request's own: callers only
   * pass fixed member names, so that is not asked for here. */
  int with_field = strcmp(key, "subtype") != 0;
  cJSON *fields = NULL;
  if (with_field) {
    fields = cJSON_CreateObject();
    FUZZ_CHECK(fields && cJSON_AddStringToObject(fields, key, text), "building fields");
  }
  clink_msg *m = parse_line(clink__wire_control_request(id, subtype, fields), "control_request");
  const cJSON *root = clink_msg_json(m);
  FUZZ_CHECK(clink_msg_get_kind(m) == CLINK_MSG_CONTROL_REQUEST, "kind");
  FUZZ_CHECK(count_members(root) == 3, "%d members", count_members(root));
  FUZZ_CHECK(is_str(clink__msg_request_id(m), id), "request_id");
  FUZZ_CHECK(is_str(clink__msg_request_subtype(m), subtype), "subtype");
  const cJSON *req = clink__msg_request(m);
  FUZZ_CHECK(count_members(req) == 1 + with_field, "%d request members", count_members(req));
  if (with_field) FUZZ_CHECK(is_str(member_str(req, key), text), "field");
  clink_msg_unref(m);
}

static void control_success(const char *id, const char *key, const char *text, int with_body) {
  cJSON *body = NULL;
  if (with_body) {
    body = cJSON_CreateObject();
    FUZZ_CHECK(body && cJSON_AddStringToObject(body, key, text), "building the body");
  }
  clink_msg *m = parse_line(clink__wire_control_success(id, body), "control success");
  const cJSON *root = clink_msg_json(m);
  FUZZ_CHECK(clink_msg_get_kind(m) == CLINK_MSG_CONTROL_RESPONSE, "kind");
  FUZZ_CHECK(count_members(root) == 2, "%d members", count_members(root));
  FUZZ_CHECK(is_str(clink__msg_request_id(m), id), "request_id");
  FUZZ_CHECK(is_str(clink__msg_response_subtype(m), "success"), "subtype");
  const cJSON *resp = clink__msg_response(m);
  FUZZ_CHECK(count_members(resp) == 2 + with_body, "%d response members", count_members(resp));
  if (with_body) {
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(resp, "response");
    FUZZ_CHECK(count_members(inner) == 1 && is_str(member_str(inner, key), text), "body");
  }
  clink_msg_unref(m);
}

static void control_error(const char *id, const char *text) {
  clink_msg *m = parse_line(clink__wire_control_error(id, text), "control error");
  FUZZ_CHECK(clink_msg_get_kind(m) == CLINK_MSG_CONTROL_RESPONSE, "kind");
  FUZZ_CHECK(is_str(clink__msg_request_id(m), id), "request_id");
  FUZZ_CHECK(is_str(clink__msg_response_subtype(m), "error"), "subtype");
  const cJSON *resp = clink__msg_response(m);
  FUZZ_CHECK(count_members(resp) == 3 && is_str(member_str(resp, "error"), text), "error");
  clink_msg_unref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* NUL-terminated copy, then split at the NULs. */
  char *buf = fuzz_xrealloc(NULL, size + 1);
  if (size > 0) memcpy(buf, data, size);
  buf[size] = '\0';
  const char *part[4] = {"", "", "", ""};
  size_t at = 0;
  for (int i = 0; i < 4 && at <= size; i++) {
    part[i] = buf + at;
    at += strlen(buf + at) + 1;
  }
  const char *id = part[0], *sub = part[1], *text = part[2], *key = part[3];

  user_string(sub, text);
  user_blocks(text);
  control_request(id, sub, key, text);
  control_success(id, key, text, 0);
  control_success(id, key, text, 1);
  control_error(id, text);
  free(buf);
  return 0;
}
