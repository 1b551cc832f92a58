/* From options to what exec needs: argv, environment, the CLI's path. Pure
 * code apart from stat()/access() during discovery. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/internal.h"
#include "spawn/options.h"

extern char **environ;

#define ENTRYPOINT_VALUE "sdk-c"

/* A growable NULL-terminated vector of owned strings. */
typedef struct strv {
  char **v;
  size_t n;
  int oom;
} strv;

static void strv_push_owned(strv *s, char *str) {
  if (s->oom || str == NULL) {
    s->oom = 1;
    clink__free(str);
    return;
  }
  char **nv = realloc(s->v, (s->n + 2) * sizeof(*nv));
  if (nv == NULL) {
    s->oom = 1;
    clink__free(str);
    return;
  }
  s->v = nv;
  s->v[s->n++] = str;
  s->v[s->n] = NULL;
}

static void strv_push(strv *s, const char *str) { strv_push_owned(s, clink__strdup(str)); }

static char *concat3(const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  char *r = malloc(la + lb + lc + 1);
  if (r == NULL) return NULL;
  memcpy(r, a, la);
  memcpy(r + la, b, lb);
  memcpy(r + la + lb, c, lc + 1);
  return r;
}

/* One token "--flag=value": a value starting with '-' stays a value. */
static void push_flag_value(strv *s, const char *flag, const char *value) {
  strv_push_owned(s, concat3(flag, "=", value));
}

static void push_joined(strv *s, const char *flag, const clink__strlist *l) {
  size_t len = 0;
  for (size_t i = 0; i < l->n; i++) len += strlen(l->v[i]) + 1;
  char *joined = malloc(len + 1);
  if (joined == NULL) {
    s->oom = 1;
    return;
  }
  joined[0] = '\0';
  char *p = joined;
  for (size_t i = 0; i < l->n; i++) {
    if (i > 0) *p++ = ',';
    size_t k = strlen(l->v[i]);
    memcpy(p, l->v[i], k);
    p += k;
    *p = '\0';
  }
  push_flag_value(s, flag, joined);
  clink__free(joined);
}

void clink__strv_free(char **v) {
  if (v == NULL) return;
  for (char **p = v; *p; p++) clink__free(*p);
  clink__free(v);
}

/* Order follows the Python SDK's _build_command so transcripts compare. */
static void build_args(strv *s, const clink_options *o) {
  strv_push(s, "--output-format");
  strv_push(s, "stream-json");
  strv_push(s, "--verbose");
  if (o->system_prompt) push_flag_value(s, "--system-prompt", o->system_prompt);
  if (o->append_system_prompt)
    push_flag_value(s, "--append-system-prompt", o->append_system_prompt);
  if (o->tools_set) push_joined(s, "--tools", &o->tools);
  if (o->allowed_tools.n) push_joined(s, "--allowedTools", &o->allowed_tools);
  if (o->max_turns) {
    char n[32];
    snprintf(n, sizeof(n), "%u", o->max_turns);
    push_flag_value(s, "--max-turns", n);
  }
  if (o->disallowed_tools.n) push_joined(s, "--disallowedTools", &o->disallowed_tools);
  if (o->model) push_flag_value(s, "--model", o->model);
  if (o->fallback_model) push_flag_value(s, "--fallback-model", o->fallback_model);
  /* A permission handler means prompts come to us as can_use_tool. */
  if (o->permission_cb)
    push_flag_value(s, "--permission-prompt-tool", "stdio");
  else if (o->permission_prompt_tool)
    push_flag_value(s, "--permission-prompt-tool", o->permission_prompt_tool);
  if (o->permission_mode_set)
    push_flag_value(s, "--permission-mode", clink__permission_mode_name(o->permission_mode));
  if (o->continue_conversation) strv_push(s, "--continue");
  if (o->resume) push_flag_value(s, "--resume", o->resume);
  if (o->session_id) push_flag_value(s, "--session-id", o->session_id);
  if (o->settings) push_flag_value(s, "--settings", o->settings);
  for (size_t i = 0; i < o->add_dirs.n; i++) push_flag_value(s, "--add-dir", o->add_dirs.v[i]);
  if (o->mcp_config) push_flag_value(s, "--mcp-config", o->mcp_config);
  if (o->include_partial_messages) strv_push(s, "--include-partial-messages");
  if (o->fork_session) strv_push(s, "--fork-session");
  if (o->setting_sources_set) push_flag_value(s, "--setting-sources", o->setting_sources);
  for (size_t i = 0; i < o->extra_flags.n; i++) {
    char *flag = concat3("--", o->extra_flags.v[i], "");
    if (flag == NULL) {
      s->oom = 1;
      break;
    }
    if (o->extra_values.v[i] != NULL)
      push_flag_value(s, flag, o->extra_values.v[i]);
    else
      strv_push(s, flag);
    clink__free(flag);
  }
  strv_push(s, "--input-format");
  strv_push(s, "stream-json");
}

