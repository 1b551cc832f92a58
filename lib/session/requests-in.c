/* Inbound control requests (CLI -> host): can_use_tool, hook_callback,
 * mcp_message, and anything newer, which gets an error reply, never
 * silence. Also the public clink_request_* answers. Every reply is built
 * with checked cJSON calls: out of memory sends nothing half-built. */
#include <stdio.h>

#include "session/session-int.h"
#include "wire/json-out.h"

static void link_request(clink__session *s, clink_request *r) {
  r->prev = NULL;
  r->next = s->requests;
  if (s->requests) s->requests->prev = r;
  s->requests = r;
  s->n_requests++;
}

static void unlink_request(clink_request *r) {
  clink__session *s = r->s;
  if (s == NULL) return;
  if (r->prev)
    r->prev->next = r->next;
  else
    s->requests = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  s->n_requests--;
}

static void request_free(clink_request *r) {
  unlink_request(r);
  clink_msg_unref(r->msg);
  clink__free(r);
}

/* Sends an answer line (owned, NULL when it could not be built). */
static int send_owned(clink__session *s, char *line) {
  int rc = clink__sess_send(s, line);
  cJSON_free(line);
  return rc;
}

static void reply_error_now(clink__session *s, const char *id, const char *prefix,
                            const char *arg) {
  char text[256];
  snprintf(text, sizeof(text), "%s%s", prefix, arg ? arg : "");
  int rc = send_owned(s, clink__wire_control_error(id, text));
  /* The CLI waits for this answer: without it the turn would hang. */
  if (rc != 0) clink__sess_fatal(s, rc);
}

/* MCP without a handler: a JSON-RPC error inside a success response, as the
 * SDKs answer for an unknown server. */
static void reply_mcp_not_found(clink__session *s, const clink_msg *m) {
  const cJSON *req = clink__msg_request(m);
  const cJSON *server = cJSON_GetObjectItemCaseSensitive(req, "server_name");
  const cJSON *rpc = cJSON_GetObjectItemCaseSensitive(req, "message");
  const cJSON *rpc_id = cJSON_GetObjectItemCaseSensitive(rpc, "id");
  char text[200];
  snprintf(text, sizeof(text), "Server '%s' not found",
           cJSON_IsString(server) ? server->valuestring : "");
  cJSON *resp = cJSON_CreateObject();
  cJSON *mcp = cJSON_CreateObject();
  cJSON *err = cJSON_CreateObject();
  int ok = resp && mcp && err;
  ok = ok && clink__json_add(mcp, "jsonrpc", cJSON_CreateString("2.0"));
  ok = ok && clink__json_add(mcp, "id", rpc_id ? cJSON_Duplicate(rpc_id, 1) : cJSON_CreateNull());
  ok = ok && clink__json_add(err, "code", cJSON_CreateNumber(-32601));
  ok = ok && clink__json_add(err, "message", cJSON_CreateString(text));
  if (ok) {
    ok = clink__json_add(mcp, "error", err);
    err = NULL;
  }
  if (ok) {
    ok = clink__json_add(resp, "mcp_response", mcp);
    mcp = NULL;
  }
  cJSON_Delete(err);
  cJSON_Delete(mcp);
  if (!ok) {
    cJSON_Delete(resp);
    clink__sess_fatal(s, UV_ENOMEM);
    return;
  }
  int rc = send_owned(s, clink__wire_control_success(m->request_id, resp));
  if (rc != 0) clink__sess_fatal(s, rc);
}

void clink__sess_request_in(clink__session *s, const clink_msg *m) {
  const char *id = m->request_id;
  const char *st = m->control_subtype;
  if (id == NULL) {
    clink__session_count_error(s, CLINK_EPROTOCOL);
    return;
  }
  if (s->closing) {
    /* Nothing is written after close: the CLI would wait for an answer
     * that cannot come, so a close waiting for this turn stops now. */
    clink__sess_end_close_wait(s, UV_ECANCELED);
    return;
  }
  const clink_options *o = s->opts;
  clink_request_cb cb = NULL;
  void *ud = NULL;
  if (st && strcmp(st, "can_use_tool") == 0) {
    cb = o->permission_cb;
    ud = o->permission_ud;
    if (cb == NULL) {
      reply_error_now(s, id, "canUseTool callback is not provided", NULL);
      return;
    }
  } else if (st && strcmp(st, "hook_callback") == 0) {
    cb = o->hook_cb;
    ud = o->hook_ud;
    if (cb == NULL) {
      const cJSON *cid = cJSON_GetObjectItemCaseSensitive(clink__msg_request(m), "callback_id");
      reply_error_now(s, id, "No hook callback found for ID: ",
                      cJSON_IsString(cid) ? cid->valuestring : "");
      return;
    }
  } else if (st && strcmp(st, "mcp_message") == 0) {
    cb = o->mcp_cb;
    ud = o->mcp_ud;
    if (cb == NULL) {
      reply_mcp_not_found(s, m);
      return;
    }
  } else {
    reply_error_now(s, id, "Unsupported control request subtype: ", st ? st : "(none)");
    return;
  }
  if (s->n_requests >= o->max_inbound_requests) {
    clink__session_count_error(s, CLINK_ETOO_MANY_REQUESTS);
    reply_error_now(s, id, "too many requests waiting for an answer", NULL);
    return;
  }
  clink_request *r = clink__calloc(1, sizeof(*r));
  clink_msg *ref = r ? clink_msg_ref(m) : NULL;
  if (ref == NULL) {
    clink__free(r);
    /* The CLI gets an error answer; the host hears why. */
    clink__sess_error(s, UV_ENOMEM, "out of memory: an inbound request was answered with an error");
    reply_error_now(s, id, "out of memory", NULL);
    return;
  }
  r->gen = s->gen;
  r->s = s;
  r->owner = s->owner;
  r->msg = ref;
  r->subtype = ref->control_subtype;
  r->id = ref->request_id;
  r->ev.kind = CLINK__EV_REQUEST;
  r->ev.home = EV_HOME_REQ;
  r->ev.obj = r;
  r->ev.cb.request = cb;
  r->ev.ud = ud;
  link_request(s, r);
  clink__sess_push(s, &r->ev);
}

