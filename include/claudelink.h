/* libclaudelink: drive the Claude Code CLI from C, many sessions at once.
 *
 * Threading: every call must be made on the thread running the uv_loop_t passed
 * at creation; no object is thread-safe.
 *
 * Conventions used throughout:
 * - Functions returning int return 0 (or a count >= 0) on success and a negative
 *   error code on failure. libuv's codes (UV_EINVAL, UV_ENOMEM, UV_EPIPE,
 *   UV_ECANCELED, UV_EBUSY...) pass through unchanged; the library's own codes
 *   (CLINK_E*) live in the disjoint block -20000..-20999.
 * - When a function taking a callback returns an error, the callback is never
 *   called. Callbacks are never invoked from inside the call that caused them.
 * - Objects are allocated by the library; destructors accept NULL.
 * - Strings passed in are copied unless stated otherwise.
 * - The library never runs the loop, never installs signal handlers and keeps no
 *   global state. Do not call waitpid(-1, ...) in the host: libuv reaps children.
 */
#ifndef CLAUDELINK_H
#define CLAUDELINK_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "claudelink-version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CLINK_EXTERN __attribute__((visibility("default")))
#else
#define CLINK_EXTERN
#endif

/* ---------------------------------------------------------------- errors */

/* XX(NAME, value, message). Append only; values are never reused. */
#define CLINK_ERRNO_MAP(XX)                                                    \
  XX(CLI_NOT_FOUND, -20000, "claude CLI not found")                            \
  XX(CLI_EXEC_DENIED, -20001, "permission denied executing the claude CLI")    \
  XX(SPAWN, -20002, "failed to start the claude CLI")                          \
  XX(EXITED, -20003, "the claude process exited")                              \
  XX(LINE_TOO_LONG, -20004, "line exceeds the maximum line length")            \
  XX(WRITE_QUEUE_FULL, -20005, "write queue full")                             \
  XX(BAD_JSON, -20006, "line is not valid JSON")                               \
  XX(INIT_TIMEOUT, -20007, "initialize handshake timed out")                   \
  XX(CONTROL_TIMEOUT, -20008, "control request timed out")                     \
  XX(CONTROL_ERROR, -20009, "control request answered with an error")          \
  XX(TURN_FAILED, -20010, "turn failed")                                       \
  XX(CLOSING, -20011, "object is closing")                                     \
  XX(NOT_CONNECTED, -20012, "not connected")                                   \
  XX(QUEUE_FULL, -20013, "queue full")                                         \
  XX(TOO_MANY_REQUESTS, -20014, "too many requests in flight")                 \
  XX(PROTOCOL, -20015, "protocol violation")                                   \
  XX(CIRCUIT_OPEN, -20016, "circuit breaker open")                             \
  XX(RETRY_EXHAUSTED, -20017, "retries exhausted")                             \
  XX(INTERRUPTED, -20018, "turn interrupted")

typedef enum clink_errno {
#define CLINK__ERR_ENUM(name, value, msg) CLINK_E##name = value,
  CLINK_ERRNO_MAP(CLINK__ERR_ENUM)
#undef CLINK__ERR_ENUM
  CLINK_ERRNO_FIRST_ = -20000,
  CLINK_ERRNO_LAST_ = -20999
} clink_errno;

/* Text for any code the library returns (ours or libuv's). Never allocates;
 * returns "unknown error" for codes nobody defines. */
CLINK_EXTERN const char *clink_strerror(int err);
/* Symbolic name ("CLINK_ECLI_NOT_FOUND", "UV_EPIPE"); "UNKNOWN" if unknown. */
CLINK_EXTERN const char *clink_err_name(int err);

/* --------------------------------------------------------------- version */

/* CLINK_VERSION_HEX of the library actually linked. */
CLINK_EXTERN unsigned int clink_version(void);
/* "MAJOR.MINOR.PATCH" of the library actually linked. */
CLINK_EXTERN const char *clink_version_string(void);

/* --------------------------------------------------------------- options */

/* A spawn profile: how a `claude` process is found, started and bounded.
 * Objects that take options copy them; the caller may free them right away. */
typedef struct clink_options clink_options;

/* Permission modes understood by the CLI. */
typedef enum clink_permission_mode {
  CLINK_PERMISSION_DEFAULT = 0,
  CLINK_PERMISSION_ACCEPT_EDITS = 1,
  CLINK_PERMISSION_PLAN = 2,
  CLINK_PERMISSION_BYPASS = 3,
  CLINK_PERMISSION_DONT_ASK = 4,
  CLINK_PERMISSION_AUTO = 5
} clink_permission_mode;

