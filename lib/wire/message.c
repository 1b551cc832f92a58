/* clink_msg: one stdout line of the CLI, parsed once.
 *
 * Wire shapes: sdk-protocol.md §2.1, §3; real-cli.md §4, §6, §7.
 * Allocation per heap message: one block (struct + copy of the line) plus
 * cJSON's own nodes; a borrowed message costs only the cJSON nodes.
 * Long (~700 lines) but flat: one small read-out per field of every message
 * kind, all over the same parsed tree. */
#include "wire/message.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "base/internal.h"

/* ------------------------------------------------------------ validator */

/* Allocation-free check run only after cJSON_ParseWithLengthOpts() failed:
 * if the text is valid, the failure was an allocation. It accepts a subset of
 * what cJSON 1.7.15 accepts (strict JSON grammar, plus cJSON's own limits:
 * CJSON_NESTING_LIMIT, numbers of at most 63 bytes, \u escapes that form
 * valid UTF-16), so it can only err towards CLINK_EBAD_JSON. */

typedef struct {
  const unsigned char *p;
  const unsigned char *end;
} vcur;

static int v_is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void v_ws(vcur *c) {
  while (c->p < c->end && v_is_ws(*c->p)) c->p++;
}

static int v_is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int v_hex4(const unsigned char *p, unsigned int *out) {
  unsigned int v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned int)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned int)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned int)(c - 'A' + 10);
    else
      return 0;
  }
  *out = v;
  return 1;
}

static int v_string(vcur *c) {
  c->p++; /* opening quote */
  while (c->p < c->end) {
    unsigned char ch = *c->p++;
    if (ch == '"') return 1;
    if (ch < 0x20) return 0;
    if (ch != '\\') continue;
    if (c->p >= c->end) return 0;
    switch (*c->p++) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r':
      case 't':
        break;
      case 'u': {
        unsigned int u, lo;
        if (c->end - c->p < 4 || !v_hex4(c->p, &u)) return 0;
        c->p += 4;
        if (u >= 0xDC00 && u <= 0xDFFF) return 0; /* lone low surrogate */
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' ||
              !v_hex4(c->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return 0;
          c->p += 6;
        }
        break;
      }
      default:
        return 0;
    }
  }
  return 0;
}

static int v_digits(vcur *c) {
  const unsigned char *s = c->p;
  while (c->p < c->end && v_is_digit(*c->p)) c->p++;
  return c->p > s;
}

static int v_number(vcur *c) {
  const unsigned char *s = c->p;
  if (*c->p == '-') c->p++;
  if (c->p >= c->end) return 0;
  if (*c->p == '0')
    c->p++;
  else if (!v_digits(c))
    return 0;
  if (c->p < c->end && *c->p == '.') {
    c->p++;
    if (!v_digits(c)) return 0;
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    c->p++;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
    if (!v_digits(c)) return 0;
  }
  return c->p - s <= 63; /* cJSON copies at most 63 bytes to strtod */
}

static int v_literal(vcur *c, const char *word, size_t n) {
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
  c->p += n;
  return 1;
}

static int v_value(vcur *c, size_t depth);

static int v_object(vcur *c, size_t depth) {
  if (depth >= CJSON_NESTING_LIMIT) return 0;
  c->p++;
  v_ws(c);
  if (c->p < c->end && *c->p == '}') {
    c->p++;
    return 1;
  }
  for (;;) {
    if (c->p >= c->end || *c->p != '"' || !v_string(c)) return 0;
    v_ws(c);
    if (c->p >= c->end || *c->p != ':') return 0;
    c->p++;
    v_ws(c);
    if (!v_value(c, depth + 1)) return 0;
    v_ws(c);
    if (c->p >= c->end) return 0;
    if (*c->p == '}') {
      c->p++;
      return 1;
    }
    if (*c->p != ',') return 0;
    c->p++;
    v_ws(c);
  }
}

