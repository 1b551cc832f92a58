/* Inbound control requests (CLI -> host): can_use_tool, hook_callback,
 * mcp_message, and anything newer, which gets an error reply, never silence. */
#include <stdio.h>

#include "client/client.h"
#include "base/internal.h"
#include "wire/json-out.h"

static void link_request(clink_client *c, clink_request *r) {
  r->prev = NULL;
  r->next = c->requests;
  if (c->requests) c->requests->prev = r;
  c->requests = r;
}

static void unlink_request(clink_request *r) {
  clink_client *c = r->client;
  if (c == NULL) return;
  if (r->prev)
    r->prev->next = r->next;
  else
    c->requests = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

static void request_free(clink_request *r) {
  unlink_request(r);
  clink_msg_unref(r->msg);
  clink__free(r);
}

/* Writes an answer line (owned) and frees the request. */
static int answer(clink_request *r, char *line) {
  clink_client *c = r->client;
  int rc;
  if (c == NULL) {
    rc = CLINK_ECLOSING;
  } else if (r->cancelled) {
    rc = 0; /* the CLI withdrew it: it expects no reply */
  } else if (r->spawn != c->m.spawns) {
    rc = CLINK_EEXITED; /* its process was replaced by a reconnect */
  } else if (c->t == NULL) {
    rc = c->closing ? CLINK_ECLOSING : CLINK_EEXITED;
  } else {
    rc = clink__client_write_line(c, line);
    line = NULL;
  }
  cJSON_free(line);
  request_free(r);
  return rc;
}

/* The error text is prefix followed by arg. */
static int reply_error_now(clink_client *c, const char *id, const char *prefix,
                           const char *arg) {
  char text[256];
  snprintf(text, sizeof(text), "%s%s", prefix, arg ? arg : "");
  return clink__client_write_line(c, clink__wire_control_error(id, text));
}

/* MCP without a handler: a JSON-RPC error inside a success response, as the
 * SDKs answer for an unknown server. */
static void reply_mcp_not_found(clink_client *c, const clink_msg *m) {
  const cJSON *req = clink__msg_request(m);
  const cJSON *server = cJSON_GetObjectItemCaseSensitive(req, "server_name");
  const cJSON *rpc = cJSON_GetObjectItemCaseSensitive(req, "message");
  const cJSON *rpc_id = cJSON_GetObjectItemCaseSensitive(rpc, "id");
  cJSON *resp = cJSON_CreateObject();
  cJSON *mcp = cJSON_AddObjectToObject(resp, "mcp_response");
  cJSON_AddStringToObject(mcp, "jsonrpc", "2.0");
  cJSON_AddItemToObject(mcp, "id", rpc_id ? cJSON_Duplicate(rpc_id, 1) : cJSON_CreateNull());
  cJSON *err = cJSON_AddObjectToObject(mcp, "error");
  cJSON_AddNumberToObject(err, "code", -32601);
  char text[200];
  snprintf(text, sizeof(text), "Server '%s' not found",
           cJSON_IsString(server) ? server->valuestring : "");
  cJSON_AddStringToObject(err, "message", text);
  clink__client_write_line(c, clink__wire_control_success(m->request_id, resp));
}

void clink__client_request_dispatch(clink_client *c, const clink_msg *m) {
  const char *id = m->request_id;
  const char *st = m->control_subtype;
  if (id == NULL) {
    clink__client_count_error(c, CLINK_EPROTOCOL);
    return;
  }
  clink_request_cb cb = NULL;
  void *ud = NULL;
  if (st && strcmp(st, "can_use_tool") == 0) {
    cb = c->opts->permission_cb;
    ud = c->opts->permission_ud;
    if (cb == NULL) {
      reply_error_now(c, id, "canUseTool callback is not provided", NULL);
      return;
    }
  } else if (st && strcmp(st, "hook_callback") == 0) {
    cb = c->opts->hook_cb;
    ud = c->opts->hook_ud;
    if (cb == NULL) {
      const cJSON *cid = cJSON_GetObjectItemCaseSensitive(clink__msg_request(m), "callback_id");
      reply_error_now(c, id, "No hook callback found for ID: ",
                      cJSON_IsString(cid) ? cid->valuestring : "");
      return;
    }
  } else if (st && strcmp(st, "mcp_message") == 0) {
    cb = c->opts->mcp_cb;
    ud = c->opts->mcp_ud;
    if (cb == NULL) {
      reply_mcp_not_found(c, m);
      return;
    }
  } else {
    reply_error_now(c, id, "Unsupported control request subtype: ", st ? st : "(none)");
    return;
  }
  if (c->closing) {
    reply_error_now(c, id, "client is closing", NULL);
    return;
  }
  clink_request *r = clink__calloc(1, sizeof(*r));
  clink_msg *ref = r ? clink_msg_ref(m) : NULL;
  if (ref == NULL) {
    clink__free(r);
    reply_error_now(c, id, "out of memory", NULL);
    return;
  }
  r->spawn = c->m.spawns;
  r->client = c;
  r->msg = ref;
  r->subtype = ref->control_subtype;
  r->id = ref->request_id;
  link_request(c, r);
  cb(c, r, ud);
}

void clink__client_request_cancel(clink_client *c, const clink_msg *m) {
  const char *id = m->request_id;
  if (id == NULL) return;
  for (clink_request *r = c->requests; r; r = r->next)
    if (strcmp(r->id, id) == 0) r->cancelled = 1;
}

void clink__client_requests_detach(clink_client *c) {
  clink_request *r = c->requests;
  c->requests = NULL;
  while (r) {
    clink_request *n = r->next;
    r->client = NULL;
    r->prev = r->next = NULL;
    r = n;
  }
}

/* ------------------------------------------------------------ public API */

const char *clink_request_subtype(const clink_request *r) { return r ? r->subtype : NULL; }
const clink_msg *clink_request_msg(const clink_request *r) { return r ? r->msg : NULL; }
clink_client *clink_request_client(const clink_request *r) { return r ? r->client : NULL; }
int clink_request_is_cancelled(const clink_request *r) { return r ? r->cancelled : 0; }

const struct cJSON *clink_request_field(const clink_request *r, const char *name) {
  if (r == NULL || name == NULL) return NULL;
  return cJSON_GetObjectItemCaseSensitive(clink__msg_request(r->msg), name);
}

/* Parses optional JSON text of the wanted kind; *out NULL when text is NULL. */
static int parse_opt(const char *text, int want_object, cJSON **out) {
  *out = NULL;
  if (text == NULL) return 0;
  cJSON *j = cJSON_Parse(text);
  if (want_object ? !cJSON_IsObject(j) : !cJSON_IsArray(j)) {
    cJSON_Delete(j);
    return UV_EINVAL;
  }
  *out = j;
  return 0;
}

int clink_request_allow(clink_request *r, const char *updated_input_json,
                        const char *updated_permissions_json) {
  if (r == NULL) return UV_EINVAL;
  cJSON *input, *perms;
  if (parse_opt(updated_input_json, 1, &input) != 0) return UV_EINVAL;
  if (parse_opt(updated_permissions_json, 0, &perms) != 0) {
    cJSON_Delete(input);
    return UV_EINVAL;
  }
  /* The Python SDK always sends updatedInput: the original when unchanged. */
  if (input == NULL) {
    const cJSON *orig = clink_request_field(r, "input");
    input = orig ? cJSON_Duplicate(orig, 1) : cJSON_CreateObject();
  }
  cJSON *resp = cJSON_CreateObject();
  cJSON_AddStringToObject(resp, "behavior", "allow");
  cJSON_AddItemToObject(resp, "updatedInput", input);
  if (perms) cJSON_AddItemToObject(resp, "updatedPermissions", perms);
  return answer(r, clink__wire_control_success(r->id, resp));
}

int clink_request_deny(clink_request *r, const char *message, int interrupt) {
  if (r == NULL) return UV_EINVAL;
  cJSON *resp = cJSON_CreateObject();
  cJSON_AddStringToObject(resp, "behavior", "deny");
  cJSON_AddStringToObject(resp, "message", message ? message : "denied");
  if (interrupt) cJSON_AddTrueToObject(resp, "interrupt");
  return answer(r, clink__wire_control_success(r->id, resp));
}

int clink_request_respond(clink_request *r, const char *response_json) {
  if (r == NULL) return UV_EINVAL;
  cJSON *resp;
  if (parse_opt(response_json, 1, &resp) != 0) return UV_EINVAL;
  if (resp == NULL) resp = cJSON_CreateObject();
  return answer(r, clink__wire_control_success(r->id, resp));
}

int clink_request_fail(clink_request *r, const char *message) {
  if (r == NULL) return UV_EINVAL;
  return answer(r, clink__wire_control_error(r->id, message ? message : "error"));
}
