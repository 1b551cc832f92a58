/* Tests for clink_msg (lib/message.c).
 *
 * The lines below are realistic CLI output (shapes from real-cli.md §4, §6,
 * §7 and sdk-protocol.md §2-§3; ids and paths made up). Every line is checked
 * three ways: parsed on the heap, parsed borrowed from an exact-size buffer
 * with no NUL after it, and through the heap copy clink_msg_ref() makes of
 * the borrowed message after the source buffer has been overwritten.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <claudelink.h>

#include "wire/message.h"
#include "testutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------- transcripts */

static const char INIT[] =
    "{\"type\":\"system\",\"subtype\":\"init\",\"cwd\":\"/tmp/probe/runs/b-multiturn/cwd\","
    "\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"tools\":[\"Task\",\"Bash\",\"Glob\","
    "\"Grep\",\"Read\",\"Edit\",\"Write\",\"WebFetch\"],\"mcp_servers\":[],\"model\":\"claude-opus-4-8[1m]\","
    "\"permissionMode\":\"default\",\"slash_commands\":[\"compact\",\"context\",\"cost\",\"review\"],"
    "\"apiKeySource\":\"ANTHROPIC_API_KEY\",\"claude_code_version\":\"2.1.197\",\"output_style\":"
    "\"default\",\"agents\":[\"claude\",\"Explore\",\"Plan\"],\"skills\":[\"pdf\"],\"plugins\":"
    "[],\"analytics_disabled\":true,\"product_feedback_disabled\":true,\"uuid\":\"17fd91b9-0c2e-4c55-8a1f-3e9b2d7c6a01\","
    "\"memory_paths\":{\"auto\":\"/tmp/probe/home/.claude/projects/-tmp-probe-cwd/memory/\"},"
    "\"fast_mode_state\":\"off\"}";

static const char ASSISTANT_TEXT[] =
    "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_x3yxk772fs\",\"type\":\"message\","
    "\"role\":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"text\",\"text\":"
    "\"pong\"}],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
    "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1,\"service_tier\":"
    "\"standard\"},\"context_management\":null},\"parent_tool_use_id\":null,\"session_id\":"
    "\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"uuid\":\"ce34673b-8f2a-4b61-9d3e-5a7c1b2d4e6f\","
    "\"request_id\":\"req_fake_mtc6nhirdw\"}";

static const char ASSISTANT_TOOL_USE[] =
    "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_k2j4h6g8f0\",\"type\":\"message\","
    "\"role\":\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"tool_use\","
    "\"id\":\"toolu_fake_uvrirc7qgs\",\"name\":\"Bash\",\"input\":{\"command\":\"touch made-by-tool.txt && echo created\","
    "\"description\":\"Create a file\"}}],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
    "{\"input_tokens\":20,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":"
    "1,\"service_tier\":\"standard\"},\"context_management\":null},\"parent_tool_use_id\":null,"
    "\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"uuid\":\"0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9\","
    "\"request_id\":\"req_fake_7d0sq2lm1x\"}";

static const char ASSISTANT_THINKING[] =
    "{\"type\":\"assistant\",\"message\":{\"id\":\"msg_fake_t1\",\"type\":\"message\",\"role\":"
    "\"assistant\",\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"thinking\",\"thinking\":"
    "\"The user wants a file created.\",\"signature\":\"EqQBCkYIBxgCKkBsig\"}],\"stop_reason\":"
    "null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":20,\"output_tokens\":1}},\"parent_tool_use_id\":"
    "\"toolu_parent_01\",\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"uuid\":\"5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9\"}";

static const char ASSISTANT_API_ERROR[] =
    "{\"type\":\"assistant\",\"message\":{\"id\":\"7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\",\"container\":"
    "null,\"model\":\"<synthetic>\",\"role\":\"assistant\",\"stop_details\":null,\"stop_reason\":"
    "\"stop_sequence\",\"stop_sequence\":\"\",\"type\":\"message\",\"usage\":{\"input_tokens\":"
    "0,\"output_tokens\":0},\"content\":[{\"type\":\"text\",\"text\":\"API Error: 500 Internal server error (fake). This is a server-side issue,"
    " usually temporary — try again in a moment.\"}],\"context_management\":null},\"parent_tool_use_id\":"
    "null,\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"uuid\":\"8d9e0f1a-2b3c-4d5e-8f6a-7b8c9d0e1f2a\","
    "\"error\":\"server_error\",\"request_id\":\"req_fake_q9w8e7\"}";

static const char USER_TOOL_RESULT_STR[] =
    "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu_fake_uvrirc7qgs\","
    "\"type\":\"tool_result\",\"content\":\"created\",\"is_error\":false}]},\"parent_tool_use_id\":"
    "null,\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"uuid\":\"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d\","
    "\"timestamp\":\"2026-11-23T17:22:30.112Z\",\"tool_use_result\":{\"stdout\":\"created\","
    "\"stderr\":\"\",\"interrupted\":false,\"isImage\":false,\"noOutputExpected\":false}}";

static const char USER_TOOL_RESULT_LIST[] =
    "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"tool_use_id\":\"toolu_fake_list01\","
    "\"type\":\"tool_result\",\"content\":[{\"type\":\"text\",\"text\":\"a.txt\\nb.txt\"},{\"type\":"
    "\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBORw0KGgo=\"}}],"
    "\"is_error\":false},{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_fake_deny02\",\"content\":"
    "\"denied by driver\",\"is_error\":true}]},\"parent_tool_use_id\":null,\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\","
    "\"uuid\":\"2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e\",\"timestamp\":\"2026-11-23T17:22:31.000Z\","
    "\"tool_use_result\":\"Error: denied by driver\"}";

static const char USER_STRING[] =
    "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"hello\"},\"session_id\":"
    "\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"parent_tool_use_id\":null,\"uuid\":\"3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f\","
    "\"timestamp\":\"2026-11-23T17:22:29.316Z\",\"isReplay\":true}";

static const char USER_INTERRUPTED[] =
    "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
    "\"[Request interrupted by user]\"}]},\"parent_tool_use_id\":null,\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\","
    "\"uuid\":\"4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a\",\"timestamp\":\"2026-11-23T17:22:32.000Z\"}";

static const char RESULT_SUCCESS[] =
    "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"api_error_status\":null,"
    "\"duration_ms\":93,\"duration_api_ms\":36,\"ttft_ms\":86,\"ttft_stream_ms\":85,\"time_to_request_ms\":"
    "70,\"num_turns\":1,\"result\":\"pong\",\"stop_reason\":\"end_turn\",\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\","
    "\"total_cost_usd\":0.000185,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":"
    "0,\"cache_read_input_tokens\":0,\"output_tokens\":5,\"server_tool_use\":{\"web_search_requests\":"
    "0},\"service_tier\":\"standard\"},\"modelUsage\":{\"claude-opus-4-8[1m]\":{\"inputTokens\":"
    "12,\"outputTokens\":5,\"costUSD\":0.000185}},\"permission_denials\":[],\"terminal_reason\":"
    "\"completed\",\"fast_mode_state\":\"off\",\"uuid\":\"501adeb5-1c2d-4e3f-a4b5-c6d7e8f9a0b1\"}";

static const char RESULT_API_ERROR[] =
    "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"api_error_status\":500,"
    "\"duration_ms\":174153,\"duration_api_ms\":0,\"num_turns\":1,\"result\":\"API Error: 500 Internal server error (fake). This is a server-side issue,"
    " usually temporary — try again in a moment.\",\"stop_reason\":\"stop_sequence\",\"session_id\":"
    "\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\",\"total_cost_usd\":0,\"usage\":{\"input_tokens\":"
    "0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0},"
    "\"modelUsage\":{},\"permission_denials\":[],\"terminal_reason\":\"completed\",\"fast_mode_state\":"
    "\"off\",\"uuid\":\"6f7a8b9c-0d1e-4f2a-b3c4-d5e6f7a8b9c0\"}";

static const char RESULT_INTERRUPT[] =
    "{\"type\":\"result\",\"subtype\":\"error_during_execution\",\"duration_ms\":594,\"duration_api_ms\":"
    "0,\"is_error\":true,\"num_turns\":2,\"stop_reason\":null,\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\","
    "\"total_cost_usd\":0,\"usage\":{\"input_tokens\":0,\"output_tokens\":0},\"modelUsage\":"
    "{},\"permission_denials\":[],\"terminal_reason\":\"aborted_streaming\",\"fast_mode_state\":"
    "\"off\",\"uuid\":\"7a8b9c0d-1e2f-4a3b-8c4d-e5f6a7b8c9d0\",\"errors\":[\"[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null\"]}";

