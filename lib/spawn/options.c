#include "spawn/options.h"

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "base/deadline.h"
#include "base/internal.h"
#include "wire/message.h"

int clink_options_new(clink_options **out) {
  if (out == NULL) return UV_EINVAL;
  clink_options *o = clink__calloc(1, sizeof(*o));
  if (o == NULL) return UV_ENOMEM;
  o->max_line_bytes = CLINK_DEFAULT_MAX_LINE_BYTES;
  o->write_queue_bytes = CLINK_DEFAULT_WRITE_QUEUE_BYTES;
  o->write_queue_lines = CLINK_DEFAULT_WRITE_QUEUE_LINES;
  o->stderr_tail_bytes = CLINK_DEFAULT_STDERR_TAIL_BYTES;
  o->eof_grace_ms = CLINK_DEFAULT_EOF_GRACE_MS;
  o->term_grace_ms = CLINK_DEFAULT_TERM_GRACE_MS;
  o->connect_timeout_ms = CLINK_DEFAULT_CONNECT_TIMEOUT_MS;
  o->control_timeout_ms = CLINK_DEFAULT_CONTROL_TIMEOUT_MS;
  o->close_turn_wait_ms = CLINK_DEFAULT_CLOSE_TURN_WAIT_MS;
  o->max_queued_queries = CLINK_DEFAULT_MAX_QUEUED_QUERIES;
  o->max_control_inflight = CLINK_DEFAULT_MAX_CONTROL_INFLIGHT;
  o->max_inbound_requests = CLINK_DEFAULT_MAX_INBOUND_REQUESTS;
  o->probe_idle_ms = CLINK__NEVER;
  o->probe_timeout_ms = CLINK_DEFAULT_PROBE_TIMEOUT_MS;
  o->turn_inactivity_ms = CLINK_DEFAULT_TURN_INACTIVITY_MS;
  *out = o;
  return 0;
}

static void strlist_free(clink__strlist *l) {
  for (size_t i = 0; i < l->n; i++) clink__free(l->v[i]);
  clink__free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* Appends a copy of s (which may be NULL). */
static int strlist_push(clink__strlist *l, const char *s) {
  char *d = NULL;
  if (s != NULL && (d = clink__strdup(s)) == NULL) return UV_ENOMEM;
  char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
  if (nv == NULL) {
    clink__free(d);
    return UV_ENOMEM;
  }
  nv[l->n++] = d;
  l->v = nv;
  return 0;
}

static int strlist_dup(clink__strlist *dst, const clink__strlist *src) {
  for (size_t i = 0; i < src->n; i++)
    if (strlist_push(dst, src->v[i]) != 0) return UV_ENOMEM;
  return 0;
}

/* Every owned string and list, so free and dup cannot forget one. */
static const size_t str_fields[] = {
    offsetof(clink_options, cli_path),       offsetof(clink_options, cwd),
    offsetof(clink_options, exec_shim),      offsetof(clink_options, system_prompt),
    offsetof(clink_options, append_system_prompt),
    offsetof(clink_options, model),          offsetof(clink_options, fallback_model),
    offsetof(clink_options, permission_prompt_tool),
    offsetof(clink_options, resume),         offsetof(clink_options, session_id),
    offsetof(clink_options, settings),       offsetof(clink_options, mcp_config),
    offsetof(clink_options, setting_sources),
    offsetof(clink_options, initialize_extra),
};
static const size_t list_fields[] = {
    offsetof(clink_options, tools),         offsetof(clink_options, allowed_tools),
    offsetof(clink_options, disallowed_tools), offsetof(clink_options, add_dirs),
    offsetof(clink_options, extra_flags),   offsetof(clink_options, extra_values),
    offsetof(clink_options, hook_events),   offsetof(clink_options, hook_matchers),
    offsetof(clink_options, hook_timeouts),
};
#define STR_FIELD(o, off) ((char **)((char *)(o) + (off)))
#define LIST_FIELD(o, off) ((clink__strlist *)((char *)(o) + (off)))

void clink_options_free(clink_options *o) {
  if (o == NULL) return;
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(str_fields); i++)
    clink__free(*STR_FIELD(o, str_fields[i]));
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(list_fields); i++)
    strlist_free(LIST_FIELD(o, list_fields[i]));
  for (size_t i = 0; i < o->env_n; i++) {
    clink__free(o->env[i].name);
    clink__free(o->env[i].value);
  }
  clink__free(o->env);
  clink_retry_policy_free(o->recovery);
  clink__free(o);
}

