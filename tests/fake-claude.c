/*
 * fake-claude: a fast stand-in for the Claude Code CLI (`claude`) in its
 * SDK mode, for libclaudelink's tests and benchmarks.
 *
 * Invocation (what the library spawns):
 *   fake-claude --output-format stream-json --verbose --input-format stream-json [flags]
 * Flags are accepted as `--flag value` or `--flag=value`; unknown flags and
 * positional arguments are ignored. Used: --output-format, --verbose,
 * --model (default "claude-fake-1"), --permission-mode (default "default").
 * stream-json output without --verbose prints the real CLI's error
 *   "Error: When using --print, --output-format=stream-json requires --verbose"
 * on stderr and exits 1.
 *
 * Protocol (real-CLI semantics; shapes follow real-cli.md §3-§7):
 *   stdin is NDJSON. A line that is not valid JSON: stderr gets
 *   "Error parsing streaming input line: <line>", exit 1 (even mid-turn).
 *   Empty lines and unknown "type"s are ignored; "\r\n" endings are fine;
 *   a final line without '\n' before EOF is still processed.
 *   control_request initialize    -> success {commands,agents,output_style,
 *                                    available_output_styles,models,account,pid}
 *   control_request interrupt     -> success, no inner response; a running
 *                                    turn (see FAKE_MSG_DELAY_MS, FAKE_TOOL,
 *                                    FAKE_HOOK, FAKE_MCP, FAKE_UNKNOWN_REQUEST)
 *                                    ends with a user line "[Request interrupted
 *                                    by user]" and a result error_during_execution,
 *                                    is_error true, terminal_reason aborted_streaming
 *                                    (without those knobs a turn is written
 *                                    in one go, so an interrupt always comes
 *                                    after it and is only acknowledged)
 *   control_request set_permission_mode -> success {"mode":<mode>}
 *   control_request set_model     -> success {} (the new model shows up in
 *                                    later init/assistant lines; null or
 *                                    "default" restores the start-up model)
 *   other control_request         -> error "Unsupported control request subtype: <x>"
 *   control_response              -> answers the fake's pending request
 *                                    (can_use_tool, hook_callback, ...). Any
 *                                    other one goes to stderr and is ignored:
 *                                      "fake-claude: protocol violation: late
 *                                       response for cancelled request <id>"
 *                                    for a request the fake withdrew (see
 *                                    FAKE_CANCEL_PERMISSION), else
 *                                      "fake-claude: unexpected
 *                                       control_response for <id>"
 *   control_cancel_request, keep_alive -> ignored
 *   user                          -> one turn: system/init, FAKE_MSGS assistant
 *                                    lines, result. Turns run one after another;
 *                                    user lines that arrive during a turn queue.
 *   stdin EOF                     -> finish the running and queued turns, exit 0,
 *                                    or 1 if the last result had is_error true.
 *   SIGINT                        -> exit 0 at once, no result (as the real CLI).
 *   SIGTERM                       -> default action (dies by signal 15).
 *
 * Turn output in detail: session_id is one random UUID per process. Every
 * "uuid" field is UUID-shaped: a per-process random prefix plus a 48-bit
 * counter. All assistant lines of a turn's first batch share message.id
 * "msg_fake_<turn>". "result" is the text of the turn's last assistant text,
 * cut to at most 64 bytes (at a UTF-8 boundary; "" if there was none).
 * num_turns is 1, or 2 with FAKE_TOOL. With every turn knob set, one turn
 * is, in this order:
 *   init, garbage, texts, tool_use, can_use_tool, tool_result, "tool said",
 *   hook_callback, "hook said", mcp_message, "mcp said", no_such_thing
 *   request, "unknown said", API-error assistant, long line, result.
 * Each "... said" text is its own API message (message.id "msg_fake_<turn>"
 * plus 'b', 'h', 'm' or 'u').
 *
 * Knobs (environment variables, all optional; integers are decimal):
 *   FAKE_MSGS=N              assistant text messages per turn (default 1).
 *   FAKE_BYTES=B             text bytes per message, all 'x' (default 4).
 *   FAKE_ECHO=1              the first assistant text of each turn is the
 *                            prompt (message.content string, or the "text"
 *                            of its text blocks joined by '\n'), instead of
 *                            x's. Needs FAKE_MSGS >= 1.
 *   FAKE_ECHO_HISTORY=1      with FAKE_ECHO: the echo is every prompt this
 *                            process ran, joined by " | " (its context: a
 *                            test sees which conversation a process held).
 *   FAKE_MSG_DELAY_MS=MS     wait MS before each assistant text message.
 *                            stdin is served meanwhile: control requests are
 *                            answered, and an interrupt ends the turn. This
 *                            is the knob for interrupt and streaming tests.
 *   FAKE_CRASH_AFTER=K       in turn FAKE_CRASH_TURN, once K assistant text
 *                            messages are written (and flushed), crash:
 *                            raise FAKE_CRASH_SIGNAL=S if set (core dumps
 *                            off), else exit FAKE_CRASH_EXIT (default 3).
 *                            K=0 crashes right after system/init; K=N right
 *                            before the tool step/result; K>N never.
 *   FAKE_CRASH_TURN=T        turn that crashes, 1-based (default 1).
 *   FAKE_HANG_AFTER=K        like FAKE_CRASH_AFTER, but stop reading and
 *                            writing forever (pause()). SIGTERM still kills
 *                            unless FAKE_IGNORE_SIGTERM=1.
 *   FAKE_HANG_TURN=T         turn that hangs, 1-based (default 1).
 *   FAKE_CRASH_RANDOM=P      each turn crashes with probability P per mille
 *                            (0..1000), right after its system/init line
 *                            (flushed): half of the crashes exit 3, the
 *                            other half die by SIGKILL. For soak tests.
 *   FAKE_CRASH_SEED=S        seed of that draw (default: pid and time, so
 *                            every process differs).
 *   FAKE_GARBAGE=1           before the assistant texts of each turn emit:
 *                              "[SandboxDebug] not json\n"
 *                              "\xff\xfe\x00garbage\x01\x7f\x80\xc3\x28\n"
 *                                (invalid UTF-8 and an embedded NUL byte)
 *                              "\n"
 *                              "{\"type\":\"keep_alive\"}\r\n"
 *   FAKE_LONG_LINE=BYTES     before each result emit one line of exactly
 *                            BYTES bytes before the '\n' (or the 151-byte
 *                            minimum): {"type":"system","subtype":
 *                            "fake_long_line","session_id":..,"uuid":..,
 *                            "pad":"xxx..."}.
 *   FAKE_TOOL=1              after the texts: an assistant tool_use block
 *                            (Bash {"command":"touch x"}, id toolu_fake_...),
 *                            then control_request can_use_tool with a bare
 *                            UUID request_id, then wait for its
 *                            control_response. allow -> user tool_result
 *                            "ran", followed by " input=<updatedInput>" when
 *                            the answer's updatedInput (compact JSON)
 *                            differs from the tool's input, and by
 *                            " permissions=<updatedPermissions>" when the
 *                            answer has that member (the same text is the
 *                            tool_use_result's stdout);
 *                            deny -> tool_result with the deny message
 *                            (default "denied"), is_error true, plus a
 *                            permission_denials entry; an error response or
 *                            stdin EOF counts as a deny with the error text
 *                            or "Stream closed" (after EOF no request is
 *                            sent). Then an assistant text
 *                            "tool said: ran" / "tool said: denied", and the
 *                            result (still subtype success).
 *   FAKE_CANCEL_PERMISSION=1 (with FAKE_TOOL) right after can_use_tool send
 *                            {"type":"control_cancel_request","request_id":
 *                            <its id>} and, without waiting, count it as a
 *                            deny with the message "cancelled". An answer
 *                            that still arrives for it is reported on stderr
 *                            (see control_response above).
 *   FAKE_HOOK=1              after the tool step, send
 *                              {"type":"control_request","request_id":<uuid>,
 *                               "request":{"subtype":"hook_callback",
 *                               "callback_id":"hook_0","input":{"session_id",
 *                               "transcript_path","cwd","permission_mode",
 *                               "hook_event_name":"PreToolUse","tool_name":
 *                               "Bash","tool_input":{"command":"ls"},
 *                               "tool_use_id":"toolu_x"},"tool_use_id":
 *                               "toolu_x"}}
 *                            wait for its control_response, and report it in
 *                            an assistant text "hook said: <answer>": the
 *                            compact JSON of the response's inner "response"
 *                            ("null" if absent), or "error: <error text>"
 *                            ("error: Stream closed" at stdin EOF). An
 *                            interrupt while waiting ends the turn as above.
 *                            Also, at the first initialize of the process,
 *                            one stderr line "init-hooks: <compact JSON of
 *                            the request's hooks member, null if absent>".
 *   FAKE_MCP=1               the same with {"subtype":"mcp_message",
 *                            "server_name":"calc","message":{"jsonrpc":"2.0",
 *                            "id":7,"method":"tools/list"}}: "mcp said: ..."
 *   FAKE_UNKNOWN_REQUEST=1   the same with {"subtype":"no_such_thing"}:
 *                            "unknown said: ..."
 *   FAKE_STDERR_TURNS=1      write "turn <n>" to stderr as turn n (1-based)
 *                            starts. stdin lines are handled in order, so
 *                            once the host sees it, it has seen every stderr
 *                            line caused by what it wrote before that turn's
 *                            user line.
 *   FAKE_API_ERROR=STATUS    each turn ends the way the real CLI reports API
 *                            errors: a synthetic assistant line (model
 *                            "<synthetic>", "error":"server_error", text
 *                            "API Error: <STATUS> fake"), and a result with
 *                            subtype success, is_error true, api_error_status
 *                            STATUS. The FAKE_MSGS texts are still sent
 *                            first; use FAKE_MSGS=0 for the exact real shape.
 *                            A prompt "fail:STATUS" (text starting with
 *                            "fail:") ends its own turn that way (STATUS 500
 *                            when not a number), whatever FAKE_API_ERROR says.
 *   FAKE_FAIL_FILE=PATH      read PATH at the start of every turn (after the
 *                            prompt's own "fail:" check); when it exists its
 *                            first line decides the turn, so a test can make
 *                            the same prompt succeed and then fail, in every
 *                            process at once:
 *                              STATUS (a number)  the turn ends as an API
 *                                                 error STATUS (as FAKE_API_ERROR)
 *                              STATUS TEXT        the same, with the error text
 *                                                 "API Error: STATUS TEXT" instead
 *                                                 of "API Error: STATUS fake" (TEXT:
 *                                                 letters, digits, spaces and
 *                                                 .:,- only; up to 47 bytes), e.g.
 *                                                 "400 prompt is too long"
 *                              exit[:CODE]        exit CODE (default 3) right
 *                                                 after system/init (no result)
 *                              hang               stop reading and writing
 *                                                 right after system/init
 *                            anything else, or no file: a normal turn.
 *   FAKE_EXIT_AFTER_TURNS=T  exit 0 right after the result of turn T.
 *   FAKE_STDERR_FLOOD=BYTES  at start-up write BYTES bytes of 100-byte lines
 *                            to stderr (blocks until the host drains them).
 *   FAKE_STARTUP_DELAY_MS=MS sleep MS before reading stdin.
 *   FAKE_ALLOC_MB=N          at start-up allocate N MiB and write to every
 *                            page, so the process's RSS grows by about that
 *                            much (kept until exit): a CLI that grew.
 *   FAKE_INIT_DELAY_MS=MS    sleep MS before answering each initialize.
 *   FAKE_NO_CONTROL_RESPONSE=1  never answer control requests. They still
 *                            take effect (interrupt, set_model, ...).
 *   FAKE_IGNORE_SIGTERM=1    ignore SIGTERM (only SIGKILL ends it).
 *   FAKE_PRINT_ARGV=1        at start-up write two stderr lines:
 *                              argv: ["fake-claude","--output-format",...]
 *                              env: {"CLAUDE_CODE_ENTRYPOINT":..,
 *                                "CLAUDE_AGENT_SDK_VERSION":..,"CLAUDECODE":..,
 *                                "PWD":..}   (null when unset)
 *   FAKE_EXIT_IMMEDIATELY=CODE  exit CODE at start-up, before reading stdin.
 *   FAKE_RESUME_MISSING=1    with --resume=ID: write "No conversation found
 *                            with session ID: ID" on stderr and exit 1 at
 *                            start-up (the real CLI whose transcript is gone).
 *   FAKE_BENCH_LINES=L       transport benchmark: ignore stdin, write L lines
 *   FAKE_BENCH_LINE_BYTES=S  of exactly S bytes before each '\n' (default
 *                            300), then exit 0. Lines are compact assistant
 *                            lines {"type":"assistant","message":{"id",
 *                            "role","model","content":[text "xxx..."]},
 *                            "session_id","uuid"}, all identical, when S >=
 *                            211 + model name length (224 by default); below
 *                            that a space-padded {"type":"keep_alive"} or
 *                            {}. S >= 2. stdin is never read.
 *
 * Start-up order: SIGTERM/SIGINT set-up, FAKE_PRINT_ARGV, FAKE_STDERR_FLOOD,
 * FAKE_EXIT_IMMEDIATELY, the --verbose check, FAKE_BENCH_*,
 * FAKE_ALLOC_MB, FAKE_STARTUP_DELAY_MS, then the stdin loop.
 *
 * Performance: every output line is preformatted; the assistant text line is
 * built once per turn and copied into a 256 KiB buffer with only its uuid
 * counter patched, so output goes out in large write()s. When stdout is a
 * pipe or socket it is made non-blocking, and while a write would block the
 * fake keeps reading stdin into memory (as the real CLI, a node process,
 * does), so a host that writes a lot before reading cannot deadlock it.
 * Input is read with blocking read(); poll() is only used for the
 * configured delays and for that write back-pressure.
 *
 * Build: gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Werror \
 *            tests/fake-claude.c -lcjson -o fake-claude
 */

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OUT_CAP (256u * 1024u)
#define BENCH_BUF (1024u * 1024u)
#define IN_INITIAL (64u * 1024u)
#define UUID_LEN 36
#define UUID_PREFIX_LEN 24 /* "xxxxxxxx-xxxx-4xxx-8xxx-", then 12 hex digits */
#define RESULT_TEXT_MAX 64
#define FLOOD_LINE 100
#define DEFAULT_MODEL "claude-fake-1"