static const char RESULT_DENIED[] =
    "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"duration_ms\":1208,\"duration_api_ms\":"
    "310,\"num_turns\":2,\"result\":\"tool said: denied\",\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\","
    "\"total_cost_usd\":0.00042,\"usage\":{\"input_tokens\":40,\"output_tokens\":9},\"permission_denials\":"
    "[{\"tool_name\":\"Bash\",\"tool_use_id\":\"toolu_fake_deny02\",\"tool_input\":{\"command\":"
    "\"rm -rf build\"}}],\"terminal_reason\":\"completed\",\"uuid\":\"8b9c0d1e-2f3a-4b4c-9d5e-f6a7b8c9d0e1\"}";

static const char STREAM_EVENT[] =
    "{\"type\":\"stream_event\",\"event\":{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
    "{\"type\":\"text_delta\",\"text\":\"pong fr\"}},\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\","
    "\"parent_tool_use_id\":null,\"uuid\":\"9c0d1e2f-3a4b-4c5d-8e6f-a7b8c9d0e1f2\"}";

static const char CAN_USE_TOOL[] =
    "{\"type\":\"control_request\",\"request_id\":\"11c6833d-ca26-46af-8c5d-e2efd923b42d\","
    "\"request\":{\"subtype\":\"can_use_tool\",\"tool_name\":\"Bash\",\"display_name\":\"Bash\","
    "\"input\":{\"command\":\"touch made-by-tool.txt && echo created\",\"description\":\"Create a file\"},"
    "\"description\":\"Create a file\",\"permission_suggestions\":[{\"type\":\"addRules\",\"rules\":"
    "[{\"toolName\":\"Bash\",\"ruleContent\":\"touch made-by-tool.txt && echo created\"}],\"behavior\":"
    "\"allow\",\"destination\":\"localSettings\"},{\"type\":\"addDirectories\",\"directories\":"
    "[\"/tmp/probe/runs/i-tool-touch/cwd\"],\"destination\":\"session\"},{\"type\":\"setMode\","
    "\"mode\":\"acceptEdits\",\"destination\":\"session\"}],\"blocked_path\":\"/tmp/probe/runs/i-tool-touch/cwd/made-by-tool.txt\","
    "\"tool_use_id\":\"toolu_fake_uvrirc7qgs\"}}";

static const char CONTROL_RESPONSE_OK[] =
    "{\"type\":\"control_response\",\"response\":{\"subtype\":\"success\",\"request_id\":\"req_9_set\","
    "\"response\":{\"mode\":\"default\"}}}";

static const char CONTROL_RESPONSE_ACK[] =
    "{\"type\":\"control_response\",\"response\":{\"subtype\":\"success\",\"request_id\":\"req_2_1331\"}}";

static const char CONTROL_RESPONSE_ERR[] =
    "{\"type\":\"control_response\",\"response\":{\"subtype\":\"error\",\"request_id\":\"req_7_unk\","
    "\"error\":\"Unsupported control request subtype: no_such_subtype\"}}";

static const char CONTROL_CANCEL[] =
    "{\"type\":\"control_cancel_request\",\"request_id\":\"11c6833d-ca26-46af-8c5d-e2efd923b42d\"}";

static const char KEEP_ALIVE[] =
    "{\"type\":\"keep_alive\"}";

static const char RATE_LIMIT[] =
    "{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"allowed_warning\",\"resetsAt\":"
    "1767225600,\"rateLimitType\":\"five_hour\",\"utilization\":0.82},\"uuid\":\"ad0e1f2a-3b4c-4d5e-9f6a-b7c8d9e0f1a2\","
    "\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\"}";

static const char API_RETRY[] =
    "{\"type\":\"system\",\"subtype\":\"api_retry\",\"attempt\":1,\"max_retries\":10,\"retry_delay_ms\":"
    "529.51,\"error_status\":500,\"error\":\"server_error\",\"session_id\":\"386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10\","
    "\"uuid\":\"be1f2a3b-4c5d-4e6f-8a7b-c8d9e0f1a2b3\"}";

#define SESSION "386fda4f-5b1e-4d6a-9c1e-2f0d7a8b9c10"

/* ----------------------------------------------------------------- helpers */

/* A copy with no NUL after it, so an over-read shows up under valgrind. */
static char *dup_exact(const char *s, size_t len) {
  char *p = malloc(len > 0 ? len : 1);
  ck_assert_ptr_nonnull(p);
  if (len > 0) memcpy(p, s, len);
  return p;
}

static void check_raw(const clink_msg *m, const char *line, size_t len) {
  size_t rl = 0;
  const char *raw = clink_msg_raw(m, &rl);
  ck_assert_ptr_nonnull(raw);
  ck_assert_uint_eq(rl, len);
  ck_assert_int_eq(memcmp(raw, line, len), 0);
}

typedef void (*check_fn)(const clink_msg *m);

static void check_all_ways_n(const char *line, size_t len, check_fn check) {
  /* heap */
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, line, len), 0);
  ck_assert_ptr_nonnull(m);
  check(m);
  check_raw(m, line, len);
  ck_assert_int_eq(clink_msg_raw(m, NULL)[len], '\0'); /* heap copies are terminated */
  clink_msg_unref(m);

  /* borrowed */
  char *buf = dup_exact(line, len);
  clink_msg b;
  memset(&b, 0, sizeof(b));
  ck_assert_int_eq(clink__msg_parse_borrowed(&b, buf, len), 0);
  check(&b);
  size_t rl = 0;
  ck_assert_ptr_eq(clink_msg_raw(&b, &rl), buf); /* no copy */
  ck_assert_uint_eq(rl, len);

  /* kept from the borrowed one, then the source is destroyed */
  clink_msg *kept = clink_msg_ref(&b);
  ck_assert_ptr_nonnull(kept);
  ck_assert_ptr_ne(kept, &b);
  memset(buf, 'X', len);
  clink__msg_clear(&b);
  free(buf);
  check(kept);
  check_raw(kept, line, len);
  ck_assert_ptr_eq(clink_msg_ref(kept), kept); /* heap: same object */
  clink_msg_unref(kept);
  clink_msg_unref(kept);
}

static void check_all_ways(const char *line, check_fn check) {
  check_all_ways_n(line, strlen(line), check);
}

/* Nothing of the result/block/control accessors answers for other kinds. */
static void check_not_result(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_result_is_error(m), 0);
  ck_assert_int_eq(clink_msg_result_api_error_status(m), 0);
  ck_assert_ptr_null(clink_msg_result_text(m));
  ck_assert_ptr_null(clink_msg_result_terminal_reason(m));
  ck_assert_int_eq(clink_msg_result_duration_ms(m), 0);
  ck_assert_int_eq(clink_msg_result_duration_api_ms(m), 0);
  ck_assert_int_eq(clink_msg_result_num_turns(m), 0);
  ck_assert(clink_msg_result_total_cost_usd(m) == 0.0);
  ck_assert_ptr_null(clink_msg_result_usage(m));
  ck_assert_ptr_null(clink_msg_result_permission_denials(m));
}

static void check_no_blocks(const clink_msg *m) {
  ck_assert_uint_eq(clink_msg_block_count(m), 0);
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_UNKNOWN);
  ck_assert_ptr_null(clink_msg_block_text(m, 0));
  ck_assert_ptr_null(clink_msg_block_json(m, 0));
}

static void check_not_control(const clink_msg *m) {
  ck_assert_ptr_null(clink__msg_request_id(m));
  ck_assert_ptr_null(clink__msg_request(m));
  ck_assert_ptr_null(clink__msg_request_subtype(m));
  ck_assert_ptr_null(clink__msg_response(m));
  ck_assert_ptr_null(clink__msg_response_subtype(m));
}

/* ------------------------------------------------------------------- kinds */

static void check_init(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_SYSTEM);
  ck_assert_str_eq(clink_msg_type(m), "system");
  ck_assert_str_eq(clink_msg_subtype(m), "init");
  ck_assert_str_eq(clink_msg_session_id(m), SESSION);
  ck_assert_str_eq(clink_msg_uuid(m), "17fd91b9-0c2e-4c55-8a1f-3e9b2d7c6a01");
  ck_assert_ptr_null(clink_msg_parent_tool_use_id(m));
  const cJSON *j = clink_msg_json(m);
  ck_assert(cJSON_IsObject(j));
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring,
                   "claude-opus-4-8[1m]");
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "tools")), 8);
  check_no_blocks(m);
  check_not_result(m);
  check_not_control(m);
}
START_TEST(system_init) { check_all_ways(INIT, check_init); }
END_TEST