int clink_options_dup(clink_options **out, const clink_options *src) {
  if (out == NULL || src == NULL) return UV_EINVAL;
  clink_options *o = malloc(sizeof(*o));
  if (o == NULL) return UV_ENOMEM;
  *o = *src; /* scalars */
  /* Drop the borrowed pointers first so a failure half way leaves an object
   * that clink_options_free() can release. */
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(str_fields); i++)
    *STR_FIELD(o, str_fields[i]) = NULL;
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(list_fields); i++)
    memset(LIST_FIELD(o, list_fields[i]), 0, sizeof(clink__strlist));
  o->env = NULL;
  o->env_n = 0;
  o->recovery = NULL;

  int rc = src->recovery ? clink_retry_policy_dup(&o->recovery, src->recovery) : 0;
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(str_fields) && rc == 0; i++)
    rc = clink__set_str(STR_FIELD(o, str_fields[i]), *STR_FIELD(src, str_fields[i]));
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(list_fields) && rc == 0; i++)
    rc = strlist_dup(LIST_FIELD(o, list_fields[i]), LIST_FIELD(src, list_fields[i]));
  for (size_t i = 0; i < src->env_n && rc == 0; i++)
    rc = clink_options_set_env(o, src->env[i].name, src->env[i].value);
  if (rc != 0) {
    clink_options_free(o);
    return UV_ENOMEM;
  }
  *out = o;
  return 0;
}

#define CHECK_OPTS(o) \
  if ((o) == NULL) return UV_EINVAL

/* A value containing '\n' or NUL-less garbage can't break argv (no shell), but
 * an empty flag name or one with '=' could forge another flag. */
static int valid_flag_name(const char *flag) {
  if (flag == NULL || flag[0] == '\0' || flag[0] == '-') return 0;
  for (const char *p = flag; *p; p++)
    if (*p == '=' || *p == ' ' || *p == '\n') return 0;
  return 1;
}

int clink_options_set_cli_path(clink_options *o, const char *path) {
  CHECK_OPTS(o);
  if (path != NULL && path[0] == '\0') return UV_EINVAL;
  return clink__set_str(&o->cli_path, path);
}

int clink_options_set_cwd(clink_options *o, const char *dir) {
  CHECK_OPTS(o);
  if (dir != NULL && dir[0] == '\0') return UV_EINVAL;
  return clink__set_str(&o->cwd, dir);
}

int clink_options_set_env(clink_options *o, const char *name, const char *value) {
  CHECK_OPTS(o);
  if (name == NULL || name[0] == '\0' || strchr(name, '=') != NULL) return UV_EINVAL;
  clink__env_edit *ne = realloc(o->env, (o->env_n + 1) * sizeof(*ne));
  if (ne == NULL) return UV_ENOMEM;
  o->env = ne;
  clink__env_edit *e = &o->env[o->env_n];
  e->name = clink__strdup(name);
  e->value = value != NULL ? clink__strdup(value) : NULL;
  if (e->name == NULL || (value != NULL && e->value == NULL)) {
    clink__free(e->name);
    clink__free(e->value);
    return UV_ENOMEM;
  }
  o->env_n++;
  return 0;
}

int clink_options_set_exec_shim(clink_options *o, const char *path) {
  CHECK_OPTS(o);
  if (path != NULL && path[0] == '\0') return UV_EINVAL;
  int rc = clink__set_str(&o->exec_shim, path);
  if (rc == 0) o->exec_shim_set = 1;
  return rc;
}

int clink_options_set_max_line_bytes(clink_options *o, size_t bytes) {
  CHECK_OPTS(o);
  if (bytes == 0 || bytes > ((size_t)1 << 40)) return UV_EINVAL;
  o->max_line_bytes = bytes;
  return 0;
}

int clink_options_set_write_queue_limits(clink_options *o, size_t max_bytes,
                                         size_t max_lines) {
  CHECK_OPTS(o);
  if (max_bytes == 0 || max_lines == 0) return UV_EINVAL;
  o->write_queue_bytes = max_bytes;
  o->write_queue_lines = max_lines;
  return 0;
}

int clink_options_set_stderr_tail_bytes(clink_options *o, size_t bytes) {
  CHECK_OPTS(o);
  if (bytes == 0) return UV_EINVAL;
  o->stderr_tail_bytes = bytes;
  return 0;
}

int clink_options_set_close_grace_ms(clink_options *o, uint64_t eof_grace_ms,
                                     uint64_t term_grace_ms) {
  CHECK_OPTS(o);
  o->eof_grace_ms = eof_grace_ms;
  o->term_grace_ms = term_grace_ms;
  return 0;
}

int clink_options_set_system_prompt(clink_options *o, const char *text) {
  CHECK_OPTS(o);
  return clink__set_str(&o->system_prompt, text);
}