#define USAGE_MSG                                                            \
    "{\"input_tokens\":12,\"cache_creation_input_tokens\":0,"                \
    "\"cache_read_input_tokens\":0,\"output_tokens\":1,"                     \
    "\"service_tier\":\"standard\"}"
#define USAGE_RESULT(in, out)                                                \
    "{\"input_tokens\":" in ",\"cache_creation_input_tokens\":0,"            \
    "\"cache_read_input_tokens\":0,\"output_tokens\":" out ","               \
    "\"server_tool_use\":{\"web_search_requests\":0,"                        \
    "\"web_fetch_requests\":0},\"service_tier\":\"standard\","               \
    "\"cache_creation\":{\"ephemeral_1h_input_tokens\":0,"                   \
    "\"ephemeral_5m_input_tokens\":0},\"inference_geo\":\"\","               \
    "\"iterations\":[],\"speed\":\"standard\"}"

struct strbuf {
    char *p;
    size_t len, cap;
};

/* Per-turn bookkeeping; lives on run_turn()'s stack. */
struct turn {
    int64_t start_ns;
    const char *prompt;
    char msg_id[32];
    int num_turns;
    char *result_text;     /* last assistant text, already cut */
    struct strbuf denials; /* comma-separated permission_denials entries */
    long long api_error;   /* FAKE_API_ERROR, or the prompt's "fail:STATUS" */
    char api_error_text[48]; /* FAKE_FAIL_FILE's text; "" = "fake" */
};

enum wait_result { WAIT_DONE, WAIT_INTERRUPTED, WAIT_EOF };

/* Knobs and flags, read once at start-up. */
struct config {
    long long msgs, bytes, msg_delay_ms;
    long long crash_after, crash_turn, crash_exit, crash_signal;
    long long hang_after, hang_turn;
    long long long_line, stderr_flood, api_error, exit_after_turns;
    long long startup_delay_ms, init_delay_ms, exit_immediately;
    long long bench_lines, bench_line_bytes, alloc_mb;
    long long crash_random, crash_seed;
    bool echo, garbage, tool, ignore_sigterm, no_control_response;
    bool hook, mcp, cancel_permission, unknown_request, stderr_turns;
    bool print_argv, has_exit_immediately, bench, echo_history;
    bool stream_json_out, verbose;
    const char *model, *permission_mode;
    const char *fail_file;
};

/* The one static struct: knobs, session and I/O state. */
static struct {
    struct config cfg;

    char session_id[UUID_LEN + 1];
    char uuid_prefix[UUID_PREFIX_LEN + 1];
    uint64_t uuid_counter;
    char *model, *permission_mode;
    char cwd[PATH_MAX];
    long long turn;
    bool last_result_error;

    /* Turn in progress (for interrupt and can_use_tool routing). */
    bool in_turn, interrupted;
    const char *await_id;
    cJSON *await_response;

    /* Ids of our requests withdrawn with control_cancel_request: an answer
     * to one of them is a protocol violation. */
    char **cancelled;
    size_t n_cancelled;
    bool init_hooks_printed;

