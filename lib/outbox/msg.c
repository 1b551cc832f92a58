/* Stored messages: one block per message (the strings follow the struct),
 * and the public read-only accessors. Pure. */
#include "base/internal.h"
#include "outbox/store.h"

clink_outbox_msg *clink__ob_msg_new(const clink__ob_strs *s) {
  const char *src[7] = {s->prompt, s->operation, s->session_id, s->key,
                        s->metadata, s->response, s->error_text};
  size_t len[7], total = sizeof(clink_outbox_msg);
  for (int i = 0; i < 7; i++) {
    len[i] = src[i] ? strlen(src[i]) + 1 : 0;
    if (len[i] > SIZE_MAX - total) return NULL;
    total += len[i];
  }
  clink_outbox_msg *m = clink__calloc(1, total);
  if (m == NULL) return NULL;
  char *p = (char *)(m + 1);
  char **dst[7] = {&m->prompt, &m->operation, &m->session_id, &m->key,
                   &m->metadata, &m->response, &m->error_text};
  for (int i = 0; i < 7; i++) {
    if (src[i] == NULL) continue;
    memcpy(p, src[i], len[i]);
    *dst[i] = p;
    p += len[i];
  }
  return m;
}

const char *clink_outbox_state_name(clink_outbox_state state) {
  switch (state) {
    case CLINK_OUTBOX_PENDING:
      return "PENDING";
    case CLINK_OUTBOX_LEASED:
      return "LEASED";
    case CLINK_OUTBOX_DELIVERED:
      return "DELIVERED";
    case CLINK_OUTBOX_DEAD:
      return "DEAD";
  }
  return "UNKNOWN";
}

int64_t clink_outbox_msg_id(const clink_outbox_msg *m) { return m ? m->id : 0; }
clink_outbox_state clink_outbox_msg_state(const clink_outbox_msg *m) {
  return m ? (clink_outbox_state)m->state : CLINK_OUTBOX_PENDING;
}
const char *clink_outbox_msg_prompt(const clink_outbox_msg *m) { return m ? m->prompt : NULL; }
const char *clink_outbox_msg_operation(const clink_outbox_msg *m) {
  return m ? m->operation : NULL;
}
const char *clink_outbox_msg_session_id(const clink_outbox_msg *m) {
  return m ? m->session_id : NULL;
}
const char *clink_outbox_msg_key(const clink_outbox_msg *m) { return m ? m->key : NULL; }
const char *clink_outbox_msg_metadata(const clink_outbox_msg *m) {
  return m ? m->metadata : NULL;
}
const char *clink_outbox_msg_response(const clink_outbox_msg *m) {
  return m ? m->response : NULL;
}
unsigned int clink_outbox_msg_attempts(const clink_outbox_msg *m) {
  return m ? m->attempts : 0;
}
int clink_outbox_msg_last_error(const clink_outbox_msg *m) { return m ? m->last_error : 0; }
const char *clink_outbox_msg_last_error_text(const clink_outbox_msg *m) {
  return m ? m->error_text : NULL;
}
uint64_t clink_outbox_msg_created_ms(const clink_outbox_msg *m) {
  return m ? m->created_ms : 0;
}
uint64_t clink_outbox_msg_updated_ms(const clink_outbox_msg *m) {
  return m ? m->updated_ms : 0;
}
uint64_t clink_outbox_msg_due_ms(const clink_outbox_msg *m) { return m ? m->due_ms : 0; }