int clink__options_build_args(const clink_options *o, char ***args_out) {
  strv s = {0};
  build_args(&s, o);
  if (s.oom) {
    clink__strv_free(s.v);
    return UV_ENOMEM;
  }
  *args_out = s.v;
  return 0;
}

/* ------------------------------------------------------------ environment */

static int env_name_is(const char *entry, const char *name) {
  size_t n = strlen(name);
  return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static void env_remove(strv *s, const char *name) {
  size_t w = 0;
  for (size_t r = 0; r < s->n; r++) {
    if (env_name_is(s->v[r], name))
      clink__free(s->v[r]);
    else
      s->v[w++] = s->v[r];
  }
  s->n = w;
  if (s->v) s->v[w] = NULL;
}

static void env_set(strv *s, const char *name, const char *value) {
  env_remove(s, name);
  strv_push_owned(s, concat3(name, "=", value));
}

static const char *env_get(const strv *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (env_name_is(s->v[i], name)) return s->v[i] + strlen(name) + 1;
  return NULL;
}

static void build_env(strv *s, const clink_options *o) {
  for (char **e = environ; e && *e; e++) strv_push(s, *e);
  /* Started from inside Claude Code, the CLI would think it is nested. */
  env_remove(s, "CLAUDECODE");
  for (size_t i = 0; i < o->env_n; i++) {
    if (o->env[i].value)
      env_set(s, o->env[i].name, o->env[i].value);
    else
      env_remove(s, o->env[i].name);
  }
  if (env_get(s, "CLAUDE_CODE_ENTRYPOINT") == NULL)
    env_set(s, "CLAUDE_CODE_ENTRYPOINT", ENTRYPOINT_VALUE);
  env_set(s, "CLAUDE_AGENT_SDK_VERSION", "claudelink-" CLINK_VERSION_STRING);
  if (o->cwd) env_set(s, "PWD", o->cwd);
}

/* -------------------------------------------------------------- discovery */

typedef struct search_log {
  char *buf;
  size_t len, used;
} search_log;

static void log_path(search_log *l, const char *path) {
  if (l->buf == NULL || l->len == 0) return;
  int n = snprintf(l->buf + l->used, l->len - l->used, "%s%s",
                   l->used ? ", " : "", path);
  if (n > 0) l->used += (size_t)n < l->len - l->used ? (size_t)n : l->len - l->used - 1;
}

/* 0: executable file; CLINK_ECLI_EXEC_DENIED: exists, not executable;
 * CLINK_ECLI_NOT_FOUND: nothing there. */
static int probe(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return CLINK_ECLI_NOT_FOUND;
  if (S_ISDIR(st.st_mode)) return CLINK_ECLI_NOT_FOUND;
  if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0) return CLINK_ECLI_EXEC_DENIED;
  return 0;
}

/* Tries one candidate; on success *found owns a copy. Remembers the first
 * non-executable hit so "permission denied" beats "not found". */
static int try_candidate(const char *path, char **found, char **denied, search_log *l) {
  log_path(l, path);
  int rc = probe(path);
  if (rc == 0) {
    *found = clink__strdup(path);
    return *found ? 1 : UV_ENOMEM;
  }
  if (rc == CLINK_ECLI_EXEC_DENIED && *denied == NULL) *denied = clink__strdup(path);
  return 0;
}

static int search_path_var(const char *pathvar, const char *name, char **found,
                           char **denied, search_log *l) {
  if (pathvar == NULL) return 0;
  const char *p = pathvar;
  while (1) {
    const char *colon = strchr(p, ':');
    size_t dl = colon ? (size_t)(colon - p) : strlen(p);
    char *cand = malloc(dl + strlen(name) + 3);
    if (cand == NULL) return UV_ENOMEM;
    if (dl == 0)
      sprintf(cand, "./%s", name);
    else
      sprintf(cand, "%.*s/%s", (int)dl, p, name);
    int rc = try_candidate(cand, found, denied, l);
    clink__free(cand);
    if (rc != 0) return rc;
    if (!colon) return 0;
    p = colon + 1;
  }
}