int clink_options_set_append_system_prompt(clink_options *o, const char *text) {
  CHECK_OPTS(o);
  return clink__set_str(&o->append_system_prompt, text);
}

int clink_options_set_model(clink_options *o, const char *model) {
  CHECK_OPTS(o);
  return clink__set_str(&o->model, model);
}

int clink_options_set_fallback_model(clink_options *o, const char *model) {
  CHECK_OPTS(o);
  return clink__set_str(&o->fallback_model, model);
}

const char *clink__permission_mode_name(clink_permission_mode m) {
  static const char *const names[] = {"default", "acceptEdits", "plan",
                                      "bypassPermissions", "dontAsk", "auto"};
  return (int)m >= 0 && (size_t)m < CLINK__ARRAY_SIZE(names) ? names[m] : NULL;
}

int clink_options_set_permission_mode(clink_options *o, clink_permission_mode mode) {
  CHECK_OPTS(o);
  if ((int)mode < CLINK_PERMISSION_DEFAULT || (int)mode > CLINK_PERMISSION_AUTO)
    return UV_EINVAL;
  o->permission_mode = mode;
  o->permission_mode_set = 1;
  return 0;
}

int clink_options_set_permission_prompt_tool(clink_options *o, const char *tool) {
  CHECK_OPTS(o);
  return clink__set_str(&o->permission_prompt_tool, tool);
}

int clink_options_set_max_turns(clink_options *o, unsigned int turns) {
  CHECK_OPTS(o);
  o->max_turns = turns;
  return 0;
}

static int add_list_item(clink_options *o, clink__strlist *l, const char *item) {
  CHECK_OPTS(o);
  if (item == NULL || item[0] == '\0' || strchr(item, ',') != NULL) return UV_EINVAL;
  return strlist_push(l, item);
}

int clink_options_add_tool(clink_options *o, const char *tool) {
  int rc = add_list_item(o, o ? &o->tools : NULL, tool);
  if (rc == 0) o->tools_set = 1;
  return rc;
}

int clink_options_add_allowed_tool(clink_options *o, const char *tool) {
  return add_list_item(o, o ? &o->allowed_tools : NULL, tool);
}

int clink_options_add_disallowed_tool(clink_options *o, const char *tool) {
  return add_list_item(o, o ? &o->disallowed_tools : NULL, tool);
}

int clink_options_add_dir(clink_options *o, const char *dir) {
  CHECK_OPTS(o);
  if (dir == NULL || dir[0] == '\0') return UV_EINVAL;
  return strlist_push(&o->add_dirs, dir);
}

int clink_options_set_continue(clink_options *o, int enable) {
  CHECK_OPTS(o);
  o->continue_conversation = enable != 0;
  return 0;
}

int clink_options_set_resume(clink_options *o, const char *session_id) {
  CHECK_OPTS(o);
  return clink__set_str(&o->resume, session_id);
}

int clink_options_set_session_id(clink_options *o, const char *session_id) {
  CHECK_OPTS(o);
  return clink__set_str(&o->session_id, session_id);
}

int clink_options_set_fork_session(clink_options *o, int enable) {
  CHECK_OPTS(o);
  o->fork_session = enable != 0;
  return 0;
}

int clink_options_set_settings(clink_options *o, const char *path_or_json) {
  CHECK_OPTS(o);
  return clink__set_str(&o->settings, path_or_json);
}

int clink_options_set_mcp_config(clink_options *o, const char *path_or_json) {
  CHECK_OPTS(o);
  return clink__set_str(&o->mcp_config, path_or_json);
}

int clink_options_set_include_partial_messages(clink_options *o, int enable) {
  CHECK_OPTS(o);
  o->include_partial_messages = enable != 0;
  return 0;
}

int clink_options_set_setting_sources(clink_options *o, const char *sources) {
  CHECK_OPTS(o);
  int rc = clink__set_str(&o->setting_sources, sources);
  if (rc == 0) o->setting_sources_set = sources != NULL;
  return rc;
}

int clink_options_add_extra_arg(clink_options *o, const char *flag, const char *value) {
  CHECK_OPTS(o);
  if (!valid_flag_name(flag)) return UV_EINVAL;
  int rc = strlist_push(&o->extra_flags, flag);
  if (rc != 0) return rc;
  rc = strlist_push(&o->extra_values, value);
  if (rc != 0) {
    o->extra_flags.n--;
    clink__free(o->extra_flags.v[o->extra_flags.n]);
  }
  return rc;
}

int clink_options_set_connect_timeout_ms(clink_options *o, uint64_t ms) {
  CHECK_OPTS(o);
  o->connect_timeout_ms = clink__timeout_norm(ms);
  return 0;
}