static int v_array(vcur *c, size_t depth) {
  if (depth >= CJSON_NESTING_LIMIT) return 0;
  c->p++;
  v_ws(c);
  if (c->p < c->end && *c->p == ']') {
    c->p++;
    return 1;
  }
  for (;;) {
    if (!v_value(c, depth + 1)) return 0;
    v_ws(c);
    if (c->p >= c->end) return 0;
    if (*c->p == ']') {
      c->p++;
      return 1;
    }
    if (*c->p != ',') return 0;
    c->p++;
    v_ws(c);
  }
}

static int v_value(vcur *c, size_t depth) {
  if (c->p >= c->end) return 0;
  switch (*c->p) {
    case '{': return v_object(c, depth);
    case '[': return v_array(c, depth);
    case '"': return v_string(c);
    case 't': return v_literal(c, "true", 4);
    case 'f': return v_literal(c, "false", 5);
    case 'n': return v_literal(c, "null", 4);
    default:
      if (*c->p == '-' || v_is_digit(*c->p)) return v_number(c);
      return 0;
  }
}

int clink__json_array_valid(const char *line, size_t len) {
  if (line == NULL) return 0;
  vcur c = {(const unsigned char *)line, (const unsigned char *)line + len};
  v_ws(&c);
  if (c.p >= c.end || *c.p != '[' || !v_array(&c, 0)) return 0;
  v_ws(&c);
  return c.p == c.end;
}

int clink__json_object_valid(const char *line, size_t len) {
  if (line == NULL) return 0;
  vcur c = {(const unsigned char *)line, (const unsigned char *)line + len};
  v_ws(&c);
  if (c.p >= c.end || *c.p != '{' || !v_object(&c, 0)) return 0;
  v_ws(&c);
  return c.p == c.end;
}

/* --------------------------------------------------------------- parse */

static const char *str_or_null(const cJSON *it) {
  return cJSON_IsString(it) ? it->valuestring : NULL;
}

static clink_msg_kind kind_of_type(const char *t) {
  switch (t[0]) {
    case 'a':
      if (strcmp(t, "assistant") == 0) return CLINK_MSG_ASSISTANT;
      break;
    case 'c':
      if (strncmp(t, "control_", 8) != 0) break;
      if (strcmp(t + 8, "request") == 0) return CLINK_MSG_CONTROL_REQUEST;
      if (strcmp(t + 8, "response") == 0) return CLINK_MSG_CONTROL_RESPONSE;
      if (strcmp(t + 8, "cancel_request") == 0) return CLINK_MSG_CONTROL_CANCEL_REQUEST;
      break;
    case 'k':
      if (strcmp(t, "keep_alive") == 0) return CLINK_MSG_KEEP_ALIVE;
      break;
    case 'r':
      if (strcmp(t, "result") == 0) return CLINK_MSG_RESULT;
      break;
    case 's':
      if (strcmp(t, "system") == 0) return CLINK_MSG_SYSTEM;
      if (strcmp(t, "stream_event") == 0) return CLINK_MSG_STREAM_EVENT;
      break;
    case 'u':
      if (strcmp(t, "user") == 0) return CLINK_MSG_USER;
      break;
    default:
      break;
  }
  return CLINK_MSG_UNKNOWN;
}

/* First occurrence wins, as with cJSON_GetObjectItemCaseSensitive(). */
#define FIRST(slot, it) \
  do {                  \
    if ((slot) == NULL) (slot) = (it); \
  } while (0)

/* Parses line[0..len) and fills every tree-derived field of m, which the
 * caller has zeroed (raw, raw_len and refcount are the caller's). On error no
 * tree is left, but other fields may be set: the caller discards m. */