    /* Prompts of user lines not yet run, FIFO. */
    char **queue;
    size_t q_head, q_len, q_cap;

    /* stdin: bytes [in_start, in_end) are unconsumed; in_scan is where the
     * search for '\n' resumes, so long lines are not rescanned per read. */
    char *in;
    size_t in_start, in_end, in_scan, in_cap;
    bool in_eof;

    char *out;
    size_t out_len;
    bool drain_while_writing;
    char *grown; /* FAKE_ALLOC_MB */
    struct strbuf history; /* FAKE_ECHO_HISTORY */
} g;

/* ---------------------------------------------------------------- utils */

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...);
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("fake-claude: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void put_hex12(char *dst, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 11; i >= 0; i--, v >>= 4)
        dst[i] = hex[v & 15];
}

/* UUID-shaped id: random per-process prefix + counter, cheap to make. */
static void next_uuid(char dst[UUID_LEN + 1])
{
    memcpy(dst, g.uuid_prefix, UUID_PREFIX_LEN);
    put_hex12(dst + UUID_PREFIX_LEN, g.uuid_counter++);
    dst[UUID_LEN] = '\0';
}

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Longest prefix of s of at most max bytes that does not split a UTF-8
 * sequence, so the cut result text stays valid JSON string content. */
static char *utf8_prefix(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    char *r = xrealloc(NULL, n + 1);
    memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

/* ------------------------------------------------------------ strbuf */

static void sb_reserve(struct strbuf *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    sb->p = xrealloc(sb->p, cap);
    sb->cap = cap;
}

static void sb_add(struct strbuf *sb, const char *p, size_t n)
{
    sb_reserve(sb, n);
    memcpy(sb->p + sb->len, p, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void sb_str(struct strbuf *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

static void sb_fill(struct strbuf *sb, char c, size_t n)
{
    sb_reserve(sb, n);
    memset(sb->p + sb->len, c, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct strbuf *sb,
                                                            const char *fmt, ...);
static void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    /* Format into the free space; grow and redo only if it did not fit. */
    sb_reserve(sb, 256);
    size_t room = sb->cap - sb->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sb->p + sb->len, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("vsnprintf failed");
    if ((size_t)n >= room) {
        sb_reserve(sb, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    sb->len += (size_t)n;
}

/* Any cJSON value, compact; "null" when absent. */
static void sb_json_item(struct strbuf *sb, const cJSON *item)
{
    char *s = item ? cJSON_PrintUnformatted(item) : NULL;
    sb_str(sb, s ? s : "null");
    free(s);
}

/* A quoted, escaped JSON string (cJSON does the escaping). */
static void sb_json_string(struct strbuf *sb, const char *s)
{
    cJSON *item = s ? cJSON_CreateString(s) : NULL;
    sb_json_item(sb, item);
    cJSON_Delete(item);
}

static void sb_timestamp(struct strbuf *sb)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    sb_printf(sb, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"", tm.tm_year + 1900,
              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
              ts.tv_nsec / 1000000);
}

/* ------------------------------------------------------------- stdin */

/* One read() into the input buffer; sets in_eof at EOF or on error. */
static void in_fill(void)
{
    if (g.in_eof)
        return;
    if (g.in_start > 0 && (g.in_start == g.in_end || g.in_start > g.in_cap / 2)) {
        memmove(g.in, g.in + g.in_start, g.in_end - g.in_start);
        g.in_end -= g.in_start;
        g.in_scan -= g.in_start;
        g.in_start = 0;
    }
    if (g.in_cap - g.in_end < IN_INITIAL / 2) {
        g.in_cap = g.in_cap ? g.in_cap * 2 : IN_INITIAL;
        g.in = xrealloc(g.in, g.in_cap);
    }
    for (;;) {
        /* keep one byte free to NUL-terminate a final unterminated line */
        ssize_t n = read(STDIN_FILENO, g.in + g.in_end, g.in_cap - g.in_end - 1);
        if (n > 0) {
            g.in_end += (size_t)n;
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) { /* stdin shares stdout's O_NONBLOCK */
            struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
            poll(&p, 1, -1);
            continue;
        }
        g.in_eof = true;
        return;
    }
}

/* Next complete line from the buffer (NUL-terminated in place, valid until
 * the next in_fill), or the unterminated tail after EOF; NULL if none. */
static char *in_take_line(size_t *len)
{
    char *line = g.in + g.in_start;
    char *nl = g.in_end > g.in_scan ? memchr(g.in + g.in_scan, '\n', g.in_end - g.in_scan) : NULL;
    if (nl) {
        *len = (size_t)(nl - line);
        *nl = '\0';
        g.in_start = g.in_scan = (size_t)(nl - g.in) + 1;
        return line;
    }
    g.in_scan = g.in_end;
    if (g.in_eof && g.in_start < g.in_end) {
        *len = g.in_end - g.in_start;
        g.in[g.in_end] = '\0';
        g.in_start = g.in_scan = g.in_end;
        return line;
    }
    return NULL;
}

/* ------------------------------------------------------------ stdout */

/* Writes everything; while fd is full, keeps reading stdin (when enabled) so
 * a host blocked on writing to us can make progress and read our output. */
static void fd_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            bool drain = fd == STDOUT_FILENO && g.drain_while_writing && !g.in_eof;
            struct pollfd pf[2] = {{.fd = fd, .events = POLLOUT},
                                   {.fd = STDIN_FILENO, .events = POLLIN}};
            if (poll(pf, drain ? 2 : 1, -1) > 0 && drain && pf[1].revents)
                in_fill();
            continue;
        }
        exit(1); /* EPIPE with SIGPIPE ignored by our parent, EIO, ... */
    }
}

static void out_flush(void)
{
    fd_write_all(STDOUT_FILENO, g.out, g.out_len);
    g.out_len = 0;
}

static void out_add(const char *p, size_t n)
{
    if (g.out_len + n > OUT_CAP)
        out_flush();
    if (n > OUT_CAP) {
        fd_write_all(STDOUT_FILENO, p, n);
        return;
    }
    memcpy(g.out + g.out_len, p, n);
    g.out_len += n;
}

static void out_sb(struct strbuf *sb)
{
    out_add(sb->p, sb->len);
    free(sb->p);
    *sb = (struct strbuf){0};
}

static void out_fill(char c, size_t n)
{
    while (n > 0) {
        if (g.out_len == OUT_CAP)
            out_flush();
        size_t k = OUT_CAP - g.out_len < n ? OUT_CAP - g.out_len : n;
        memset(g.out + g.out_len, c, k);
        g.out_len += k;
        n -= k;
    }
}

/* Copies a preformatted line whose uuid's last 12 hex digits start at
 * uuid_tail, giving the copy a fresh uuid. The hot path of a turn. */
static void out_add_with_uuid(char *line, size_t n, size_t uuid_tail)
{
    uint64_t id = g.uuid_counter++;
    if (n > OUT_CAP) {
        put_hex12(line + uuid_tail, id);
        out_add(line, n);
        return;
    }
    if (g.out_len + n > OUT_CAP)
        out_flush();
    char *dst = g.out + g.out_len;
    memcpy(dst, line, n);
    put_hex12(dst + uuid_tail, id);
    g.out_len += n;
}

/* ------------------------------------------------- start-up and knobs */

static long long env_num(const char *name, long long def, long long min)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min)
        die("bad value for %s: '%s'", name, s);
    return v;
}

static bool env_flag(const char *name)
{
    return env_num(name, 0, LLONG_MIN) != 0;
}

static bool env_set(const char *name)
{
    const char *s = getenv(name);
    return s && *s;
}

