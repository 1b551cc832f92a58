/* clink_client's public calls that only feed the session or read it. */
#include "base/deadline.h"
#include "base/internal.h"
#include "client/client.h"
#include "wire/message.h"

/* ------------------------------------------------------------- turns */

static int query(clink_client *c, cJSON *content, clink_message_cb on_message,
                 clink_turn_cb on_done, void *ud) {
  int rc = clink__session_query(c->s, content, on_message, on_done, ud, clink__client_now(c));
  clink__client_api_done(c);
  return rc;
}

int clink_client_query(clink_client *c, const char *prompt, clink_message_cb on_message,
                       clink_turn_cb on_done, void *ud) {
  if (c == NULL || prompt == NULL) return UV_EINVAL;
  cJSON *content = cJSON_CreateString(prompt);
  if (content == NULL) return UV_ENOMEM;
  return query(c, content, on_message, on_done, ud);
}

int clink_client_query_blocks(clink_client *c, const char *content_json,
                              clink_message_cb on_message, clink_turn_cb on_done, void *ud) {
  if (c == NULL || content_json == NULL) return UV_EINVAL;
  cJSON *content = cJSON_Parse(content_json);
  if (!cJSON_IsArray(content) || cJSON_GetArraySize(content) == 0) {
    cJSON_Delete(content);
    return UV_EINVAL;
  }
  return query(c, content, on_message, on_done, ud);
}

/* ----------------------------------------------------------- control */

static int control(clink_client *c, const char *subtype, cJSON *fields, clink_control_cb cb,
                   void *ud) {
  int rc = clink__session_control(c->s, subtype, fields, c->opts->control_timeout_ms, cb, ud,
                                  clink__client_now(c));
  clink__client_api_done(c);
  return rc;
}

int clink_client_interrupt(clink_client *c, clink_control_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  return control(c, "interrupt", NULL, cb, ud);
}

int clink_client_set_permission_mode(clink_client *c, clink_permission_mode mode,
                                     clink_control_cb cb, void *ud) {
  const char *name = clink__permission_mode_name(mode);
  if (c == NULL || name == NULL) return UV_EINVAL;
  cJSON *f = cJSON_CreateObject();
  if (f == NULL || !cJSON_AddStringToObject(f, "mode", name)) {
    cJSON_Delete(f);
    return UV_ENOMEM;
  }
  return control(c, "set_permission_mode", f, cb, ud);
}

int clink_client_set_model(clink_client *c, const char *model, clink_control_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  cJSON *f = cJSON_CreateObject();
  cJSON *v = model ? cJSON_CreateString(model) : cJSON_CreateNull();
  if (f == NULL || v == NULL || !cJSON_AddItemToObject(f, "model", v)) {
    cJSON_Delete(f);
    cJSON_Delete(v);
    return UV_ENOMEM;
  }
  return control(c, "set_model", f, cb, ud);
}

int clink_client_control(clink_client *c, const char *subtype, const char *fields_json,
                         clink_control_cb cb, void *ud) {
  if (c == NULL || subtype == NULL || subtype[0] == '\0') return UV_EINVAL;
  cJSON *f = NULL;
  if (fields_json) {
    f = cJSON_Parse(fields_json);
    if (f == NULL)
      return clink__json_object_valid(fields_json, strlen(fields_json)) ? UV_ENOMEM
                                                                          : UV_EINVAL;
    if (!cJSON_IsObject(f) || cJSON_GetObjectItemCaseSensitive(f, "subtype")) {
      cJSON_Delete(f);
      return UV_EINVAL;
    }
  }
  return control(c, subtype, f, cb, ud);
}

int clink_client_ping(clink_client *c, uint64_t timeout_ms, clink_control_cb cb, void *ud) {
  if (c == NULL) return UV_EINVAL;
  int rc = clink__session_ping(c->s, clink__timeout_norm(timeout_ms), cb, ud,
                               clink__client_now(c));
  clink__client_api_done(c);
  return rc;
}

/* ---------------------------------------------------------- callbacks */

void clink_client_set_user_data(clink_client *c, void *ud) { c->user_data = ud; }
void *clink_client_get_user_data(const clink_client *c) { return c->user_data; }

void clink_client_set_state_cb(clink_client *c, clink_state_cb cb, void *ud) {
  c->state_cb = cb;
  c->state_ud = ud;
}

void clink_client_set_error_cb(clink_client *c, clink_error_cb cb, void *ud) {
  c->error_cb = cb;
  c->error_ud = ud;
}

void clink_client_set_recovery_cb(clink_client *c, clink_recovery_cb cb, void *ud) {
  c->recovery_cb = cb;
  c->recovery_ud = ud;
}

void clink_client_set_unsolicited_cb(clink_client *c, clink_unsolicited_cb cb, void *ud) {
  c->unsolicited_cb = cb;
  c->unsolicited_ud = ud;
}

/* ---------------------------------------------------------- read-outs */

clink_client_state clink_client_get_state(const clink_client *c) {
  return clink__session_state(c->s);
}
const char *clink_client_session_id(const clink_client *c) { return clink__session_id(c->s); }
const clink_msg *clink_client_server_info(const clink_client *c) {
  return clink__session_server_info(c->s);
}
const char *clink_client_last_error(const clink_client *c) {
  return clink__session_last_error(c->s);
}
size_t clink_client_turns_pending(const clink_client *c) {
  return clink__session_turns_pending(c->s);
}
uint64_t clink_client_turns_done(const clink_client *c) { return clink__session_turns_done(c->s); }

int clink_client_get_metrics(const clink_client *c, clink_client_metrics *out) {
  if (c == NULL) return UV_EINVAL;
  return clink__session_get_metrics(c->s, uv_now(c->loop), out);
}

uint64_t clink_client_error_count(const clink_client *c, int err) {
  return clink__session_error_count(c->s, err);
}