static int parse_tree(clink_msg *m, const char *line, size_t len) {
  /* A JSON object starts with '{' and ends with '}' once outer whitespace
   * is dropped. Checking this first rejects most garbage without cJSON, and
   * guarantees cJSON never sees a buffer ending in ',' inside an object:
   * cJSON 1.7.15 then reads one byte past the end (fixed in 1.7.18). */
  size_t a = 0, b = len;
  while (a < b && v_is_ws((unsigned char)line[a])) a++;
  while (b > a && v_is_ws((unsigned char)line[b - 1])) b--;
  if (b - a < 2 || line[a] != '{' || line[b - 1] != '}') return CLINK_EBAD_JSON;

  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(line + a, b - a, &end, 0);
  if (root == NULL)
    return clink__json_object_valid(line + a, b - a) ? UV_ENOMEM : CLINK_EBAD_JSON;
  if (end != line + b || !cJSON_IsObject(root)) { /* trailing garbage */
    cJSON_Delete(root);
    return CLINK_EBAD_JSON;
  }

  const cJSON *type = NULL, *subtype = NULL, *session_id = NULL, *uuid = NULL;
  const cJSON *parent = NULL, *message = NULL, *request_id = NULL;
  const cJSON *request = NULL, *response = NULL;

  for (const cJSON *it = root->child; it != NULL; it = it->next) {
    const char *k = it->string;
    if (k == NULL) continue;
    switch (k[0]) {
      case 'a':
        if (strcmp(k, "api_error_status") == 0) FIRST(m->api_error_status, it);
        break;
      case 'd':
        if (strcmp(k, "duration_ms") == 0)
          FIRST(m->duration_ms, it);
        else if (strcmp(k, "duration_api_ms") == 0)
          FIRST(m->duration_api_ms, it);
        break;
      case 'i':
        if (strcmp(k, "is_error") == 0) FIRST(m->is_error, it);
        break;
      case 'm':
        if (strcmp(k, "message") == 0) FIRST(message, it);
        break;
      case 'n':
        if (strcmp(k, "num_turns") == 0) FIRST(m->num_turns, it);
        break;
      case 'p':
        if (strcmp(k, "parent_tool_use_id") == 0)
          FIRST(parent, it);
        else if (strcmp(k, "permission_denials") == 0)
          FIRST(m->permission_denials, it);
        break;
      case 'r':
        if (strcmp(k, "request_id") == 0)
          FIRST(request_id, it);
        else if (strcmp(k, "request") == 0)
          FIRST(request, it);
        else if (strcmp(k, "response") == 0)
          FIRST(response, it);
        else if (strcmp(k, "result") == 0)
          FIRST(m->result, it);
        break;
      case 's':
        if (strcmp(k, "session_id") == 0)
          FIRST(session_id, it);
        else if (strcmp(k, "subtype") == 0)
          FIRST(subtype, it);
        break;
      case 't':
        if (strcmp(k, "type") == 0)
          FIRST(type, it);
        else if (strcmp(k, "terminal_reason") == 0)
          FIRST(m->terminal_reason, it);
        else if (strcmp(k, "total_cost_usd") == 0)
          FIRST(m->total_cost_usd, it);
        break;
      case 'u':
        if (strcmp(k, "uuid") == 0)
          FIRST(uuid, it);
        else if (strcmp(k, "usage") == 0)
          FIRST(m->usage, it);
        break;
      default:
        break;
    }
  }

  if (!cJSON_IsString(type) || type->valuestring == NULL) {
    cJSON_Delete(root); /* callers discard m's other fields */
    return CLINK_EPROTOCOL;
  }

  m->root = root;
  m->type = type->valuestring;
  m->kind = kind_of_type(m->type);
  m->subtype = str_or_null(subtype);
  m->session_id = str_or_null(session_id);
  m->uuid = str_or_null(uuid);
  m->parent_tool_use_id = str_or_null(parent);

  switch (m->kind) {
    case CLINK_MSG_ASSISTANT:
    case CLINK_MSG_USER: {
      const cJSON *content = cJSON_IsObject(message)
                                 ? cJSON_GetObjectItemCaseSensitive(message, "content")
                                 : NULL;
      if (cJSON_IsArray(content)) {
        m->content = content;
        m->first_block = content->child;
        for (const cJSON *b2 = content->child; b2 != NULL; b2 = b2->next) m->block_count++;
      } else if (cJSON_IsString(content)) {
        m->content = content;
        m->block_count = 1;
      }
      break;
    }
    case CLINK_MSG_CONTROL_REQUEST:
      m->request_id = str_or_null(request_id);
      if (cJSON_IsObject(request)) {
        m->control = request;
        m->control_subtype =
            str_or_null(cJSON_GetObjectItemCaseSensitive(request, "subtype"));
      }
      break;
    case CLINK_MSG_CONTROL_CANCEL_REQUEST:
      m->request_id = str_or_null(request_id);
      break;
    case CLINK_MSG_CONTROL_RESPONSE:
      if (cJSON_IsObject(response)) {
        const cJSON *rid = NULL, *st = NULL;
        for (const cJSON *it = response->child; it != NULL; it = it->next) {
          if (it->string == NULL) continue;
          if (strcmp(it->string, "request_id") == 0)
            FIRST(rid, it);
          else if (strcmp(it->string, "subtype") == 0)
            FIRST(st, it);
        }
        m->control = response;
        m->request_id = str_or_null(rid);
        m->control_subtype = str_or_null(st);
      }
      break;
    default:
      break;
  }
  return 0;
}