static void check_api_retry(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_SYSTEM);
  ck_assert_str_eq(clink_msg_subtype(m), "api_retry");
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "error_status");
  ck_assert_int_eq(st->valueint, 500);
  check_no_blocks(m);
  check_not_result(m);
}
START_TEST(system_api_retry) { check_all_ways(API_RETRY, check_api_retry); }
END_TEST

static void check_assistant_text(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_ASSISTANT);
  ck_assert_str_eq(clink_msg_type(m), "assistant");
  ck_assert_ptr_null(clink_msg_subtype(m));
  ck_assert_str_eq(clink_msg_session_id(m), SESSION);
  ck_assert_str_eq(clink_msg_uuid(m), "ce34673b-8f2a-4b61-9d3e-5a7c1b2d4e6f");
  ck_assert_ptr_null(clink_msg_parent_tool_use_id(m)); /* JSON null */
  ck_assert_uint_eq(clink_msg_block_count(m), 1);
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_TEXT);
  ck_assert_str_eq(clink_msg_block_text(m, 0), "pong");
  ck_assert_ptr_null(clink_msg_block_tool_id(m, 0));
  ck_assert_ptr_null(clink_msg_block_tool_name(m, 0));
  ck_assert_ptr_null(clink_msg_block_tool_input(m, 0));
  const cJSON *blk = clink_msg_block_json(m, 0);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(blk, "type")->valuestring, "text");
  /* the block is the tree's own node */
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "message");
  ck_assert_ptr_eq(blk, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(msg, "content"), 0));
  check_not_result(m);
  check_not_control(m);
}
START_TEST(assistant_text) { check_all_ways(ASSISTANT_TEXT, check_assistant_text); }
END_TEST

static void check_assistant_tool_use(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_ASSISTANT);
  ck_assert_uint_eq(clink_msg_block_count(m), 1);
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_TOOL_USE);
  ck_assert_str_eq(clink_msg_block_tool_id(m, 0), "toolu_fake_uvrirc7qgs");
  ck_assert_str_eq(clink_msg_block_tool_name(m, 0), "Bash");
  ck_assert_ptr_null(clink_msg_block_text(m, 0));
  const cJSON *in = clink_msg_block_tool_input(m, 0);
  ck_assert(cJSON_IsObject(in));
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(in, "command")->valuestring,
                   "touch made-by-tool.txt && echo created");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(in, "description")->valuestring,
                   "Create a file");
}
START_TEST(assistant_tool_use) { check_all_ways(ASSISTANT_TOOL_USE, check_assistant_tool_use); }
END_TEST

static void check_assistant_thinking(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_ASSISTANT);
  ck_assert_str_eq(clink_msg_parent_tool_use_id(m), "toolu_parent_01");
  ck_assert_uint_eq(clink_msg_block_count(m), 1);
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_THINKING);
  ck_assert_str_eq(clink_msg_block_text(m, 0), "The user wants a file created.");
  ck_assert_ptr_null(clink_msg_block_tool_id(m, 0));
}
START_TEST(assistant_thinking) { check_all_ways(ASSISTANT_THINKING, check_assistant_thinking); }
END_TEST

static void check_assistant_api_error(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_ASSISTANT);
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_TEXT);
  ck_assert_str_eq(clink_msg_block_text(m, 0),
                   "API Error: 500 Internal server error (fake). This is a server-side "
                   "issue, usually temporary \xe2\x80\x94 try again in a moment.");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "error")->valuestring,
                   "server_error");
}
START_TEST(assistant_api_error) { check_all_ways(ASSISTANT_API_ERROR, check_assistant_api_error); }
END_TEST

static void check_user_tool_result_str(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_USER);
  ck_assert_str_eq(clink_msg_type(m), "user");
  ck_assert_str_eq(clink_msg_uuid(m), "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d");
  ck_assert_uint_eq(clink_msg_block_count(m), 1);
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_TOOL_RESULT);
  ck_assert_str_eq(clink_msg_block_tool_id(m, 0), "toolu_fake_uvrirc7qgs");
  ck_assert_str_eq(clink_msg_block_text(m, 0), "created");
  ck_assert_ptr_null(clink_msg_block_tool_name(m, 0));
  ck_assert_ptr_null(clink_msg_block_tool_input(m, 0));
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(clink_msg_block_json(m, 0), "is_error")));
  check_not_result(m);
}
START_TEST(user_tool_result_string) {
  check_all_ways(USER_TOOL_RESULT_STR, check_user_tool_result_str);
}
END_TEST

static void check_user_tool_result_list(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_USER);
  ck_assert_uint_eq(clink_msg_block_count(m), 2);
  /* list content: no text, walk the JSON */
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_TOOL_RESULT);
  ck_assert_str_eq(clink_msg_block_tool_id(m, 0), "toolu_fake_list01");
  ck_assert_ptr_null(clink_msg_block_text(m, 0));
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(clink_msg_block_json(m, 0), "content");
  ck_assert_int_eq(cJSON_GetArraySize(content), 2);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(content, 0), "text")->valuestring,
                   "a.txt\nb.txt");
  /* the denied call */
  ck_assert_int_eq(clink_msg_block_kind(m, 1), CLINK_BLOCK_TOOL_RESULT);
  ck_assert_str_eq(clink_msg_block_tool_id(m, 1), "toolu_fake_deny02");
  ck_assert_str_eq(clink_msg_block_text(m, 1), "denied by driver");
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(clink_msg_block_json(m, 1), "is_error")));
  ck_assert_int_eq(clink_msg_block_kind(m, 2), CLINK_BLOCK_UNKNOWN);
  ck_assert_ptr_null(clink_msg_block_json(m, 2));
}
START_TEST(user_tool_result_list) {
  check_all_ways(USER_TOOL_RESULT_LIST, check_user_tool_result_list);
}
END_TEST

static void check_user_string(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_USER);
  ck_assert_uint_eq(clink_msg_block_count(m), 1);
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_TEXT);
  ck_assert_str_eq(clink_msg_block_text(m, 0), "hello");
  const cJSON *blk = clink_msg_block_json(m, 0); /* the string item itself */
  ck_assert(cJSON_IsString(blk));
  ck_assert_str_eq(blk->valuestring, "hello");
  ck_assert_ptr_null(clink_msg_block_tool_id(m, 0));
  ck_assert_int_eq(clink_msg_block_kind(m, 1), CLINK_BLOCK_UNKNOWN);
  ck_assert_ptr_null(clink_msg_block_text(m, 1));
}
START_TEST(user_string_content) { check_all_ways(USER_STRING, check_user_string); }
END_TEST

static void check_user_interrupted(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_USER);
  ck_assert_uint_eq(clink_msg_block_count(m), 1);
  ck_assert_int_eq(clink_msg_block_kind(m, 0), CLINK_BLOCK_TEXT);
  ck_assert_str_eq(clink_msg_block_text(m, 0), "[Request interrupted by user]");
}
START_TEST(user_interrupted) { check_all_ways(USER_INTERRUPTED, check_user_interrupted); }
END_TEST

static void check_result_success(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_RESULT);
  ck_assert_str_eq(clink_msg_subtype(m), "success");
  ck_assert_str_eq(clink_msg_uuid(m), "501adeb5-1c2d-4e3f-a4b5-c6d7e8f9a0b1");
  ck_assert_int_eq(clink_msg_result_is_error(m), 0);
  ck_assert_int_eq(clink_msg_result_api_error_status(m), 0); /* null */
  ck_assert_str_eq(clink_msg_result_text(m), "pong");
  ck_assert_str_eq(clink_msg_result_terminal_reason(m), "completed");
  ck_assert_int_eq(clink_msg_result_duration_ms(m), 93);
  ck_assert_int_eq(clink_msg_result_duration_api_ms(m), 36);
  ck_assert_int_eq(clink_msg_result_num_turns(m), 1);
  ck_assert_double_eq_tol(clink_msg_result_total_cost_usd(m), 0.000185, 1e-12);
  const cJSON *u = clink_msg_result_usage(m);
  ck_assert(cJSON_IsObject(u));
  ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(u, "output_tokens")->valueint, 5);
  const cJSON *d = clink_msg_result_permission_denials(m);
  ck_assert(cJSON_IsArray(d));
  ck_assert_int_eq(cJSON_GetArraySize(d), 0);
  check_no_blocks(m);
  check_not_control(m);
}
START_TEST(result_success) { check_all_ways(RESULT_SUCCESS, check_result_success); }
END_TEST

