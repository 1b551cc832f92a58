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
 * - Time, one rule for every setter: a timeout (a limit on how long
 *   something may take: *_timeout_ms, lifetimes, idle limits, inactivity,
 *   deadlines) of 0 or CLINK_NEVER means no limit; a wait or delay (grace
 *   periods, the close turn wait, backoff) of 0 means at once and of
 *   CLINK_NEVER means the step it leads to never comes. Deadlines saturate:
 *   CLINK_NEVER never wraps into a short one.
 * - The library never runs the loop and keeps no global state of its own; it
 *   installs no signal handler itself. But it starts processes with
 *   uv_spawn(), and libuv, the first time any of its loops spawns, installs
 *   a process-wide SIGCHLD handler (sigaction) and reaps children through
 *   it. So, in the host: do not call waitpid(-1, ...) or wait(), do not set
 *   SIGCHLD to SIG_IGN or block it in the loop's thread, and do not replace
 *   the SIGCHLD handler after that. A process holding two copies of libuv
 *   (a Node.js add-on, another library with its own libuv) has two such
 *   handlers for one signal: the copy that installs last wins and the other
 *   copy's children are never reaped (their exits never reported), so load
 *   libclaudelink against the same libuv the host uses. SIGPIPE is never
 *   raised by the library's writes (send() with MSG_NOSIGNAL).
 * - cJSON, which parses every line, records its last error position in a
 *   process-global: hosts that also use cJSON from other threads should not
 *   rely on cJSON_GetErrorPtr().
 */
#ifndef CLAUDELINK_H
#define CLAUDELINK_H

#include <stddef.h>
#include <stdint.h>

/* The library's pure layers are built with CLINK__PURE: they never see libuv
 * (lib/base/nouv/uv.h enforces it), only the loop type's name. */
#ifndef CLINK__PURE
#include <uv.h>
#else
typedef struct uv_loop_s uv_loop_t;
#endif

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
  XX(INTERRUPTED, -20018, "turn interrupted")                                 \
  XX(BUDGET_EXHAUSTED, -20019, "retry budget exhausted")                     \
  XX(POOL_TIMEOUT, -20020, "timed out waiting for a pooled session")         \
  XX(TURN_STALLED, -20021, "the CLI stopped answering in the middle of a turn") \
  XX(OUTBOX_FULL, -20022, "outbox full")                                       \
  XX(STORE_IO, -20023, "outbox storage error")                                 \
  XX(STORE_CORRUPT, -20024, "outbox database is corrupt or not a database")    \
  XX(STORE_VERSION, -20025, "outbox database schema is newer than this library") \
  XX(NO_FALLBACK, -20026, "the call failed and no fallback answered")

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

/* "No limit" / "never" for every time setting (see the conventions above). */
#define CLINK_NEVER UINT64_MAX

/* ---------------------------------------------------------- object types */

/* Every object is opaque and allocated by the library. */
typedef struct clink_options clink_options;           /* a spawn profile */
typedef struct clink_client clink_client;             /* one CLI session */
typedef struct clink_msg clink_msg;                   /* one parsed stdout line */
typedef struct clink_request clink_request;           /* an inbound control request */
typedef struct clink_retry_policy clink_retry_policy; /* retry configuration */
typedef struct clink_retry clink_retry;               /* one owner's retry state */
typedef struct clink_breaker clink_breaker;           /* a circuit breaker */
typedef struct clink_breaker_config clink_breaker_config;
typedef struct clink_breaker_registry clink_breaker_registry;
typedef struct clink_pool clink_pool;                 /* pre-warmed clients */
typedef struct clink_pool_config clink_pool_config;
typedef struct clink_events clink_events;             /* structured event sink */
typedef struct clink_outbox clink_outbox;             /* durable outbox */
typedef struct clink_outbox_config clink_outbox_config;
typedef struct clink_outbox_msg clink_outbox_msg;     /* one stored message */
typedef struct clink_outbox_delivery clink_outbox_delivery; /* one attempt */
typedef struct clink_fallback clink_fallback;         /* one operation's fallback chain */
typedef struct clink_fallback_registry clink_fallback_registry;
typedef struct clink_fallback_reply clink_fallback_reply; /* a host strategy's answer */
typedef struct clink_ask_call clink_ask_call;         /* one clink_ask() call */
typedef struct clink_ask_options clink_ask_options;

/* --------------------------------------------------------------- version */

/* CLINK_VERSION_HEX of the library actually linked. */
CLINK_EXTERN unsigned int clink_version(void);
/* "MAJOR.MINOR.PATCH" of the library actually linked. */
CLINK_EXTERN const char *clink_version_string(void);

/* --------------------------------------------------------------- options */

/* A spawn profile: how a `claude` process is found, started and bounded.
 * Objects that take options copy them; the caller may free them right away. */

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

/* A profile with every default; free it with clink_options_free(). */
CLINK_EXTERN int clink_options_new(clink_options **out);
/* Deep copy. */
CLINK_EXTERN int clink_options_dup(clink_options **out, const clink_options *src);
/* The identity of a profile: a 64-bit FNV-1a hash of every option that
 * changes what the CLI answers (path, cwd, environment edits, flags, hooks),
 * never of callbacks, limits or timeouts. The same options give the same
 * value in every process (a cache shared between hosts can key on it). */
CLINK_EXTERN uint64_t clink_options_fingerprint(const clink_options *opts);
/* Frees the options (NULL is a no-op); objects made from them keep copies. */
CLINK_EXTERN void clink_options_free(clink_options *opts);

/* Path of the CLI. When unset: `claude` on PATH, then the usual install
 * locations (~/.npm-global/bin, /usr/local/bin, ~/.local/bin,
 * ~/node_modules/.bin, ~/.yarn/bin, ~/.claude/local). */
CLINK_EXTERN int clink_options_set_cli_path(clink_options *opts, const char *path);
/* Working directory of the child (also exported as PWD). NULL = inherit. */
CLINK_EXTERN int clink_options_set_cwd(clink_options *opts, const char *dir);
/* Child environment: inherited, then these edits in order. value NULL removes
 * the variable. CLAUDECODE is removed from the inherited environment (set it
 * here to pass it on); CLAUDE_CODE_ENTRYPOINT defaults to "sdk-c" when absent;
 * CLAUDE_AGENT_SDK_VERSION is always "claudelink-<version>". */
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
 * SIGKILL; signals go to the CLI's process group. Once the CLI has exited
 * (closed or not), helpers left in its group (MCP servers, Bash tool
 * children) get SIGTERM and, term_grace_ms later, SIGKILL (Linux 6.9 or
 * later; before, SIGTERM only). UINT64_MAX waits forever. */
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
/* Takes a reference the caller owns: the same object for a message that is
 * already owned, a new object holding a copy for a borrowed one (those handed
 * to callbacks). NULL on UV_ENOMEM. */
CLINK_EXTERN clink_msg *clink_msg_ref(const clink_msg *msg);
/* Drops a reference; a no-op on a borrowed message. */
CLINK_EXTERN void clink_msg_unref(clink_msg *msg);

/* The message kind from its "type"; CLINK_MSG_UNKNOWN for NULL. */
CLINK_EXTERN clink_msg_kind clink_msg_get_kind(const clink_msg *msg);
/* Common top-level fields; NULL when absent (control requests and responses
 * keep their subtype inside "request"/"response": see clink_msg_json()).
 * Strings live as long as the message. */