#undef FIRST

/* One block: the struct, then the line and a NUL. */
static clink_msg *heap_new(const char *line, size_t len) {
  if (len > SIZE_MAX - sizeof(clink_msg) - 1) return NULL;
  clink_msg *m = malloc(sizeof(*m) + len + 1);
  if (m == NULL) return NULL;
  memset(m, 0, sizeof(*m));
  char *raw = (char *)(m + 1);
  if (len > 0) memcpy(raw, line, len);
  raw[len] = '\0';
  m->raw = raw;
  m->raw_len = len;
  m->refcount = 1;
  return m;
}

int clink_msg_parse(clink_msg **out, const char *line, size_t len) {
  if (out == NULL || (line == NULL && len != 0)) return UV_EINVAL;
  clink_msg *m = heap_new(line, len);
  if (m == NULL) return UV_ENOMEM;
  int err = parse_tree(m, m->raw, len);
  if (err != 0) {
    clink__free(m);
    return err;
  }
  *out = m;
  return 0;
}

int clink__msg_parse_borrowed(clink_msg *m, const char *line, size_t len) {
  if (m == NULL || (line == NULL && len != 0)) return UV_EINVAL;
  cJSON_Delete(m->root);
  memset(m, 0, sizeof(*m));
  int err = parse_tree(m, line == NULL ? "" : line, len);
  if (err != 0) {
    memset(m, 0, sizeof(*m));
    return err;
  }
  m->raw = line;
  m->raw_len = len;
  return 0;
}

void clink__msg_clear(clink_msg *m) {
  if (m == NULL) return;
  cJSON_Delete(m->root);
  memset(m, 0, sizeof(*m));
}

clink_msg *clink_msg_ref(const clink_msg *cmsg) {
  if (cmsg == NULL) return NULL;
  if (cmsg->refcount > 0) {
    /* Heap messages are only logically const: the count is bookkeeping. */
    clink_msg *msg = (clink_msg *)cmsg;
    if (msg->refcount == UINT_MAX) return NULL;
    msg->refcount++;
    return msg;
  }
  const clink_msg *msg = cmsg;
  /* Borrowed: a heap copy of the line, parsed again (cheaper than it looks:
   * cJSON_Duplicate() makes the same allocations). */
  if (msg->root == NULL) return NULL;
  clink_msg *c = heap_new(msg->raw, msg->raw_len);
  if (c == NULL) return NULL;
  if (parse_tree(c, c->raw, c->raw_len) != 0) {
    clink__free(c);
    return NULL;
  }
  return c;
}

void clink_msg_unref(clink_msg *msg) {
  /* A borrowed message (refcount 0) belongs to the client: never freed here. */
  if (msg == NULL || msg->refcount == 0) return;
  if (--msg->refcount > 0) return;
  cJSON_Delete(msg->root);
  clink__free(msg);
}

