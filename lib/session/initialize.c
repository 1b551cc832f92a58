/* The initialize request's fields: the host's extra members, then the hooks
 * registered in the options. Every cJSON result is checked: a failed
 * allocation yields NULL, never a request missing its hooks. */
#include <stdio.h>

#include "session/session-int.h"
#include "wire/json-out.h"

/* Adds item under name; on failure frees item and returns 0. */
static int append(cJSON *arr, cJSON *item) {
  if (item == NULL) return 0;
  if (!cJSON_AddItemToArray(arr, item)) {
    cJSON_Delete(item);
    return 0;
  }
  return 1;
}

/* {"matcher":M|null,"hookCallbackIds":["hook_<i>"],"timeout":T?} */
static cJSON *hook_entry(const clink_options *o, size_t i) {
  cJSON *entry = cJSON_CreateObject();
  if (entry == NULL) return NULL;
  const char *matcher = o->hook_matchers.v[i];
  int ok = clink__json_add(entry, "matcher", matcher ? cJSON_CreateString(matcher) : cJSON_CreateNull());
  char id[32];
  snprintf(id, sizeof(id), "hook_%zu", i);
  cJSON *ids = ok ? cJSON_CreateArray() : NULL;
  ok = ok && append(ids, cJSON_CreateString(id));
  if (ids && !ok) cJSON_Delete(ids);
  ok = ok && clink__json_add(entry, "hookCallbackIds", ids);
  unsigned long timeout = strtoul(o->hook_timeouts.v[i], NULL, 10);
  if (ok && timeout) ok = clink__json_add(entry, "timeout", cJSON_CreateNumber((double)timeout));
  if (!ok) {
    cJSON_Delete(entry);
    return NULL;
  }
  return entry;
}

/* {"PreToolUse":[entry, ...], ...} */
static cJSON *hooks_object(const clink_options *o) {
  cJSON *hooks = cJSON_CreateObject();
  if (hooks == NULL) return NULL;
  for (size_t i = 0; i < o->hook_events.n; i++) {
    cJSON *list = cJSON_GetObjectItemCaseSensitive(hooks, o->hook_events.v[i]);
    if (list == NULL) {
      list = cJSON_CreateArray();
      if (!clink__json_add(hooks, o->hook_events.v[i], list)) {
        cJSON_Delete(hooks);
        return NULL;
      }
    }
    if (!append(list, hook_entry(o, i))) {
      cJSON_Delete(hooks);
      return NULL;
    }
  }
  return hooks;
}

cJSON *clink__sess_initialize_fields(const clink_options *o) {
  cJSON *f = o->initialize_extra ? cJSON_Parse(o->initialize_extra) : cJSON_CreateObject();
  if (f == NULL) return NULL;
  if (o->hook_events.n == 0) {
    if (cJSON_GetObjectItemCaseSensitive(f, "hooks")) return f;
    if (clink__json_add(f, "hooks", cJSON_CreateNull())) return f;
    cJSON_Delete(f);
    return NULL;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(f, "hooks");
  if (!clink__json_add(f, "hooks", hooks_object(o))) {
    cJSON_Delete(f);
    return NULL;
  }
  return f;
}