static void load_knobs(void)
{
    struct config *c = &g.cfg;
    c->msgs = env_num("FAKE_MSGS", 1, 0);
    c->bytes = env_num("FAKE_BYTES", 4, 0);
    c->msg_delay_ms = env_num("FAKE_MSG_DELAY_MS", 0, 0);
    c->crash_after = env_num("FAKE_CRASH_AFTER", -1, 0);
    c->crash_turn = env_num("FAKE_CRASH_TURN", 1, 1);
    c->crash_exit = env_num("FAKE_CRASH_EXIT", 3, 0);
    c->crash_signal = env_num("FAKE_CRASH_SIGNAL", 0, 0);
    c->hang_after = env_num("FAKE_HANG_AFTER", -1, 0);
    c->hang_turn = env_num("FAKE_HANG_TURN", 1, 1);
    c->long_line = env_num("FAKE_LONG_LINE", 0, 0);
    c->stderr_flood = env_num("FAKE_STDERR_FLOOD", 0, 0);
    c->api_error = env_num("FAKE_API_ERROR", 0, 0);
    c->exit_after_turns = env_num("FAKE_EXIT_AFTER_TURNS", 0, 0);
    c->startup_delay_ms = env_num("FAKE_STARTUP_DELAY_MS", 0, 0);
    c->alloc_mb = env_num("FAKE_ALLOC_MB", 0, 0);
    c->init_delay_ms = env_num("FAKE_INIT_DELAY_MS", 0, 0);
    c->has_exit_immediately = env_set("FAKE_EXIT_IMMEDIATELY");
    c->exit_immediately = env_num("FAKE_EXIT_IMMEDIATELY", 0, 0);
    c->bench = env_set("FAKE_BENCH_LINES");
    c->bench_lines = env_num("FAKE_BENCH_LINES", 0, 0);
    c->bench_line_bytes = env_num("FAKE_BENCH_LINE_BYTES", 300, 2);
    c->echo = env_flag("FAKE_ECHO");
    c->echo_history = env_flag("FAKE_ECHO_HISTORY");
    c->garbage = env_flag("FAKE_GARBAGE");
    c->tool = env_flag("FAKE_TOOL");
    c->ignore_sigterm = env_flag("FAKE_IGNORE_SIGTERM");
    c->no_control_response = env_flag("FAKE_NO_CONTROL_RESPONSE");
    c->print_argv = env_flag("FAKE_PRINT_ARGV");
    c->hook = env_flag("FAKE_HOOK");
    c->mcp = env_flag("FAKE_MCP");
    c->cancel_permission = env_flag("FAKE_CANCEL_PERMISSION");
    c->unknown_request = env_flag("FAKE_UNKNOWN_REQUEST");
    c->stderr_turns = env_flag("FAKE_STDERR_TURNS");
    c->fail_file = env_set("FAKE_FAIL_FILE") ? getenv("FAKE_FAIL_FILE") : NULL;
    c->crash_random = env_num("FAKE_CRASH_RANDOM", 0, 0);
    if (c->crash_random > 1000)
        die("bad value for FAKE_CRASH_RANDOM: '%lld' (0..1000)", c->crash_random);
    c->crash_seed = env_num("FAKE_CRASH_SEED", 0, 0);
    if (c->crash_random)
        srand(c->crash_seed ? (unsigned)c->crash_seed
                            : (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)now_ns());
}

/* Accepts `--flag value` and `--flag=value`; unknown flags are ignored (an
 * unknown flag's value is then just an ignored positional argument). */
static void parse_args(int argc, char **argv)
{
    const char *output_format = NULL;
    g.cfg.model = DEFAULT_MODEL;
    g.cfg.permission_mode = "default";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0)
            continue;
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const char **dst = NULL;
        if (name_len == 7 && !strncmp(name, "verbose", 7))
            g.cfg.verbose = true;
        else if (name_len == 13 && !strncmp(name, "output-format", 13))
            dst = &output_format;
        else if (name_len == 5 && !strncmp(name, "model", 5))
            dst = &g.cfg.model;
        else if (name_len == 15 && !strncmp(name, "permission-mode", 15))
            dst = &g.cfg.permission_mode;
        if (dst && eq)
            *dst = eq + 1;
        else if (dst && i + 1 < argc)
            *dst = argv[++i];
    }
    g.cfg.stream_json_out = output_format && !strcmp(output_format, "stream-json");
}

static void on_sigint(int sig)
{
    (void)sig;
    _exit(0); /* the real CLI exits 0 on SIGINT, without a result */
}

static void setup_signals(void)
{
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (g.cfg.ignore_sigterm)
        signal(SIGTERM, SIG_IGN);
}

static void print_argv_env(int argc, char **argv)
{
    static const char *const vars[] = {"CLAUDE_CODE_ENTRYPOINT", "CLAUDE_AGENT_SDK_VERSION",
                                       "CLAUDECODE", "PWD"};
    cJSON *args = cJSON_CreateArray(), *env = cJSON_CreateObject();
    for (int i = 0; i < argc; i++)
        cJSON_AddItemToArray(args, cJSON_CreateString(argv[i]));
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        cJSON_AddItemToObject(env, vars[i], v ? cJSON_CreateString(v) : cJSON_CreateNull());
    }
    struct strbuf sb = {0};
    sb_str(&sb, "argv: ");
    sb_json_item(&sb, args);
    sb_str(&sb, "\nenv: ");
    sb_json_item(&sb, env);
    sb_str(&sb, "\n");
    fd_write_all(STDERR_FILENO, sb.p, sb.len);
    free(sb.p);
    cJSON_Delete(args);
    cJSON_Delete(env);
}

/* Exactly `total` bytes of 100-byte lines, the last one ending in '\n'. */
static void flood_stderr(long long total)
{
    static char block[FLOOD_LINE * 655];
    for (size_t i = 0; i < sizeof block; i += FLOOD_LINE) {
        memset(block + i, 'e', FLOOD_LINE - 1);
        memcpy(block + i, "fake-claude stderr flood ", 25);
        block[i + FLOOD_LINE - 1] = '\n';
    }
    while (total > (long long)sizeof block) {
        fd_write_all(STDERR_FILENO, block, sizeof block);
        total -= (long long)sizeof block;
    }
    if (total > 0) {
        fd_write_all(STDERR_FILENO, block, (size_t)total - 1);
        fd_write_all(STDERR_FILENO, "\n", 1);
    }
}

static void init_session(void)
{
    uint64_t seed = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
    uint64_t a = splitmix64(&seed), b = splitmix64(&seed);
    uint64_t c = splitmix64(&seed), d = splitmix64(&seed);
    snprintf(g.session_id, sizeof g.session_id, "%08x-%04x-4%03x-%04x-%012llx",
             (unsigned)(a >> 32), (unsigned)(a & 0xffff), (unsigned)((a >> 16) & 0xfff),
             (unsigned)(0x8000 | (b & 0x3fff)), (unsigned long long)(b >> 16));
    snprintf(g.uuid_prefix, sizeof g.uuid_prefix, "%08x-%04x-4%03x-%04x-",
             (unsigned)(c >> 32), (unsigned)(c & 0xffff), (unsigned)((c >> 16) & 0xfff),
             (unsigned)(0x8000 | (d & 0x3fff)));
    if (!getcwd(g.cwd, sizeof g.cwd))
        strcpy(g.cwd, "/");
    g.model = xstrdup(g.cfg.model);
    g.permission_mode = xstrdup(g.cfg.permission_mode);
    g.out = xrealloc(NULL, OUT_CAP);
}

/* Non-blocking stdout only for pipes/sockets: a tty or file may be shared
 * with other processes, which would then see O_NONBLOCK too. */
static void setup_stdout(void)
{
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        return;
    int fl = fcntl(STDOUT_FILENO, F_GETFL);
    if (fl >= 0 && fcntl(STDOUT_FILENO, F_SETFL, fl | O_NONBLOCK) == 0)
        g.drain_while_writing = true;
}

/* ---------------------------------------------------------- bench mode */

/* One valid JSON line of exactly `size` bytes before the '\n'. */
static void bench_line(struct strbuf *sb, size_t size)
{
    char uuid[UUID_LEN + 1];
    next_uuid(uuid);
    struct strbuf head = {0}, tail = {0};
    /* lean on purpose (only what SDK parsers require, plus the ids), so
     * that small sizes still get an assistant line */
    sb_str(&head, "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_b\","
                  "\"role\":\"assistant\",\"model\":");
    sb_json_string(&head, g.model);
    sb_str(&head, ",\"content\":[{\"type\":\"text\",\"text\":\"");
    sb_printf(&tail, "\"}]},\"session_id\":\"%s\",\"uuid\":\"%s\"}", g.session_id, uuid);
    static const char ka[] = "{\"type\":\"keep_alive\"";
    if (size >= head.len + tail.len) {
        sb_add(sb, head.p, head.len);
        sb_fill(sb, 'x', size - head.len - tail.len);
        sb_add(sb, tail.p, tail.len);
    } else if (size >= sizeof ka) { /* JSON allows the space padding */
        sb_str(sb, ka);
        sb_fill(sb, ' ', size - sizeof ka);
        sb_str(sb, "}");
    } else {
        sb_str(sb, "{");
        sb_fill(sb, ' ', size - 2);
        sb_str(sb, "}");
    }
    sb_str(sb, "\n");
    free(head.p);
    free(tail.p);
}

static void run_bench(void)
{
    struct strbuf line = {0}, buf = {0};
    bench_line(&line, (size_t)g.cfg.bench_line_bytes);
    size_t per_buf = BENCH_BUF / line.len ? BENCH_BUF / line.len : 1;
    for (size_t i = 0; i < per_buf; i++)
        sb_add(&buf, line.p, line.len);
    /* A bigger pipe means fewer wake-ups of the reader; failure is harmless. */
    (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1 << 20);
    for (long long left = g.cfg.bench_lines; left > 0;) {
        size_t k = left < (long long)per_buf ? (size_t)left : per_buf;
        fd_write_all(STDOUT_FILENO, buf.p, k * line.len);
        left -= (long long)k;
    }
    exit(0);
}