/* ------------------------------------------------------------ accessors */

clink_msg_kind clink_msg_get_kind(const clink_msg *msg) {
  return msg != NULL ? msg->kind : CLINK_MSG_UNKNOWN;
}

const char *clink_msg_type(const clink_msg *msg) { return msg != NULL ? msg->type : NULL; }

const char *clink_msg_subtype(const clink_msg *msg) {
  return msg != NULL ? msg->subtype : NULL;
}

const char *clink_msg_session_id(const clink_msg *msg) {
  return msg != NULL ? msg->session_id : NULL;
}

const char *clink_msg_uuid(const clink_msg *msg) { return msg != NULL ? msg->uuid : NULL; }

const char *clink_msg_parent_tool_use_id(const clink_msg *msg) {
  return msg != NULL ? msg->parent_tool_use_id : NULL;
}

const char *clink_msg_raw(const clink_msg *msg, size_t *len) {
  if (msg == NULL || msg->root == NULL) {
    if (len != NULL) *len = 0;
    return NULL;
  }
  if (len != NULL) *len = msg->raw_len;
  return msg->raw;
}

const struct cJSON *clink_msg_json(const clink_msg *msg) {
  return msg != NULL ? msg->root : NULL;
}

/* --------------------------------------------------------------- blocks */

/* Blocks are a list: a cursor remembers the last one reached, so walking
 * them in order (the usual loop over 0..count) is O(n), not O(n^2). The
 * cursor is a cache: reading a message stays a const operation. */
static const cJSON *block_at(const clink_msg *m, size_t i) {
  if (m == NULL || i >= m->block_count) return NULL;
  if (m->first_block == NULL) return m->content; /* string content */
  clink_msg *w = (clink_msg *)m;
  const cJSON *b = m->first_block;
  size_t at = 0;
  if (m->cursor && m->cursor_index <= i) {
    b = m->cursor;
    at = m->cursor_index;
  }
  while (at < i) {
    b = b->next;
    at++;
  }
  w->cursor = b;
  w->cursor_index = i;
  return b;
}

static clink_block_kind block_kind(const clink_msg *m, const cJSON *b) {
  if (b == NULL) return CLINK_BLOCK_UNKNOWN;
  if (b == m->content) return CLINK_BLOCK_TEXT; /* string content */
  if (!cJSON_IsObject(b)) return CLINK_BLOCK_UNKNOWN;
  const char *t = str_or_null(cJSON_GetObjectItemCaseSensitive(b, "type"));
  if (t == NULL) return CLINK_BLOCK_UNKNOWN;
  if (strcmp(t, "text") == 0) return CLINK_BLOCK_TEXT;
  if (strcmp(t, "tool_use") == 0) return CLINK_BLOCK_TOOL_USE;
  if (strcmp(t, "tool_result") == 0) return CLINK_BLOCK_TOOL_RESULT;
  if (strcmp(t, "thinking") == 0) return CLINK_BLOCK_THINKING;
  return CLINK_BLOCK_UNKNOWN;
}