static void check_result_api_error(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_RESULT);
  ck_assert_str_eq(clink_msg_subtype(m), "success"); /* sic: real-cli.md §6.1 */
  ck_assert_int_eq(clink_msg_result_is_error(m), 1);
  ck_assert_int_eq(clink_msg_result_api_error_status(m), 500);
  ck_assert_int_eq(strncmp(clink_msg_result_text(m), "API Error: 500 ", 15), 0);
  ck_assert_str_eq(clink_msg_result_terminal_reason(m), "completed");
  ck_assert_int_eq(clink_msg_result_duration_ms(m), 174153);
  ck_assert_int_eq(clink_msg_result_duration_api_ms(m), 0);
  ck_assert_int_eq(clink_msg_result_num_turns(m), 1);
  ck_assert(clink_msg_result_total_cost_usd(m) == 0.0);
}
START_TEST(result_api_error) { check_all_ways(RESULT_API_ERROR, check_result_api_error); }
END_TEST

static void check_result_interrupt(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_RESULT);
  ck_assert_str_eq(clink_msg_subtype(m), "error_during_execution");
  ck_assert_int_eq(clink_msg_result_is_error(m), 1);
  ck_assert_int_eq(clink_msg_result_api_error_status(m), 0); /* absent */
  ck_assert_ptr_null(clink_msg_result_text(m));              /* absent */
  ck_assert_str_eq(clink_msg_result_terminal_reason(m), "aborted_streaming");
  ck_assert_int_eq(clink_msg_result_duration_ms(m), 594);
  ck_assert_int_eq(clink_msg_result_num_turns(m), 2);
  const cJSON *errs = cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "errors");
  ck_assert_int_eq(cJSON_GetArraySize(errs), 1);
}
START_TEST(result_interrupt) { check_all_ways(RESULT_INTERRUPT, check_result_interrupt); }
END_TEST

static void check_result_denied(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_result_is_error(m), 0);
  ck_assert_str_eq(clink_msg_result_text(m), "tool said: denied");
  const cJSON *d = clink_msg_result_permission_denials(m);
  ck_assert_int_eq(cJSON_GetArraySize(d), 1);
  const cJSON *d0 = cJSON_GetArrayItem(d, 0);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(d0, "tool_name")->valuestring, "Bash");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(d0, "tool_use_id")->valuestring,
                   "toolu_fake_deny02");
}
START_TEST(result_permission_denials) { check_all_ways(RESULT_DENIED, check_result_denied); }
END_TEST

static void check_stream_event(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_STREAM_EVENT);
  ck_assert_str_eq(clink_msg_type(m), "stream_event");
  ck_assert_str_eq(clink_msg_session_id(m), SESSION);
  ck_assert_str_eq(clink_msg_uuid(m), "9c0d1e2f-3a4b-4c5d-8e6f-a7b8c9d0e1f2");
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "event");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(ev, "type")->valuestring, "content_block_delta");
  const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ev, "delta");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(delta, "text")->valuestring, "pong fr");
  check_no_blocks(m); /* event blocks are not message blocks */
  check_not_result(m);
  check_not_control(m);
}
START_TEST(stream_event) { check_all_ways(STREAM_EVENT, check_stream_event); }
END_TEST

static void check_can_use_tool(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_CONTROL_REQUEST);
  ck_assert_str_eq(clink_msg_type(m), "control_request");
  ck_assert_ptr_null(clink_msg_subtype(m)); /* the subtype is the request's */
  ck_assert_ptr_null(clink_msg_session_id(m));
  ck_assert_str_eq(clink__msg_request_id(m), "11c6833d-ca26-46af-8c5d-e2efd923b42d");
  ck_assert_str_eq(clink__msg_request_subtype(m), "can_use_tool");
  const cJSON *req = clink__msg_request(m);
  ck_assert(cJSON_IsObject(req));
  ck_assert_ptr_eq(req, cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "request"));
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(req, "tool_name")->valuestring, "Bash");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(req, "tool_use_id")->valuestring,
                   "toolu_fake_uvrirc7qgs");
  ck_assert_int_eq(
      cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(req, "permission_suggestions")), 3);
  ck_assert_ptr_null(clink__msg_response(m));
  ck_assert_ptr_null(clink__msg_response_subtype(m));
  check_no_blocks(m);
  check_not_result(m);
}
START_TEST(control_request_can_use_tool) { check_all_ways(CAN_USE_TOOL, check_can_use_tool); }
END_TEST

static void check_response_ok(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_CONTROL_RESPONSE);
  ck_assert_str_eq(clink__msg_request_id(m), "req_9_set");
  ck_assert_str_eq(clink__msg_response_subtype(m), "success");
  const cJSON *r = clink__msg_response(m);
  ck_assert(cJSON_IsObject(r));
  const cJSON *payload = cJSON_GetObjectItemCaseSensitive(r, "response");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(payload, "mode")->valuestring, "default");
  ck_assert_ptr_null(clink__msg_request(m));
  ck_assert_ptr_null(clink__msg_request_subtype(m));
  check_no_blocks(m);
  check_not_result(m);
}
START_TEST(control_response_success) { check_all_ways(CONTROL_RESPONSE_OK, check_response_ok); }
END_TEST

static void check_response_ack(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_CONTROL_RESPONSE);
  ck_assert_str_eq(clink__msg_request_id(m), "req_2_1331");
  ck_assert_str_eq(clink__msg_response_subtype(m), "success");
  ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(clink__msg_response(m), "response"));
}
START_TEST(control_response_ack) { check_all_ways(CONTROL_RESPONSE_ACK, check_response_ack); }
END_TEST

static void check_response_err(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_CONTROL_RESPONSE);
  ck_assert_str_eq(clink__msg_request_id(m), "req_7_unk");
  ck_assert_str_eq(clink__msg_response_subtype(m), "error");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(clink__msg_response(m), "error")->valuestring,
                   "Unsupported control request subtype: no_such_subtype");
}
START_TEST(control_response_error) { check_all_ways(CONTROL_RESPONSE_ERR, check_response_err); }
END_TEST

static void check_cancel(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_CONTROL_CANCEL_REQUEST);
  ck_assert_str_eq(clink__msg_request_id(m), "11c6833d-ca26-46af-8c5d-e2efd923b42d");
  ck_assert_ptr_null(clink__msg_request(m));
  ck_assert_ptr_null(clink__msg_request_subtype(m));
  ck_assert_ptr_null(clink__msg_response(m));
}
START_TEST(control_cancel_request) { check_all_ways(CONTROL_CANCEL, check_cancel); }
END_TEST

static void check_keep_alive(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_KEEP_ALIVE);
  ck_assert_str_eq(clink_msg_type(m), "keep_alive");
  ck_assert_ptr_null(clink_msg_subtype(m));
  ck_assert_ptr_null(clink_msg_session_id(m));
  ck_assert_ptr_null(clink_msg_uuid(m));
  check_no_blocks(m);
  check_not_result(m);
  check_not_control(m);
}
START_TEST(keep_alive) { check_all_ways(KEEP_ALIVE, check_keep_alive); }
END_TEST

static void check_rate_limit(const clink_msg *m) {
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_UNKNOWN);
  ck_assert_str_eq(clink_msg_type(m), "rate_limit_event");
  ck_assert_str_eq(clink_msg_session_id(m), SESSION);
  ck_assert_str_eq(clink_msg_uuid(m), "ad0e1f2a-3b4c-4d5e-9f6a-b7c8d9e0f1a2");
  const cJSON *info = cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "rate_limit_info");
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(info, "status")->valuestring, "allowed_warning");
  check_no_blocks(m);
  check_not_result(m);
  check_not_control(m);
}
START_TEST(unknown_type_is_kept) { check_all_ways(RATE_LIMIT, check_rate_limit); }
END_TEST

/* Types that resemble known ones are still unknown: matching is exact. */
START_TEST(type_matching_is_exact) {
  static const char *const lines[] = {
      "{\"type\":\"Assistant\"}",        "{\"type\":\"control_\"}",
      "{\"type\":\"control_requests\"}", "{\"type\":\"results\"}",
      "{\"type\":\"\"}",                 "{\"type\":\"keep_alive \"}",
      "{\"type\":\"transcript_mirror\",\"filePath\":\"/x\",\"entries\":[]}",
  };
  for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
    clink_msg *m = NULL;
    ck_assert_int_eq(clink_msg_parse(&m, lines[i], strlen(lines[i])), 0);
    ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_UNKNOWN);
    clink_msg_unref(m);
  }
}
END_TEST