/* ------------------------------------------------------ line builders */

/* An assistant line around one content block; *uuid_tail (if non-NULL)
 * receives the offset of the uuid's counter digits for out_add_with_uuid. */
static void build_assistant(struct strbuf *sb, const char *msg_id, const char *block,
                            size_t block_len, size_t *uuid_tail)
{
    char uuid[UUID_LEN + 1];
    next_uuid(uuid);
    sb_printf(sb, "{\"type\":\"assistant\",\"message\":{\"id\":\"%s\",\"type\":\"message\","
                  "\"role\":\"assistant\",\"model\":",
              msg_id);
    sb_json_string(sb, g.model);
    sb_str(sb, ",\"content\":[");
    sb_add(sb, block, block_len);
    sb_printf(sb, "],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":" USAGE_MSG
                  ",\"context_management\":null},\"parent_tool_use_id\":null,"
                  "\"session_id\":\"%s\",\"uuid\":\"",
              g.session_id);
    if (uuid_tail)
        *uuid_tail = sb->len + UUID_PREFIX_LEN;
    sb_printf(sb, "%s\",\"request_id\":\"req_fake_%s\"}\n", uuid, msg_id + 9);
}

/* Text block from already-escaped JSON string content (no quotes). */
static void build_text_block(struct strbuf *sb, const char *escaped, size_t n)
{
    sb_str(sb, "{\"type\":\"text\",\"text\":\"");
    sb_add(sb, escaped, n);
    sb_str(sb, "\"}");
}

static void emit_text(struct turn *t, const char *msg_id, const char *text)
{
    struct strbuf block = {0}, line = {0};
    sb_str(&block, "{\"type\":\"text\",\"text\":");
    sb_json_string(&block, text);
    sb_str(&block, "}");
    build_assistant(&line, msg_id, block.p, block.len, NULL);
    out_sb(&line);
    free(block.p);
    free(t->result_text);
    t->result_text = utf8_prefix(text, RESULT_TEXT_MAX);
}

static void emit_init(void)
{
    struct strbuf sb = {0};
    char uuid[UUID_LEN + 1];
    next_uuid(uuid);
    sb_str(&sb, "{\"type\":\"system\",\"subtype\":\"init\",\"cwd\":");
    sb_json_string(&sb, g.cwd);
    sb_printf(&sb, ",\"session_id\":\"%s\",\"tools\":[\"Task\",\"Bash\",\"Glob\",\"Grep\","
                   "\"Read\",\"Edit\",\"Write\",\"WebFetch\",\"TodoWrite\"],"
                   "\"mcp_servers\":[],\"model\":",
              g.session_id);
    sb_json_string(&sb, g.model);
    sb_str(&sb, ",\"permissionMode\":");
    sb_json_string(&sb, g.permission_mode);
    sb_printf(&sb, ",\"slash_commands\":[],\"apiKeySource\":\"none\","
                   "\"claude_code_version\":\"2.1.197-fake\",\"output_style\":\"default\","
                   "\"agents\":[],\"skills\":[],\"plugins\":[],\"uuid\":\"%s\","
                   "\"fast_mode_state\":\"off\"}\n",
              uuid);
    out_sb(&sb);
}

static void emit_user_content(const char *content_json, const char *extra)
{
    struct strbuf sb = {0};
    char uuid[UUID_LEN + 1];
    next_uuid(uuid);
    sb_printf(&sb, "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":%s},"
                   "\"parent_tool_use_id\":null,\"session_id\":\"%s\",\"uuid\":\"%s\","
                   "\"timestamp\":",
              content_json, g.session_id, uuid);
    sb_timestamp(&sb);
    sb_str(&sb, extra);
    sb_str(&sb, "}\n");
    out_sb(&sb);
}

/* ----------------------------------------------------- control protocol */

static void send_control_response(const cJSON *id, const char *payload, const char *error)
{
    if (g.cfg.no_control_response)
        return;
    struct strbuf sb = {0};
    sb_printf(&sb, "{\"type\":\"control_response\",\"response\":{\"subtype\":\"%s\","
                   "\"request_id\":",
              error ? "error" : "success");
    sb_json_item(&sb, id);
    if (error) {
        sb_str(&sb, ",\"error\":");
        sb_json_string(&sb, error);
    } else if (payload) {
        sb_str(&sb, ",\"response\":");
        sb_str(&sb, payload);
    }
    sb_str(&sb, "}}\n");
    out_sb(&sb);
}

static void handle_control_request(const cJSON *msg)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "request_id");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(msg, "request");
    const char *subtype = json_str(req, "subtype");
    struct strbuf payload = {0};

    if (subtype && !strcmp(subtype, "initialize")) {
        if (g.cfg.hook && !g.init_hooks_printed) {
            struct strbuf line = {0};
            g.init_hooks_printed = true;
            sb_str(&line, "init-hooks: ");
            sb_json_item(&line, cJSON_GetObjectItemCaseSensitive(req, "hooks"));
            sb_str(&line, "\n");
            fd_write_all(STDERR_FILENO, line.p, line.len);
            free(line.p);
        }
        if (g.cfg.init_delay_ms) {
            out_flush();
            sleep_ns(g.cfg.init_delay_ms * 1000000);
        }
        sb_printf(&payload, "{\"commands\":[],\"agents\":[],\"output_style\":\"default\","
                            "\"available_output_styles\":[\"default\"],\"models\":[],"
                            "\"account\":{},\"pid\":%ld}",
                  (long)getpid());
        send_control_response(id, payload.p, NULL);
    } else if (subtype && !strcmp(subtype, "interrupt")) {
        if (g.in_turn)
            g.interrupted = true;
        send_control_response(id, NULL, NULL);
    } else if (subtype && !strcmp(subtype, "set_permission_mode")) {
        const char *mode = json_str(req, "mode");
        if (mode) {
            free(g.permission_mode);
            g.permission_mode = xstrdup(mode);
        }
        sb_str(&payload, "{\"mode\":");
        sb_json_string(&payload, g.permission_mode);
        sb_str(&payload, "}");
        send_control_response(id, payload.p, NULL);
    } else if (subtype && !strcmp(subtype, "set_model")) {
        const char *model = json_str(req, "model");
        free(g.model);
        g.model = xstrdup(model && strcmp(model, "default") ? model : g.cfg.model);
        send_control_response(id, "{}", NULL);
    } else {
        struct strbuf err = {0};
        sb_printf(&err, "Unsupported control request subtype: %s",
                  subtype ? subtype : "undefined");
        send_control_response(id, NULL, err.p);
        free(err.p);
    }
    free(payload.p);
}

static bool is_cancelled(const char *id)
{
    for (size_t i = 0; i < g.n_cancelled; i++)
        if (!strcmp(g.cancelled[i], id))
            return true;
    return false;
}

/* One stderr line: prefix followed by arg. */
static void stderr_line(const char *prefix, const char *arg)
{
    struct strbuf sb = {0};
    sb_str(&sb, prefix);
    sb_str(&sb, arg);
    sb_str(&sb, "\n");
    fd_write_all(STDERR_FILENO, sb.p, sb.len);
    free(sb.p);
}

/* A response to our pending request (can_use_tool, hook_callback, ...).
 * One to a withdrawn request is reported as a protocol violation; any other
 * (unknown id, or a second answer) is reported and ignored. */
static void handle_control_response(cJSON *msg)
{
    cJSON *resp = cJSON_GetObjectItemCaseSensitive(msg, "response");
    const char *id = json_str(resp, "request_id");
    if (g.await_id && !g.await_response && id && !strcmp(id, g.await_id)) {
        g.await_response = cJSON_DetachItemViaPointer(msg, resp);
        return;
    }
    out_flush(); /* keep stdout and stderr in the order things happened */
    if (id && is_cancelled(id))
        stderr_line("fake-claude: protocol violation: late response for cancelled request ",
                    id);
    else
        stderr_line("fake-claude: unexpected control_response for ", id ? id : "(no id)");
}

/* ------------------------------------------------------ input dispatch */

static void queue_push(char *prompt)
{
    if (g.q_head > 0 && g.q_head == g.q_len)
        g.q_head = g.q_len = 0;
    if (g.q_len == g.q_cap) {
        g.q_cap = g.q_cap ? g.q_cap * 2 : 8;
        g.queue = xrealloc(g.queue, g.q_cap * sizeof *g.queue);
    }
    g.queue[g.q_len++] = prompt;
}

static char *queue_pop(void)
{
    return g.q_head < g.q_len ? g.queue[g.q_head++] : NULL;
}