CLINK_EXTERN const char *clink_msg_type(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_subtype(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_session_id(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_uuid(const clink_msg *msg);
CLINK_EXTERN const char *clink_msg_parent_tool_use_id(const clink_msg *msg);
/* The line exactly as received. Use *len: a borrowed message's bytes are not
 * NUL-terminated (an owned one's are). */
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

/* --------------------------------------------------------------- client */

/* One `claude` process and its conversation, driven over stream-json.
 *
 * Lifecycle: DISCONNECTED -> CONNECTING -> CONNECTED -> CLOSING -> CLOSED,
 * with ERROR when the process fails (connect may be called again from ERROR)
 * and, with a recovery policy, CONNECTED -> RECOVERING -> CONNECTED (or ERROR
 * once the policy gives up). clink_client_get_state() changes at once; the
 * state callback is a notification of every transition, made from the loop
 * in order (never from inside clink_client_connect() or
 * clink_client_close()), and the state it reports as `to` may already have
 * moved on. Every callback may call any function of the library, close
 * included.
 *
 * Turns run one at a time: a query made while a turn runs waits in a bounded
 * queue (CLINK_EQUEUE_FULL past it) and is written when the turn before it
 * ends, so every query gets exactly its own messages and result.
 *
 * An inbound control request from the CLI (clink_request: can_use_tool,
 * hook_callback, mcp_message) must be answered exactly once; answering frees
 * it. It may be answered later, asynchronously, and stays valid until
 * answered, even after its client closed (the answer then returns
 * CLINK_ECLOSING) or its process died (CLINK_EEXITED; nothing reaches a later
 * process). */

typedef enum clink_client_state {
  CLINK_CLIENT_DISCONNECTED = 0,
  CLINK_CLIENT_CONNECTING = 1,
  CLINK_CLIENT_CONNECTED = 2,
  CLINK_CLIENT_CLOSING = 3,
  CLINK_CLIENT_CLOSED = 4,
  CLINK_CLIENT_ERROR = 5,
  /* The process died while connected and a recovery policy is set: new
   * processes are being started with backoff, resuming the conversation. */
  CLINK_CLIENT_RECOVERING = 6
} clink_client_state;

/* "CONNECTED", ...; "UNKNOWN" for values outside the enum. */
CLINK_EXTERN const char *clink_client_state_name(clink_client_state state);

/* Called for every message of a turn (msg borrowed until return). */
typedef void (*clink_message_cb)(clink_client *client, const clink_msg *msg, void *ud);
/* The turn ended. status: 0; CLINK_ETURN_FAILED (result has is_error, e.g. an
 * API error or an interrupted turn); CLINK_EEXITED (the process died first);
 * UV_ECANCELED (client closed before the turn ran). result is NULL unless the
 * CLI sent one. */
typedef void (*clink_turn_cb)(clink_client *client, int status, const clink_msg *result,
                              void *ud);
/* connect finished: 0 (CONNECTED), or CLINK_EINIT_TIMEOUT, CLINK_EEXITED... */
typedef void (*clink_connect_cb)(clink_client *client, int status, void *ud);
/* An outbound control request finished. status: 0, CLINK_ECONTROL_ERROR (the
 * CLI's error text is in response), CLINK_ECONTROL_TIMEOUT, CLINK_EEXITED,
 * UV_ECANCELED. response is borrowed, NULL unless one arrived. */
typedef void (*clink_control_cb)(clink_client *client, int status,
                                 const clink_msg *response, void *ud);
typedef void (*clink_close_cb)(clink_client *client, void *ud);
typedef void (*clink_state_cb)(clink_client *client, clink_client_state from,
                               clink_client_state to, void *ud);
/* A problem that does not stop the stream: CLINK_EBAD_JSON (detail holds the
 * start of the line), CLINK_ELINE_TOO_LONG, CLINK_EPROTOCOL. */
typedef void (*clink_error_cb)(clink_client *client, int err, const char *detail, void *ud);
/* A message outside any turn (e.g. a system message after a result). */
typedef void (*clink_unsolicited_cb)(clink_client *client, const clink_msg *msg, void *ud);
/* One stderr line of the CLI (borrowed). */
typedef void (*clink_stderr_cb)(clink_client *client, const char *line, size_t len, void *ud);
/* An inbound control request; answer with clink_request_*(). */
typedef void (*clink_request_cb)(clink_client *client, clink_request *req, void *ud);

/* Client knobs on the options object (copied into each client). */
#define CLINK_DEFAULT_CONNECT_TIMEOUT_MS 60000
#define CLINK_DEFAULT_CONTROL_TIMEOUT_MS 60000
#define CLINK_DEFAULT_CLOSE_TURN_WAIT_MS 10000
#define CLINK_DEFAULT_MAX_QUEUED_QUERIES 64
#define CLINK_DEFAULT_MAX_CONTROL_INFLIGHT 64
#define CLINK_DEFAULT_MAX_INBOUND_REQUESTS 64
#define CLINK_DEFAULT_PROBE_TIMEOUT_MS 30000
#define CLINK_DEFAULT_TURN_INACTIVITY_MS 300000

/* Timeouts in ms (0 or CLINK_NEVER: no limit). The connect timeout bounds
 * spawn to the initialize response (CLINK_EINIT_TIMEOUT); the control
 * timeout bounds every other control request (CLINK_ECONTROL_TIMEOUT). */
CLINK_EXTERN int clink_options_set_connect_timeout_ms(clink_options *opts, uint64_t ms);
CLINK_EXTERN int clink_options_set_control_timeout_ms(clink_options *opts, uint64_t ms);
/* How long close waits for a running turn to end before stopping the CLI
 * (a wait: 0 = not at all, CLINK_NEVER = until the turn ends). A turn that
 * waits on an inbound request (a permission prompt) is not waited for: its
 * answer could no longer be written. */
CLINK_EXTERN int clink_options_set_close_turn_wait_ms(clink_options *opts, uint64_t ms);
/* A running turn whose CLI writes nothing on stdout for ms is probed (a
 * cheap control request, answered mid-turn by a live CLI, e.g. one running
 * a long tool); no answer within the probe timeout (see
 * clink_options_set_idle_probe) means the CLI hung: it is killed and the
 * turn fails with CLINK_ETURN_STALLED, or is recovered as the recovery
 * policy says. Default CLINK_DEFAULT_TURN_INACTIVITY_MS; 0 or CLINK_NEVER:
 * off. */
CLINK_EXTERN int clink_options_set_turn_inactivity_ms(clink_options *opts, uint64_t ms);
/* Inbound requests (permission prompts, hooks, MCP) waiting for the host's
 * answer, at most (default 64; 0 is UV_EINVAL). More get an error reply at
 * once and count as CLINK_ETOO_MANY_REQUESTS. */
CLINK_EXTERN int clink_options_set_max_inbound_requests(clink_options *opts, size_t n);
CLINK_EXTERN int clink_options_set_max_queued_queries(clink_options *opts, size_t n);
CLINK_EXTERN int clink_options_set_max_control_inflight(clink_options *opts, size_t n);
CLINK_EXTERN int clink_options_set_stderr_cb(clink_options *opts, clink_stderr_cb cb, void *ud);
/* Permission prompts arrive as can_use_tool requests (sets
 * --permission-prompt-tool=stdio). Without a handler the CLI decides alone. */
CLINK_EXTERN int clink_options_set_permission_cb(clink_options *opts, clink_request_cb cb,
                                                 void *ud);
/* Registers a hook sent in initialize: event such as "PreToolUse", matcher
 * such as "Bash" (NULL = all), timeout_s 0 = the CLI's default. Returns the
 * hook's index n >= 0; its requests carry callback id "hook_<n>". */
CLINK_EXTERN int clink_options_add_hook(clink_options *opts, const char *event,
                                        const char *matcher, unsigned int timeout_s);
CLINK_EXTERN int clink_options_set_hook_cb(clink_options *opts, clink_request_cb cb, void *ud);
/* In-process MCP servers: mcp_message requests. Without a handler the CLI
 * gets a JSON-RPC "server not found" error. */
CLINK_EXTERN int clink_options_set_mcp_cb(clink_options *opts, clink_request_cb cb, void *ud);
/* Automatic recovery: when the process dies or its pipe breaks while
 * connected, the client goes RECOVERING and starts new processes with the
 * policy's backoff (through the breaker set with clink_client_set_breaker()),
 * resuming the conversation with --resume=<session id>; queries made
 * meanwhile are queued (bounded) and sent once it is back. The policy is
 * copied; NULL turns recovery off (the default). */
CLINK_EXTERN int clink_options_set_recovery(clink_options *opts,
                                            const clink_retry_policy *policy);
/* During recovery, re-send the turn that was running when the process died,
 * once (default off: it fails with CLINK_EEXITED). */
CLINK_EXTERN int clink_options_set_resend_interrupted_turn(clink_options *opts, int enable);
/* Probe an idle connected client with a cheap control request after idle_ms
 * without traffic; no answer within timeout_ms means the CLI hung: it is
 * killed (and recovered when a policy is set). idle_ms 0 or CLINK_NEVER: off
 * (the default). timeout_ms (default CLINK_DEFAULT_PROBE_TIMEOUT_MS) also
 * bounds the mid-turn probe of clink_options_set_turn_inactivity_ms(). */
CLINK_EXTERN int clink_options_set_idle_probe(clink_options *opts, uint64_t idle_ms,
                                              uint64_t timeout_ms);
/* Extra members for the initialize request, as a JSON object text (e.g.
 * {"agents":{...}}). */
CLINK_EXTERN int clink_options_set_initialize_extra(clink_options *opts, const char *json_object);

/* A DISCONNECTED client on loop; opts are copied. Free it with
 * clink_client_close(), also when it never connected. */
CLINK_EXTERN int clink_client_new(clink_client **out, uv_loop_t *loop,
                                  const clink_options *opts);
CLINK_EXTERN void clink_client_set_user_data(clink_client *client, void *ud);
CLINK_EXTERN void *clink_client_get_user_data(const clink_client *client);
CLINK_EXTERN void clink_client_set_state_cb(clink_client *client, clink_state_cb cb, void *ud);
CLINK_EXTERN void clink_client_set_error_cb(clink_client *client, clink_error_cb cb, void *ud);
CLINK_EXTERN void clink_client_set_unsolicited_cb(clink_client *client,
                                                  clink_unsolicited_cb cb, void *ud);

typedef enum clink_recovery_event {
  CLINK_RECOVERY_SCHEDULED = 0, /* attempt n will start after delay_ms; err: why */
  CLINK_RECOVERY_ATTEMPT = 1,   /* attempt n is starting a process */
  CLINK_RECOVERY_REJECTED = 2,  /* the breaker refused attempt n (err) */
  CLINK_RECOVERY_SUCCEEDED = 3, /* connected again after n attempts */
  CLINK_RECOVERY_FAILED = 4,    /* the policy gave up (err): state ERROR */
  /* The CLI could not resume the conversation (its transcript is gone: it
   * said "No conversation found"): attempt n starts a fresh one. The
   * earlier turns are lost to the model; session_id changes. */
  CLINK_RECOVERY_FRESH = 5
} clink_recovery_event;
typedef void (*clink_recovery_cb)(clink_client *client, clink_recovery_event event,
                                  unsigned int attempt, int err, uint64_t delay_ms, void *ud);
CLINK_EXTERN void clink_client_set_recovery_cb(clink_client *client, clink_recovery_cb cb,
                                               void *ud);
/* Structured events (borrowed sink, NULL: none; component "claude_client"):
 * reconnection_scheduled / _attempt / _rejected / _succeeded / _failed,
 * cli_exited (an exit the client did not ask for), turn_stalled. */
CLINK_EXTERN void clink_client_set_events(clink_client *client, clink_events *sink);
/* Recovery attempts go through this breaker (borrowed: it must outlive the
 * client); typically the registry's "claude_sdk". NULL = none. */
CLINK_EXTERN void clink_client_set_breaker(clink_client *client, clink_breaker *breaker);

/* Spawns the CLI and runs the initialize handshake under the connect
 * timeout. Errors known at once are returned (CLINK_ECLI_NOT_FOUND,
 * CLINK_ECLI_EXEC_DENIED, CLINK_ESPAWN when exec or chdir failed, UV_EMFILE,
 * UV_ENFILE, UV_EAGAIN or UV_ENOMEM when the host ran out of descriptors,
 * processes or memory (retryable), CLINK_ECLOSING, UV_EBUSY when not
 * DISCONNECTED or ERROR); see clink_client_last_error(). */
CLINK_EXTERN int clink_client_connect(clink_client *client, clink_connect_cb cb, void *ud);

/* One turn with a text prompt. on_message may be NULL. Legal while
 * CONNECTING (queued until connected) or CONNECTED. */
CLINK_EXTERN int clink_client_query(clink_client *client, const char *prompt,
                                    clink_message_cb on_message, clink_turn_cb on_done,
                                    void *ud);
/* One turn whose content is a JSON array of content blocks (text). */
CLINK_EXTERN int clink_client_query_blocks(clink_client *client, const char *content_json,
                                           clink_message_cb on_message,
                                           clink_turn_cb on_done, void *ud);

/* Control requests on a CONNECTED client (else CLINK_ENOT_CONNECTED). An
 * interrupted turn still ends with its own result (CLINK_ETURN_FAILED). */
CLINK_EXTERN int clink_client_interrupt(clink_client *client, clink_control_cb cb, void *ud);
CLINK_EXTERN int clink_client_set_permission_mode(clink_client *client,
                                                  clink_permission_mode mode,
                                                  clink_control_cb cb, void *ud);
/* model NULL: the session's default. */
CLINK_EXTERN int clink_client_set_model(clink_client *client, const char *model,
                                        clink_control_cb cb, void *ud);
/* Any other control request: subtype plus its fields as a JSON object text
 * (NULL for none), e.g. "mcp_status" or "get_context_usage". */
CLINK_EXTERN int clink_client_control(clink_client *client, const char *subtype,
                                      const char *fields_json, clink_control_cb cb,
                                      void *ud);
/* Is the CLI reading? A cheap control request (mcp_status) with its own
 * timeout: status 0 for any answer (an error answer proves it reads too),
 * CLINK_ECONTROL_TIMEOUT when none came. Also mid-turn. */
CLINK_EXTERN int clink_client_ping(clink_client *client, uint64_t timeout_ms,
                                   clink_control_cb cb, void *ud);

/* The one async close: queued queries and control requests fail with
 * UV_ECANCELED, a running turn may finish (close_turn_wait_ms), then the
 * process is stopped (stdin EOF, grace, SIGTERM, grace, SIGKILL) and reaped,
 * its helpers (its process group) too. Nothing is written to the CLI after
 * this call. cb runs once, from the loop; the client is freed after it
 * returns (a pooled client: see clink_pool_release()). Legal from any
 * callback of any object. UV_EBUSY on a second call. */
CLINK_EXTERN int clink_client_close(clink_client *client, clink_close_cb cb, void *ud);

/* Read-outs. Strings and messages returned here change with the client's
 * activity on the loop, not only with calls: use them at once, in the same
 * callback or loop turn, and copy what you keep. */
CLINK_EXTERN clink_client_state clink_client_get_state(const clink_client *client);
/* The CLI's session id (from its messages); NULL before the first turn. */
CLINK_EXTERN const char *clink_client_session_id(const clink_client *client);
/* The initialize response (borrowed; NULL before CONNECTED; replaced by a
 * reconnection). clink_msg_ref() keeps one. */
CLINK_EXTERN const clink_msg *clink_client_server_info(const clink_client *client);
/* Text of the last failure: what was searched, the exit status, the stderr
 * tail, the last error result. */
CLINK_EXTERN const char *clink_client_last_error(const clink_client *client);
/* The CLI's pid, 0 when no process runs. */
CLINK_EXTERN int clink_client_pid(const clink_client *client);
/* Turns running or queued (0: the client is idle). */
CLINK_EXTERN size_t clink_client_turns_pending(const clink_client *client);
/* Turns that ended so far, ok or failed (cheaper than the metrics: for
 * schedulers that only watch for change). */
CLINK_EXTERN uint64_t clink_client_turns_done(const clink_client *client);

/* Per-client counters. struct_size must be set by the caller (ABI growth). */
typedef struct clink_client_metrics {
  size_t struct_size;
  uint64_t connect_ms;       /* spawn to initialize response */
  uint64_t uptime_ms;        /* since connected */
  uint64_t last_activity_ms; /* since the last line in or out */
  uint64_t messages_in, messages_out;
  uint64_t bytes_in, bytes_out;
  uint64_t turns_ok, turns_failed;
  uint64_t errors;           /* every error reported, any code */
  uint64_t control_requests, control_timeouts;
  uint64_t spawns;
  uint64_t recoveries;       /* successful reconnections */
  uint64_t recovery_attempts;
  uint64_t probes, probe_failures;
  uint64_t last_turn_ms;     /* query written to its result */
  uint64_t turn_ms_ewma;     /* moving average of that (weight 1/5) */
} clink_client_metrics;
CLINK_EXTERN int clink_client_get_metrics(const clink_client *client,
                                          clink_client_metrics *out);
/* How many times err was reported by this client. */
CLINK_EXTERN uint64_t clink_client_error_count(const clink_client *client, int err);

/* Inbound requests. */
CLINK_EXTERN const char *clink_request_subtype(const clink_request *req);
/* The whole control_request message (borrowed from the request). */
CLINK_EXTERN const clink_msg *clink_request_msg(const clink_request *req);
/* request.<name> for convenience: tool_name, input, callback_id... */
CLINK_EXTERN const struct cJSON *clink_request_field(const clink_request *req,
                                                     const char *name);
CLINK_EXTERN clink_client *clink_request_client(const clink_request *req);
/* The CLI withdrew the request (control_cancel_request); answering still
 * frees it, without writing anything. */
CLINK_EXTERN int clink_request_is_cancelled(const clink_request *req);
/* can_use_tool answers. updated_input_json: a JSON object text, or NULL to
 * keep the tool's input; updated_permissions_json: a JSON array text or NULL. */
CLINK_EXTERN int clink_request_allow(clink_request *req, const char *updated_input_json,
                                     const char *updated_permissions_json);
CLINK_EXTERN int clink_request_deny(clink_request *req, const char *message, int interrupt);
/* Generic answers: a success payload (JSON object text, or NULL for {}), or
 * an error. */
CLINK_EXTERN int clink_request_respond(clink_request *req, const char *response_json);
CLINK_EXTERN int clink_request_fail(clink_request *req, const char *message);

/* ---------------------------------------------------------- retry policy */

/* Retry and backoff, as pure code: time comes in as now_ms, delays come out;
 * randomness is a seeded generator, so runs are reproducible. No allocation
 * after creation. */

typedef enum clink_jitter {
  CLINK_JITTER_NONE = 0,
  CLINK_JITTER_FULL = 1,        /* U(0, d) */
  CLINK_JITTER_EQUAL = 2,       /* d/2 + U(0, d/2) */
  CLINK_JITTER_DECORRELATED = 3 /* min(cap, U(base, 3 * previous)) */
} clink_jitter;

/* Defaults: the reconnection schedule 1, 2, 5, 10, 30, 60 s, at most 6
 * attempts, no deadline, no budget. */
CLINK_EXTERN int clink_retry_policy_new(clink_retry_policy **out);
CLINK_EXTERN int clink_retry_policy_dup(clink_retry_policy **out,
                                        const clink_retry_policy *src);
CLINK_EXTERN void clink_retry_policy_free(clink_retry_policy *policy);
/* A fixed schedule (copied, at most 32 entries); past its end the last delay
 * repeats. */
CLINK_EXTERN int clink_retry_policy_set_schedule(clink_retry_policy *policy,
                                                 const uint64_t *delays_ms, size_t n);
/* delay(n) = min(cap_ms, base_ms * multiplier^(n-1)), then jitter. */
CLINK_EXTERN int clink_retry_policy_set_exponential(clink_retry_policy *policy,
                                                    uint64_t base_ms, uint64_t cap_ms,
                                                    double multiplier, clink_jitter jitter);
/* Retries after the first attempt; 0 = unlimited. */
CLINK_EXTERN int clink_retry_policy_set_max_attempts(clink_retry_policy *policy,
                                                     unsigned int attempts);
/* No retry is scheduled past begin + deadline_ms; 0 = none. */
CLINK_EXTERN int clink_retry_policy_set_deadline_ms(clink_retry_policy *policy,
                                                    uint64_t deadline_ms);
/* Retry budget (gRPC retry throttling): a token bucket of max_tokens; a
 * retryable failure takes 1, a success gives back token_ratio; retries are
 * allowed only while tokens > max_tokens / 2. max_tokens 0 = no budget. */
CLINK_EXTERN int clink_retry_policy_set_budget(clink_retry_policy *policy,
                                               double max_tokens, double token_ratio);

/* The policy is copied. seed 0 picks one from the clock. */
CLINK_EXTERN int clink_retry_new(clink_retry **out, const clink_retry_policy *policy,
                                 uint64_t seed);
CLINK_EXTERN void clink_retry_free(clink_retry *retry);
/* Starts a new operation (resets the attempt count, not the budget). */
CLINK_EXTERN void clink_retry_begin(clink_retry *retry, uint64_t now_ms);
/* The attempt failed with err. Returns 0 and *delay_ms when another attempt
 * should follow; err itself when it is not retryable; CLINK_ERETRY_EXHAUSTED
 * (attempts or deadline) or CLINK_EBUDGET_EXHAUSTED otherwise.
 * server_delay_ms > 0 (a rate-limit or overload hint) is a floor for the
 * delay. */
CLINK_EXTERN int clink_retry_next(clink_retry *retry, uint64_t now_ms, int err,
                                  uint64_t server_delay_ms, uint64_t *delay_ms);
/* The attempt succeeded (refills the budget). */
CLINK_EXTERN void clink_retry_success(clink_retry *retry);
/* Retries made in the current operation. */
CLINK_EXTERN unsigned int clink_retry_attempts(const clink_retry *retry);
/* -1 when the policy has no budget. */
CLINK_EXTERN double clink_retry_budget_tokens(const clink_retry *retry);

/* Whether an error is worth retrying: a dead process, a broken pipe,
 * timeouts, connection refused, running out of descriptors or memory: yes;
 * CLI not found, exec permission denied, a failed exec, invalid arguments:
 * no. */
CLINK_EXTERN int clink_err_is_retryable(int err);
/* For failed turns: API status 429, 5xx and 529 are retryable; 400, 401, 403,
 * 404, 413 are not. */
CLINK_EXTERN int clink_api_status_is_retryable(int http_status);

/* --------------------------------------------------------- circuit breaker */

/* A named circuit breaker, as pure code (now_ms in). Two-step use for async
 * calls: clink_breaker_acquire() before the call, then exactly one of
 * on_success / on_error / release with the permit it gave. A permit from an
 * earlier state (generation) is ignored. No allocation after creation.
 * Having no loop, a breaker fires its events synchronously, just before the
 * call that caused them returns (the one exception to the callback rule at the
 * top); an event callback may call any breaker function except free. */

typedef enum clink_breaker_state {
  CLINK_BREAKER_CLOSED = 0,
  CLINK_BREAKER_OPEN = 1,
  CLINK_BREAKER_HALF_OPEN = 2,
  CLINK_BREAKER_DISABLED = 3,   /* always admits, records nothing */
  CLINK_BREAKER_FORCED_OPEN = 4 /* always rejects until reset */
} clink_breaker_state;

typedef enum clink_breaker_window {
  CLINK_BREAKER_WINDOW_COUNT = 0, /* the last N calls */
  CLINK_BREAKER_WINDOW_TIME = 1   /* the calls of the last N seconds */
} clink_breaker_window;

typedef enum clink_breaker_event {
  CLINK_BREAKER_EVENT_STATE = 0,       /* from -> to */
  CLINK_BREAKER_EVENT_NOT_PERMITTED = 1 /* a call was rejected */
} clink_breaker_event;

typedef void (*clink_breaker_event_cb)(clink_breaker *breaker, clink_breaker_event event,
                                       clink_breaker_state from, clink_breaker_state to,
                                       void *ud);

/* Defaults: trips on 5 consecutive failures, 60 s open, 1 probe, 1 success
 * to close, 60 s at most in HALF_OPEN. */
CLINK_EXTERN int clink_breaker_config_new(clink_breaker_config **out);
CLINK_EXTERN void clink_breaker_config_free(clink_breaker_config *cfg);
/* 0 disables the rule. */
CLINK_EXTERN int clink_breaker_config_set_consecutive_failures(clink_breaker_config *cfg,
                                                               unsigned int failures);
/* Trip when the failure rate (percent) over the window reaches threshold,
 * once at least min_calls were recorded. size: calls (COUNT) or seconds
 * (TIME), at most 1024. threshold 0 disables the rule. */
CLINK_EXTERN int clink_breaker_config_set_failure_rate(clink_breaker_config *cfg,
                                                       double threshold_pct,
                                                       clink_breaker_window window,
                                                       unsigned int size,
                                                       unsigned int min_calls);
/* Calls slower than slow_ms count as slow; trip when their rate reaches
 * threshold_pct (same window). threshold 0 disables the rule. */
CLINK_EXTERN int clink_breaker_config_set_slow_calls(clink_breaker_config *cfg,
                                                     uint64_t slow_ms, double threshold_pct);
/* Open for base_ms, multiplied by multiplier on each re-open without a close
 * in between, capped at max_ms, with +-jitter_pct random spread. */
CLINK_EXTERN int clink_breaker_config_set_open_duration(clink_breaker_config *cfg,
                                                        uint64_t base_ms, uint64_t max_ms,
                                                        double multiplier, double jitter_pct);
/* HALF_OPEN admits max_probes calls at once, closes after
 * successes_to_close successes, re-opens on any failure, and re-opens after
 * max_half_open_ms without a verdict (0 = no limit). */
CLINK_EXTERN int clink_breaker_config_set_half_open(clink_breaker_config *cfg,
                                                    unsigned int max_probes,
                                                    unsigned int successes_to_close,
                                                    uint64_t max_half_open_ms);

/* name and cfg are copied. seed 0 picks one from the clock. */
CLINK_EXTERN int clink_breaker_new(clink_breaker **out, const char *name,
                                   const clink_breaker_config *cfg, uint64_t seed);
CLINK_EXTERN void clink_breaker_free(clink_breaker *breaker);
CLINK_EXTERN const char *clink_breaker_name(const clink_breaker *breaker);
CLINK_EXTERN void clink_breaker_set_event_cb(clink_breaker *breaker,
                                             clink_breaker_event_cb cb, void *ud);
/* State changes also go to this event sink (borrowed; NULL: none), as the
 * seed's circuit_breaker_opened / _closed / _half_open events (component
 * "stability_monitor", fields circuit_name, failure_count, from_state,
 * state); rejections as circuit_breaker_rejected (DEBUG). */
CLINK_EXTERN void clink_breaker_set_events(clink_breaker *breaker, clink_events *sink);

/* 0 with *permit set, or CLINK_ECIRCUIT_OPEN with *retry_after_ms (time
 * until a probe may be admitted; 0 when unknown, e.g. FORCED_OPEN or probes
 * busy). */
CLINK_EXTERN int clink_breaker_acquire(clink_breaker *breaker, uint64_t now_ms,
                                       uint64_t *permit, uint64_t *retry_after_ms);
CLINK_EXTERN void clink_breaker_on_success(clink_breaker *breaker, uint64_t permit,
                                           uint64_t now_ms, uint64_t duration_ms);
CLINK_EXTERN void clink_breaker_on_error(clink_breaker *breaker, uint64_t permit,
                                         uint64_t now_ms, uint64_t duration_ms);
/* The call ended without a verdict (e.g. cancelled): frees its permit. */
CLINK_EXTERN void clink_breaker_release(clink_breaker *breaker, uint64_t permit);

/* Manual control: reset to CLOSED with fresh counters; force OPEN until a
 * reset; DISABLED admits everything and records nothing. */
CLINK_EXTERN void clink_breaker_reset(clink_breaker *breaker, uint64_t now_ms);
CLINK_EXTERN void clink_breaker_force_open(clink_breaker *breaker, uint64_t now_ms);
CLINK_EXTERN void clink_breaker_disable(clink_breaker *breaker, uint64_t now_ms);
/* Open now for open_ms (a server-directed pause such as Retry-After). */
CLINK_EXTERN void clink_breaker_open_for(clink_breaker *breaker, uint64_t now_ms,
                                         uint64_t open_ms);

/* The state at now_ms (OPEN becomes HALF_OPEN once its time is up). */
CLINK_EXTERN clink_breaker_state clink_breaker_get_state(clink_breaker *breaker,
                                                         uint64_t now_ms);
CLINK_EXTERN const char *clink_breaker_state_name(clink_breaker_state state);

typedef struct clink_breaker_stats {
  size_t struct_size;
  clink_breaker_state state;
  uint64_t generation;
  uint32_t consecutive_failures, consecutive_successes;
  uint32_t window_calls, window_failures, window_slow;
  double failure_rate_pct; /* over the window; -1 below min_calls */
  double slow_rate_pct;
  uint32_t half_open_in_flight;
  uint64_t until_half_open_ms; /* 0 unless OPEN */
  uint64_t total_calls, total_successes, total_failures, total_rejected;
  uint64_t opened_count;
} clink_breaker_stats;
/* out->struct_size must be set by the caller. */
CLINK_EXTERN int clink_breaker_get_stats(clink_breaker *breaker, uint64_t now_ms,
                                         clink_breaker_stats *out);

/* Breakers by name. A new registry holds the seed's two: "claude_sdk" (3
 * consecutive failures, 30 s open, 2 successes to close) and
 * "session_operations" (5 consecutive failures, 60 s open). */
CLINK_EXTERN int clink_breaker_registry_new(clink_breaker_registry **out, uint64_t seed);
CLINK_EXTERN void clink_breaker_registry_free(clink_breaker_registry *reg);
/* Adds a breaker (UV_EEXIST if the name is taken); *out may be NULL. */
CLINK_EXTERN int clink_breaker_registry_add(clink_breaker_registry *reg, const char *name,
                                            const clink_breaker_config *cfg,
                                            clink_breaker **out);
/* Every breaker of the registry, now and added later, reports to sink. */
CLINK_EXTERN void clink_breaker_registry_set_events(clink_breaker_registry *reg,
                                                    clink_events *sink);
/* NULL when absent. */
CLINK_EXTERN clink_breaker *clink_breaker_registry_get(const clink_breaker_registry *reg,
                                                       const char *name);
CLINK_EXTERN size_t clink_breaker_registry_count(const clink_breaker_registry *reg);
/* The i-th breaker in registration order, for reports. */
CLINK_EXTERN clink_breaker *clink_breaker_registry_at(const clink_breaker_registry *reg,
                                                      size_t i);

/* ---------------------------------------------------- protected execution */

/* Runs an async operation under a circuit breaker and a retry policy: the C
 * counterpart of a @circuit_breaker + @retry_on_failure decorated call. Each
 * attempt asks the breaker first (an open circuit counts as a retryable
 * failure whose retry-after is the delay floor), then calls op; op reports
 * its outcome with clink_exec_done(). Outcomes feed the breaker; failures go
 * through the policy until it gives up. */
typedef struct clink_exec clink_exec;
/* Starts one attempt; clink_exec_done() must follow exactly once (it may be
 * called from inside op). */
typedef void (*clink_exec_op)(clink_exec *exec, void *ud);
/* The execution ended: 0; the error of an attempt the policy would not retry
 * (or of the only attempt, without a policy); CLINK_ERETRY_EXHAUSTED or
 * CLINK_EBUDGET_EXHAUSTED (clink_exec_last_error() tells what failed last);
 * or UV_ECANCELED. The exec is freed after this returns. */
typedef void (*clink_exec_cb)(clink_exec *exec, int status, void *ud);

/* breaker and policy may be NULL; the policy is copied, the breaker borrowed
 * (it must outlive the execution). op runs from the loop, never inside this
 * call. */
CLINK_EXTERN int clink_execute(clink_exec **out, uv_loop_t *loop, clink_breaker *breaker,
                               const clink_retry_policy *policy, clink_exec_op op,
                               clink_exec_cb done, void *ud);
/* Reports the attempt's outcome: status 0 or a negative error; server_delay_ms
 * (e.g. a rate limit's retry-after) is a floor for the next delay. */
CLINK_EXTERN void clink_exec_done(clink_exec *exec, int status, uint64_t server_delay_ms);
/* Ends the execution with UV_ECANCELED (done runs from the loop). An attempt
 * already running must still report through clink_exec_done(), which then
 * only frees. UV_EBUSY when already ended. */
CLINK_EXTERN int clink_exec_cancel(clink_exec *exec);
/* Attempts started so far (1 for the first). */
CLINK_EXTERN unsigned int clink_exec_attempts(const clink_exec *exec);
/* The error of the last failed attempt (or breaker rejection), 0 if none. */
CLINK_EXTERN int clink_exec_last_error(const clink_exec *exec);

/* ------------------------------------------------------------------ pool */

/* A pool of clients of one spawn profile (the options fixed when a process
 * starts): pre-warmed, connected and initialized processes handed out one
 * at a time. Members are ordinary clink_client objects owned by the pool;
 * closing the pool closes them.
 *
 * A checked-out member is the holder's to use with the client API, with
 * three rules: clink_client_close() on it releases and discards it (the
 * pool replaces it; its memory stays valid, the client CLOSED, until it is
 * released or the pool is gone, so clink_pool_release() after its close
 * callback is legal); clink_client_set_state_cb() and the other callback
 * setters are the holder's own (the pool never uses them); and
 * clink_client_connect() on it is refused with UV_EPERM (the pool starts
 * its processes itself). */
typedef enum clink_pool_shutdown_mode {
  CLINK_POOL_DRAIN = 0,    /* let checked-out clients come back, then close */
  CLINK_POOL_IMMEDIATE = 1 /* close everything now (running turns fail) */
} clink_pool_shutdown_mode;

typedef enum clink_pool_event {
  CLINK_POOL_EVENT_SPAWNED = 0,  /* a member connected */
  CLINK_POOL_EVENT_CLOSED = 1,   /* a member was closed; detail: the reason */
  CLINK_POOL_EVENT_LEAK = 2,     /* a checkout outlived the leak threshold; detail: where */
  CLINK_POOL_EVENT_REPLACED = 3, /* a dead idle member was replaced */
  CLINK_POOL_EVENT_SHUTDOWN = 4  /* shutdown finished */
} clink_pool_event;

/* Why members close (counted in the stats). */
typedef enum clink_pool_close_reason {
  CLINK_POOL_CLOSE_DEAD = 0,
  CLINK_POOL_CLOSE_UNHEALTHY = 1,
  CLINK_POOL_CLOSE_LIFETIME = 2,
  CLINK_POOL_CLOSE_IDLE = 3,
  CLINK_POOL_CLOSE_MAX_TURNS = 4,
  CLINK_POOL_CLOSE_VALIDATION = 5,
  CLINK_POOL_CLOSE_REBALANCE = 6,
  CLINK_POOL_CLOSE_SHUTDOWN = 7,
  CLINK_POOL_CLOSE_USER = 8, /* its holder closed it (clink_client_close()) */
  CLINK_POOL_CLOSE_MEMORY = 9, /* its CLI grew past the RSS limit */
  CLINK_POOL_CLOSE_ISOLATION = 10, /* held a conversation; room was needed for a fresh one */
  CLINK_POOL_CLOSE_REASONS_ = 11 /* the reasons this header knows */
} clink_pool_close_reason;
/* Room in clink_pool_stats for reasons: fixed, so reasons added later fit
 * without changing the struct. */
#define CLINK_POOL_CLOSE_REASON_SLOTS 16
/* "dead", "unhealthy", ...; "unknown" outside the enum. */
CLINK_EXTERN const char *clink_pool_close_reason_name(clink_pool_close_reason reason);

/* Defaults: min idle 1, max size 10, acquire timeout 30 s, max lifetime 30
 * min (each process up to 2.5 % shorter), idle timeout 10 min, no turn limit,
 * validate after 30 s idle (ping timeout 5 s), leak threshold off, at most
 * 1024 waiters, shutdown in batches of 10, 15 s per process, 30 s per
 * batch. Every time here is a timeout: 0 or CLINK_NEVER means no limit
 * (no validation, no leak reports, ...). */
CLINK_EXTERN int clink_pool_config_new(clink_pool_config **out);
CLINK_EXTERN void clink_pool_config_free(clink_pool_config *cfg);
CLINK_EXTERN int clink_pool_config_set_size(clink_pool_config *cfg, unsigned int min_idle,
                                            unsigned int max_size);
CLINK_EXTERN int clink_pool_config_set_acquire_timeout_ms(clink_pool_config *cfg,
                                                          uint64_t ms);
/* 0 = unlimited. */
CLINK_EXTERN int clink_pool_config_set_max_waiters(clink_pool_config *cfg, unsigned int n);
/* 0 or CLINK_NEVER disables each limit. */
CLINK_EXTERN int clink_pool_config_set_max_lifetime_ms(clink_pool_config *cfg, uint64_t ms,
                                                       double jitter_pct);
CLINK_EXTERN int clink_pool_config_set_idle_timeout_ms(clink_pool_config *cfg, uint64_t ms);
CLINK_EXTERN int clink_pool_config_set_max_turns(clink_pool_config *cfg, unsigned int turns);
/* A member idle longer than after_ms is probed before it is handed out. */
CLINK_EXTERN int clink_pool_config_set_validation(clink_pool_config *cfg, uint64_t after_ms,
                                                  uint64_t timeout_ms);
CLINK_EXTERN int clink_pool_config_set_leak_threshold_ms(clink_pool_config *cfg, uint64_t ms);
CLINK_EXTERN int clink_pool_config_set_shutdown(clink_pool_config *cfg, unsigned int batch,
                                                uint64_t per_process_ms,
                                                uint64_t per_batch_ms);
/* Recycles idle members whose CLI's resident memory (RSS, /proc/<pid>/statm)
 * exceeds max_rss_bytes (0: no limit, the default): long-lived CLIs grow.
 * Idle members are looked at every check_ms on the pool's timer (0 or
 * CLINK_NEVER: only when clink_pool_check_member_rss() is called). A member
 * over the limit closes with CLINK_POOL_CLOSE_MEMORY; the last one only
 * once its successor is connected. Checked-out members are looked at when
 * they are idle again. */
CLINK_EXTERN int clink_pool_config_set_max_member_rss(clink_pool_config *cfg,
                                                      uint64_t max_rss_bytes,
                                                      uint64_t check_ms);

/* Isolation (off by default). A pooled CLI keeps the conversation of the
 * turns it ran: without isolation an acquire without session_id gets any
 * idle member, whose context may hold earlier turns of other callers. With
 * isolation on, such an acquire only gets a member that never ran a turn
 * (nor was started to resume a conversation); a member that holds a
 * conversation stays idle only for acquires naming it, until the idle
 * timeout, or until room is needed at max size for a fresh one (it closes
 * with CLINK_POOL_CLOSE_ISOLATION, least recently used first). Min idle then
 * counts fresh members only. The cost: a process start for each new
 * conversation (the pool keeps fresh ones warm). */
CLINK_EXTERN int clink_pool_config_set_isolation(clink_pool_config *cfg, int on);

typedef void (*clink_pool_event_cb)(clink_pool *pool, clink_pool_event event,
                                    clink_client *client, const char *detail, void *ud);
/* The result of an acquire: status 0 with a connected client (yours until
 * clink_pool_release()), or CLINK_EPOOL_TIMEOUT, CLINK_EQUEUE_FULL (too many
 * waiters), CLINK_ECIRCUIT_OPEN (retry_after_ms says when to try again),
 * CLINK_ECLOSING (shutting down), or a spawn error. */
typedef void (*clink_acquire_cb)(clink_pool *pool, int status, clink_client *client,
                                 uint64_t retry_after_ms, void *ud);
typedef void (*clink_pool_close_cb)(clink_pool *pool, void *ud);

/* opts and cfg are copied. The pool starts filling to min idle at once.
 * UV_EINVAL when opts name a conversation (resume, session id, continue,
 * fork): every member would share it; use clink_pool_acquire()'s
 * session_id instead. UV_EMFILE when RLIMIT_NOFILE cannot hold max_size
 * sessions: each holds 4 descriptors of the host (stdin, stdout, stderr, a
 * pidfd) and starting one needs 8 more; raise the limit (ulimit -n) or
 * lower max_size. */
CLINK_EXTERN int clink_pool_new(clink_pool **out, uv_loop_t *loop, const clink_options *opts,
                                const clink_pool_config *cfg);
/* Spawns go through this breaker (borrowed; e.g. the registry's claude_sdk):
 * while it is open, acquires that would spawn fail at once with retry-after. */
CLINK_EXTERN void clink_pool_set_breaker(clink_pool *pool, clink_breaker *breaker);
/* Read-outs: the breaker set above (NULL: none), the loop, the members'
 * spawn profile (the pool's copy: read it, do not keep it past the pool). */
CLINK_EXTERN clink_breaker *clink_pool_get_breaker(const clink_pool *pool);
CLINK_EXTERN uv_loop_t *clink_pool_get_loop(const clink_pool *pool);
CLINK_EXTERN const clink_options *clink_pool_get_options(const clink_pool *pool);
CLINK_EXTERN void clink_pool_set_event_cb(clink_pool *pool, clink_pool_event_cb cb, void *ud);
/* Structured events (borrowed sink; NULL: none; component "session_pool"):
 * session_created, session_closed (detail: the reason), session_leak,
 * session_replaced, session_create_failed, session_shutdown_timeout (a
 * shutdown batch outlived its time), pool_shutdown. Members report to it
 * too (see clink_client_set_events()). */
CLINK_EXTERN void clink_pool_set_events(clink_pool *pool, clink_events *sink);

/* Synchronous fast path: an idle healthy member now (0), or UV_EAGAIN. No
 * callback, no allocation. */
CLINK_EXTERN int clink_pool_try_acquire(clink_pool *pool, clink_client **out);
/* Async acquire: an idle member, else a new one (while under max size), else
 * a FIFO wait bounded by the acquire timeout. cb runs from the loop, never
 * inside this call. session_id (may be NULL) asks for the member that holds
 * that conversation, or a new process resuming it. where (may be NULL; copied,
 * at most 63 bytes kept) names the call site for leak reports. */
CLINK_EXTERN int clink_pool_acquire(clink_pool *pool, const char *session_id,
                                    const char *where, clink_acquire_cb cb, void *ud);
/* Gives a member back: healthy ones go idle, dead or unhealthy ones are
 * closed and replaced to keep min idle. */
CLINK_EXTERN int clink_pool_release(clink_pool *pool, clink_client *client);
/* Looks at the idle members' RSS now (see
 * clink_pool_config_set_max_member_rss()); returns how many were over the
 * limit (closed, or waiting for their successor), 0 without a limit. One
 * small /proc read per idle member. */
CLINK_EXTERN int clink_pool_check_member_rss(clink_pool *pool);
/* The live members (starting, idle or checked out), for reports: copies up
 * to cap of them to out (may be NULL when cap is 0) and returns how many
 * there are. Borrowed: use them in the same loop turn, read-outs only. */
CLINK_EXTERN size_t clink_pool_clients(const clink_pool *pool, clink_client **out, size_t cap);

/* Stops accepting, then closes members in batches. A second call escalates
 * to IMMEDIATE. cb runs once, from the loop, after every member is closed;
 * the pool is freed after it returns. */
CLINK_EXTERN int clink_pool_shutdown(clink_pool *pool, clink_pool_shutdown_mode mode,
                                     clink_pool_close_cb cb, void *ud);

/* Acquire wait histogram: bucket i counts waits <= 10^i us (i = 0..10, 1 us
 * to 10,000 s); the last bucket counts longer ones. */
#define CLINK_POOL_WAIT_BUCKETS 12
typedef struct clink_pool_stats {
  size_t struct_size;
  uint32_t size, idle, in_use, starting, pending_acquires;
  uint64_t created, closed;
  uint64_t closed_by_reason[CLINK_POOL_CLOSE_REASON_SLOTS];
  uint64_t acquired, acquired_idle, acquired_waited, timeouts, rejected, leaks;
  uint64_t wait_hist[CLINK_POOL_WAIT_BUCKETS];
  uint64_t wait_total_us, wait_max_us;
} clink_pool_stats;
/* out->struct_size must be set by the caller. */
CLINK_EXTERN int clink_pool_get_stats(const clink_pool *pool, clink_pool_stats *out);

/* ---------------------------------------------------------------- events */

/* One structured event sink for every object (client, pool, breakers,
 * fallbacks, outbox, health monitor): level, event name, component and
 * fields, as the seed's structured logs. Events are copied when they happen
 * and delivered from the loop, in order, so the sink's callback may call any
 * function of the library. Secrets never reach it: values of keys that name
 * one (key, token, secret, password, authorization, cookie), API keys
 * ("sk-ant-..."), bearer tokens and ANTHROPIC_* values are replaced by
 * "[REDACTED]" when the event is made. */
/* The levels of LOG_LEVEL (Python's logging names). */
typedef enum clink_log_level {
  CLINK_LOG_DEBUG = 10,
  CLINK_LOG_INFO = 20,
  CLINK_LOG_WARNING = 30,
  CLINK_LOG_ERROR = 40,
  CLINK_LOG_CRITICAL = 50
} clink_log_level;

typedef enum clink_field_kind {
  CLINK_FIELD_STRING = 0,
  CLINK_FIELD_INT = 1,
  CLINK_FIELD_DOUBLE = 2,
  CLINK_FIELD_BOOL = 3, /* i: 0 or 1 */
  CLINK_FIELD_NULL = 4
} clink_field_kind;

typedef struct clink_event_field {
  const char *key;
  clink_field_kind kind;
  const char *s; /* STRING */
  int64_t i;     /* INT, BOOL */
  double d;      /* DOUBLE */
} clink_event_field;

/* An event as delivered (borrowed until the callback returns). */
typedef struct clink_event {
  size_t struct_size;
  uint64_t timestamp_ms; /* Unix time in ms, taken when it happened */
  clink_log_level level;
  const char *event;     /* "circuit_breaker_opened", ... */
  const char *component; /* "stability_monitor", "pool", ... */
  const clink_event_field *fields;
  size_t n_fields;
} clink_event;

typedef void (*clink_event_cb)(clink_events *sink, const clink_event *ev, void *ud);
typedef void (*clink_events_close_cb)(clink_events *sink, void *ud);

#define CLINK_DEFAULT_EVENTS_PENDING 4096

/* A sink on loop: level INFO, no callback, no writer. It keeps the loop
 * alive only while events wait to be delivered. */
CLINK_EXTERN int clink_events_new(clink_events **out, uv_loop_t *loop);
/* Events below level are dropped when they happen (no work at all). */
CLINK_EXTERN int clink_events_set_level(clink_events *sink, clink_log_level level);
/* The level set above. */
CLINK_EXTERN clink_log_level clink_events_get_level(const clink_events *sink);
/* Every event at or above the level goes to cb. */
CLINK_EXTERN void clink_events_set_cb(clink_events *sink, clink_event_cb cb, void *ud);
/* The ready JSON-lines writer: one object a line on fd (e.g. 2 for stderr),
 * {"timestamp": ISO 8601 UTC, "level", "event", "component", ...fields};
 * -1 turns it off. */
CLINK_EXTERN int clink_events_set_jsonl_fd(clink_events *sink, int fd);
/* Events waiting for the loop, at most (default CLINK_DEFAULT_EVENTS_PENDING,
 * 0 is UV_EINVAL); more are dropped and counted. */
CLINK_EXTERN int clink_events_set_max_pending(clink_events *sink, size_t n);
/* Emits an event of the host's own (component NULL: "app"). Strings are
 * copied. UV_ENOMEM, or CLINK_EQUEUE_FULL when too many wait (counted as
 * dropped). */
CLINK_EXTERN int clink_events_emit(clink_events *sink, clink_log_level level,
                                   const char *component, const char *event,
                                   const clink_event_field *fields, size_t n_fields);
/* Events dropped so far (queue full, or out of memory). */
CLINK_EXTERN uint64_t clink_events_dropped(const clink_events *sink);
/* The JSON line of an event (no '\n'), to free with clink_free(). */
CLINK_EXTERN int clink_event_to_json(const clink_event *ev, char **out);
/* "INFO" -> CLINK_LOG_INFO (case-insensitive; WARN and FATAL too);
 * UV_EINVAL for anything else. */
CLINK_EXTERN int clink_log_level_parse(const char *name, clink_log_level *out);
/* CLINK_LOG_INFO -> "INFO"; "UNKNOWN" outside the enum. */
CLINK_EXTERN const char *clink_log_level_name(clink_log_level level);
/* Delivers what is pending, then frees the sink; cb runs once, from the
 * loop. Objects that hold the sink must be closed first (or have their sink
 * set to NULL). */
CLINK_EXTERN int clink_events_close(clink_events *sink, clink_events_close_cb cb, void *ud);

/* Frees a buffer the library returned (rendering, JSON). NULL is fine. */
CLINK_EXTERN void clink_free(void *p);

/* ---------------------------------------------------------------- outbox */

/* A durable outbox: messages are persisted (SQLite, WAL, synchronous=FULL)
 * and acknowledged only once their commit is durable, then delivered
 * at-least-once by a host "deliver" function (or through a pool), in order
 * per session id and concurrently across sessions. A failed attempt is
 * retried with backoff; after max attempts the message is dead-lettered with
 * its last error. A delivery is leased: if the host dies mid-delivery the
 * lease expires and the message becomes deliverable again (the idempotency
 * key travels with it).
 *
 * The database runs on a thread of its own: the loop never waits for an
 * fsync. Enqueues that arrive together share one transaction (group commit).
 * Timestamps are wall-clock milliseconds (leases are shared between the
 * processes that open one file). Built without SQLite (meson -Doutbox=disabled)
 * clink_outbox_open() returns UV_ENOTSUP. */

typedef enum clink_outbox_state {
  CLINK_OUTBOX_PENDING = 0,   /* waiting for its (next) attempt */
  CLINK_OUTBOX_LEASED = 1,    /* an attempt is running (in flight) */
  CLINK_OUTBOX_DELIVERED = 2, /* done; the response is stored */
  CLINK_OUTBOX_DEAD = 3       /* dead-lettered after max attempts */
} clink_outbox_state;

/* Defaults (each can be changed on the config object). */
#define CLINK_OUTBOX_DEFAULT_MAX_MESSAGES 100000 /* undelivered messages */
#define CLINK_OUTBOX_DEFAULT_MAX_ATTEMPTS 6
#define CLINK_OUTBOX_DEFAULT_LEASE_MS 600000
#define CLINK_OUTBOX_DEFAULT_CONCURRENCY 16
#define CLINK_OUTBOX_DEFAULT_BATCH 1024
#define CLINK_OUTBOX_DEFAULT_MAX_QUEUED 65536
#define CLINK_OUTBOX_DEFAULT_POLL_MS 1000

/* "PENDING", ...; "UNKNOWN" for values outside the enum. */
CLINK_EXTERN const char *clink_outbox_state_name(clink_outbox_state state);

/* A config with every default; free it with clink_outbox_config_free(). */
CLINK_EXTERN int clink_outbox_config_new(clink_outbox_config **out);
/* Frees a config (NULL is a no-op). */
CLINK_EXTERN void clink_outbox_config_free(clink_outbox_config *cfg);
/* Bound on undelivered (pending + leased) messages; past it enqueue fails
 * with CLINK_EOUTBOX_FULL. 0 is UV_EINVAL. */
CLINK_EXTERN int clink_outbox_config_set_max_messages(clink_outbox_config *cfg, uint64_t n);
/* Attempts before a message is dead-lettered (>= 1). */
CLINK_EXTERN int clink_outbox_config_set_max_attempts(clink_outbox_config *cfg,
                                                      unsigned int attempts);
/* How long an attempt may run before its message is deliverable again. */
CLINK_EXTERN int clink_outbox_config_set_lease_ms(clink_outbox_config *cfg, uint64_t ms);
/* Delays between attempts: retry n waits the policy's delay n (its own
 * attempt limit, deadline and budget are ignored: max attempts decides).
 * Copied; NULL restores the default schedule 1, 2, 5, 10, 30, 60 s. */
CLINK_EXTERN int clink_outbox_config_set_backoff(clink_outbox_config *cfg,
                                                 const clink_retry_policy *policy);
/* Deliveries in flight at once across sessions (>= 1). */
CLINK_EXTERN int clink_outbox_config_set_concurrency(clink_outbox_config *cfg,
                                                     unsigned int max_in_flight);
/* Group commit: at most max_batch requests per transaction (1 = one
 * transaction each); the database thread waits up to max_wait_ms for more to
 * arrive before committing (0 = commit what is queued now). */
CLINK_EXTERN int clink_outbox_config_set_group_commit(clink_outbox_config *cfg,
                                                      unsigned int max_batch,
                                                      uint64_t max_wait_ms);
/* Bound on host requests (enqueue, get) waiting for the database thread;
 * past it they fail with CLINK_EQUEUE_FULL. >= 1. */
CLINK_EXTERN int clink_outbox_config_set_max_queued(clink_outbox_config *cfg, unsigned int n);
/* While delivering, look for work written by other processes (and expired
 * leases) at least this often; 0 = only when this process has reason to. */
CLINK_EXTERN int clink_outbox_config_set_poll_ms(clink_outbox_config *cfg, uint64_t ms);

/* Opened (status 0), or why not: CLINK_ESTORE_CORRUPT (not an SQLite file,
 * or damaged), CLINK_ESTORE_VERSION (written by a newer library), UV_EACCES,
 * UV_EROFS, UV_ENOSPC, CLINK_ESTORE_IO...; see clink_outbox_last_error().
 * A failed outbox must still be closed (legal from here). */
typedef void (*clink_outbox_open_cb)(clink_outbox *ob, int status, void *ud);
/* status 0: the message is durable; id is its id (the earlier message's id
 * when its idempotency key was already there). Else CLINK_EOUTBOX_FULL, a
 * storage error (nothing was stored), or the open error. */
typedef void (*clink_outbox_enqueue_cb)(clink_outbox *ob, int status, int64_t id, void *ud);
/* A read-back: status 0 with msg (borrowed until return), or UV_ENOENT. */
typedef void (*clink_outbox_get_cb)(clink_outbox *ob, int status, const clink_outbox_msg *msg,
                                    void *ud);
/* Hands one attempt to the host; finish it exactly once with
 * clink_outbox_delivery_done(), now or later. */
typedef void (*clink_outbox_deliver_fn)(clink_outbox *ob, clink_outbox_delivery *d, void *ud);
/* The outcome of an attempt is durable: msg (borrowed) is DELIVERED (its
 * response set), PENDING (will be retried; last error set) or DEAD. */
typedef void (*clink_outbox_report_cb)(clink_outbox *ob, const clink_outbox_msg *msg, void *ud);
typedef void (*clink_outbox_close_cb)(clink_outbox *ob, void *ud);

/* Opens (creating if needed) the outbox database at path on the database
 * thread; cb runs from the loop. cfg may be NULL (defaults); it is copied.
 * Requests made before cb runs wait behind the open. */
CLINK_EXTERN int clink_outbox_open(clink_outbox **out, uv_loop_t *loop, const char *path,
                                   const clink_outbox_config *cfg, clink_outbox_open_cb cb,
                                   void *ud);
/* Persists one message. prompt is required; operation NULL = "chat";
 * session_id (NULL = none) orders delivery and asks the pool for that
 * conversation; key (NULL = none) is the idempotency key; metadata_json a
 * JSON text or NULL. cb runs once the commit is durable. UV_EINVAL (bad
 * input), CLINK_EQUEUE_FULL, CLINK_ECLOSING. */
CLINK_EXTERN int clink_outbox_enqueue(clink_outbox *ob, const char *prompt,
                                      const char *operation, const char *session_id,
                                      const char *key, const char *metadata_json,
                                      clink_outbox_enqueue_cb cb, void *ud);
/* Reads a message back by id. */
CLINK_EXTERN int clink_outbox_get(clink_outbox *ob, int64_t id, clink_outbox_get_cb cb,
                                  void *ud);
/* The function that delivers (replaces any earlier one, also the pool's). */
CLINK_EXTERN int clink_outbox_set_deliver(clink_outbox *ob, clink_outbox_deliver_fn fn,
                                          void *ud);
/* Delivers through a pool (borrowed: it must outlive the outbox) with
 * clink_ask(): acquire (a message's session id asks the pool for that
 * conversation, resumed if needed) under the pool's breaker, one turn with
 * the prompt, the answer text as the response, release. No fallback: a
 * cached or mock answer is no delivery. A failure retrying can fix (the
 * breaker open, a dead process, an API 429/5xx/529) is retried by the
 * outbox with its backoff; one it cannot (an API 400/401/403, a missing
 * CLI) dead-letters the message at once. */
CLINK_EXTERN int clink_outbox_deliver_via_pool(clink_outbox *ob, clink_pool *pool);
/* Called after each attempt's outcome is durable (see the typedef). */
CLINK_EXTERN void clink_outbox_set_report_cb(clink_outbox *ob, clink_outbox_report_cb cb,
                                             void *ud);
/* Structured events to sink (borrowed; NULL: none; component "outbox"):
 * message_queued, message_delivered, message_dead_lettered (fields id, key,
 * session_id, operation, attempts, error, error_text) and
 * outbox_store_error, each once durable. */
CLINK_EXTERN void clink_outbox_set_events(clink_outbox *ob, clink_events *sink);
/* Starts leasing and delivering (UV_EINVAL without a deliver function).
 * While started with poll_ms > 0 (the default) the outbox keeps the loop
 * alive; stop or close it to let the loop end. */
CLINK_EXTERN int clink_outbox_start(clink_outbox *ob);
/* Stops leasing; attempts in flight still finish. */
CLINK_EXTERN int clink_outbox_stop(clink_outbox *ob);

/* The message of an attempt (borrowed until clink_outbox_delivery_done()). */
CLINK_EXTERN const clink_outbox_msg *clink_outbox_delivery_msg(const clink_outbox_delivery *d);
/* Finishes an attempt, exactly once; d is freed. status 0: delivered, with
 * response (may be NULL); negative: failed, response is the error text (may
 * be NULL); the message is retried after backoff or dead-lettered. */
CLINK_EXTERN int clink_outbox_delivery_done(clink_outbox_delivery *d, int status,
                                            const char *response);
/* Finishes an attempt that failed in a way no retry can fix (an invalid
 * request, a missing CLI: status < 0, error_text may be NULL): the message
 * is dead-lettered now, whatever attempts are left. d is freed. */
CLINK_EXTERN int clink_outbox_delivery_reject(clink_outbox_delivery *d, int status,
                                              const char *error_text);

/* Message fields. Strings live as long as the message; NULL when absent. */
/* The id enqueue acknowledged (ids are never reused). */
CLINK_EXTERN int64_t clink_outbox_msg_id(const clink_outbox_msg *msg);
/* PENDING, LEASED, DELIVERED or DEAD (as of the read or the report). */
CLINK_EXTERN clink_outbox_state clink_outbox_msg_state(const clink_outbox_msg *msg);
/* The prompt, as enqueued. */
CLINK_EXTERN const char *clink_outbox_msg_prompt(const clink_outbox_msg *msg);
/* The operation name ("chat" unless given). */
CLINK_EXTERN const char *clink_outbox_msg_operation(const clink_outbox_msg *msg);
/* The session id that orders delivery (and picks the pool member). */
CLINK_EXTERN const char *clink_outbox_msg_session_id(const clink_outbox_msg *msg);
/* The idempotency key: it travels with every attempt, so a receiver can
 * drop the duplicates that at-least-once delivery allows. */
CLINK_EXTERN const char *clink_outbox_msg_key(const clink_outbox_msg *msg);
/* The metadata JSON text, as enqueued. */
CLINK_EXTERN const char *clink_outbox_msg_metadata(const clink_outbox_msg *msg);
/* The stored answer of a DELIVERED message. */
CLINK_EXTERN const char *clink_outbox_msg_response(const clink_outbox_msg *msg);
/* Attempts started so far (1 during the first). */
CLINK_EXTERN unsigned int clink_outbox_msg_attempts(const clink_outbox_msg *msg);
/* The last failed attempt's error code (0 if none; UV_ETIMEDOUT for a lost
 * lease). */
CLINK_EXTERN int clink_outbox_msg_last_error(const clink_outbox_msg *msg);
/* The last failed attempt's text (the deliverer's, or "lease expired"). */
CLINK_EXTERN const char *clink_outbox_msg_last_error_text(const clink_outbox_msg *msg);
/* Wall-clock ms when the message was enqueued. */
CLINK_EXTERN uint64_t clink_outbox_msg_created_ms(const clink_outbox_msg *msg);
/* Wall-clock ms of its last change. */
CLINK_EXTERN uint64_t clink_outbox_msg_updated_ms(const clink_outbox_msg *msg);
/* Wall-clock ms when its next attempt is due (PENDING). */
CLINK_EXTERN uint64_t clink_outbox_msg_due_ms(const clink_outbox_msg *msg);

/* Figures. The first five are the database's (every process writing the
 * file), refreshed by the database thread after each batch; the rest are
 * this outbox's own. */
typedef struct clink_outbox_stats {
  size_t struct_size;
  uint64_t pending, in_flight, delivered, dead;
  uint64_t oldest_pending_age_ms; /* 0 when nothing is pending */
  uint64_t delivering;            /* attempts handed to the host, not finished */
  uint64_t queued;                /* requests waiting for the database thread */
  uint64_t enqueued, deliveries, failures, dead_lettered;
  uint64_t transactions;          /* committed by this outbox */
} clink_outbox_stats;
/* out->struct_size must be set by the caller. */
CLINK_EXTERN int clink_outbox_get_stats(const clink_outbox *ob, clink_outbox_stats *out);
/* Text of the last storage error (SQLite's message); "" if none. Valid until
 * the next call on the outbox. */
CLINK_EXTERN const char *clink_outbox_last_error(const clink_outbox *ob);

/* Stops leasing, waits for the attempts in flight to be finished, commits
 * everything queued (their callbacks run with their real status), stops the
 * database thread; cb runs once, from the loop, and the outbox is freed
 * after it returns. Legal from any outbox callback. UV_EBUSY on a second
 * call. */
CLINK_EXTERN int clink_outbox_close(clink_outbox *ob, clink_outbox_close_cb cb, void *ud);

/* -------------------------------------------------------- health monitor */

/* The observability half: registered health checks on the host's loop, the
 * figures of the objects attached to the monitor (pools, clients, the
 * breaker registry, fallbacks, the outbox) read through their public
 * read-outs, system figures from the kernel, and one snapshot rendered many
 * ways (the seed's /health/detailed, /metrics and /health/stability JSON,
 * application/health+json, Prometheus text).
 *
 * Checks run on an unref'd timer: a monitor alone never keeps the loop
 * alive. A check is a function that starts a run and answers it exactly
 * once, now or later, with clink_health_check_done(); a run that does not
 * answer within the check's timeout fails; a check never runs twice at once
 * (while a run is out, even a timed-out one, the next waits for its
 * answer). Three checks are built in, as the seed registers them:
 * "claude_sdk" (critical: spawns and initializes a temporary CLI, or pings an
 * idle member of an attached pool; reports the time it took), "memory"
 * (system memory used, warn above 90 %) and "sessions" (active sessions,
 * warn above 100). Status: a failing critical check makes the monitor
 * UNHEALTHY; any other failure or warning makes it DEGRADED.
 *
 * System figures (CPU %, load, memory, this process's RSS and VMS, disk
 * usage) and each CLI's RSS and CPU (/proc/<pid>) are sampled on the same
 * timer (at most CLINK_HEALTH_PROC_READS_PER_SAMPLE process reads a sample),
 * never per request. Attached objects are borrowed: detach them
 * (clink_health_detach()) before they are freed. */

typedef struct clink_health clink_health;                   /* a monitor */
typedef struct clink_health_check clink_health_check;       /* one run of a check */
typedef struct clink_health_snapshot clink_health_snapshot; /* figures taken at once */
typedef struct clink_health_fallbacks clink_health_fallbacks; /* where fallbacks report */

/* The monitor's verdict (the seed's "status"). */
typedef enum clink_health_status {
  CLINK_HEALTH_HEALTHY = 0,
  CLINK_HEALTH_DEGRADED = 1,
  CLINK_HEALTH_UNHEALTHY = 2
} clink_health_status;

/* One check's result (draft-inadarei-api-health-check's pass/warn/fail). */
typedef enum clink_check_status {
  CLINK_CHECK_PASS = 0,
  CLINK_CHECK_WARN = 1,
  CLINK_CHECK_FAIL = 2,
  CLINK_CHECK_PENDING = 3 /* has not answered yet: counts as neither */
} clink_check_status;

/* The renderings of a snapshot (see clink_health_render()). */
typedef enum clink_health_format {
  CLINK_HEALTH_FORMAT_DETAILED = 0,    /* the seed's /health/detailed JSON */
  CLINK_HEALTH_FORMAT_METRICS = 1,     /* the seed's /metrics JSON (its ten keys) */
  CLINK_HEALTH_FORMAT_STABILITY = 2,   /* /health/stability: breakers, fallbacks, checks */
  CLINK_HEALTH_FORMAT_HEALTH_JSON = 3, /* application/health+json */
  CLINK_HEALTH_FORMAT_PROMETHEUS = 4,  /* text exposition format 0.0.4 */
  CLINK_HEALTH_FORMAT_VERBOSE = 5,     /* Kubernetes ?verbose text: [+]name ok */
  CLINK_HEALTH_FORMAT_SESSIONS = 6,    /* per-session health, JSON */
  CLINK_HEALTH_FORMAT_SESSIONS_TEXT = 7 /* the course's health report per session */
} clink_health_format;

/* The course's grades of a session. */
typedef enum clink_grade {
  CLINK_GRADE_POOR = 0,
  CLINK_GRADE_STARTING = 1, /* stability only: up less than 10 minutes */
  CLINK_GRADE_GOOD = 2,
  CLINK_GRADE_EXCELLENT = 3
} clink_grade;

/* The built-in checks' names and defaults. */
#define CLINK_HEALTH_CHECK_SDK "claude_sdk"
#define CLINK_HEALTH_CHECK_MEMORY "memory"
#define CLINK_HEALTH_CHECK_SESSIONS "sessions"
#define CLINK_HEALTH_DEFAULT_SDK_INTERVAL_MS 60000
#define CLINK_HEALTH_DEFAULT_SDK_TIMEOUT_MS 30000
#define CLINK_HEALTH_DEFAULT_INTERVAL_MS 30000
#define CLINK_HEALTH_DEFAULT_TIMEOUT_MS 5000
#define CLINK_HEALTH_DEFAULT_MEMORY_WARN_PCT 90.0
#define CLINK_HEALTH_DEFAULT_SESSIONS_WARN 100
#define CLINK_HEALTH_DEFAULT_SAMPLE_MS 5000
#define CLINK_HEALTH_PROC_READS_PER_SAMPLE 256

/* "healthy", "degraded", "unhealthy"; "unknown" outside the enum. */
CLINK_EXTERN const char *clink_health_status_name(clink_health_status status);
/* "pass", "warn", "fail", "pending"; "unknown" outside the enum. */
CLINK_EXTERN const char *clink_check_status_name(clink_check_status status);
/* "Poor", "Starting", "Good", "Excellent" (the course's words). */
CLINK_EXTERN const char *clink_grade_name(clink_grade grade);

/* A check starts a run: answer it exactly once with
 * clink_health_check_done(), from here or later. Runs from the loop; may call
 * any function of the library, clink_health_close() included. */
typedef void (*clink_health_check_fn)(clink_health *h, clink_health_check *run, void *ud);
/* The verdict changed (from the loop, never inside the call that caused it). */
typedef void (*clink_health_status_cb)(clink_health *h, clink_health_status from,
                                       clink_health_status to, void *ud);
typedef void (*clink_health_close_cb)(clink_health *h, void *ud);
/* A fallback provider: called synchronously by clink_health_snapshot_take()
 * to fill the fallback_stats section with clink_health_fallbacks_add(), one
 * call per operation. It must only report (call nothing else of the monitor);
 * out is valid until it returns. */
typedef void (*clink_health_fallback_fn)(clink_health_fallbacks *out, void *ud);

/* A monitor on loop with the three built-in checks, sampling at once and
 * then every CLINK_HEALTH_DEFAULT_SAMPLE_MS; its first checks run when the
 * loop runs. Free it with clink_health_close(). */
CLINK_EXTERN int clink_health_new(clink_health **out, uv_loop_t *loop);
/* The seed's "service" and "version" (copied; defaults "claudelink" and the
 * library's version). */
CLINK_EXTERN int clink_health_set_service(clink_health *h, const char *service,
                                          const char *version);
/* How often system and process figures are sampled (>= 10 ms). */
CLINK_EXTERN int clink_health_set_sample_interval_ms(clink_health *h, uint64_t ms);
/* The file system whose usage is reported (copied; default "/"). */
CLINK_EXTERN int clink_health_set_disk_path(clink_health *h, const char *path);
/* Structured events (borrowed sink; NULL: none; component "health_monitor"):
 * health_check_failed (ERROR for a critical check, else WARNING),
 * health_check_degraded (a warning), health_check_recovered (back to pass),
 * health_status_changed; fields check_name, status, critical,
 * observed_value, observed_unit, message, consecutive_failures. */
CLINK_EXTERN void clink_health_set_events(clink_health *h, clink_events *sink);
/* Called when the verdict changes. */
CLINK_EXTERN void clink_health_set_status_cb(clink_health *h, clink_health_status_cb cb,
                                             void *ud);
/* The spawn profile of the claude_sdk check's temporary CLI (copied; NULL:
 * the defaults, `claude` found as clink_options_new() finds it). With a pool
 * attached, an idle member is pinged instead (clink_client_ping()). */
CLINK_EXTERN int clink_health_set_sdk_options(clink_health *h, const clink_options *opts);
/* The memory check: warn above warn_pct, fail above fail_pct of system
 * memory used (0 disables either; defaults 90 and 0). */
CLINK_EXTERN int clink_health_set_memory_thresholds(clink_health *h, double warn_pct,
                                                    double fail_pct);
/* The sessions check: warn above warn, fail above fail active sessions (0
 * disables either; defaults 100 and 0). */
CLINK_EXTERN int clink_health_set_session_thresholds(clink_health *h, uint64_t warn,
                                                     uint64_t fail);

/* Registers a check (name copied, 1 to 63 bytes, unique: UV_EEXIST; a name
 * "component:measurement" is also its application/health+json key, other
 * names get one from the unit they report). interval_ms between
 * the starts of two runs (CLINK_NEVER: only on clink_health_run_checks());
 * timeout_ms bounds a run (0 or CLINK_NEVER: none); a failing critical check
 * makes the monitor UNHEALTHY. Its first run starts when the loop runs. */
CLINK_EXTERN int clink_health_add_check(clink_health *h, const char *name, uint64_t interval_ms,
                                        uint64_t timeout_ms, int critical,
                                        clink_health_check_fn fn, void *ud);
/* Changes a check's interval and timeout (built-ins too); UV_ENOENT. */
CLINK_EXTERN int clink_health_set_check_schedule(clink_health *h, const char *name,
                                                 uint64_t interval_ms, uint64_t timeout_ms);
/* Makes a check critical or not (built-ins too); UV_ENOENT. */
CLINK_EXTERN int clink_health_set_check_critical(clink_health *h, const char *name,
                                                 int critical);
/* Removes a check (built-ins too); a run it has out is answered in vain
 * (clink_health_check_done() returns UV_ECANCELED). UV_ENOENT. */
CLINK_EXTERN int clink_health_remove_check(clink_health *h, const char *name);
/* Starts the named check (NULL: every check) from the loop, soon, unless a
 * run of it is out. UV_ENOENT. */
CLINK_EXTERN int clink_health_run_checks(clink_health *h, const char *name);
/* The check a run belongs to (valid until the run is answered). */
CLINK_EXTERN const char *clink_health_check_name(const clink_health_check *run);
/* Answers a run, exactly once; the run is freed. observed_value and
 * observed_unit (may be NULL; e.g. "ms", "percent") and message (may be
 * NULL) are copied. Returns 0; UV_ETIMEDOUT when the run had timed out
 * already (the answer is ignored); UV_ECANCELED when the check was removed;
 * CLINK_ECLOSING when the monitor closed; UV_EINVAL for a status other than
 * PASS, WARN or FAIL (the run is then still open). */
CLINK_EXTERN int clink_health_check_done(clink_health_check *run, clink_check_status status,
                                         double observed_value, const char *observed_unit,
                                         const char *message);

/* Attachments: borrowed, read through their public read-outs when sampled
 * and when a snapshot is taken. Detach each before it is freed (a client in
 * its close callback, a pool before its shutdown callback returns).
 * UV_EEXIST when attached already. */
/* A pool: its stats, and each member as a session (see attach_client). */
CLINK_EXTERN int clink_health_attach_pool(clink_health *h, clink_pool *pool);
/* A client as a session: metrics, state, session id, its CLI's RSS and CPU. */
CLINK_EXTERN int clink_health_attach_client(clink_health *h, clink_client *client);
/* Every breaker of the registry (stability.circuit_breakers). */
CLINK_EXTERN int clink_health_attach_breakers(clink_health *h, clink_breaker_registry *reg);
/* The outbox's pending, in flight, delivered, dead and oldest pending age. */
CLINK_EXTERN int clink_health_attach_outbox(clink_health *h, clink_outbox *ob);
/* The fallback_stats section from a fallback registry (borrowed: it must
 * outlive the monitor or be detached with NULL): every operation's
 * total_calls, primary_success, fallback_used, cache_hits. Replaces any
 * provider set below. */
CLINK_EXTERN int clink_health_attach_fallbacks(clink_health *h, clink_fallback_registry *reg);
/* The fallback_stats section comes from fn (NULL: none), for fallbacks of the
 * host's own; it replaces an attached registry. A provider reports each
 * operation:
 *   static void provide(clink_health_fallbacks *out, void *ud) {
 *     clink_health_fallback_op op = {sizeof(op), calls, primary_ok, used, hits};
 *     clink_health_fallbacks_add(out, "chat", &op);
 *   } */
CLINK_EXTERN int clink_health_set_fallback_provider(clink_health *h, clink_health_fallback_fn fn,
                                                    void *ud);
/* Removes any attachment of object (pool, client, registry, outbox).
 * UV_ENOENT when it was not attached. */
CLINK_EXTERN int clink_health_detach(clink_health *h, const void *object);

/* One fallback operation's figures, in the seed's names. */
typedef struct clink_health_fallback_op {
  size_t struct_size;
  uint64_t total_calls;     /* calls of the operation */
  uint64_t primary_success; /* answered by the primary path */
  uint64_t fallback_used;   /* answered by a fallback */
  uint64_t cache_hits;      /* of those, from the fallback cache */
} clink_health_fallback_op;
/* Reports one operation (operation copied, at most 63 bytes kept). UV_EINVAL,
 * UV_ENOMEM. */
CLINK_EXTERN int clink_health_fallbacks_add(clink_health_fallbacks *out, const char *operation,
                                            const clink_health_fallback_op *op);

/* The request meter: a server calls begin when a request arrives and end
 * when it is answered (failed: nonzero for an error, e.g. a 5xx). They feed
 * performance.requests_total, requests_in_progress, errors_total and
 * error_rate, and a latency histogram. Increments: no allocation, no lock. */
/* A request arrived (requests_total and requests_in_progress go up). */
CLINK_EXTERN void clink_health_request_begin(clink_health *h);
/* It was answered after duration_us; failed nonzero counts an error. */
CLINK_EXTERN void clink_health_request_end(clink_health *h, int failed, uint64_t duration_us);

/* The verdict from the checks' latest answers. */
CLINK_EXTERN clink_health_status clink_health_get_status(const clink_health *h);

/* An empty snapshot, to fill with clink_health_snapshot_take() as often as
 * needed (its memory is reused). */
CLINK_EXTERN int clink_health_snapshot_new(clink_health_snapshot **out);
/* Frees a snapshot (NULL is a no-op). */
CLINK_EXTERN void clink_health_snapshot_free(clink_health_snapshot *snap);
/* Takes every figure at once: plain data afterwards, independent of the
 * monitor (render it any number of ways, later, elsewhere). Reads no file:
 * process and system figures are those of the latest sample. UV_ENOMEM.
 * The seed's fields as filled here: sessions.active_count counts attached
 * sessions (clients, pool members) connecting, connected or recovering;
 * total_created the pools' created plus the clients ever attached;
 * active_sessions the ids of the connected ones (a CLI reports its id with
 * its first turn); session_configs the spawn profiles in use (pools and
 * clients attached); performance comes from the request meter, error_rate
 * in percent; claude_sdk from the claude_sdk check ("connected",
 * "degraded", "disconnected"; "unknown" and last_check null before it
 * answered). Counters the monitor adds up (turns, session errors,
 * reconnection attempts, turn and connect time histograms) are read from
 * the sessions' metrics at every sample and snapshot: a session's last
 * changes before it is closed or detached may be missed. */
CLINK_EXTERN int clink_health_snapshot_take(clink_health *h, clink_health_snapshot *snap);
/* The verdict in the snapshot. */
CLINK_EXTERN clink_health_status clink_health_snapshot_status(const clink_health_snapshot *snap);
/* How many checks the snapshot holds. */
CLINK_EXTERN size_t clink_health_snapshot_check_count(const clink_health_snapshot *snap);
/* The i-th check: name (valid as long as the snapshot), status and critical
 * flag (each out-param may be NULL). UV_EINVAL past the count. */
CLINK_EXTERN int clink_health_snapshot_check(const clink_health_snapshot *snap, size_t i,
                                             const char **name, clink_check_status *status,
                                             int *critical);
/* Renders into the caller's buffer: 0 and *len (the bytes written, a NUL
 * follows), or UV_ENOBUFS and *len the size needed (NUL excluded). No global
 * state; timestamps are ISO 8601 UTC. */
CLINK_EXTERN int clink_health_render(const clink_health_snapshot *snap,
                                     clink_health_format format, char *buf, size_t cap,
                                     size_t *len);
/* Renders into a buffer the caller frees with clink_free(); len may be NULL. */
CLINK_EXTERN int clink_health_render_alloc(const clink_health_snapshot *snap,
                                           clink_health_format format, char **out,
                                           size_t *len);
/* The HTTP Content-Type of a rendering ("application/json",
 * "application/health+json", "text/plain; version=0.0.4; charset=utf-8"...). */
CLINK_EXTERN const char *clink_health_format_content_type(clink_health_format format);

/* A session's health as the course's per-connection monitor computes it,
 * from clink_client_get_metrics() and /proc/<pid>. */
typedef struct clink_session_health {
  size_t struct_size;
  uint64_t uptime_ms;         /* since connected */
  uint64_t messages;          /* stream-json lines in and out */
  uint64_t errors;            /* errors reported by the client */
  double throughput;          /* messages per second of uptime */
  double error_rate;          /* errors / max(messages, 1), a fraction */
  clink_grade error_rate_grade; /* < 1 % Excellent, < 5 % Good, else Poor */
  clink_grade throughput_grade; /* > 10/s Excellent, > 5/s Good, else Poor */
  clink_grade stability_grade;  /* up > 1 h Excellent, > 10 min Good, else Starting */
  int pid;                      /* the CLI's, 0 when none runs */
  uint64_t rss_bytes, vms_bytes; /* the CLI's memory, 0 when unknown */
  double cpu_seconds;           /* the CLI's user + system time */
} clink_session_health;
/* Reads one client (out->struct_size must be set by the caller). Reads
 * /proc/<pid> (a small file read). */
CLINK_EXTERN int clink_session_health_get(const clink_client *client, clink_session_health *out);
/* The course's text report ("CONNECTION HEALTH REPORT", uptime, messages,
 * errors, throughput, the three grades), into the caller's buffer as
 * clink_health_render() does. */
CLINK_EXTERN int clink_session_health_report(const clink_session_health *sh, char *buf,
                                             size_t cap, size_t *len);

/* Stops checking and sampling; runs out are answered in vain
 * (CLINK_ECLOSING); waits for the claude_sdk probe in flight (its temporary
 * CLI is closed, a pinged pool member released when its ping ends). cb
 * runs once, from the loop; the monitor is freed after it returns. Legal
 * from any callback, a check's included. UV_EBUSY on a second call. */
CLINK_EXTERN int clink_health_close(clink_health *h, clink_health_close_cb cb, void *ud);
/* -------------------------------------------------------------- fallback */

/* What to answer when a call fails: one clink_fallback per operation
 * ("chat", "create_session", or the host's own names) holds an ordered chain
 * of strategies, each with the failure classes it handles (the seed's
 * "Sistema de Fallbacks"). clink_ask() and clink_execute_with_fallback() walk
 * the chain after the primary path (breaker, retries) gave up: the first step
 * that handles the failure and answers wins; the others are skipped.
 *
 * A fallback is pure configuration plus its cache and statistics: it has no
 * loop, may serve calls on one loop at a time, and must outlive the calls that
 * use it (like the pools, breakers and outbox its steps name, which it
 * borrows). Statistics and events use the seed's names (component
 * "fallback_system"). */

/* Why a call failed. One class per failure; the chain's steps handle sets of
 * them (bit masks). */
typedef enum clink_failure_class {
  CLINK_FAILURE_NONE = 0,              /* success, or UV_ECANCELED: never falls back */
  CLINK_FAILURE_CIRCUIT_OPEN = 1 << 0, /* CLINK_ECIRCUIT_OPEN (the call's or the pool's breaker) */
  CLINK_FAILURE_POOL_TIMEOUT = 1 << 1, /* CLINK_EPOOL_TIMEOUT, CLINK_EQUEUE_FULL: no member in time */
  CLINK_FAILURE_PROCESS = 1 << 2,      /* spawn failure or process death: CLINK_ESPAWN,
                                        * CLINK_EEXITED, CLINK_EINIT_TIMEOUT, UV_EPIPE, ... */
  CLINK_FAILURE_STALLED = 1 << 3,      /* CLINK_ETURN_STALLED, CLINK_ECONTROL_TIMEOUT */
  CLINK_FAILURE_API_RETRYABLE = 1 << 4, /* a failed turn with API status 429, 500-599, 529 */
  CLINK_FAILURE_API_REJECTED = 1 << 5, /* a failed turn with any other API status (400 invalid
                                        * request, 401/403 authentication, 404, 413): the
                                        * configuration or the request is wrong */
  CLINK_FAILURE_CONTEXT_OVERFLOW = 1 << 6, /* the prompt does not fit the model's context
                                            * (terminal_reason "prompt_too_long", or a 400/413
                                            * saying so) */
  CLINK_FAILURE_TURN = 1 << 7,         /* a failed turn without API status (error_max_turns,
                                        * error_during_execution), CLINK_EINTERRUPTED */
  CLINK_FAILURE_DEADLINE = 1 << 8,     /* the call's own deadline passed (UV_ETIMEDOUT) */
  CLINK_FAILURE_CONFIG = 1 << 9,       /* CLINK_ECLI_NOT_FOUND, CLINK_ECLI_EXEC_DENIED,
                                        * UV_EINVAL, UV_EACCES, UV_EPERM, UV_ENOENT */
  CLINK_FAILURE_OTHER = 1 << 10        /* anything else (UV_ENOMEM, CLINK_ECLOSING, ...) */
} clink_failure_class;
/* The classes a step handles unless told otherwise: outages that an older or
 * substitute answer can paper over. Never API_REJECTED or CONFIG (a mock must
 * never hide a configuration error), nor CONTEXT_OVERFLOW (opt a step with a
 * larger-context profile in with clink_fallback_set_step_failures()). */
#define CLINK_FAILURE_DEFAULT                                                  \
  (CLINK_FAILURE_CIRCUIT_OPEN | CLINK_FAILURE_POOL_TIMEOUT | CLINK_FAILURE_PROCESS | \
   CLINK_FAILURE_STALLED | CLINK_FAILURE_API_RETRYABLE | CLINK_FAILURE_DEADLINE)
#define CLINK_FAILURE_ALL 0x7ff
/* Room for classes in clink_fallback_stats (indexed by bit number). */
#define CLINK_FAILURE_CLASS_SLOTS 16

/* The class of a failure: err is the call's error, result the failed turn's
 * result message (may be NULL; it refines CLINK_ETURN_FAILED by its
 * api_error_status and terminal_reason). 0 and UV_ECANCELED give
 * CLINK_FAILURE_NONE. Pure; never allocates. */
CLINK_EXTERN clink_failure_class clink_failure_classify(int err, const clink_msg *result);
/* "circuit_open", "pool_timeout", "process", "stalled", "api_retryable",
 * "api_rejected", "context_overflow", "turn_failed", "deadline", "config",
 * "other", "none"; "unknown" for anything that is not one class. */
CLINK_EXTERN const char *clink_failure_class_name(clink_failure_class klass);

/* The five strategies of the seed, in its names. */
typedef enum clink_fallback_strategy {
  CLINK_FALLBACK_CACHED_RESPONSE = 0,     /* an earlier answer to the same request */
  CLINK_FALLBACK_MOCK_RESPONSE = 1,       /* a configured answer, or a host function's */
  CLINK_FALLBACK_DEGRADED_SERVICE = 2,    /* one attempt on a degraded profile, or a host function */
  CLINK_FALLBACK_QUEUE_FOR_RETRY = 3,     /* handed to the durable outbox: "queued" */
  CLINK_FALLBACK_ALTERNATIVE_PROVIDER = 4 /* one attempt on another provider's pool */
} clink_fallback_strategy;
/* Room for strategies in clink_fallback_stats. */
#define CLINK_FALLBACK_STRATEGY_SLOTS 8
/* "cached_response", "mock_response", "degraded_service", "queue_for_retry",
 * "alternative_provider"; "unknown" outside the enum. */
CLINK_EXTERN const char *clink_fallback_strategy_name(clink_fallback_strategy s);

/* Where an answer came from. */
typedef enum clink_source {
  CLINK_SOURCE_NONE = 0,       /* no answer (the call failed) */
  CLINK_SOURCE_PRIMARY = 1,    /* the turn on the call's own pool */
  CLINK_SOURCE_CACHE = 2,      /* CACHED_RESPONSE */
  CLINK_SOURCE_MOCK = 3,       /* MOCK_RESPONSE */
  CLINK_SOURCE_DEGRADED = 4,   /* DEGRADED_SERVICE */
  CLINK_SOURCE_QUEUED = 5,     /* QUEUE_FOR_RETRY: the answer is "queued" */
  CLINK_SOURCE_ALTERNATIVE = 6 /* ALTERNATIVE_PROVIDER */
} clink_source;
/* "none", "primary", "cache", "mock", "degraded", "queued", "alternative";
 * "unknown" outside the enum. */
CLINK_EXTERN const char *clink_source_name(clink_source source);

/* Defaults. */
#define CLINK_FALLBACK_CHAT_CACHE_TTL_MS 180000    /* the seed's chat: cache (180 s) */
#define CLINK_FALLBACK_DEFAULT_CACHE_TTL_MS 300000 /* create_session and host operations */
#define CLINK_FALLBACK_DEFAULT_CACHE_ENTRIES 1024
#define CLINK_FALLBACK_DEFAULT_CACHE_BYTES ((size_t)16 << 20)
#define CLINK_FALLBACK_DEFAULT_MOCK_TEXT                                       \
  "The assistant is temporarily unavailable. Please try again in a few moments."

/* A fallback for operation (copied; at most 127 bytes) with an empty chain
 * and an empty cache (bounded by the CLINK_FALLBACK_DEFAULT_CACHE_* limits).
 * Free it with clink_fallback_free(). */
CLINK_EXTERN int clink_fallback_new(clink_fallback **out, const char *operation);
/* The seed's chains in one call: "chat" = cached response (TTL 180 s) ->
 * mock response; "create_session" = cached response (TTL 300 s) -> mock
 * response; both mocks answer CLINK_FALLBACK_DEFAULT_MOCK_TEXT and every step
 * handles CLINK_FAILURE_DEFAULT. UV_EINVAL for any other name. */
CLINK_EXTERN int clink_fallback_new_seed(clink_fallback **out, const char *operation);
/* Frees the fallback, its cache and its statistics (NULL is a no-op). Calls
 * still using it keep it until the last of them ends (their callbacks may
 * free it, or the registry holding it). */
CLINK_EXTERN void clink_fallback_free(clink_fallback *fb);
/* The operation name (lives as long as the fallback). */
CLINK_EXTERN const char *clink_fallback_operation(const clink_fallback *fb);

/* Steps are appended to the chain; each returns the new step's index (>= 0)
 * or a negative error. A step handles CLINK_FAILURE_DEFAULT until
 * clink_fallback_set_step_failures() says otherwise. At most 16 steps
 * (UV_E2BIG past that). */

/* CACHED_RESPONSE: every primary success stores its answer, keyed by the
 * operation, the spawn profile's identity, the conversation (none, or the
 * call's session id) and the prompt with its whitespace collapsed and
 * trimmed. An answer is fresh for ttl_ms and may still be served, marked
 * stale, for stale_if_error_ms more (RFC 5861 stale-if-error); after that it
 * is gone. ttl_ms 0 or CLINK_NEVER: no expiry. Storing uses the first cached
 * step of the chain. The cache is bounded in entries and in bytes (see
 * clink_fallback_set_cache_limits()), least recently used first out. */
CLINK_EXTERN int clink_fallback_add_cached(clink_fallback *fb, uint64_t ttl_ms,
                                           uint64_t stale_if_error_ms);
/* MOCK_RESPONSE with a fixed text (copied; NULL: CLINK_FALLBACK_DEFAULT_MOCK_TEXT). */
CLINK_EXTERN int clink_fallback_add_mock(clink_fallback *fb, const char *text);

/* A host strategy: called from the loop (never inside the call that caused
 * it) with a reply to finish exactly once with clink_fallback_reply_done(),
 * inside the function or later. It may call any function of the library. */
typedef void (*clink_fallback_fn)(clink_fallback_reply *reply, void *ud);
/* MOCK_RESPONSE answered by fn. */
CLINK_EXTERN int clink_fallback_add_mock_fn(clink_fallback *fb, clink_fallback_fn fn, void *ud);
/* DEGRADED_SERVICE: one attempt (no retry) on pool, a degraded profile the
 * host made for it (a smaller model, no tools, one turn...), through that
 * pool's breaker. The pool is borrowed. Its turn's messages stream like the
 * primary's. */
CLINK_EXTERN int clink_fallback_add_degraded(clink_fallback *fb, clink_pool *pool);
/* DEGRADED_SERVICE answered by fn. */
CLINK_EXTERN int clink_fallback_add_degraded_fn(clink_fallback *fb, clink_fallback_fn fn,
                                                void *ud);
/* QUEUE_FOR_RETRY: the request (prompt, operation, session id) is enqueued in
 * ob (borrowed) and the call answers "queued" once the outbox made it durable;
 * clink_ask_queued_id() is the message's id. A call cancelled after the hand-
 * over does not withdraw the message. */
CLINK_EXTERN int clink_fallback_add_queue(clink_fallback *fb, clink_outbox *ob);
/* ALTERNATIVE_PROVIDER: one attempt (no retry) on pool (borrowed), another
 * provider's spawn profile: another model, CLI path, or backend through the
 * environment (ANTHROPIC_BASE_URL, CLAUDE_CODE_USE_BEDROCK,
 * CLAUDE_CODE_USE_VERTEX). The attempt goes through breaker (borrowed; NULL:
 * the pool's own). Its turn's messages stream like the primary's. The
 * alternative starts a new conversation (the session id is not passed on). */
CLINK_EXTERN int clink_fallback_add_alternative(clink_fallback *fb, clink_pool *pool,
                                                clink_breaker *breaker);
/* Which failure classes step handles (a mask of clink_failure_class; 0: the
 * step is off). UV_EINVAL for an unknown step or bits. */
CLINK_EXTERN int clink_fallback_set_step_failures(clink_fallback *fb, size_t step,
                                                  unsigned int classes);
/* The chain, for reports. */
CLINK_EXTERN size_t clink_fallback_step_count(const clink_fallback *fb);
/* The strategy of step i, or UV_EINVAL when there is none. */
CLINK_EXTERN int clink_fallback_step_strategy(const clink_fallback *fb, size_t i);

/* Cache bounds: at most max_entries answers (1..INT_MAX) and max_bytes bytes
 * (each entry counts its key, its answer and about 100 bytes of bookkeeping);
 * the least recently used go first. Shrinking evicts at once. An answer that
 * alone exceeds max_bytes is not stored. */
CLINK_EXTERN int clink_fallback_set_cache_limits(clink_fallback *fb, size_t max_entries,
                                                 size_t max_bytes);
/* Empties the cache (the seed's POST /health/fallback-cache/clear): returns
 * how many answers were dropped. Calls holding an answer keep it. */
CLINK_EXTERN int clink_fallback_clear_cache(clink_fallback *fb);
/* Events go to sink (borrowed; NULL: none), component "fallback_system":
 * fallback_used (WARNING: operation, strategy, source, error, failure_class,
 * primary_attempts), cache_hit (INFO: operation, age_ms, stale), cache_miss
 * (INFO: operation), fallback_exhausted (ERROR: operation, error,
 * failure_class, steps_tried), fallback_skipped (WARNING: a failure no step
 * handles, e.g. a 400: operation, error, failure_class, api_error_status),
 * fallback_cache_cleared (INFO: operation, cleared). A call's own sink
 * (clink_ask_options_set_events()) is used instead when set. */
CLINK_EXTERN void clink_fallback_set_events(clink_fallback *fb, clink_events *sink);

/* Statistics in the seed's names (fallback_stats.operations.<name>). */
typedef struct clink_fallback_stats {
  size_t struct_size;
  uint64_t total_calls;     /* calls through this fallback, ended */
  uint64_t primary_success; /* answered by the primary path */
  uint64_t fallback_used;   /* answered by a step of the chain */
  uint64_t fallback_by_strategy[CLINK_FALLBACK_STRATEGY_SLOTS]; /* of those, by strategy */
  uint64_t cache_hits, cache_misses; /* cached steps tried */
  uint64_t failures;        /* ended without an answer (cancellations not counted) */
  uint64_t failed_fast;     /* of those: no step handles their class (e.g. a 400) */
  uint64_t exhausted;       /* of those: steps were tried, none answered */
  uint64_t cancelled;       /* ended by clink_ask_cancel() / clink_exec_cancel() */
  uint64_t failures_by_class[CLINK_FAILURE_CLASS_SLOTS]; /* primary failures by class bit */
  uint64_t cache_entries, cache_bytes; /* held now */
  uint64_t cache_evictions;            /* dropped for the bounds */
  uint64_t cache_expired;              /* dropped past ttl + stale-if-error */
} clink_fallback_stats;
/* out->struct_size must be set by the caller; only the fields that fit are
 * written. */
CLINK_EXTERN int clink_fallback_get_stats(const clink_fallback *fb, clink_fallback_stats *out);

/* What a host strategy is asked (borrowed until clink_fallback_reply_done()). */
CLINK_EXTERN const char *clink_fallback_reply_operation(const clink_fallback_reply *reply);
/* The prompt (clink_ask()) or the request (clink_execute_with_fallback()). */
CLINK_EXTERN const char *clink_fallback_reply_prompt(const clink_fallback_reply *reply);
/* The call's session id; NULL for none. */
CLINK_EXTERN const char *clink_fallback_reply_session_id(const clink_fallback_reply *reply);
/* The failure being handled, and its class. */
CLINK_EXTERN int clink_fallback_reply_error(const clink_fallback_reply *reply);
CLINK_EXTERN clink_failure_class clink_fallback_reply_failure(const clink_fallback_reply *reply);
/* The strategy the reply is for (MOCK_RESPONSE or DEGRADED_SERVICE). */
CLINK_EXTERN clink_fallback_strategy clink_fallback_reply_strategy(
    const clink_fallback_reply *reply);
/* Finishes the reply, exactly once; it is freed. status 0 answers the call
 * with text (copied; NULL counts as ""); a negative status means this step
 * has no answer and the chain goes on. The call continues from the loop,
 * never inside this function. A reply for a call that ended meanwhile
 * (deadline, cancel) is only freed. UV_EINVAL for NULL. */
CLINK_EXTERN int clink_fallback_reply_done(clink_fallback_reply *reply, int status,
                                           const char *text);

/* Fallbacks by operation, for hosts and health reports. A new registry holds
 * the seed's two: "chat" and "create_session" (clink_fallback_new_seed()). */
CLINK_EXTERN int clink_fallback_registry_new(clink_fallback_registry **out);
/* Frees the registry and every fallback in it (NULL is a no-op); a fallback
 * that calls still use goes when the last of them ends. */
CLINK_EXTERN void clink_fallback_registry_free(clink_fallback_registry *reg);
/* Adds an empty fallback for operation (UV_EEXIST if the name is taken);
 * *out (may be NULL) is the registry's, freed with it. */
CLINK_EXTERN int clink_fallback_registry_add(clink_fallback_registry *reg, const char *operation,
                                             clink_fallback **out);
/* Removes and frees the operation's fallback (e.g. the seed's "chat", to
 * add one with a chain of the host's own), as clink_fallback_free(): calls
 * using it keep it until they end. UV_ENOENT when absent. */
CLINK_EXTERN int clink_fallback_registry_remove(clink_fallback_registry *reg,
                                                const char *operation);
/* NULL when absent. */
CLINK_EXTERN clink_fallback *clink_fallback_registry_get(const clink_fallback_registry *reg,
                                                         const char *operation);
/* How many fallbacks the registry holds. */
CLINK_EXTERN size_t clink_fallback_registry_count(const clink_fallback_registry *reg);
/* The i-th fallback in registration order (NULL past the end): with
 * clink_fallback_operation() and clink_fallback_get_stats(), the seed's
 * fallback_stats{operations{name:{total_calls, primary_success,
 * fallback_used, cache_hits}}}. */
CLINK_EXTERN clink_fallback *clink_fallback_registry_at(const clink_fallback_registry *reg,
                                                        size_t i);
/* Every fallback of the registry, now and added later, reports to sink. */
CLINK_EXTERN void clink_fallback_registry_set_events(clink_fallback_registry *reg,
                                                     clink_events *sink);
/* Empties every fallback's cache; returns how many answers were dropped. */
CLINK_EXTERN int clink_fallback_registry_clear_cache(clink_fallback_registry *reg);

/* ------------------------------------------------------------------- ask */

/* One call for the common case, what the seed's service does for a chat
 * request: acquire a member of pool (the one holding session_id when given),
 * run one turn with prompt, collect the answer (the assistant text blocks
 * joined; else the result's text), release the member; under a breaker (the
 * pool's, or the options') and a retry policy; then, when the primary path
 * gave up, down the fallback's chain. It completes exactly once.
 *
 * Retries: process death or spawn failure, a stalled turn and a retryable API
 * status (429, 5xx, 529) are retried with the policy's backoff; an open
 * circuit, a pool timeout and everything else go straight to the chain (an
 * open circuit means: do not call now). A retry delay that would end past
 * the deadline is not waited for. Breaker verdicts: failures of the classes
 * retried count as errors; a turn the API rejected (400...) counts as a
 * success of the dependency; a cancelled attempt counts nothing.
 *
 * Deadline: when it passes, the running attempt is abandoned (its turn is
 * interrupted; the member goes back to the pool once the turn ended) and the
 * failure is CLINK_FAILURE_DEADLINE; from then on only the steps that answer
 * from memory run (a cached answer, a fixed mock).
 *
 * Every callback runs from the loop, never inside clink_ask() or
 * clink_ask_cancel(), and may call any function of the library, including
 * clink_ask_cancel() on its own call (from the message callback) and
 * clink_pool_shutdown(). The pool, the fallback and everything they name
 * must outlive the call. */

/* The call ended: status 0 with an answer (see clink_ask_source() for where
 * it came from), or: the primary failure when no step of the chain handles
 * its class, or there is no fallback (e.g. CLINK_ETURN_FAILED for a 400:
 * clink_ask_result() has the api_error_status); CLINK_ENO_FALLBACK when the
 * chain was tried and nothing answered (clink_ask_primary_error() says what
 * failed); UV_ECANCELED. ask and everything read from it are valid until the
 * callback returns; the call is freed after. */
typedef void (*clink_ask_cb)(clink_ask_call *ask, int status, void *ud);
/* A message of the call, as it arrives (borrowed until return): every
 * message of the primary turns (a retry's follow a failed attempt's: see
 * clink_ask_attempts()) and of DEGRADED_SERVICE / ALTERNATIVE_PROVIDER pool
 * turns (clink_ask_source() tells which is running); the other sources
 * deliver one synthesized assistant message holding the answer as one text
 * block (model "<fallback:SOURCE>", and a top-level "fallback": SOURCE
 * member, SOURCE as clink_source_name()), just before the completion. */
typedef void (*clink_ask_message_cb)(clink_ask_call *ask, const clink_msg *msg, void *ud);

/* Options for calls (copied by clink_ask(); reusable). Defaults: the seed's
 * retry schedule (clink_retry_policy_new(): 1, 2, 5, 10, 30, 60 s), no
 * deadline, no fallback, no streaming, the pool's breaker, no sink of its
 * own, the profile identity derived from the pool's spawn profile. */
CLINK_EXTERN int clink_ask_options_new(clink_ask_options **out);
/* Frees options (NULL is a no-op); calls made with them are not affected. */
CLINK_EXTERN void clink_ask_options_free(clink_ask_options *opts);
/* The primary path's retry policy (copied); NULL: one attempt. */
CLINK_EXTERN int clink_ask_options_set_retry_policy(clink_ask_options *opts,
                                                    const clink_retry_policy *policy);
/* Time limit for the whole call, counted from clink_ask() (0 or CLINK_NEVER:
 * none). */
CLINK_EXTERN int clink_ask_options_set_deadline_ms(clink_ask_options *opts, uint64_t ms);
/* The operation's fallback (borrowed; NULL: none, failures are returned). */
CLINK_EXTERN int clink_ask_options_set_fallback(clink_ask_options *opts, clink_fallback *fb);
/* Streaming: cb gets every message as it arrives (NULL: off). It receives
 * the call's ud. */
CLINK_EXTERN int clink_ask_options_set_message_cb(clink_ask_options *opts,
                                                  clink_ask_message_cb cb);
/* The breaker of the primary turns (borrowed); NULL: the pool's
 * (clink_pool_set_breaker()), or none. A permit is taken once a member is in
 * hand, so it never competes with the pool's own spawn permits. */
CLINK_EXTERN int clink_ask_options_set_breaker(clink_ask_options *opts, clink_breaker *breaker);
/* The call's event sink (borrowed; NULL: the fallback's). */
CLINK_EXTERN int clink_ask_options_set_events(clink_ask_options *opts, clink_events *sink);
/* The spawn profile's identity in cache keys (copied, at most 127 bytes;
 * NULL: a 64-bit hash of the pool's spawn profile, the same in every process
 * for the same options). Name it when two pools must share answers, or when
 * the cache is shared between hosts. */
CLINK_EXTERN int clink_ask_options_set_profile_key(clink_ask_options *opts, const char *key);

/* Starts a call. session_id (NULL: any member) asks for the member holding
 * that conversation (see clink_pool_acquire()); prompt and session_id are
 * copied; opts may be NULL (the defaults). *out (may be NULL) is the call,
 * for clink_ask_cancel(), valid until cb returns. UV_EINVAL, UV_ENOMEM. */
CLINK_EXTERN int clink_ask(clink_ask_call **out, clink_pool *pool, const char *session_id,
                           const char *prompt, const clink_ask_options *opts, clink_ask_cb cb,
                           void *ud);
/* Ends the call with UV_ECANCELED (cb runs from the loop, once). A running
 * turn is interrupted and its member released when the turn ended. UV_EBUSY
 * when the call already ended or was cancelled. */
CLINK_EXTERN int clink_ask_cancel(clink_ask_call *ask);

/* Read-outs, valid in the callbacks. */
/* The answer (NUL-terminated; *len may be NULL); "" when there is none. */
CLINK_EXTERN const char *clink_ask_answer(const clink_ask_call *ask, size_t *len);
/* The result message of the turn that answered (primary, degraded or
 * alternative), else of the last failed primary turn (with its
 * api_error_status), else NULL. Borrowed for the callback. */
CLINK_EXTERN const clink_msg *clink_ask_result(const clink_ask_call *ask);
/* Where the answer came from (in the message callback: which turn runs). */
CLINK_EXTERN clink_source clink_ask_source(const clink_ask_call *ask);
/* Primary attempts started (1 for the first; 0 when none could start). */
CLINK_EXTERN unsigned int clink_ask_attempts(const clink_ask_call *ask);
/* Microseconds from clink_ask() to the completion (so far, before it). */
CLINK_EXTERN uint64_t clink_ask_latency_us(const clink_ask_call *ask);
/* The failure of the primary path (0 when it answered), and its class. */
CLINK_EXTERN int clink_ask_primary_error(const clink_ask_call *ask);
CLINK_EXTERN clink_failure_class clink_ask_failure(const clink_ask_call *ask);
/* Text of the primary failure: the failed result's text, or the client's
 * last error; "" when none. */
CLINK_EXTERN const char *clink_ask_error_text(const clink_ask_call *ask);
/* The outbox message id of a QUEUED answer; 0 otherwise. */
CLINK_EXTERN int64_t clink_ask_queued_id(const clink_ask_call *ask);
/* The CLI session id of the turn that answered (primary, or a degraded or
 * alternative pool's), to pass as session_id next time for the same
 * conversation (on that pool); NULL otherwise. */
CLINK_EXTERN const char *clink_ask_session_id(const clink_ask_call *ask);
/* For a CACHE answer: its age in ms, and whether it was stale (past its TTL,
 * inside the stale-if-error window). 0 otherwise. */
CLINK_EXTERN uint64_t clink_ask_cache_age_ms(const clink_ask_call *ask);
CLINK_EXTERN int clink_ask_cache_stale(const clink_ask_call *ask);

/* clink_execute() with an operation's fallback chain after it: the seed's
 * decorators together (breaker + retry + fallback), for operations other
 * than a turn on a pool (create_session, the host's own). request names
 * what op computes (copied): it is the cache key's prompt part (no profile,
 * no conversation), the queued message's prompt and what host strategies
 * see. Pool steps (DEGRADED_SERVICE with a pool, ALTERNATIVE_PROVIDER) do not
 * apply and are skipped. After a success the text given to
 * clink_exec_set_answer() is cached (when the chain has a cached step).
 * When the execution fails with a class a step handles, done gets status 0
 * and the step's answer (clink_exec_answer(), clink_exec_source()); when no
 * step handles it, the failure; when steps were tried and none answered,
 * CLINK_ENO_FALLBACK (clink_exec_last_error() says what failed). Once the
 * chain runs, clink_exec_cancel() returns UV_EBUSY. fb NULL: the same as
 * clink_execute(). */
CLINK_EXTERN int clink_execute_with_fallback(clink_exec **out, uv_loop_t *loop,
                                             clink_breaker *breaker,
                                             const clink_retry_policy *policy,
                                             clink_fallback *fb, const char *request,
                                             clink_exec_op op, clink_exec_cb done, void *ud);
/* The answer of the attempt about to succeed (copied): call it before
 * clink_exec_done(exec, 0, ...). Replaces an earlier one. UV_EINVAL outside
 * an attempt; a no-op for an execution without a fallback. */
CLINK_EXTERN int clink_exec_set_answer(clink_exec *exec, const char *text);
/* In done: the answer (the attempt's, or the fallback step's); "" when none. */
CLINK_EXTERN const char *clink_exec_answer(const clink_exec *exec, size_t *len);
/* In done: where the answer came from (CLINK_SOURCE_PRIMARY for op's own
 * success, CLINK_SOURCE_NONE for a failure; always NONE for an execution
 * without a fallback). */
CLINK_EXTERN clink_source clink_exec_source(const clink_exec *exec);

#ifdef __cplusplus
}
#endif

#endif /* CLAUDELINK_H */