/* ------------------------------------------------------------------ blocks */

static const char ODD_BLOCKS[] =
    "{\"type\":\"assistant\",\"message\":{\"role\":\"assistant\",\"content\":["
    "{\"type\":\"redacted_thinking\",\"data\":\"EmwKAhgBEgy3va3pzix\"},"
    "{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_01\",\"name\":\"web_search\",\"input\":{\"query\":\"q\"}},"
    "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBO\"}},"
    "\"a bare string\","
    "{\"text\":\"no type\"},"
    "{\"type\":7,\"text\":\"type not a string\"},"
    "{\"type\":\"text\",\"text\":42},"
    "{\"type\":\"tool_use\",\"id\":\"toolu_x\",\"name\":\"Read\"},"
    "{\"type\":\"text\",\"text\":\"last\"}"
    "]},\"session_id\":\"s\"}";

static void check_odd_blocks(const clink_msg *m) {
  ck_assert_uint_eq(clink_msg_block_count(m), 9);
  for (size_t i = 0; i < 6; i++) {
    ck_assert_int_eq(clink_msg_block_kind(m, i), CLINK_BLOCK_UNKNOWN);
    ck_assert_ptr_nonnull(clink_msg_block_json(m, i)); /* kept raw */
    ck_assert_ptr_null(clink_msg_block_text(m, i));
    ck_assert_ptr_null(clink_msg_block_tool_id(m, i));
    ck_assert_ptr_null(clink_msg_block_tool_name(m, i));
    ck_assert_ptr_null(clink_msg_block_tool_input(m, i));
  }
  const cJSON *b0 = clink_msg_block_json(m, 0);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(b0, "type")->valuestring, "redacted_thinking");
  const cJSON *b1 = clink_msg_block_json(m, 1);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(b1, "id")->valuestring, "srvtoolu_01");
  ck_assert(cJSON_IsString(clink_msg_block_json(m, 3)));
  /* a text block whose text is not a string */
  ck_assert_int_eq(clink_msg_block_kind(m, 6), CLINK_BLOCK_TEXT);
  ck_assert_ptr_null(clink_msg_block_text(m, 6));
  /* a tool_use without input */
  ck_assert_int_eq(clink_msg_block_kind(m, 7), CLINK_BLOCK_TOOL_USE);
  ck_assert_str_eq(clink_msg_block_tool_name(m, 7), "Read");
  ck_assert_ptr_null(clink_msg_block_tool_input(m, 7));
  ck_assert_str_eq(clink_msg_block_text(m, 8), "last");
}
START_TEST(unknown_blocks_kept_raw) { check_all_ways(ODD_BLOCKS, check_odd_blocks); }
END_TEST

START_TEST(out_of_range_block_index) {
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, ASSISTANT_TOOL_USE, strlen(ASSISTANT_TOOL_USE)), 0);
  const size_t bad[] = {1, 2, 1000, SIZE_MAX};
  for (size_t k = 0; k < ARRAY_LEN(bad); k++) {
    size_t i = bad[k];
    ck_assert_int_eq(clink_msg_block_kind(m, i), CLINK_BLOCK_UNKNOWN);
    ck_assert_ptr_null(clink_msg_block_text(m, i));
    ck_assert_ptr_null(clink_msg_block_tool_id(m, i));
    ck_assert_ptr_null(clink_msg_block_tool_name(m, i));
    ck_assert_ptr_null(clink_msg_block_tool_input(m, i));
    ck_assert_ptr_null(clink_msg_block_json(m, i));
  }
  clink_msg_unref(m);
}
END_TEST

/* assistant/user lines whose content has no blocks to offer. */
START_TEST(content_shapes_without_blocks) {
  static const char *const lines[] = {
      "{\"type\":\"assistant\"}",
      "{\"type\":\"assistant\",\"message\":null}",
      "{\"type\":\"assistant\",\"message\":\"text\"}",
      "{\"type\":\"assistant\",\"message\":{}}",
      "{\"type\":\"assistant\",\"message\":{\"content\":null}}",
      "{\"type\":\"assistant\",\"message\":{\"content\":17}}",
      "{\"type\":\"assistant\",\"message\":{\"content\":{\"type\":\"text\",\"text\":\"x\"}}}",
      "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[]}}",
      /* content outside "message" is not message.content */
      "{\"type\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}",
  };
  for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
    clink_msg *m = NULL;
    ck_assert_int_eq(clink_msg_parse(&m, lines[i], strlen(lines[i])), 0);
    check_no_blocks(m);
    clink_msg_unref(m);
  }
  /* blocks belong to assistant and user messages only */
  const char *sys = "{\"type\":\"system\",\"message\":{\"content\":\"hi\"}}";
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, sys, strlen(sys)), 0);
  check_no_blocks(m);
  clink_msg_unref(m);
}
END_TEST

/* ------------------------------------------------------------------ errors */

static void expect_error(const char *line, size_t len, int err) {
  static clink_msg sentinel;
  clink_msg *m = &sentinel; /* must stay untouched */
  clink_msg *before = m;
  ck_assert_int_eq(clink_msg_parse(&m, line, len), err);
  ck_assert_ptr_eq(m, before);

  char *buf = dup_exact(line, len);
  clink_msg b;
  memset(&b, 0, sizeof(b));
  ck_assert_int_eq(clink__msg_parse_borrowed(&b, buf, len), err);
  ck_assert_ptr_null(b.root);
  ck_assert_ptr_null(clink_msg_json(&b));
  ck_assert_ptr_null(clink_msg_type(&b));
  ck_assert_ptr_null(clink_msg_raw(&b, NULL));
  ck_assert_ptr_null(clink_msg_ref(&b)); /* nothing to keep */
  clink__msg_clear(&b);
  free(buf);
}

START_TEST(bad_json) {
  static const char *const lines[] = {
      "not json {",
      "this is not json {",
      "{\"type\":\"user\",\"message\":",           /* truncated */
      "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"hel", /* truncated */
      "{\"type\":\"user\",",                        /* ends in a comma */
      "{\"type\":\"user\",\"a\":[1,2,",
      "[{\"type\":\"user\"}]",                      /* an array */
      "\"keep_alive\"",                             /* a string */
      "42",
      "null",
      "true",
      "{",
      "}",
      "{}}",
      "{\"type\":\"user\"} trailing",
      "{\"type\":\"user\"}{\"type\":\"user\"}",
      "{\"type\":\"user\"}\n{\"type\":\"user\"}",
      "{\"type\":\"user\",}",
      "{\"type\" \"user\"}",
      "{'type':'user'}",
      "{\"type\":\"us\\qer\"}",
      "{\"type\":undefined}",
      "\xef\xbb\xbf{\"type\":\"user\"}", /* BOM: the CLI never writes one */
      " ",
      "\r\n",
  };
  for (size_t i = 0; i < ARRAY_LEN(lines); i++) expect_error(lines[i], strlen(lines[i]), CLINK_EBAD_JSON);
  expect_error("", 0, CLINK_EBAD_JSON);
  /* an embedded NUL ends nothing: the length rules */
  expect_error("{\"type\":\"user\"}\0xx", 18, CLINK_EBAD_JSON);
}
END_TEST

/* A line cut just after a comma makes cJSON 1.7.15 read one byte past the
 * buffer (fixed in 1.7.18); message.c must never hand it such a buffer. The
 * exact-size copies in expect_error() let valgrind see any over-read. */
START_TEST(truncated_lines_never_over_read) {
  const char *full = RESULT_SUCCESS;
  size_t n = strlen(full);
  for (size_t len = 0; len < n; len++) {
    clink_msg *m = NULL;
    char *buf = dup_exact(full, len);
    int err = clink_msg_parse(&m, buf, len);
    ck_assert_int_eq(err, CLINK_EBAD_JSON);
    clink_msg b;
    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(clink__msg_parse_borrowed(&b, buf, len), CLINK_EBAD_JSON);
    free(buf);
  }
}
END_TEST

START_TEST(missing_or_bad_type_is_protocol_error) {
  static const char *const lines[] = {
      "{}",
      "{\"subtype\":\"init\",\"session_id\":\"s\"}",
      "{\"type\":null}",
      "{\"type\":1}",
      "{\"type\":true}",
      "{\"type\":[\"user\"]}",
      "{\"type\":{\"name\":\"user\"}}",
      "{\"Type\":\"user\"}",
      "{\"message\":{\"type\":\"assistant\"}}",
      /* the first "type" decides, as for cJSON_GetObjectItem() */
      "{\"type\":null,\"type\":\"user\"}",
  };
  for (size_t i = 0; i < ARRAY_LEN(lines); i++)
    expect_error(lines[i], strlen(lines[i]), CLINK_EPROTOCOL);
}
END_TEST