/* message.content as plain text: the string, or text blocks joined by \n. */
static char *prompt_text(const cJSON *msg)
{
    const cJSON *content =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(msg, "message"), "content");
    if (cJSON_IsString(content))
        return xstrdup(content->valuestring);
    struct strbuf sb = {0};
    sb_str(&sb, "");
    const cJSON *blocks = cJSON_IsArray(content) ? content : NULL, *block;
    cJSON_ArrayForEach(block, blocks)
    {
        const char *type = json_str(block, "type"), *text = json_str(block, "text");
        if (type && text && !strcmp(type, "text")) {
            if (sb.len)
                sb_str(&sb, "\n");
            sb_str(&sb, text);
        }
    }
    return sb.p;
}

static bool is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

/* The raw line is only valid until something reads stdin again, so it is
 * parsed (or reported) first and never touched afterwards. */
static void dispatch_line(char *line, size_t len)
{
    if (is_blank(line, len))
        return;
    cJSON *msg = cJSON_ParseWithLengthOpts(line, len + 1, NULL, true);
    if (!msg) {
        out_flush();
        struct strbuf sb = {0};
        sb_str(&sb, "Error parsing streaming input line: ");
        sb_add(&sb, line, len);
        sb_str(&sb, "\n");
        fd_write_all(STDERR_FILENO, sb.p, sb.len);
        exit(1);
    }
    const char *type = json_str(msg, "type");
    if (!type)
        ;
    else if (!strcmp(type, "user"))
        queue_push(prompt_text(msg));
    else if (!strcmp(type, "control_request"))
        handle_control_request(msg);
    else if (!strcmp(type, "control_response"))
        handle_control_response(msg);
    /* control_cancel_request, keep_alive and unknown types: ignored */
    cJSON_Delete(msg);
}

/* Serves stdin while a turn waits: until deadline_ns (monotonic; 0 = none)
 * passes, the awaited control_response arrives, or an interrupt. */
static enum wait_result serve_input_until(int64_t deadline_ns)
{
    for (;;) {
        char *line;
        size_t len;
        while (!g.interrupted && !g.await_response && (line = in_take_line(&len)))
            dispatch_line(line, len);
        if (g.interrupted)
            return WAIT_INTERRUPTED;
        if (g.await_response)
            return WAIT_DONE;
        int64_t left = deadline_ns ? deadline_ns - now_ns() : 0;
        if (deadline_ns && left <= 0)
            return WAIT_DONE;
        out_flush();
        if (g.in_eof) {
            sleep_ns(left);
            return deadline_ns ? WAIT_DONE : WAIT_EOF;
        }
        if (deadline_ns) {
            struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
            int r = poll(&p, 1, (int)((left + 999999) / 1000000));
            if (r == 0)
                return WAIT_DONE;
            if (r < 0)
                continue; /* EINTR */
        }
        in_fill();
    }
}

/* ------------------------------------------------------------- turns */

static void crash(void)
{
    out_flush();
    if (g.cfg.crash_signal) {
        struct rlimit no_core = {0, 0};
        sigset_t set;
        setrlimit(RLIMIT_CORE, &no_core); /* no core files in test dirs */
        signal((int)g.cfg.crash_signal, SIG_DFL);
        sigemptyset(&set);
        sigaddset(&set, (int)g.cfg.crash_signal);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise((int)g.cfg.crash_signal);
    }
    _exit((int)g.cfg.crash_exit); /* also if the signal did not kill us */
}

static void hang(void)
{
    out_flush();
    for (;;)
        pause();
}

/* The FAKE_MSGS text messages; false if an interrupt ended the turn. */
static bool emit_text_messages(struct turn *t)
{
    long long n = g.cfg.msgs;
    long long crash_at = g.turn == g.cfg.crash_turn ? g.cfg.crash_after : -1;
    long long hang_at = g.turn == g.cfg.hang_turn ? g.cfg.hang_after : -1;
    struct strbuf xs = {0}, block = {0}, line = {0};
    size_t uuid_tail = 0;

    if (n > 0) {
        /* One template per turn; each copy only gets a new uuid. */
        sb_fill(&xs, 'x', (size_t)g.cfg.bytes);
        build_text_block(&block, xs.p, xs.len);
        build_assistant(&line, t->msg_id, block.p, block.len, &uuid_tail);
        free(block.p);
    }
    bool echo = g.cfg.echo && t->prompt;
    for (long long i = 0;; i++) {
        if (i == crash_at)
            crash();
        if (i == hang_at)
            hang();
        if (i == n)
            break;
        if (g.cfg.msg_delay_ms &&
            serve_input_until(now_ns() + g.cfg.msg_delay_ms * 1000000) == WAIT_INTERRUPTED) {
            free(xs.p);
            free(line.p);
            return false;
        }
        if (i == 0 && echo && g.cfg.echo_history) {
            sb_printf(&g.history, "%s%s", g.history.len ? " | " : "", t->prompt);
            emit_text(t, t->msg_id, g.history.p);
        } else if (i == 0 && echo) {
            emit_text(t, t->msg_id, t->prompt);
        }
        else
            out_add_with_uuid(line.p, line.len, uuid_tail);
    }
    if (n > 0 && !(n == 1 && echo)) {
        free(t->result_text);
        t->result_text = utf8_prefix(xs.p, RESULT_TEXT_MAX);
    }
    free(xs.p);
    free(line.p);
    return true;
}

static void emit_can_use_tool(const char *req_id, const char *tool_use_id)
{
    struct strbuf sb = {0}, blocked = {0};
    sb_printf(&sb, "{\"type\":\"control_request\",\"request_id\":\"%s\",\"request\":{"
                   "\"subtype\":\"can_use_tool\",\"tool_name\":\"Bash\","
                   "\"display_name\":\"Bash\",\"input\":{\"command\":\"touch x\"},"
                   "\"permission_suggestions\":[{\"type\":\"addRules\",\"rules\":[{"
                   "\"toolName\":\"Bash\",\"ruleContent\":\"touch x\"}],"
                   "\"behavior\":\"allow\",\"destination\":\"localSettings\"},"
                   "{\"type\":\"addDirectories\",\"directories\":[",
              req_id);
    sb_json_string(&sb, g.cwd);
    sb_str(&sb, "],\"destination\":\"session\"},{\"type\":\"setMode\","
                "\"mode\":\"acceptEdits\",\"destination\":\"session\"}],\"blocked_path\":");
    sb_printf(&blocked, "%s%sx", g.cwd, strcmp(g.cwd, "/") ? "/" : "");
    sb_json_string(&sb, blocked.p);
    sb_printf(&sb, ",\"tool_use_id\":\"%s\"}}\n", tool_use_id);
    out_sb(&sb);
    free(blocked.p);
}

/* Waits for the answer to our request req_id (just written). Returns the
 * control_response's "response" object (caller deletes), or NULL at stdin
 * EOF or on an interrupt (*interrupted then true). */
static cJSON *await_answer(const char *req_id, bool *interrupted)
{
    g.await_id = req_id;
    enum wait_result w = serve_input_until(0);
    cJSON *resp = g.await_response;
    g.await_id = NULL;
    g.await_response = NULL;
    *interrupted = w == WAIT_INTERRUPTED;
    if (*interrupted) {
        cJSON_Delete(resp);
        resp = NULL;
    }
    return resp;
}

/* The text of an error response, or NULL for a success. */
static const char *response_error(const cJSON *resp)
{
    const char *subtype = json_str(resp, "subtype");
    if (!subtype || strcmp(subtype, "error"))
        return NULL;
    const char *e = json_str(resp, "error");
    return e ? e : "error";
}

/* The can_use_tool step. Returns the deny message (malloc'd), or NULL for
 * allow with *ran (malloc'd) set to the tool_result text. Sets *interrupted
 * if an interrupt came first. */
static char *ask_permission(const char *tool_use_id, bool *interrupted, char **ran)
{
    char req_id[UUID_LEN + 1];
    *interrupted = false;
    *ran = NULL;
    if (g.in_eof)
        return xstrdup("Stream closed"); /* the CLI cannot ask any more */
    next_uuid(req_id);
    emit_can_use_tool(req_id, tool_use_id);
    if (g.cfg.cancel_permission) {
        struct strbuf sb = {0};
        sb_printf(&sb, "{\"type\":\"control_cancel_request\",\"request_id\":\"%s\"}\n", req_id);
        out_sb(&sb);
        g.cancelled = xrealloc(g.cancelled, (g.n_cancelled + 1) * sizeof *g.cancelled);
        g.cancelled[g.n_cancelled++] = xstrdup(req_id);
        return xstrdup("cancelled");
    }
    cJSON *resp = await_answer(req_id, interrupted);
    char *deny = NULL;
    if (*interrupted)
        return NULL;
    if (!resp) {
        deny = xstrdup("Stream closed");
    } else if (response_error(resp)) {
        deny = xstrdup(response_error(resp));
    } else {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(resp, "response");
        const char *behavior = json_str(r, "behavior"), *message = json_str(r, "message");
        if (!behavior || strcmp(behavior, "allow")) {
            deny = xstrdup(message ? message : "denied");
        } else {
            /* "ran", plus what the host changed: input=<updatedInput> when it
             * differs from the tool's input, permissions=<updatedPermissions>. */
            const cJSON *input = cJSON_GetObjectItemCaseSensitive(r, "updatedInput");
            const cJSON *perms = cJSON_GetObjectItemCaseSensitive(r, "updatedPermissions");
            cJSON *orig = cJSON_CreateObject();
            cJSON_AddStringToObject(orig, "command", "touch x");
            struct strbuf sb = {0};
            sb_str(&sb, "ran");
            if (input && !cJSON_Compare(input, orig, true)) {
                sb_str(&sb, " input=");
                sb_json_item(&sb, input);
            }
            if (perms) {
                sb_str(&sb, " permissions=");
                sb_json_item(&sb, perms);
            }
            cJSON_Delete(orig);
            *ran = sb.p;
        }
    }
    cJSON_Delete(resp);
    return deny;
}