int clink_options_set_control_timeout_ms(clink_options *o, uint64_t ms) {
  CHECK_OPTS(o);
  o->control_timeout_ms = clink__timeout_norm(ms);
  return 0;
}

int clink_options_set_turn_inactivity_ms(clink_options *o, uint64_t ms) {
  CHECK_OPTS(o);
  o->turn_inactivity_ms = clink__timeout_norm(ms);
  return 0;
}

int clink_options_set_max_inbound_requests(clink_options *o, size_t n) {
  CHECK_OPTS(o);
  if (n == 0) return UV_EINVAL;
  o->max_inbound_requests = n;
  return 0;
}

int clink_options_set_close_turn_wait_ms(clink_options *o, uint64_t ms) {
  CHECK_OPTS(o);
  o->close_turn_wait_ms = ms;
  return 0;
}

int clink_options_set_max_queued_queries(clink_options *o, size_t n) {
  CHECK_OPTS(o);
  if (n == 0) return UV_EINVAL;
  o->max_queued_queries = n;
  return 0;
}

int clink_options_set_max_control_inflight(clink_options *o, size_t n) {
  CHECK_OPTS(o);
  if (n == 0 || n > 4096) return UV_EINVAL;
  o->max_control_inflight = n;
  return 0;
}

int clink_options_set_stderr_cb(clink_options *o, clink_stderr_cb cb, void *ud) {
  CHECK_OPTS(o);
  o->stderr_cb = cb;
  o->stderr_ud = ud;
  return 0;
}

int clink_options_set_permission_cb(clink_options *o, clink_request_cb cb, void *ud) {
  CHECK_OPTS(o);
  o->permission_cb = cb;
  o->permission_ud = ud;
  return 0;
}

int clink_options_set_hook_cb(clink_options *o, clink_request_cb cb, void *ud) {
  CHECK_OPTS(o);
  o->hook_cb = cb;
  o->hook_ud = ud;
  return 0;
}

int clink_options_set_mcp_cb(clink_options *o, clink_request_cb cb, void *ud) {
  CHECK_OPTS(o);
  o->mcp_cb = cb;
  o->mcp_ud = ud;
  return 0;
}

int clink_options_add_hook(clink_options *o, const char *event, const char *matcher,
                           unsigned int timeout_s) {
  CHECK_OPTS(o);
  if (event == NULL || event[0] == '\0') return UV_EINVAL;
  if (o->hook_events.n >= 1024) return UV_EINVAL;
  char t[16];
  snprintf(t, sizeof(t), "%u", timeout_s);
  size_t n = o->hook_events.n;
  if (strlist_push(&o->hook_events, event) != 0) return UV_ENOMEM;
  if (strlist_push(&o->hook_matchers, matcher) != 0 ||
      strlist_push(&o->hook_timeouts, t) != 0) {
    /* Keep the three lists the same length. */
    while (o->hook_matchers.n > n) clink__free(o->hook_matchers.v[--o->hook_matchers.n]);
    clink__free(o->hook_events.v[--o->hook_events.n]);
    return UV_ENOMEM;
  }
  return (int)n;
}

int clink_options_set_initialize_extra(clink_options *o, const char *json_object) {
  CHECK_OPTS(o);
  if (json_object != NULL) {
    /* Whole text must be the object: no trailing garbage. */
    cJSON *j = cJSON_ParseWithOpts(json_object, NULL, 1);
    int ok = cJSON_IsObject(j), parsed = j != NULL;
    cJSON_Delete(j);
    /* cJSON also fails when it runs out of memory: tell that from bad JSON. */
    if (!ok)
      return !parsed && clink__json_object_valid(json_object, strlen(json_object)) ? UV_ENOMEM
                                                                                 : UV_EINVAL;
  }
  return clink__set_str(&o->initialize_extra, json_object);
}

int clink_options_set_recovery(clink_options *o, const clink_retry_policy *policy) {
  CHECK_OPTS(o);
  clink_retry_policy *copy = NULL;
  if (policy != NULL) {
    int rc = clink_retry_policy_dup(&copy, policy);
    if (rc != 0) return rc;
  }
  clink_retry_policy_free(o->recovery);
  o->recovery = copy;
  return 0;
}

int clink_options_set_resend_interrupted_turn(clink_options *o, int enable) {
  CHECK_OPTS(o);
  o->resend_interrupted_turn = enable != 0;
  return 0;
}

int clink_options_set_idle_probe(clink_options *o, uint64_t idle_ms, uint64_t timeout_ms) {
  CHECK_OPTS(o);
  o->probe_idle_ms = clink__timeout_norm(idle_ms);
  o->probe_timeout_ms = clink__timeout_norm(timeout_ms);
  return 0;
}