void clink__sess_request_cancel(clink__session *s, const clink_msg *m) {
  const char *id = m->request_id;
  if (id == NULL) return;
  for (clink_request *r = s->requests; r; r = r->next)
    if (strcmp(r->id, id) == 0) r->cancelled = 1;
}

void clink__sess_requests_detach(clink__session *s) {
  clink_request *r = s->requests;
  s->requests = NULL;
  s->n_requests = 0;
  while (r) {
    clink_request *n = r->next;
    if (r->ev.queued) {
      /* Never handed out: nobody else will free it. */
      clink_msg_unref(r->msg);
      clink__free(r);
    } else {
      r->s = NULL;
      r->owner = NULL;
      r->prev = r->next = NULL;
    }
    r = n;
  }
}

/* ------------------------------------------------------------ public API */

const char *clink_request_subtype(const clink_request *r) { return r ? r->subtype : NULL; }
const clink_msg *clink_request_msg(const clink_request *r) { return r ? r->msg : NULL; }
clink_client *clink_request_client(const clink_request *r) { return r ? r->owner : NULL; }
int clink_request_is_cancelled(const clink_request *r) { return r ? r->cancelled : 0; }

const struct cJSON *clink_request_field(const clink_request *r, const char *name) {
  if (r == NULL || name == NULL) return NULL;
  return cJSON_GetObjectItemCaseSensitive(clink__msg_request(r->msg), name);
}

/* Answers r with line (owned; NULL when building it ran out of memory: the
 * request then stays pending, so the host can answer again). */
static int answer(clink_request *r, char *line) {
  clink__session *s = r->s;
  int rc;
  if (s == NULL) {
    rc = CLINK_ECLOSING;
  } else if (r->cancelled) {
    rc = 0; /* the CLI withdrew it: it expects no reply */
  } else if (s->closing) {
    rc = CLINK_ECLOSING;
  } else if (r->gen != s->gen || s->proc == PROC_NONE) {
    rc = CLINK_EEXITED; /* its process died or was replaced by a reconnect */
  } else if (line == NULL) {
    return UV_ENOMEM;
  } else {
    rc = clink__sess_send(s, line);
  }
  cJSON_free(line);
  request_free(r);
  return rc;
}

/* Parses optional JSON text of the wanted kind; *out NULL when text is NULL.
 * UV_ENOMEM when the text is a valid object that could not be parsed. */
static int parse_opt(const char *text, int want_object, cJSON **out) {
  *out = NULL;
  if (text == NULL) return 0;
  cJSON *j = cJSON_Parse(text);
  if (j == NULL) {
    size_t n = strlen(text);
    int valid = want_object ? clink__json_object_valid(text, n) : clink__json_array_valid(text, n);
    return valid ? UV_ENOMEM : UV_EINVAL;
  }
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
  int rc = parse_opt(updated_input_json, 1, &input);
  if (rc != 0) return rc;
  rc = parse_opt(updated_permissions_json, 0, &perms);
  if (rc != 0) {
    cJSON_Delete(input);
    return rc;
  }
  /* The Python SDK always sends updatedInput: the original when unchanged. */
  if (input == NULL) {
    const cJSON *orig = clink_request_field(r, "input");
    input = orig ? cJSON_Duplicate(orig, 1) : cJSON_CreateObject();
  }
  cJSON *resp = cJSON_CreateObject();
  int ok = resp != NULL && clink__json_add(resp, "behavior", cJSON_CreateString("allow"));
  if (ok) {
    ok = clink__json_add(resp, "updatedInput", input); /* frees input on failure */
  } else {
    cJSON_Delete(input);
  }
  if (ok && perms) {
    ok = clink__json_add(resp, "updatedPermissions", perms);
  } else {
    cJSON_Delete(perms);
  }
  if (!ok) {
    cJSON_Delete(resp);
    return answer(r, NULL);
  }
  return answer(r, clink__wire_control_success(r->id, resp));
}

int clink_request_deny(clink_request *r, const char *message, int interrupt) {
  if (r == NULL) return UV_EINVAL;
  cJSON *resp = cJSON_CreateObject();
  int ok = resp != NULL && clink__json_add(resp, "behavior", cJSON_CreateString("deny"));
  ok = ok && clink__json_add(resp, "message", cJSON_CreateString(message ? message : "denied"));
  if (ok && interrupt) ok = clink__json_add(resp, "interrupt", cJSON_CreateTrue());
  if (!ok) {
    cJSON_Delete(resp);
    return answer(r, NULL);
  }
  return answer(r, clink__wire_control_success(r->id, resp));
}

int clink_request_respond(clink_request *r, const char *response_json) {
  if (r == NULL) return UV_EINVAL;
  cJSON *resp;
  int rc = parse_opt(response_json, 1, &resp);
  if (rc != 0) return rc;
  if (resp == NULL && (resp = cJSON_CreateObject()) == NULL) return answer(r, NULL);
  return answer(r, clink__wire_control_success(r->id, resp));
}

int clink_request_fail(clink_request *r, const char *message) {
  if (r == NULL) return UV_EINVAL;
  return answer(r, clink__wire_control_error(r->id, message ? message : "error"));
}