static int resolve_cli(const clink_options *o, const strv *env, char **out,
                       char *errbuf, size_t errlen) {
  search_log l = {errbuf, errlen, 0};
  if (errbuf && errlen) errbuf[0] = '\0';
  char *found = NULL, *denied = NULL;
  int rc = 0;
  const char *name = o->cli_path ? o->cli_path : "claude";
  const char *pathvar = env_get(env, "PATH");
  if (pathvar == NULL) pathvar = getenv("PATH");

  if (strchr(name, '/') != NULL) {
    rc = try_candidate(name, &found, &denied, &l);
  } else {
    rc = search_path_var(pathvar, name, &found, &denied, &l);
    const char *home = getenv("HOME");
    /* The Python SDK's list; home-relative unless absolute. */
    static const struct {
      int in_home;
      const char *path;
    } fixed[] = {{1, "/.npm-global/bin/claude"}, {0, "/usr/local/bin/claude"},
                 {1, "/.local/bin/claude"},      {1, "/node_modules/.bin/claude"},
                 {1, "/.yarn/bin/claude"},       {1, "/.claude/local/claude"}};
    for (size_t i = 0; rc == 0 && o->cli_path == NULL && i < CLINK__ARRAY_SIZE(fixed); i++) {
      if (fixed[i].in_home && home == NULL) continue;
      char *cand = concat3(fixed[i].in_home ? home : "", fixed[i].path, "");
      if (cand == NULL) {
        rc = UV_ENOMEM;
        break;
      }
      rc = try_candidate(cand, &found, &denied, &l);
      clink__free(cand);
    }
  }
  if (rc < 0) {
    clink__free(found);
    clink__free(denied);
    return rc;
  }
  if (found) {
    clink__free(denied);
    *out = found;
    return 0;
  }
  if (denied) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "permission denied executing %s: make it executable",
               denied);
    clink__free(denied);
    return CLINK_ECLI_EXEC_DENIED;
  }
  if (errbuf && errlen) {
    /* Prefix the list with the advice; the list was written first. */
    char *list = clink__strdup(errbuf);
    snprintf(errbuf, errlen,
             "claude CLI not found (searched: %s): install Claude Code "
             "(npm install -g @anthropic-ai/claude-code) or set the CLI path",
             list ? list : "");
    clink__free(list);
  }
  return CLINK_ECLI_NOT_FOUND;
}

/* exec happens after chdir(cwd option), where a relative path checked here
 * against the host's cwd would name another file, or none: make it
 * absolute first. */
static int make_absolute(char **path, char *errbuf, size_t errlen) {
  if ((*path)[0] == '/') return 0;
  char *cwd = NULL;
  for (size_t cap = 256;; cap *= 2) {
    char *n = realloc(cwd, cap);
    if (n == NULL) {
      clink__free(cwd);
      return UV_ENOMEM;
    }
    cwd = n;
    if (getcwd(cwd, cap) != NULL) break;
    if (errno != ERANGE) {
      int rc = -errno;
      if (errbuf && errlen)
        snprintf(errbuf, errlen, "cannot make %s absolute: the current directory: %s", *path,
                 strerror(errno));
      clink__free(cwd);
      return rc;
    }
  }
  const char *rel = *path;
  while (rel[0] == '.' && rel[1] == '/') {
    rel += 2;
    while (*rel == '/') rel++;
  }
  char *abs = concat3(cwd, strcmp(cwd, "/") == 0 ? "" : "/", rel);
  clink__free(cwd);
  if (abs == NULL) return UV_ENOMEM;
  clink__free(*path);
  *path = abs;
  return 0;
}

int clink__spawn_error(int uv_err) {
  switch (uv_err) {
    case UV_EMFILE:
    case UV_ENFILE:
    case UV_EAGAIN:
    case UV_ENOMEM:
      return uv_err;
    default:
      return CLINK_ESPAWN;
  }
}

/* Descriptors open now below limit (those above it take no slot). */
static unsigned long long fds_open_below(unsigned long long limit) {
  unsigned long long n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d != NULL) {
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      unsigned long long fd = strtoull(e->d_name, NULL, 10);
      if ((int)fd != self && fd < limit) n++;
    }
    closedir(d);
    return n;
  }
  /* No /proc: ask each descriptor. */
  unsigned long long top = limit < 65536 ? limit : 65536;
  for (unsigned long long fd = 0; fd < top; fd++)
    if (fcntl((int)fd, F_GETFD) != -1) n++;
  return n;
}

