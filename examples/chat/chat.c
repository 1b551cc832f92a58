/* claudelink-chat: one session, each PROMPT one turn on the same process.
 *
 *   claudelink-chat [--cli PATH] [--model M] [--permission-mode MODE]
 *                   [--max-turns N] [--json] [--allow-tools] [--reconnect] PROMPT...
 *
 * Streams each turn's assistant text to stdout (--json: every received
 * message as one JSON line). Tool permission requests are denied with a
 * message unless --allow-tools. Exit 0 when every turn succeeded; otherwise
 * non-zero and one line on stderr naming the cause.
 *
 * --reconnect: if the CLI dies during or between turns, reconnect with the
 * default backoff (1, 2, 5, 10, 30, 60 s) through the "claude_sdk" circuit
 * breaker, resume the conversation, re-send the interrupted turn once, and
 * report each reconnection on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <claudelink.h>

typedef struct chat {
  uv_loop_t *loop;
  clink_client *client;
  char **prompts;
  int n_prompts, next, failed;
  int json, allow_tools, reconnect;
  clink_breaker_registry *breakers;
  char cause[1024];
} chat;

static void usage(void) {
  fprintf(stderr,
          "usage: claudelink-chat [--cli PATH] [--model M] [--permission-mode MODE]\n"
          "                       [--max-turns N] [--json] [--allow-tools] [--reconnect]\n"
          "                       PROMPT...\n");
  exit(2);
}

static int parse_mode(const char *s, clink_permission_mode *out) {
  static const char *const names[] = {"default", "acceptEdits", "plan",
                                      "bypassPermissions", "dontAsk", "auto"};
  for (int i = 0; i < 6; i++)
    if (strcmp(s, names[i]) == 0) return *out = (clink_permission_mode)i, 0;
  return -1;
}

/* The first failure wins: it is the cause. */
static void fail(chat *ch, const char *what, const char *detail) {
  if (!ch->failed) snprintf(ch->cause, sizeof(ch->cause), "%s: %s", what, detail);
  ch->failed = 1;
}

static void on_closed(clink_client *c, void *ud) { (void)c, (void)ud; }

static void finish(chat *ch) { clink_client_close(ch->client, on_closed, ch); }

static void on_message(clink_client *c, const clink_msg *m, void *ud) {
  chat *ch = ud;
  if (ch->json) {
    size_t len;
    const char *raw = clink_msg_raw(m, &len);
    fwrite(raw, 1, len, stdout);
    fputc('\n', stdout);
    return;
  }
  if (clink_msg_get_kind(m) != CLINK_MSG_ASSISTANT) return;
  for (size_t i = 0; i < clink_msg_block_count(m); i++)
    if (clink_msg_block_kind(m, i) == CLINK_BLOCK_TEXT) fputs(clink_msg_block_text(m, i), stdout);
}

static void send_next(chat *ch);

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  chat *ch = ud;
  if (!ch->json) fputc('\n', stdout);
  fflush(stdout);
  if (status == CLINK_ETURN_FAILED) {
    const char *text = clink_msg_result_text(result);
    fail(ch, "turn failed", text ? text : clink_msg_subtype(result));
  } else if (status == CLINK_EEXITED) {
    fail(ch, "process died", clink_client_last_error(c));
  } else if (status != 0) {
    fail(ch, "turn failed", clink_strerror(status));
  }
  if (ch->failed) {
    finish(ch);
    return;
  }
  send_next(ch);
}

static void send_next(chat *ch) {
  if (ch->next == ch->n_prompts) {
    finish(ch);
    return;
  }
  int rc = clink_client_query(ch->client, ch->prompts[ch->next++], on_message, on_turn, ch);
  if (rc != 0) {
    fail(ch, "query failed", clink_strerror(rc));
    finish(ch);
  }
}

static void on_connect(clink_client *c, int status, void *ud) {
  chat *ch = ud;
  if (status != 0) {
    const char *why = clink_client_last_error(c);
    fail(ch, status == CLINK_EEXITED ? "process died" : "connect failed",
         why[0] ? why : clink_strerror(status));
    finish(ch);
    return;
  }
  send_next(ch);
}