/* Safe defaults of every limit (each can be changed per options object). */
#define CLINK_DEFAULT_MAX_LINE_BYTES ((size_t)16 << 20)
#define CLINK_DEFAULT_WRITE_QUEUE_BYTES ((size_t)64 << 20)
#define CLINK_DEFAULT_WRITE_QUEUE_LINES ((size_t)4096)
#define CLINK_DEFAULT_STDERR_TAIL_BYTES ((size_t)8192)
#define CLINK_DEFAULT_EOF_GRACE_MS 5000
#define CLINK_DEFAULT_TERM_GRACE_MS 5000

CLINK_EXTERN int clink_options_new(clink_options **out);
/* Deep copy. */
CLINK_EXTERN int clink_options_dup(clink_options **out, const clink_options *src);
CLINK_EXTERN void clink_options_free(clink_options *opts);

/* Path of the CLI. When unset: `claude` on PATH, then the usual install
 * locations (~/.npm-global/bin, /usr/local/bin, ~/.local/bin,
 * ~/node_modules/.bin, ~/.yarn/bin, ~/.claude/local). */
CLINK_EXTERN int clink_options_set_cli_path(clink_options *opts, const char *path);
/* Working directory of the child (also exported as PWD). NULL = inherit. */
CLINK_EXTERN int clink_options_set_cwd(clink_options *opts, const char *dir);
/* Child environment: inherited, then these edits in order. value NULL removes
 * the variable. CLAUDECODE is always removed; CLAUDE_CODE_ENTRYPOINT defaults to
 * "sdk-c" when absent; CLAUDE_AGENT_SDK_VERSION carries "claudelink/<version>". */
CLINK_EXTERN int clink_options_set_env(clink_options *opts, const char *name,
                                       const char *value);
/* Program that execs the CLI after arranging its death with the host
 * (see README "When the host dies"). NULL = exec the CLI directly. The default
 * is the installed shim when it exists. */
CLINK_EXTERN int clink_options_set_exec_shim(clink_options *opts, const char *path);

/* Limits. 0 is invalid (UV_EINVAL). */
CLINK_EXTERN int clink_options_set_max_line_bytes(clink_options *opts, size_t bytes);
CLINK_EXTERN int clink_options_set_write_queue_limits(clink_options *opts,
                                                      size_t max_bytes,
                                                      size_t max_lines);
CLINK_EXTERN int clink_options_set_stderr_tail_bytes(clink_options *opts, size_t bytes);
/* Close sequence: stdin EOF, wait eof_grace_ms, SIGTERM, wait term_grace_ms,
 * SIGKILL. */
CLINK_EXTERN int clink_options_set_close_grace_ms(clink_options *opts,
                                                  uint64_t eof_grace_ms,
                                                  uint64_t term_grace_ms);

/* CLI flags. Every user-supplied value is passed as one `--flag=value` token,
 * so a value starting with '-' can never be taken for another flag. NULL
 * clears a string option. */
CLINK_EXTERN int clink_options_set_system_prompt(clink_options *opts, const char *text);
CLINK_EXTERN int clink_options_set_append_system_prompt(clink_options *opts,
                                                        const char *text);
CLINK_EXTERN int clink_options_set_model(clink_options *opts, const char *model);
CLINK_EXTERN int clink_options_set_fallback_model(clink_options *opts, const char *model);
CLINK_EXTERN int clink_options_set_permission_mode(clink_options *opts,
                                                   clink_permission_mode mode);
CLINK_EXTERN int clink_options_set_permission_prompt_tool(clink_options *opts,
                                                          const char *tool);
/* 0 = the CLI's default. */
CLINK_EXTERN int clink_options_set_max_turns(clink_options *opts, unsigned int turns);
/* Comma-joined lists; each call appends one tool name. */
CLINK_EXTERN int clink_options_add_tool(clink_options *opts, const char *tool);
CLINK_EXTERN int clink_options_add_allowed_tool(clink_options *opts, const char *tool);
CLINK_EXTERN int clink_options_add_disallowed_tool(clink_options *opts, const char *tool);
CLINK_EXTERN int clink_options_add_dir(clink_options *opts, const char *dir);
CLINK_EXTERN int clink_options_set_continue(clink_options *opts, int enable);
CLINK_EXTERN int clink_options_set_resume(clink_options *opts, const char *session_id);
CLINK_EXTERN int clink_options_set_session_id(clink_options *opts, const char *session_id);
CLINK_EXTERN int clink_options_set_fork_session(clink_options *opts, int enable);
CLINK_EXTERN int clink_options_set_settings(clink_options *opts, const char *path_or_json);
CLINK_EXTERN int clink_options_set_mcp_config(clink_options *opts, const char *path_or_json);
CLINK_EXTERN int clink_options_set_include_partial_messages(clink_options *opts, int enable);
/* Comma-joined list such as "user,project"; "" means no filesystem settings. */
CLINK_EXTERN int clink_options_set_setting_sources(clink_options *opts, const char *sources);
/* Escape hatch for flags the library does not know: `--flag` (value NULL) or
 * `--flag=value`. flag is given without the leading dashes. */
