/* The body of clink_options, shared by the files that read it. */
#ifndef CLINK_OPTIONS_H
#define CLINK_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "claudelink.h"

typedef struct clink__strlist {
  char **v;
  size_t n;
} clink__strlist;

typedef struct clink__env_edit {
  char *name;
  char *value; /* NULL: remove */
} clink__env_edit;

struct clink_options {
  char *cli_path;
  char *cwd;
  char *exec_shim;
  int exec_shim_set; /* 0: use the installed default when it exists */
  clink__env_edit *env;
  size_t env_n;

  size_t max_line_bytes;
  size_t write_queue_bytes;
  size_t write_queue_lines;
  size_t stderr_tail_bytes;
  uint64_t eof_grace_ms;
  uint64_t term_grace_ms;

  char *system_prompt;
  char *append_system_prompt;
  char *model;
  char *fallback_model;
  int permission_mode_set;
  clink_permission_mode permission_mode;
  char *permission_prompt_tool;
  unsigned int max_turns;
  int tools_set;
  clink__strlist tools;
  clink__strlist allowed_tools;
  clink__strlist disallowed_tools;
  clink__strlist add_dirs;
  int continue_conversation;
  char *resume;
  char *session_id;
  int fork_session;
  char *settings;
  char *mcp_config;
  int include_partial_messages;
  int setting_sources_set;
  char *setting_sources;
  clink__strlist extra_flags;  /* parallel lists */
  clink__strlist extra_values; /* entries may be NULL */

  /* client */
  uint64_t connect_timeout_ms;
  uint64_t control_timeout_ms;
  uint64_t close_turn_wait_ms;
  size_t max_queued_queries;
  size_t max_control_inflight;
  size_t max_inbound_requests;
  clink_stderr_cb stderr_cb;
  void *stderr_ud;
  clink_request_cb permission_cb;
  void *permission_ud;
  clink_request_cb hook_cb;
  void *hook_ud;
  clink_request_cb mcp_cb;
  void *mcp_ud;
  clink__strlist hook_events; /* parallel lists, one entry per hook */
  clink__strlist hook_matchers;  /* entries may be NULL */
  clink__strlist hook_timeouts;  /* decimal seconds, "0" = default */
  char *initialize_extra;        /* JSON object text */
  clink_retry_policy *recovery;  /* owned copy; NULL = no recovery */
  int resend_interrupted_turn;
  /* Stored normalised: CLINK__NEVER is "no limit" / "off". */
  uint64_t probe_idle_ms, probe_timeout_ms;
  uint64_t turn_inactivity_ms;
};

/* The CLI's name of a permission mode; NULL outside the enum. */
const char *clink__permission_mode_name(clink_permission_mode m);

/* What the transport needs to start one process, resolved from options. */
typedef struct clink__spawn_spec {
  char *file;   /* program to exec (the shim or the CLI) */
  char **argv;  /* NULL-terminated; argv[0] is the CLI path or the shim */
  char **env;   /* NULL-terminated KEY=VALUE */
  char *cwd;    /* may be NULL */
  char *cli;    /* resolved CLI path */
  size_t max_line_bytes;
  size_t write_queue_bytes;
  size_t write_queue_lines;
  size_t stderr_tail_bytes;
  uint64_t eof_grace_ms;
  uint64_t term_grace_ms;
} clink__spawn_spec;

/* Resolve the CLI, build argv and environment. On CLINK_ECLI_NOT_FOUND or
 * CLINK_ECLI_EXEC_DENIED, errbuf says what was searched. */
int clink__spawn_spec_build(clink__spawn_spec *spec, const clink_options *opts,
                            char *errbuf, size_t errlen);
void clink__spawn_spec_free(clink__spawn_spec *spec);

/* What a failed uv_spawn() becomes: running out of descriptors, processes or
 * memory (UV_EMFILE, UV_ENFILE, UV_EAGAIN, UV_ENOMEM) keeps its libuv code,
 * which clink_err_is_retryable() accepts; anything else (exec or chdir
 * failed: a missing or bad program, a bad cwd) is CLINK_ESPAWN. */
int clink__spawn_error(int uv_err);

/* Descriptors a running session holds: the stdin socket, stdout and stderr
 * (libuv makes UV_CREATE_PIPE a socketpair on Linux; our ends), and the
 * CLI's pidfd (Linux, for its process group). tests/test-transport.c
 * measures it. */
#define CLINK__FDS_PER_SESSION 4
/* More needed while a session starts: 4 held for a moment (the child's ends
 * of its three channels and libuv's exec-error pipe are open while our pidfd
 * is not yet), plus 4 that libuv keeps once the first child has started (its
 * SIGCHLD pipes: 2 per process, 2 per loop). Measured there too. */
#define CLINK__FDS_SPAWN_EXTRA 8

/* Whether `sessions` more sessions fit under the soft RLIMIT_NOFILE, given
 * the descriptors open now: CLINK__FDS_PER_SESSION each plus
 * CLINK__FDS_SPAWN_EXTRA for the one being started. 0: they fit (or there is
 * no limit); UV_EMFILE: they do not, and err (may be NULL) says how many are
 * needed, what the limits are and what to do. For the pool, before it grows. */
int clink__fd_headroom(size_t sessions, char *err, size_t len);

/* Just the CLI flags (without argv[0]); for tests and for the spec. */
int clink__options_build_args(const clink_options *opts, char ***args_out);
void clink__strv_free(char **v);

#endif
