/* The identity of a spawn profile (see clink_options_fingerprint()). */
#include "base/internal.h"
#include "spawn/options.h"

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

static uint64_t mix_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * FNV_PRIME;
  return h;
}

/* A string and its presence: NULL and "" differ. */
static uint64_t mix_str(uint64_t h, const char *s) {
  unsigned char tag = s ? 1 : 0;
  h = mix_bytes(h, &tag, 1);
  if (s) h = mix_bytes(h, s, strlen(s) + 1);
  return h;
}

static uint64_t mix_u64(uint64_t h, uint64_t v) { return mix_bytes(h, &v, sizeof(v)); }

static uint64_t mix_list(uint64_t h, const clink__strlist *l) {
  h = mix_u64(h, l->n);
  for (size_t i = 0; i < l->n; i++) h = mix_str(h, l->v[i]);
  return h;
}

static uint64_t profile_hash(const clink_options *o) {
  uint64_t h = FNV_OFFSET;
  if (o == NULL) return h;
  h = mix_str(h, o->cli_path);
  h = mix_str(h, o->cwd);
  h = mix_u64(h, o->env_n);
  for (size_t i = 0; i < o->env_n; i++) {
    h = mix_str(h, o->env[i].name);
    h = mix_str(h, o->env[i].value);
  }
  h = mix_str(h, o->system_prompt);
  h = mix_str(h, o->append_system_prompt);
  h = mix_str(h, o->model);
  h = mix_str(h, o->fallback_model);
  h = mix_u64(h, o->permission_mode_set ? (uint64_t)o->permission_mode + 1 : 0);
  h = mix_str(h, o->permission_prompt_tool);
  h = mix_u64(h, o->max_turns);
  h = mix_u64(h, (uint64_t)o->tools_set);
  h = mix_list(h, &o->tools);
  h = mix_list(h, &o->allowed_tools);
  h = mix_list(h, &o->disallowed_tools);
  h = mix_list(h, &o->add_dirs);
  h = mix_str(h, o->settings);
  h = mix_str(h, o->mcp_config);
  h = mix_u64(h, o->setting_sources_set ? 1 : 0);
  h = mix_str(h, o->setting_sources);
  h = mix_list(h, &o->extra_flags);
  h = mix_list(h, &o->extra_values);
  h = mix_str(h, o->initialize_extra);
  h = mix_list(h, &o->hook_events);
  h = mix_list(h, &o->hook_matchers);
  return h;
}

uint64_t clink_options_fingerprint(const clink_options *opts) { return profile_hash(opts); }
