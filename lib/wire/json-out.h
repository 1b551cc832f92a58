/* JSON lines the library writes to the CLI. Always built with cJSON, never by
 * string formatting: a prompt with a quote or a newline must not be able to
 * corrupt the stream (the real CLI exits on a malformed line). Pure code.
 *
 * Each builder returns a NUL-terminated line without '\n', allocated by cJSON
 * (release with cJSON_free), or NULL on ENOMEM. Builders that take a cJSON
 * item take ownership of it, also on failure. */
#ifndef CLINK_WIRE_H
#define CLINK_WIRE_H

#include <cjson/cJSON.h>

/* {"type":"user","session_id":S,"message":{"role":"user","content":C},
 *  "parent_tool_use_id":null}; content is a string or an array of blocks. */
char *clink__wire_user(const char *session_id, cJSON *content);

/* {"type":"control_request","request_id":ID,"request":{"subtype":S,...}}:
 * fields (an object, or NULL) supplies the other request members. */
char *clink__wire_control_request(const char *id, const char *subtype, cJSON *fields);

/* {"type":"control_response","response":{"subtype":"success",
 *  "request_id":ID,"response":R}}; R may be NULL (plain ack). */
char *clink__wire_control_success(const char *id, cJSON *response);

/* {"type":"control_response","response":{"subtype":"error",
 *  "request_id":ID,"error":MESSAGE}} */
char *clink__wire_control_error(const char *id, const char *message);

/* Adds item under name: 1, or 0 and item freed when either is NULL (a
 * failed create) or the copy of name cannot be made (cJSON then neither
 * adds nor frees item). Chains of these build an object without leaking
 * on ENOMEM. */
int clink__json_add(cJSON *obj, const char *name, cJSON *item);

#endif