START_TEST(invalid_arguments) {
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(NULL, "{\"type\":\"x\"}", 12), UV_EINVAL);
  ck_assert_int_eq(clink_msg_parse(&m, NULL, 5), UV_EINVAL);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(clink_msg_parse(&m, NULL, 0), CLINK_EBAD_JSON);
  ck_assert_ptr_null(m);
  clink_msg b;
  memset(&b, 0, sizeof(b));
  ck_assert_int_eq(clink__msg_parse_borrowed(NULL, "{}", 2), UV_EINVAL);
  ck_assert_int_eq(clink__msg_parse_borrowed(&b, NULL, 3), UV_EINVAL);
  ck_assert_int_eq(clink__msg_parse_borrowed(&b, NULL, 0), CLINK_EBAD_JSON);
  clink__msg_clear(&b);
  clink__msg_clear(NULL);
}
END_TEST

START_TEST(surrounding_whitespace_is_accepted) {
  const char line[] = " \t{\"type\":\"keep_alive\"}\r ";
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, line, strlen(line)), 0);
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_KEEP_ALIVE);
  check_raw(m, line, strlen(line)); /* exactly as received */
  clink_msg_unref(m);
}
END_TEST

#if defined(__SANITIZE_ADDRESS__)
#define CLINK_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CLINK_TEST_ASAN 1
#endif
#endif

/* The limit would outlive the test without fork mode; ASan and valgrind
 * need address space of their own. */
static int can_limit_address_space(void) {
#ifdef CLINK_TEST_ASAN
  return 0;
#else
  const char *fork_env = getenv("CK_FORK");
  const char *preload = getenv("LD_PRELOAD");
  if (fork_env != NULL && strcmp(fork_env, "no") == 0) return 0;
  if (preload != NULL && strstr(preload, "vgpreload") != NULL) return 0;
  return 1;
#endif
}

static void limit_address_space(size_t headroom) {
  FILE *f = fopen("/proc/self/statm", "r");
  ck_assert_ptr_nonnull(f);
  unsigned long pages = 0;
  ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
  fclose(f);
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_AS, &rl), 0);
  rl.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + headroom;
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
}

/* cJSON cannot say why it failed; a valid line it could not parse must come
 * back as UV_ENOMEM, not as CLINK_EBAD_JSON. */
START_TEST(allocation_failure_is_enomem) {
  if (!can_limit_address_space()) return;
  const size_t big = (size_t)64 << 20;
  const char head[] = "{\"type\":\"assistant\",\"message\":{\"content\":\"";
  const char tail[] = "\"}}";
  size_t len = strlen(head) + big + strlen(tail);
  char *line = malloc(len);
  ck_assert_ptr_nonnull(line);
  memcpy(line, head, strlen(head));
  memset(line + strlen(head), 'a', big);
  memcpy(line + strlen(head) + big, tail, strlen(tail));
  clink_msg b;
  memset(&b, 0, sizeof(b));
  ck_assert_int_eq(clink__msg_parse_borrowed(&b, line, len), 0); /* fits before the limit */
  limit_address_space((size_t)16 << 20);

  clink_msg c;
  memset(&c, 0, sizeof(c));
  ck_assert_int_eq(clink__msg_parse_borrowed(&c, line, len), UV_ENOMEM); /* cJSON's string */
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, line, len), UV_ENOMEM); /* our copy */
  ck_assert_ptr_null(m);
  ck_assert_ptr_null(clink_msg_ref(&b));
  /* still bad JSON when it is */
  line[len - 1] = ',';
  ck_assert_int_eq(clink__msg_parse_borrowed(&c, line, len), CLINK_EBAD_JSON);
  line[len - 1] = '}';
  line[7] = ' '; /* {"type" "assistant", ... */
  ck_assert_int_eq(clink__msg_parse_borrowed(&c, line, len), CLINK_EBAD_JSON);
  clink__msg_clear(&b);
  free(line);
}
END_TEST

/* --------------------------------------------------------------- validator */

static char *nested(size_t depth, char open, char close, const char *inner) {
  size_t n = strlen(inner);
  char *s = malloc(2 * depth + n + 1);
  ck_assert_ptr_nonnull(s);
  memset(s, open, depth);
  memcpy(s + depth, inner, n);
  memset(s + depth + n, close, depth);
  s[2 * depth + n] = '\0';
  return s;
}

static int cjson_accepts_object(const char *s) {
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithOpts(s, &end, 0);
  if (j == NULL) return 0;
  int ok = cJSON_IsObject(j);
  while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
  cJSON_Delete(j);
  return ok && *end == '\0';
}

/* The ENOMEM decision rests on this: whatever the validator accepts, cJSON
 * accepts too (cJSON is laxer in places; the validator may reject those). */
START_TEST(validator_never_laxer_than_cjson) {
  static const struct {
    const char *text;
    int valid;
  } cases[] = {
      {"{}", 1},
      {" {\"a\" : [1, -2.5e+3, 0, 0.0, 1E9, true, false, null, \"\", {}] } ", 1},
      {"{\"s\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00 \\u0000\"}", 1},
      {"{\"k\":\"h\xc3\xa9llo\"}", 1},
      {"{\"n\":123456789012345678901234567890123456789012345678901234567890123}", 1}, /* 63 */
      {"{\"n\":1234567890123456789012345678901234567890123456789012345678901234}", 0}, /* 64 */
      {"{\"n\":-12345678901234567890123456789012345678901234567890123456789012}", 1},  /* 63 */
      {"{\"s\":\"\\udc00\"}", 0},        /* lone low surrogate */
      {"{\"s\":\"\\ud800\"}", 0},        /* lone high surrogate */
      {"{\"s\":\"\\ud800\\u0041\"}", 0}, /* bad pair */
      {"{\"s\":\"\\ud800x\"}", 0},
      {"{\"s\":\"\\u12\"}", 0},
      {"{\"s\":\"\\x\"}", 0},
      {"{\"s\":\"abc}", 0},
      {"{\"a\":1,}", 0},
      {"{\"a\":[1,]}", 0},
      {"{\"a\":-}", 0},
      {"{\"a\":1.}", 0},
      {"{\"a\":.5}", 0},
      {"{\"a\":1e}", 0},
      {"{\"a\":tru}", 0},
      {"{\"a\":nulll}", 0},
      {"{\"a\" 1}", 0},
      {"{1:1}", 0},
      {"{\"a\":1}x", 0},
      {"[]", 0},
      {"\"s\"", 0},
      {"", 0},
      /* cJSON accepts these; the validator is allowed to be stricter */
      {"{\"a\":01}", 0},
      {"{\"s\":\"\\uZZZZ\"}", 0},
      {"{\"s\":\"tab\there\"}", 0},
  };
  for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
    const char *t = cases[i].text;
    ck_assert_msg(clink__json_object_valid(t, strlen(t)) == cases[i].valid, "case %zu: %s", i, t);
    if (cases[i].valid) ck_assert_msg(cjson_accepts_object(t), "cJSON rejects case %zu", i);
  }
  /* Nesting: cJSON stops at CJSON_NESTING_LIMIT containers. */
  const size_t limit = CJSON_NESTING_LIMIT;
  char *ok_obj = nested(limit - 1, '[', ']', "");
  size_t n = strlen(ok_obj);
  char *doc = malloc(n + 8);
  ck_assert_ptr_nonnull(doc);
  snprintf(doc, n + 8, "{\"a\":%s}", ok_obj); /* limit containers in all */
  ck_assert_int_eq(clink__json_object_valid(doc, strlen(doc)), 1);
  ck_assert_int_eq(cjson_accepts_object(doc), 1);
  free(doc);
  free(ok_obj);
  char *deep = nested(limit, '[', ']', "");
  n = strlen(deep);
  doc = malloc(n + 8);
  ck_assert_ptr_nonnull(doc);
  snprintf(doc, n + 8, "{\"a\":%s}", deep); /* one too many */
  ck_assert_int_eq(clink__json_object_valid(doc, strlen(doc)), 0);
  ck_assert_int_eq(cjson_accepts_object(doc), 0);
  free(doc);
  free(deep);
  /* Every real transcript line is valid. */
  const char *const real[] = {INIT, ASSISTANT_TEXT, ASSISTANT_TOOL_USE, USER_TOOL_RESULT_LIST,
                              RESULT_SUCCESS, CAN_USE_TOOL, CONTROL_RESPONSE_ERR, RATE_LIMIT};
  for (size_t i = 0; i < ARRAY_LEN(real); i++)
    ck_assert_int_eq(clink__json_object_valid(real[i], strlen(real[i])), 1);
}
END_TEST