static void emit_tool_result(const char *tool_use_id, const char *deny, const char *ran)
{
    struct strbuf content = {0}, extra = {0};
    sb_printf(&content, "[{\"tool_use_id\":\"%s\",\"type\":\"tool_result\",\"content\":",
              tool_use_id);
    sb_json_string(&content, deny ? deny : ran);
    sb_printf(&content, ",\"is_error\":%s}]", deny ? "true" : "false");
    if (deny) {
        struct strbuf msg = {0};
        sb_printf(&msg, "Error: %s", deny);
        sb_str(&extra, ",\"tool_use_result\":");
        sb_json_string(&extra, msg.p);
        free(msg.p);
    } else {
        sb_str(&extra, ",\"tool_use_result\":{\"stdout\":");
        sb_json_string(&extra, ran);
        sb_str(&extra, ",\"stderr\":\"\",\"interrupted\":false,\"isImage\":false,"
                       "\"noOutputExpected\":false}");
    }
    emit_user_content(content.p, extra.p);
    free(content.p);
    free(extra.p);
}

/* tool_use -> can_use_tool -> tool_result -> "tool said"; false if
 * interrupted while waiting for the permission answer. */
static bool run_tool(struct turn *t)
{
    char tool_use_id[32], second_msg[32];
    snprintf(tool_use_id, sizeof tool_use_id, "toolu_fake_%08llx", (unsigned long long)g.turn);
    struct strbuf b = {0}, line = {0};
    sb_printf(&b, "{\"type\":\"tool_use\",\"id\":\"%s\",\"name\":\"Bash\","
                  "\"input\":{\"command\":\"touch x\"}}",
              tool_use_id);
    build_assistant(&line, t->msg_id, b.p, b.len, NULL);
    out_sb(&line);
    free(b.p);
    t->num_turns = 2;

    bool interrupted;
    char *ran;
    char *deny = ask_permission(tool_use_id, &interrupted, &ran);
    if (interrupted)
        return false;
    emit_tool_result(tool_use_id, deny, ran);
    free(ran);
    if (deny) {
        sb_printf(&t->denials, "%s{\"tool_name\":\"Bash\",\"tool_use_id\":\"%s\","
                               "\"tool_input\":{\"command\":\"touch x\"}}",
                  t->denials.len ? "," : "", tool_use_id);
    }
    /* the answer after a tool result is a new API message */
    snprintf(second_msg, sizeof second_msg, "msg_fake_%08llxb", (unsigned long long)g.turn);
    emit_text(t, second_msg, deny ? "tool said: denied" : "tool said: ran");
    free(deny);
    return true;
}

/* One request to the host (hook_callback, mcp_message, ...): send it, wait
 * for its answer, then an assistant text "<label> said: <answer>", where
 * <answer> is the compact JSON of the success payload ("null" when there is
 * none) or "error: <text>" ("error: Stream closed" after stdin EOF, when
 * nothing is sent). request is the inner "request" object (consumed). False
 * if an interrupt came first. */
static bool ask_host(struct turn *t, char tag, const char *label, cJSON *request)
{
    char req_id[UUID_LEN + 1], msg_id[32];
    struct strbuf sb = {0}, text = {0};
    cJSON *resp = NULL;
    if (!g.in_eof) {
        bool interrupted;
        next_uuid(req_id);
        sb_printf(&sb, "{\"type\":\"control_request\",\"request_id\":\"%s\",\"request\":", req_id);
        sb_json_item(&sb, request);
        sb_str(&sb, "}\n");
        out_sb(&sb);
        resp = await_answer(req_id, &interrupted);
        if (interrupted) {
            cJSON_Delete(request);
            return false;
        }
    }
    cJSON_Delete(request);
    sb_printf(&text, "%s said: ", label);
    if (!resp) {
        sb_str(&text, "error: Stream closed");
    } else if (response_error(resp)) {
        sb_str(&text, "error: ");
        sb_str(&text, response_error(resp));
    } else {
        sb_json_item(&text, cJSON_GetObjectItemCaseSensitive(resp, "response"));
    }
    cJSON_Delete(resp);
    snprintf(msg_id, sizeof msg_id, "msg_fake_%08llx%c", (unsigned long long)g.turn, tag);
    emit_text(t, msg_id, text.p);
    free(text.p);
    return true;
}

static bool run_hook(struct turn *t)
{
    struct strbuf path = {0};
    sb_printf(&path, "/tmp/fake-claude/%s.jsonl", g.session_id);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "subtype", "hook_callback");
    cJSON_AddStringToObject(req, "callback_id", "hook_0");
    cJSON *in = cJSON_AddObjectToObject(req, "input");
    cJSON_AddStringToObject(in, "session_id", g.session_id);
    cJSON_AddStringToObject(in, "transcript_path", path.p);
    cJSON_AddStringToObject(in, "cwd", g.cwd);
    cJSON_AddStringToObject(in, "permission_mode", g.permission_mode);
    cJSON_AddStringToObject(in, "hook_event_name", "PreToolUse");
    cJSON_AddStringToObject(in, "tool_name", "Bash");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(in, "tool_input"), "command", "ls");
    cJSON_AddStringToObject(in, "tool_use_id", "toolu_x");
    cJSON_AddStringToObject(req, "tool_use_id", "toolu_x");
    free(path.p);
    return ask_host(t, 'h', "hook", req);
}

static bool run_mcp(struct turn *t)
{
    cJSON *req = cJSON_Parse("{\"subtype\":\"mcp_message\",\"server_name\":\"calc\","
                             "\"message\":{\"jsonrpc\":\"2.0\",\"id\":7,"
                             "\"method\":\"tools/list\"}}");
    return ask_host(t, 'm', "mcp", req);
}

static bool run_unknown_request(struct turn *t)
{
    return ask_host(t, 'u', "unknown", cJSON_Parse("{\"subtype\":\"no_such_thing\"}"));
}

static void emit_api_error(struct turn *t)
{
    struct strbuf text = {0}, sb = {0};
    char msg_uuid[UUID_LEN + 1], uuid[UUID_LEN + 1];
    next_uuid(msg_uuid);
    next_uuid(uuid);
    sb_printf(&text, "API Error: %lld %s", t->api_error,
              t->api_error_text[0] ? t->api_error_text : "fake");
    sb_printf(&sb, "{\"type\":\"assistant\",\"message\":{\"id\":\"%s\",\"container\":null,"
                   "\"model\":\"<synthetic>\",\"role\":\"assistant\",\"stop_details\":null,"
                   "\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"\","
                   "\"type\":\"message\",\"usage\":" USAGE_RESULT("0", "0") ","
                   "\"content\":[{\"type\":\"text\",\"text\":\"%s\"}],"
                   "\"context_management\":null},\"parent_tool_use_id\":null,"
                   "\"session_id\":\"%s\",\"uuid\":\"%s\",\"error\":\"server_error\"}\n",
              msg_uuid, text.p, g.session_id, uuid);
    out_sb(&sb);
    free(t->result_text);
    t->result_text = text.p;
}

static void emit_long_line(void)
{
    struct strbuf head = {0};
    char uuid[UUID_LEN + 1];
    next_uuid(uuid);
    sb_printf(&head, "{\"type\":\"system\",\"subtype\":\"fake_long_line\",\"session_id\":\"%s\","
                     "\"uuid\":\"%s\",\"pad\":\"",
              g.session_id, uuid);
    long long pad = g.cfg.long_line - (long long)head.len - 2; /* 2 = `"}` */
    out_sb(&head);
    out_fill('x', pad > 0 ? (size_t)pad : 0);
    out_add("\"}\n", 3);
}

static long long elapsed_ms(const struct turn *t)
{
    return (now_ns() - t->start_ns) / 1000000;
}