static void on_recovery(clink_client *c, clink_recovery_event ev, unsigned int attempt, int err,
                        uint64_t delay_ms, void *ud) {
  switch (ev) {
    case CLINK_RECOVERY_SCHEDULED:
      fprintf(stderr, "claudelink-chat: claude stopped (%s); reconnecting in %llu ms (attempt %u)\n",
              clink_strerror(err), (unsigned long long)delay_ms, attempt);
      break;
    case CLINK_RECOVERY_REJECTED:
      fprintf(stderr, "claudelink-chat: circuit open, next try in %llu ms\n",
              (unsigned long long)delay_ms);
      break;
    case CLINK_RECOVERY_SUCCEEDED:
      fprintf(stderr, "claudelink-chat: reconnected (session %s)\n",
              clink_client_session_id(c) ? clink_client_session_id(c) : "new");
      break;
    case CLINK_RECOVERY_FAILED:
      fprintf(stderr, "claudelink-chat: reconnection failed: %s\n", clink_strerror(err));
      break;
    default:
      break;
  }
}

static void on_permission(clink_client *c, clink_request *req, void *ud) {
  chat *ch = ud;
  if (ch->allow_tools) {
    clink_request_allow(req, NULL, NULL);
    return;
  }
  fprintf(stderr, "claudelink-chat: denied a tool request (use --allow-tools to allow)\n");
  clink_request_deny(req, "denied by claudelink-chat (run with --allow-tools)", 0);
}

int main(int argc, char **argv) {
  chat ch;
  memset(&ch, 0, sizeof(ch));
  clink_options *o;
  if (clink_options_new(&o) != 0) return 1;
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int rc = 0;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    } else if (strcmp(a, "--json") == 0) {
      ch.json = 1;
    } else if (strcmp(a, "--allow-tools") == 0) {
      ch.allow_tools = 1;
    } else if (strcmp(a, "--reconnect") == 0) {
      ch.reconnect = 1;
    } else if (v == NULL) {
      usage();
    } else if (strcmp(a, "--cli") == 0) {
      rc = clink_options_set_cli_path(o, v), i++;
    } else if (strcmp(a, "--model") == 0) {
      rc = clink_options_set_model(o, v), i++;
    } else if (strcmp(a, "--max-turns") == 0) {
      rc = clink_options_set_max_turns(o, (unsigned)strtoul(v, NULL, 10)), i++;
    } else if (strcmp(a, "--permission-mode") == 0) {
      clink_permission_mode m;
      if (parse_mode(v, &m) != 0) usage();
      rc = clink_options_set_permission_mode(o, m), i++;
    } else {
      usage();
    }
    if (rc != 0) usage();
  }
  if (i >= argc) usage();
  ch.prompts = argv + i;
  ch.n_prompts = argc - i;
  ch.loop = uv_default_loop();
  clink_options_set_permission_cb(o, on_permission, &ch);
  if (ch.reconnect) {
    clink_retry_policy *p;
    if (clink_retry_policy_new(&p) != 0) return 1;
    clink_options_set_recovery(o, p);
    clink_options_set_resend_interrupted_turn(o, 1);
    clink_retry_policy_free(p);
    if (clink_breaker_registry_new(&ch.breakers, 0) != 0) return 1;
  }

  int rc = clink_client_new(&ch.client, ch.loop, o);
  clink_options_free(o);
  if (rc != 0) {
    fprintf(stderr, "claudelink-chat: %s\n", clink_strerror(rc));
    return 1;
  }
  if (ch.reconnect) {
    clink_client_set_recovery_cb(ch.client, on_recovery, &ch);
    clink_client_set_breaker(ch.client, clink_breaker_registry_get(ch.breakers, "claude_sdk"));
  }
  rc = clink_client_connect(ch.client, on_connect, &ch);
  if (rc != 0) {
    const char *why = clink_client_last_error(ch.client);
    fprintf(stderr, "claudelink-chat: %s\n", why[0] ? why : clink_strerror(rc));
    clink_client_close(ch.client, on_closed, &ch);
    uv_run(ch.loop, UV_RUN_DEFAULT);
    return rc == CLINK_ECLI_NOT_FOUND ? 127 : 1;
  }
  uv_run(ch.loop, UV_RUN_DEFAULT);
  uv_loop_close(ch.loop);
  clink_breaker_registry_free(ch.breakers);
  if (ch.failed) {
    fprintf(stderr, "claudelink-chat: %s\n", ch.cause);
    return 1;
  }
  return 0;
}