int clink__fd_headroom(size_t sessions, char *err, size_t len) {
  if (err && len) err[0] = '\0';
  struct rlimit rl;
  if (sessions == 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return 0;
  unsigned long long limit = (unsigned long long)rl.rlim_cur;
  unsigned long long open_now = fds_open_below(limit);
  unsigned long long free_slots = limit > open_now ? limit - open_now : 0;
  /* Saturating: a huge count must not wrap into one that fits. */
  unsigned long long n = sessions;
  unsigned long long need =
      n > (ULLONG_MAX - CLINK__FDS_SPAWN_EXTRA) / CLINK__FDS_PER_SESSION
          ? ULLONG_MAX
          : n * CLINK__FDS_PER_SESSION + CLINK__FDS_SPAWN_EXTRA;
  if (need <= free_slots) return 0;
  if (err && len) {
    char hard[32];
    if (rl.rlim_max == RLIM_INFINITY)
      snprintf(hard, sizeof(hard), "unlimited");
    else
      snprintf(hard, sizeof(hard), "%llu", (unsigned long long)rl.rlim_max);
    unsigned long long fit = free_slots > CLINK__FDS_SPAWN_EXTRA
                                 ? (free_slots - CLINK__FDS_SPAWN_EXTRA) / CLINK__FDS_PER_SESSION
                                 : 0;
    snprintf(err, len,
             "too few file descriptors for %zu more sessions: each needs %d (plus %d while one "
             "starts), %llu in all, but RLIMIT_NOFILE is %llu with %llu open, leaving %llu "
             "(room for %llu sessions); raise the limit (ulimit -n, setrlimit(); hard limit %s) "
             "or use fewer sessions",
             sessions, CLINK__FDS_PER_SESSION, CLINK__FDS_SPAWN_EXTRA, need, limit, open_now,
             free_slots, fit, hard);
  }
  return UV_EMFILE;
}

/* ------------------------------------------------------------------ spec */

#ifndef CLINK_EXEC_SHIM_PATH
#define CLINK_EXEC_SHIM_PATH ""
#endif

static const char *default_shim(void) {
  const char *p = CLINK_EXEC_SHIM_PATH;
  return p[0] != '\0' && access(p, X_OK) == 0 ? p : NULL;
}

void clink__spawn_spec_free(clink__spawn_spec *spec) {
  if (spec == NULL) return;
  clink__free(spec->file);
  clink__free(spec->cwd);
  clink__free(spec->cli);
  clink__strv_free(spec->argv);
  clink__strv_free(spec->env);
  memset(spec, 0, sizeof(*spec));
}

int clink__spawn_spec_build(clink__spawn_spec *spec, const clink_options *o,
                            char *errbuf, size_t errlen) {
  if (spec == NULL || o == NULL) return UV_EINVAL;
  memset(spec, 0, sizeof(*spec));
  strv env = {0};
  strv argv = {0};
  char *shim = NULL;
  build_env(&env, o);
  if (env.oom) goto oom;

  int rc = resolve_cli(o, &env, &spec->cli, errbuf, errlen);
  if (rc == 0) rc = make_absolute(&spec->cli, errbuf, errlen);
  const char *shim0 = o->exec_shim_set ? o->exec_shim : default_shim();
  if (rc == 0 && shim0 != NULL) {
    shim = clink__strdup(shim0);
    rc = shim == NULL ? UV_ENOMEM : make_absolute(&shim, errbuf, errlen);
  }
  if (rc != 0) {
    clink__free(shim);
    clink__free(spec->cli);
    spec->cli = NULL;
    clink__strv_free(env.v);
    return rc;
  }
  if (shim) {
    char ppid[32];
    snprintf(ppid, sizeof(ppid), "%ld", (long)getpid());
    strv_push(&argv, shim);
    strv_push(&argv, ppid);
  }
  strv_push(&argv, spec->cli);
  build_args(&argv, o);
  if (argv.oom) goto oom;

  spec->file = shim ? shim : clink__strdup(spec->cli);
  shim = NULL; /* owned by the spec now */
  spec->cwd = clink__strdup(o->cwd);
  if (spec->file == NULL || (o->cwd && spec->cwd == NULL)) goto oom;
  spec->argv = argv.v;
  spec->env = env.v;
  spec->max_line_bytes = o->max_line_bytes;
  spec->write_queue_bytes = o->write_queue_bytes;
  spec->write_queue_lines = o->write_queue_lines;
  spec->stderr_tail_bytes = o->stderr_tail_bytes;
  spec->eof_grace_ms = o->eof_grace_ms;
  spec->term_grace_ms = o->term_grace_ms;
  return 0;

oom:
  clink__free(shim);
  clink__strv_free(env.v);
  clink__strv_free(argv.v);
  clink__spawn_spec_free(spec);
  return UV_ENOMEM;
}