static const cJSON *member(const cJSON *obj, const char *key) {
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

size_t clink_msg_block_count(const clink_msg *msg) {
  return msg != NULL ? msg->block_count : 0;
}

clink_block_kind clink_msg_block_kind(const clink_msg *msg, size_t i) {
  return block_kind(msg, block_at(msg, i));
}

const char *clink_msg_block_text(const clink_msg *msg, size_t i) {
  const cJSON *b = block_at(msg, i);
  switch (block_kind(msg, b)) {
    case CLINK_BLOCK_TEXT:
      return b == msg->content ? b->valuestring : str_or_null(member(b, "text"));
    case CLINK_BLOCK_THINKING:
      return str_or_null(member(b, "thinking"));
    case CLINK_BLOCK_TOOL_RESULT:
      return str_or_null(member(b, "content"));
    default:
      return NULL;
  }
}

const char *clink_msg_block_tool_id(const clink_msg *msg, size_t i) {
  const cJSON *b = block_at(msg, i);
  switch (block_kind(msg, b)) {
    case CLINK_BLOCK_TOOL_USE:
      return str_or_null(member(b, "id"));
    case CLINK_BLOCK_TOOL_RESULT:
      return str_or_null(member(b, "tool_use_id"));
    default:
      return NULL;
  }
}

const char *clink_msg_block_tool_name(const clink_msg *msg, size_t i) {
  const cJSON *b = block_at(msg, i);
  if (block_kind(msg, b) != CLINK_BLOCK_TOOL_USE) return NULL;
  return str_or_null(member(b, "name"));
}

const struct cJSON *clink_msg_block_tool_input(const clink_msg *msg, size_t i) {
  const cJSON *b = block_at(msg, i);
  if (block_kind(msg, b) != CLINK_BLOCK_TOOL_USE) return NULL;
  return member(b, "input");
}

const struct cJSON *clink_msg_block_json(const clink_msg *msg, size_t i) {
  return block_at(msg, i);
}

/* --------------------------------------------------------------- result */

static const clink_msg *as_result(const clink_msg *msg) {
  return msg != NULL && msg->kind == CLINK_MSG_RESULT ? msg : NULL;
}

/* Saturating conversions: JSON numbers are doubles and may be anything. */
static int64_t num_i64(const cJSON *it) {
  if (!cJSON_IsNumber(it) || isnan(it->valuedouble)) return 0;
  double d = it->valuedouble;
  if (d >= 9223372036854775808.0) return INT64_MAX;
  if (d <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)d;
}

static int num_int(const cJSON *it) {
  if (!cJSON_IsNumber(it) || isnan(it->valuedouble)) return 0;
  double d = it->valuedouble;
  if (d >= (double)INT_MAX) return INT_MAX;
  if (d <= (double)INT_MIN) return INT_MIN;
  return (int)d;
}

int clink_msg_result_is_error(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL && cJSON_IsTrue(m->is_error);
}

int clink_msg_result_api_error_status(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL ? num_int(m->api_error_status) : 0;
}

const char *clink_msg_result_text(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL ? str_or_null(m->result) : NULL;
}

const char *clink_msg_result_terminal_reason(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL ? str_or_null(m->terminal_reason) : NULL;
}

int64_t clink_msg_result_duration_ms(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL ? num_i64(m->duration_ms) : 0;
}

int64_t clink_msg_result_duration_api_ms(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL ? num_i64(m->duration_api_ms) : 0;
}

int clink_msg_result_num_turns(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL ? num_int(m->num_turns) : 0;
}

double clink_msg_result_total_cost_usd(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL && cJSON_IsNumber(m->total_cost_usd) ? m->total_cost_usd->valuedouble
                                                         : 0.0;
}

const struct cJSON *clink_msg_result_usage(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL && cJSON_IsObject(m->usage) ? m->usage : NULL;
}

const struct cJSON *clink_msg_result_permission_denials(const clink_msg *msg) {
  const clink_msg *m = as_result(msg);
  return m != NULL && cJSON_IsArray(m->permission_denials) ? m->permission_denials : NULL;
}

/* -------------------------------------------------------------- control */

const char *clink__msg_request_id(const clink_msg *m) {
  return m != NULL ? m->request_id : NULL;
}

const cJSON *clink__msg_request(const clink_msg *m) {
  return m != NULL && m->kind == CLINK_MSG_CONTROL_REQUEST ? m->control : NULL;
}

const char *clink__msg_request_subtype(const clink_msg *m) {
  return m != NULL && m->kind == CLINK_MSG_CONTROL_REQUEST ? m->control_subtype : NULL;
}

const cJSON *clink__msg_response(const clink_msg *m) {
  return m != NULL && m->kind == CLINK_MSG_CONTROL_RESPONSE ? m->control : NULL;
}

const char *clink__msg_response_subtype(const clink_msg *m) {
  return m != NULL && m->kind == CLINK_MSG_CONTROL_RESPONSE ? m->control_subtype : NULL;
}
