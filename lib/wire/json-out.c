#include "wire/json-out.h"

#include <stddef.h>

static char *print_and_free(cJSON *root) {
  char *s = root ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  return s;
}

int clink__json_add(cJSON *obj, const char *name, cJSON *item) {
  if (obj == NULL || item == NULL || !cJSON_AddItemToObject(obj, name, item)) {
    cJSON_Delete(item);
    return 0;
  }
  return 1;
}

char *clink__wire_user(const char *session_id, cJSON *content) {
  cJSON *root = cJSON_CreateObject();
  cJSON *msg = cJSON_CreateObject();
  int ok = clink__json_add(root, "type", cJSON_CreateString("user"));
  ok = clink__json_add(root, "session_id", cJSON_CreateString(session_id ? session_id : "")) && ok;
  ok = clink__json_add(msg, "role", cJSON_CreateString("user")) && ok;
  ok = clink__json_add(msg, "content", content) && ok;
  ok = clink__json_add(root, "message", msg) && ok;
  ok = clink__json_add(root, "parent_tool_use_id", cJSON_CreateNull()) && ok;
  if (!ok) {
    cJSON_Delete(root);
    return NULL;
  }
  return print_and_free(root);
}

char *clink__wire_control_request(const char *id, const char *subtype, cJSON *fields) {
  cJSON *root = cJSON_CreateObject();
  cJSON *req = cJSON_CreateObject();
  int ok = clink__json_add(root, "type", cJSON_CreateString("control_request"));
  ok = clink__json_add(root, "request_id", cJSON_CreateString(id)) && ok;
  /* subtype first, then the caller's fields, as the SDKs write it. */
  ok = clink__json_add(req, "subtype", cJSON_CreateString(subtype)) && ok;
  while (ok && fields && fields->child) {
    cJSON *item = cJSON_DetachItemViaPointer(fields, fields->child);
    if (!cJSON_AddItemToObject(req, item->string, item)) {
      cJSON_Delete(item);
      ok = 0;
    }
  }
  cJSON_Delete(fields);
  ok = clink__json_add(root, "request", req) && ok;
  if (!ok) {
    cJSON_Delete(root);
    return NULL;
  }
  return print_and_free(root);
}

static cJSON *response_envelope(const char *id, const char *subtype, cJSON **inner) {
  cJSON *root = cJSON_CreateObject();
  *inner = cJSON_CreateObject();
  int ok = clink__json_add(root, "type", cJSON_CreateString("control_response"));
  ok = clink__json_add(*inner, "subtype", cJSON_CreateString(subtype)) && ok;
  ok = clink__json_add(*inner, "request_id", cJSON_CreateString(id)) && ok;
  ok = clink__json_add(root, "response", *inner) && ok;
  if (!ok) {
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

char *clink__wire_control_success(const char *id, cJSON *response) {
  cJSON *inner;
  cJSON *root = response_envelope(id, "success", &inner);
  if (root == NULL) {
    cJSON_Delete(response);
    return NULL;
  }
  if (response && !clink__json_add(inner, "response", response)) {
    cJSON_Delete(root);
    return NULL;
  }
  return print_and_free(root);
}

char *clink__wire_control_error(const char *id, const char *message) {
  cJSON *inner;
  cJSON *root = response_envelope(id, "error", &inner);
  if (root == NULL || !clink__json_add(inner, "error", cJSON_CreateString(message))) {
    cJSON_Delete(root);
    return NULL;
  }
  return print_and_free(root);
}