START_TEST(deep_nesting_is_bad_json) {
  char *deep = nested(CJSON_NESTING_LIMIT + 5, '[', ']', "");
  size_t n = strlen(deep);
  char *doc = malloc(n + 32);
  ck_assert_ptr_nonnull(doc);
  snprintf(doc, n + 32, "{\"type\":\"user\",\"a\":%s}", deep);
  expect_error(doc, strlen(doc), CLINK_EBAD_JSON);
  free(doc);
  free(deep);
}
END_TEST

/* ---------------------------------------------------------------- lifetime */

START_TEST(heap_ref_unref) {
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, ASSISTANT_TEXT, strlen(ASSISTANT_TEXT)), 0);
  const char *text = clink_msg_block_text(m, 0);
  ck_assert_ptr_eq(clink_msg_ref(m), m);
  ck_assert_ptr_eq(clink_msg_ref(m), m);
  clink_msg_unref(m);
  clink_msg_unref(m);
  ck_assert_ptr_eq(clink_msg_block_text(m, 0), text); /* one reference left */
  ck_assert_str_eq(text, "pong");
  clink_msg_unref(m); /* freed; valgrind checks */
  clink_msg_unref(NULL);
  ck_assert_ptr_null(clink_msg_ref(NULL));
}
END_TEST

START_TEST(borrowed_ref_survives_source) {
  size_t len = strlen(CAN_USE_TOOL);
  char *buf = dup_exact(CAN_USE_TOOL, len);
  clink_msg b;
  memset(&b, 0, sizeof(b));
  ck_assert_int_eq(clink__msg_parse_borrowed(&b, buf, len), 0);
  clink_msg *k1 = clink_msg_ref(&b);
  clink_msg *k2 = clink_msg_ref(&b);
  ck_assert_ptr_nonnull(k1);
  ck_assert_ptr_nonnull(k2);
  ck_assert_ptr_ne(k1, k2); /* each ref of a borrowed message is a new copy */
  ck_assert_ptr_ne(clink_msg_raw(k1, NULL), buf);
  clink_msg_unref(&b); /* borrowed: not ours, no effect */
  ck_assert_str_eq(clink__msg_request_id(&b), "11c6833d-ca26-46af-8c5d-e2efd923b42d");
  /* the client reuses its buffer and struct for the next line */
  memset(buf, ' ', len);
  memcpy(buf, KEEP_ALIVE, strlen(KEEP_ALIVE));
  ck_assert_int_eq(clink__msg_parse_borrowed(&b, buf, len), 0); /* releases the old tree */
  ck_assert_int_eq(clink_msg_get_kind(&b), CLINK_MSG_KEEP_ALIVE);
  clink__msg_clear(&b);
  memset(buf, 0, len);
  free(buf);
  ck_assert_int_eq(clink_msg_get_kind(k1), CLINK_MSG_CONTROL_REQUEST);
  ck_assert_str_eq(clink__msg_request_id(k1), "11c6833d-ca26-46af-8c5d-e2efd923b42d");
  ck_assert_str_eq(clink__msg_request_subtype(k1), "can_use_tool");
  check_raw(k1, CAN_USE_TOOL, len);
  ck_assert_ptr_eq(clink_msg_ref(k1), k1);
  clink_msg_unref(k1);
  clink_msg_unref(k1);
  check_can_use_tool(k2);
  clink_msg_unref(k2);
  /* a cleared struct has nothing to keep */
  ck_assert_ptr_null(clink_msg_ref(&b));
}
END_TEST

START_TEST(null_message_is_safe) {
  ck_assert_int_eq(clink_msg_get_kind(NULL), CLINK_MSG_UNKNOWN);
  ck_assert_ptr_null(clink_msg_type(NULL));
  ck_assert_ptr_null(clink_msg_subtype(NULL));
  ck_assert_ptr_null(clink_msg_session_id(NULL));
  ck_assert_ptr_null(clink_msg_uuid(NULL));
  ck_assert_ptr_null(clink_msg_parent_tool_use_id(NULL));
  size_t len = 99;
  ck_assert_ptr_null(clink_msg_raw(NULL, &len));
  ck_assert_uint_eq(len, 0);
  ck_assert_ptr_null(clink_msg_raw(NULL, NULL));
  ck_assert_ptr_null(clink_msg_json(NULL));
  check_no_blocks(NULL);
  ck_assert_ptr_null(clink_msg_block_tool_id(NULL, 0));
  ck_assert_ptr_null(clink_msg_block_tool_name(NULL, 0));
  ck_assert_ptr_null(clink_msg_block_tool_input(NULL, 0));
  check_not_result(NULL);
  check_not_control(NULL);
}
END_TEST

/* ----------------------------------------------------------------- strings */

static void check_utf8(const clink_msg *m) {
  ck_assert_str_eq(clink_msg_block_text(m, 0),
                   "h\xc3\xa9llo \xf0\x9f\x98\x80 \"q\" \\ / \n\t "
                   "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xc3\xa9");
  ck_assert_str_eq(clink_msg_session_id(m), "s\xc3\xa9ssion");
}
START_TEST(utf8_and_escapes) {
  /* escaped (\u00e9, a surrogate pair, \" \\ \/ \n \t) and raw UTF-8 mixed */
  const char line[] =
      "{\"type\":\"assistant\",\"session_id\":\"s\\u00e9ssion\",\"message\":{\"content\":[{\"type\":"
      "\"text\",\"text\":\"h\\u00e9llo \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\n\\t "
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xc3\xa9\"}]}}";
  check_all_ways(line, check_utf8);
}
END_TEST

START_TEST(escaped_nul_truncates_c_string) {
  const char line[] = "{\"type\":\"user\",\"message\":{\"content\":\"ab\\u0000cd\"}}";
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, line, strlen(line)), 0);
  ck_assert_str_eq(clink_msg_block_text(m, 0), "ab"); /* C strings stop at NUL */
  clink_msg_unref(m);
}
END_TEST

#define BIG_TEXT ((size_t)5 << 20)

static char *big_line(size_t *len_out) {
  const char head[] = "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"";
  const char tail[] = "\"}]},\"session_id\":\"s\"}";
  size_t len = strlen(head) + BIG_TEXT + strlen(tail);
  char *s = malloc(len + 1);
  ck_assert_ptr_nonnull(s);
  char *p = s;
  memcpy(p, head, strlen(head));
  p += strlen(head);
  for (size_t i = 0; i < BIG_TEXT; i++) p[i] = (char)('a' + (char)(i % 26));
  memcpy(p + BIG_TEXT - 4, "\xf0\x9f\x98\x80", 4); /* end on a 4-byte character */
  p += BIG_TEXT;
  memcpy(p, tail, strlen(tail));
  s[len] = '\0';
  *len_out = len;
  return s;
}

static void check_big(const clink_msg *m) {
  const char *t = clink_msg_block_text(m, 0);
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_eq(strlen(t), BIG_TEXT);
  ck_assert_int_eq(t[0], 'a');
  ck_assert_int_eq(t[BIG_TEXT / 2], 'a' + (int)((BIG_TEXT / 2) % 26));
  ck_assert_int_eq(memcmp(t + BIG_TEXT - 4, "\xf0\x9f\x98\x80", 4), 0);
  ck_assert_str_eq(clink_msg_session_id(m), "s");
}

START_TEST(five_mb_line) {
  size_t len = 0;
  char *line = big_line(&len);
  ck_assert_uint_gt(len, BIG_TEXT);
  check_all_ways_n(line, len, check_big);
  free(line);
}
END_TEST

/* ----------------------------------------------------------------- numbers */