CLINK_EXTERN int clink_options_add_extra_arg(clink_options *opts, const char *flag,
                                             const char *value);

/* -------------------------------------------------------------- messages */

/* One line of the CLI's stdout, parsed once. Messages handed to callbacks are
 * borrowed until the callback returns; clink_msg_ref() gives one to keep. */
typedef struct clink_msg clink_msg;
struct cJSON; /* from <cjson/cJSON.h>; include it to walk the JSON */

typedef enum clink_msg_kind {
  CLINK_MSG_UNKNOWN = 0, /* any other "type": kept, never dropped */
  CLINK_MSG_SYSTEM = 1,
  CLINK_MSG_ASSISTANT = 2,
  CLINK_MSG_USER = 3,
  CLINK_MSG_RESULT = 4,
  CLINK_MSG_STREAM_EVENT = 5,
  CLINK_MSG_CONTROL_REQUEST = 6,
  CLINK_MSG_CONTROL_RESPONSE = 7,
  CLINK_MSG_CONTROL_CANCEL_REQUEST = 8,
  CLINK_MSG_KEEP_ALIVE = 9
} clink_msg_kind;

typedef enum clink_block_kind {
  CLINK_BLOCK_UNKNOWN = 0, /* kept raw: see clink_msg_block_json() */
  CLINK_BLOCK_TEXT = 1,
  CLINK_BLOCK_THINKING = 2,
  CLINK_BLOCK_TOOL_USE = 3,
  CLINK_BLOCK_TOOL_RESULT = 4
} clink_block_kind;

/* Parses one line (no terminator). Returns 0, CLINK_EBAD_JSON (not JSON, or
 * not an object), CLINK_EPROTOCOL (no string "type") or UV_ENOMEM. The line
 * is copied. */
CLINK_EXTERN int clink_msg_parse(clink_msg **out, const char *line, size_t len);
/* Takes a reference the caller owns (for a borrowed message this may be a new
 * object holding a copy). NULL on UV_ENOMEM. */
CLINK_EXTERN clink_msg *clink_msg_ref(clink_msg *msg);
CLINK_EXTERN void clink_msg_unref(clink_msg *msg);

CLINK_EXTERN clink_msg_kind clink_msg_get_kind(const clink_msg *msg);
/* Common fields; NULL when absent. Strings live as long as the message. */
CLINK_EXTERN const char *clink_msg_type(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_subtype(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_session_id(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_uuid(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_parent_tool_use_id(const clink_msg *msg);
/* The line exactly as received. */
CLINK_EXTERN const char *clink_msg_raw(const clink_msg *msg, size_t *len);
/* The whole object, for everything without an accessor. */
CLINK_EXTERN const struct cJSON *clink_msg_json(const clink_msg *msg);

/* Content blocks of assistant and user messages (message.content; a string
 * content counts as one text block). */
CLINK_EXTERN size_t clink_msg_block_count(const clink_msg *msg);
CLINK_EXTERN clink_block_kind clink_msg_block_kind(const clink_msg *msg, size_t i);
/* text of a text block, thinking of a thinking block, content of a
 * tool_result whose content is a string. */
CLINK_EXTERN const char *clink_msg_block_text(const clink_msg *msg, size_t i);
/* tool_use: id, name, input. tool_result: tool_use_id as the id. */
CLINK_EXTERN const char *clink_msg_block_tool_id(const clink_msg *msg, size_t i);
CLINK_EXTERN const char *clink_msg_block_tool_name(const clink_msg *msg, size_t i);
CLINK_EXTERN const struct cJSON *clink_msg_block_tool_input(const clink_msg *msg, size_t i);
CLINK_EXTERN const struct cJSON *clink_msg_block_json(const clink_msg *msg, size_t i);

/* result messages. A turn failed when is_error is true: API errors arrive as
 * subtype "success" with is_error and api_error_status. */
CLINK_EXTERN int clink_msg_result_is_error(const clink_msg *msg);
/* HTTP status of an API error, 0 when none. */
CLINK_EXTERN int clink_msg_result_api_error_status(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_result_text(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_result_terminal_reason(const clink_msg *msg);
CLINK_EXTERN int64_t clink_msg_result_duration_ms(const clink_msg *msg);
CLINK_EXTERN int64_t clink_msg_result_duration_api_ms(const clink_msg *msg);
CLINK_EXTERN int clink_msg_result_num_turns(const clink_msg *msg);
CLINK_EXTERN double clink_msg_result_total_cost_usd(const clink_msg *msg);
CLINK_EXTERN const struct cJSON *clink_msg_result_usage(const clink_msg *msg);
CLINK_EXTERN const struct cJSON *clink_msg_result_permission_denials(const clink_msg *msg);

#ifdef __cplusplus
}
#endif

#endif /* CLAUDELINK_H */
