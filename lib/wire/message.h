/* Parsed stdout lines (clink_msg): the struct, and the internal API the client
 * and the control-protocol code use. Not installed.
 *
 * A message is either
 * - on the heap (clink_msg_parse(), clink_msg_ref()): refcount >= 1, one block
 *   holding the struct and a NUL-terminated copy of the line, plus the cJSON
 *   tree; or
 * - borrowed (clink__msg_parse_borrowed()): refcount 0, embedded in a caller's
 *   struct and reused line after line; raw points into the caller's buffer
 *   (not NUL-terminated) and must stay valid until clink__msg_clear().
 *
 * Every line is parsed once; the fields below are found in one walk of the
 * top-level object, so accessors never search the tree again (blocks are
 * reached by walking the content list: O(index)).
 */
#ifndef CLINK_MESSAGE_H
#define CLINK_MESSAGE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "claudelink.h"

struct clink_msg {
  unsigned int refcount; /* 0: borrowed */
  clink_msg_kind kind;
  cJSON *root;
  const char *raw;
  size_t raw_len;

  /* Top-level strings; NULL when absent or not a string. */
  const char *type;
  const char *subtype;
  const char *session_id;
  const char *uuid;
  const char *parent_tool_use_id;

  /* assistant and user: message.content (an array, or a string counted as
   * one text block); NULL otherwise. */
  const cJSON *content;
  const cJSON *first_block; /* first array element (array content only) */
  size_t block_count;
  const cJSON *cursor;      /* the block last reached (see block_at) */
  size_t cursor_index;

  /* control_request: "request"; control_response: "response". */
  const cJSON *control;
  /* control_request, control_cancel_request: request_id;
   * control_response: response.request_id. Strings only. */
  const char *request_id;
  /* control_request: request.subtype; control_response: response.subtype. */
  const char *control_subtype;

  /* result: the members as found (any JSON type; accessors check). */
  const cJSON *is_error;
  const cJSON *api_error_status;
  const cJSON *result;
  const cJSON *terminal_reason;
  const cJSON *duration_ms;
  const cJSON *duration_api_ms;
  const cJSON *num_turns;
  const cJSON *total_cost_usd;
  const cJSON *usage;
  const cJSON *permission_denials;
};

/* Parses line[0..len) into *m without copying it: m->raw borrows the
 * caller's buffer, which need not be NUL-terminated and must outlive the use
 * of m. m must be zeroed, cleared or hold an earlier borrowed parse (its tree
 * is released first). Returns 0, CLINK_EBAD_JSON, CLINK_EPROTOCOL or
 * UV_ENOMEM; on error *m is left cleared. */
int clink__msg_parse_borrowed(clink_msg *m, const char *line, size_t len);

/* Releases the tree of a borrowed message and zeroes it. Not for heap
 * messages (use clink_msg_unref()). */
void clink__msg_clear(clink_msg *m);

/* control_request / control_cancel_request: request_id; control_response:
 * response.request_id. NULL otherwise or when not a string. */
const char *clink__msg_request_id(const clink_msg *m);
/* control_request: the "request" object (NULL if absent or not an object). */
const cJSON *clink__msg_request(const clink_msg *m);
/* control_request: request.subtype. */
const char *clink__msg_request_subtype(const clink_msg *m);
/* control_response: the "response" object (NULL if absent or not an object). */
const cJSON *clink__msg_response(const clink_msg *m);
/* control_response: response.subtype ("success" or "error"). */
const char *clink__msg_response_subtype(const clink_msg *m);

/* 1 when line[0..len) is one JSON object that cJSON 1.7.15 accepts (grammar,
 * nesting limit, \u surrogates, 63-byte numbers), optionally surrounded by
 * JSON whitespace. Allocates nothing: used after a failed cJSON parse to
 * tell UV_ENOMEM from CLINK_EBAD_JSON. May be stricter than cJSON, never
 * laxer. */
int clink__json_object_valid(const char *line, size_t len);
/* The same for one JSON array. */
int clink__json_array_valid(const char *line, size_t len);

#endif