static void emit_result(struct turn *t)
{
    bool err = t->api_error != 0;
    long long ms = elapsed_ms(t);
    struct strbuf sb = {0};
    char uuid[UUID_LEN + 1];
    next_uuid(uuid);
    sb_printf(&sb, "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":%s,"
                   "\"api_error_status\":",
              err ? "true" : "false");
    if (err)
        sb_printf(&sb, "%lld", t->api_error);
    else
        sb_str(&sb, "null");
    sb_printf(&sb, ",\"duration_ms\":%lld,\"duration_api_ms\":%lld,\"num_turns\":%d,\"result\":",
              ms, err ? 0 : ms, t->num_turns);
    sb_json_string(&sb, t->result_text ? t->result_text : "");
    sb_printf(&sb, ",\"stop_reason\":\"%s\",\"session_id\":\"%s\",\"total_cost_usd\":%s,\"usage\":",
              err ? "stop_sequence" : "end_turn", g.session_id, err ? "0" : "0.000185");
    if (err) {
        sb_str(&sb, USAGE_RESULT("0", "0") ",\"modelUsage\":{}");
    } else {
        sb_str(&sb, USAGE_RESULT("12", "5") ",\"modelUsage\":{");
        sb_json_string(&sb, g.model);
        sb_str(&sb, ":{\"inputTokens\":12,\"outputTokens\":5,\"cacheReadInputTokens\":0,"
                    "\"cacheCreationInputTokens\":0,\"webSearchRequests\":0,"
                    "\"costUSD\":0.000185,\"contextWindow\":200000,\"maxOutputTokens\":64000}}");
    }
    sb_printf(&sb, ",\"permission_denials\":[%s],\"terminal_reason\":\"completed\","
                   "\"fast_mode_state\":\"off\",\"uuid\":\"%s\"}\n",
              t->denials.p ? t->denials.p : "", uuid);
    out_sb(&sb);
    g.last_result_error = err;
}

static void emit_interrupted_result(struct turn *t)
{
    struct strbuf sb = {0};
    char uuid[UUID_LEN + 1];
    emit_user_content("[{\"type\":\"text\",\"text\":\"[Request interrupted by user]\"}]", "");
    next_uuid(uuid);
    sb_printf(&sb, "{\"type\":\"result\",\"subtype\":\"error_during_execution\","
                   "\"duration_ms\":%lld,\"duration_api_ms\":0,\"is_error\":true,"
                   "\"num_turns\":%d,\"stop_reason\":null,\"session_id\":\"%s\","
                   "\"total_cost_usd\":0,\"usage\":" USAGE_RESULT("0", "0") ","
                   "\"modelUsage\":{},\"permission_denials\":[%s],"
                   "\"terminal_reason\":\"aborted_streaming\",\"fast_mode_state\":\"off\","
                   "\"uuid\":\"%s\",\"errors\":[\"[ede_diagnostic] result_type=user "
                   "last_content_type=n/a stop_reason=null\"]}\n",
              elapsed_ms(t), t->num_turns, g.session_id, t->denials.p ? t->denials.p : "",
              uuid);
    out_sb(&sb);
    g.last_result_error = true;
}

static const char garbage_lines[] = "[SandboxDebug] not json\n"
                                    "\xff\xfe\x00garbage\x01\x7f\x80\xc3\x28\n"
                                    "\n"
                                    "{\"type\":\"keep_alive\"}\r\n";

/* FAKE_FAIL_FILE: what its first line says for this turn. */
static void read_fail_file(struct turn *t, int *exit_code, bool *hang_now)
{
    if (!g.cfg.fail_file)
        return;
    FILE *f = fopen(g.cfg.fail_file, "r");
    if (!f)
        return;
    char buf[64] = {0};
    if (!fgets(buf, sizeof buf, f))
        buf[0] = '\0';
    fclose(f);
    if (strncmp(buf, "exit", 4) == 0)
        *exit_code = buf[4] == ':' ? atoi(buf + 5) : 3;
    else if (strncmp(buf, "hang", 4) == 0)
        *hang_now = true;
    else if (atoll(buf) > 0) {
        t->api_error = atoll(buf);
        const char *p = buf;
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p == ' ') {
            size_t n = 0;
            for (p++; *p && n < sizeof t->api_error_text - 1; p++)
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr(" .:,-", *p))
                    t->api_error_text[n++] = *p;
            t->api_error_text[n] = '\0';
        }
    }
}

static void run_turn(const char *prompt)
{
    struct turn t = {.start_ns = now_ns(), .prompt = prompt, .num_turns = 1,
                     .api_error = g.cfg.api_error};
    int fail_exit = -1;
    bool fail_hang = false;
    if (prompt && strncmp(prompt, "fail:", 5) == 0)
        t.api_error = atoll(prompt + 5) > 0 ? atoll(prompt + 5) : 500;
    else
        read_fail_file(&t, &fail_exit, &fail_hang);
    g.turn++;
    if (g.cfg.stderr_turns) {
        char n[32];
        snprintf(n, sizeof n, "%lld", g.turn);
        out_flush();
        stderr_line("turn ", n);
    }
    g.in_turn = true;
    g.interrupted = false;
    snprintf(t.msg_id, sizeof t.msg_id, "msg_fake_%08llx", (unsigned long long)g.turn);

    emit_init();
    if (fail_exit >= 0) {
        out_flush();
        exit(fail_exit);
    }
    if (fail_hang)
        hang();
    if (g.cfg.crash_random && rand() % 1000 < g.cfg.crash_random) {
        out_flush();
        if (rand() % 2) {
            signal(SIGKILL, SIG_DFL);
            raise(SIGKILL);
        }
        _exit(3);
    }
    if (g.cfg.garbage)
        out_add(garbage_lines, sizeof garbage_lines - 1);
    if (emit_text_messages(&t) && (!g.cfg.tool || run_tool(&t)) &&
        (!g.cfg.hook || run_hook(&t)) && (!g.cfg.mcp || run_mcp(&t)) &&
        (!g.cfg.unknown_request || run_unknown_request(&t))) {
        if (t.api_error)
            emit_api_error(&t);
        if (g.cfg.long_line)
            emit_long_line();
        emit_result(&t);
    } else {
        emit_interrupted_result(&t);
    }
    g.in_turn = false;
    free(t.result_text);
    free(t.denials.p);
    if (g.turn == g.cfg.exit_after_turns) {
        out_flush();
        exit(0);
    }
}

/* Lines are handled in arrival order; a user line's turn runs to completion
 * (serving control requests only at its wait points) before the next line. */
static void main_loop(void)
{
    for (;;) {
        char *prompt = queue_pop();
        if (prompt) {
            run_turn(prompt);
            free(prompt);
            continue;
        }
        char *line;
        size_t len;
        if ((line = in_take_line(&len))) {
            dispatch_line(line, len);
            continue;
        }
        if (g.in_eof)
            break;
        out_flush(); /* never block on input with output still buffered */
        in_fill();
    }
    out_flush();
    exit(g.last_result_error ? 1 : 0);
}

/* FAKE_RESUME_MISSING=1: a --resume of a conversation this fake never
 * kept fails the way the real CLI does when its transcript is gone. */
static void resume_check(int argc, char **argv)
{
    if (!env_flag("FAKE_RESUME_MISSING"))
        return;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--resume=", 9) != 0)
            continue;
        char msg[512];
        int n = snprintf(msg, sizeof msg, "No conversation found with session ID: %s\n",
                         argv[i] + 9);
        fd_write_all(STDERR_FILENO, msg, (size_t)(n > 0 && n < (int)sizeof msg ? n : 0));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    load_knobs();
    setup_signals();
    if (g.cfg.print_argv)
        print_argv_env(argc, argv);
    if (g.cfg.stderr_flood)
        flood_stderr(g.cfg.stderr_flood);
    if (g.cfg.has_exit_immediately)
        exit((int)(g.cfg.exit_immediately & 0xff));
    resume_check(argc, argv);
    if (g.cfg.stream_json_out && !g.cfg.verbose) {
        static const char msg[] =
            "Error: When using --print, --output-format=stream-json requires --verbose\n";
        fd_write_all(STDERR_FILENO, msg, sizeof msg - 1);
        exit(1);
    }
    init_session();
    if (g.cfg.bench)
        run_bench();
    setup_stdout();
    if (g.cfg.alloc_mb > 0) {
        /* Touched, so that it is resident; never freed. */
        size_t n = (size_t)g.cfg.alloc_mb << 20;
        char *grown = malloc(n);
        if (grown == NULL)
            die("FAKE_ALLOC_MB: out of memory");
        memset(grown, 1, n);
        g.grown = grown;
    }
    sleep_ns(g.cfg.startup_delay_ms * 1000000);
    main_loop();
    return 0;
}