START_TEST(result_numbers_saturate) {
  const char line[] =
      "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":1,\"api_error_status\":\"500\","
      "\"duration_ms\":1e300,\"duration_api_ms\":-1e300,\"num_turns\":1e10,"
      "\"total_cost_usd\":\"0.5\",\"usage\":[],\"permission_denials\":{},"
      "\"result\":7,\"terminal_reason\":null}";
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, line, strlen(line)), 0);
  ck_assert_int_eq(clink_msg_result_is_error(m), 0); /* only JSON true counts */
  ck_assert_int_eq(clink_msg_result_api_error_status(m), 0);
  ck_assert(clink_msg_result_duration_ms(m) == INT64_MAX);
  ck_assert(clink_msg_result_duration_api_ms(m) == INT64_MIN);
  ck_assert_int_eq(clink_msg_result_num_turns(m), INT_MAX);
  ck_assert(clink_msg_result_total_cost_usd(m) == 0.0);
  ck_assert_ptr_null(clink_msg_result_usage(m));
  ck_assert_ptr_null(clink_msg_result_permission_denials(m));
  ck_assert_ptr_null(clink_msg_result_text(m));
  ck_assert_ptr_null(clink_msg_result_terminal_reason(m));
  clink_msg_unref(m);

  const char line2[] =
      "{\"type\":\"result\",\"api_error_status\":529,\"num_turns\":-3,\"duration_ms\":12.9,"
      "\"is_error\":true,\"is_error\":false}";
  ck_assert_int_eq(clink_msg_parse(&m, line2, strlen(line2)), 0);
  ck_assert_int_eq(clink_msg_result_api_error_status(m), 529);
  ck_assert_int_eq(clink_msg_result_num_turns(m), -3);
  ck_assert_int_eq(clink_msg_result_duration_ms(m), 12);
  ck_assert_int_eq(clink_msg_result_is_error(m), 1); /* first key wins */
  clink_msg_unref(m);
}
END_TEST

/* First occurrence of a key wins everywhere, as in cJSON_GetObjectItem(). */
START_TEST(duplicate_keys_first_wins) {
  const char line[] =
      "{\"type\":\"control_response\",\"response\":{\"request_id\":\"first\",\"subtype\":"
      "\"success\",\"request_id\":\"second\"},\"response\":{\"request_id\":\"third\"},"
      "\"session_id\":\"a\",\"session_id\":\"b\",\"type\":\"user\"}";
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, line, strlen(line)), 0);
  ck_assert_int_eq(clink_msg_get_kind(m), CLINK_MSG_CONTROL_RESPONSE);
  ck_assert_str_eq(clink__msg_request_id(m), "first");
  ck_assert_str_eq(clink_msg_session_id(m), "a");
  ck_assert_ptr_eq(clink__msg_response(m),
                   cJSON_GetObjectItemCaseSensitive(clink_msg_json(m), "response"));
  clink_msg_unref(m);
}
END_TEST

/* Non-string ids are absent, never crashes. */
START_TEST(control_fields_with_wrong_types) {
  static const char *const lines[] = {
      "{\"type\":\"control_request\",\"request_id\":7,\"request\":\"x\"}",
      "{\"type\":\"control_request\"}",
      "{\"type\":\"control_request\",\"request_id\":null,\"request\":{\"subtype\":3}}",
      "{\"type\":\"control_response\",\"response\":[1]}",
      "{\"type\":\"control_response\",\"request_id\":\"top\",\"response\":{\"request_id\":1}}",
      "{\"type\":\"control_cancel_request\",\"request_id\":{}}",
  };
  for (size_t i = 0; i < ARRAY_LEN(lines); i++) {
    clink_msg *m = NULL;
    ck_assert_int_eq(clink_msg_parse(&m, lines[i], strlen(lines[i])), 0);
    ck_assert_ptr_null(clink__msg_request_id(m));
    ck_assert_ptr_null(clink__msg_request_subtype(m));
    ck_assert_ptr_null(clink__msg_response_subtype(m));
    clink_msg_unref(m);
  }
  /* control_request with a request that has no subtype still exposes it */
  const char *l = "{\"type\":\"control_request\",\"request_id\":\"r\",\"request\":{}}";
  clink_msg *m = NULL;
  ck_assert_int_eq(clink_msg_parse(&m, l, strlen(l)), 0);
  ck_assert_str_eq(clink__msg_request_id(m), "r");
  ck_assert(cJSON_IsObject(clink__msg_request(m)));
  ck_assert_ptr_null(clink__msg_request_subtype(m));
  clink_msg_unref(m);
}
END_TEST

/* -------------------------------------------------------------------- main */


/* Blocks in any order give the same answers (the cursor that makes an
 * in-order walk O(n) is only a cache). */
START_TEST(blocks_in_any_order) {
  char line[8192];
  size_t n = (size_t)snprintf(line, sizeof(line),
                              "{\"type\":\"assistant\",\"message\":{\"content\":[");
  for (int i = 0; i < 50; i++)
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%s{\"type\":\"text\",\"text\":\"b%d\"}",
                          i ? "," : "", i);
  n += (size_t)snprintf(line + n, sizeof(line) - n, "]}}");
  clink_msg *m;
  ck_assert_int_eq(clink_msg_parse(&m, line, n), 0);
  ck_assert_uint_eq(clink_msg_block_count(m), 50);
  char want[16];
  for (int i = 0; i < 50; i++) {
    snprintf(want, sizeof(want), "b%d", i);
    ck_assert_str_eq(clink_msg_block_text(m, (size_t)i), want);
  }
  for (int i = 49; i >= 0; i--) {
    snprintf(want, sizeof(want), "b%d", i);
    ck_assert_str_eq(clink_msg_block_text(m, (size_t)i), want);
  }
  for (int k = 0; k < 200; k++) {
    int i = (k * 37 + 11) % 50;
    snprintf(want, sizeof(want), "b%d", i);
    ck_assert_str_eq(clink_msg_block_text(m, (size_t)i), want);
  }
  ck_assert_ptr_null(clink_msg_block_text(m, 50));
  clink_msg_unref(m);
}
END_TEST

int main(void) {
  Suite *s = suite_create("message");

  TCase *tc = tcase_create("kinds");
  tcase_add_test(tc, system_init);
  tcase_add_test(tc, blocks_in_any_order);
  tcase_add_test(tc, system_api_retry);
  tcase_add_test(tc, assistant_text);
  tcase_add_test(tc, assistant_tool_use);
  tcase_add_test(tc, assistant_thinking);
  tcase_add_test(tc, assistant_api_error);
  tcase_add_test(tc, user_tool_result_string);
  tcase_add_test(tc, user_tool_result_list);
  tcase_add_test(tc, user_string_content);
  tcase_add_test(tc, user_interrupted);
  tcase_add_test(tc, result_success);
  tcase_add_test(tc, result_api_error);
  tcase_add_test(tc, result_interrupt);
  tcase_add_test(tc, result_permission_denials);
  tcase_add_test(tc, stream_event);
  tcase_add_test(tc, control_request_can_use_tool);
  tcase_add_test(tc, control_response_success);
  tcase_add_test(tc, control_response_ack);
  tcase_add_test(tc, control_response_error);
  tcase_add_test(tc, control_cancel_request);
  tcase_add_test(tc, keep_alive);
  tcase_add_test(tc, unknown_type_is_kept);
  tcase_add_test(tc, type_matching_is_exact);
  suite_add_tcase(s, tc);

  tc = tcase_create("blocks");
  tcase_add_test(tc, unknown_blocks_kept_raw);
  tcase_add_test(tc, out_of_range_block_index);
  tcase_add_test(tc, content_shapes_without_blocks);
  suite_add_tcase(s, tc);

  tc = tcase_create("errors");
  tcase_add_test(tc, bad_json);
  tcase_add_test(tc, truncated_lines_never_over_read);
  tcase_add_test(tc, missing_or_bad_type_is_protocol_error);
  tcase_add_test(tc, invalid_arguments);
  tcase_add_test(tc, surrounding_whitespace_is_accepted);
  tcase_add_test(tc, allocation_failure_is_enomem);
  tcase_add_test(tc, validator_never_laxer_than_cjson);
  tcase_add_test(tc, deep_nesting_is_bad_json);
  suite_add_tcase(s, tc);

  tc = tcase_create("lifetime");
  tcase_add_test(tc, heap_ref_unref);
  tcase_add_test(tc, borrowed_ref_survives_source);
  tcase_add_test(tc, null_message_is_safe);
  suite_add_tcase(s, tc);

  tc = tcase_create("values");
  tcase_add_test(tc, utf8_and_escapes);
  tcase_add_test(tc, escaped_nul_truncates_c_string);
  tcase_add_test(tc, five_mb_line);
  tcase_add_test(tc, result_numbers_saturate);
  tcase_add_test(tc, duplicate_keys_first_wins);
  tcase_add_test(tc, control_fields_with_wrong_types);
  suite_add_tcase(s, tc);

  return clink_test_run(s);
}
