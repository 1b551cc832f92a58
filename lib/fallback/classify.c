/* Failure classes (clink_failure_classify) and the names of strategies,
 * sources and classes. Pure. */
#include <ctype.h>

#include "base/internal.h"

/* libuv's codes are -errno on Unix (lib/base/uv-codes.h); EACCES is not in
 * that list, and uv-ask.c checks this one against <uv.h>. */
#define CLINK__UV_EACCES (-EACCES)

_Static_assert((CLINK_FAILURE_ALL & (CLINK_FAILURE_ALL + 1)) == 0, "classes are low bits");
_Static_assert(CLINK_FAILURE_OTHER == (CLINK_FAILURE_ALL + 1) / 2, "OTHER is the last class");
_Static_assert((CLINK_FAILURE_DEFAULT & ~CLINK_FAILURE_ALL) == 0, "default within all");
_Static_assert((CLINK_FAILURE_DEFAULT & (CLINK_FAILURE_API_REJECTED | CLINK_FAILURE_CONFIG |
                                         CLINK_FAILURE_CONTEXT_OVERFLOW)) == 0,
               "a mock must never hide a configuration error");

/* Case-insensitive substring. */
static int contains_ci(const char *s, const char *needle) {
  if (s == NULL) return 0;
  size_t n = strlen(needle);
  for (; *s; s++) {
    size_t i = 0;
    while (i < n && s[i] && tolower((unsigned char)s[i]) == needle[i]) i++;
    if (i == n) return 1;
  }
  return 0;
}

static int says_context_overflow(const char *text) {
  return contains_ci(text, "prompt is too long") || contains_ci(text, "prompt too long") ||
         contains_ci(text, "context window") || contains_ci(text, "context length") ||
         contains_ci(text, "too many tokens") || contains_ci(text, "exceeds the context");
}

static clink_failure_class classify_turn(const clink_msg *result) {
  if (result == NULL) return CLINK_FAILURE_TURN;
  const char *reason = clink_msg_result_terminal_reason(result);
  const char *text = clink_msg_result_text(result);
  if (reason && strcmp(reason, "prompt_too_long") == 0) return CLINK_FAILURE_CONTEXT_OVERFLOW;
  int status = clink_msg_result_api_error_status(result);
  if ((status == 400 || status == 413) && says_context_overflow(text))
    return CLINK_FAILURE_CONTEXT_OVERFLOW;
  if (status > 0)
    return clink_api_status_is_retryable(status) ? CLINK_FAILURE_API_RETRYABLE
                                                 : CLINK_FAILURE_API_REJECTED;
  /* No status but the API failed: the CLI could not reach it (connection
   * refused, timeouts; real-cli.md §6.1): an outage. */
  if (text && strncmp(text, "API Error", 9) == 0) return CLINK_FAILURE_API_RETRYABLE;
  return CLINK_FAILURE_TURN;
}

clink_failure_class clink_failure_classify(int err, const clink_msg *result) {
  switch (err) {
    case 0:
    case UV_ECANCELED:
      return CLINK_FAILURE_NONE;
    case CLINK_ECIRCUIT_OPEN:
      return CLINK_FAILURE_CIRCUIT_OPEN;
    case CLINK_EPOOL_TIMEOUT:
    case CLINK_EQUEUE_FULL:
      return CLINK_FAILURE_POOL_TIMEOUT;
    case CLINK_ESPAWN:
    case CLINK_EEXITED:
    case CLINK_EINIT_TIMEOUT:
    case CLINK_ENOT_CONNECTED:
    case CLINK_EWRITE_QUEUE_FULL:
    case UV_EPIPE:
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_EAGAIN:
    case UV_EMFILE:
    case UV_ENFILE:
      return CLINK_FAILURE_PROCESS;
    case CLINK_ETURN_STALLED:
    case CLINK_ECONTROL_TIMEOUT:
      return CLINK_FAILURE_STALLED;
    case UV_ETIMEDOUT:
      return CLINK_FAILURE_DEADLINE;
    case CLINK_ETURN_FAILED:
      return classify_turn(result);
    case CLINK_EINTERRUPTED:
      return CLINK_FAILURE_TURN;
    case CLINK_ECLI_NOT_FOUND:
    case CLINK_ECLI_EXEC_DENIED:
    case UV_EINVAL:
    case UV_EPERM:
    case UV_ENOENT:
    case CLINK__UV_EACCES:
      return CLINK_FAILURE_CONFIG;
    default:
      return CLINK_FAILURE_OTHER;
  }
}

const char *clink_failure_class_name(clink_failure_class klass) {
  switch (klass) {
    case CLINK_FAILURE_NONE: return "none";
    case CLINK_FAILURE_CIRCUIT_OPEN: return "circuit_open";
    case CLINK_FAILURE_POOL_TIMEOUT: return "pool_timeout";
    case CLINK_FAILURE_PROCESS: return "process";
    case CLINK_FAILURE_STALLED: return "stalled";
    case CLINK_FAILURE_API_RETRYABLE: return "api_retryable";
    case CLINK_FAILURE_API_REJECTED: return "api_rejected";
    case CLINK_FAILURE_CONTEXT_OVERFLOW: return "context_overflow";
    case CLINK_FAILURE_TURN: return "turn_failed";
    case CLINK_FAILURE_DEADLINE: return "deadline";
    case CLINK_FAILURE_CONFIG: return "config";
    case CLINK_FAILURE_OTHER: return "other";
  }
  return "unknown";
}

const char *clink_fallback_strategy_name(clink_fallback_strategy s) {
  switch (s) {
    case CLINK_FALLBACK_CACHED_RESPONSE: return "cached_response";
    case CLINK_FALLBACK_MOCK_RESPONSE: return "mock_response";
    case CLINK_FALLBACK_DEGRADED_SERVICE: return "degraded_service";
    case CLINK_FALLBACK_QUEUE_FOR_RETRY: return "queue_for_retry";
    case CLINK_FALLBACK_ALTERNATIVE_PROVIDER: return "alternative_provider";
  }
  return "unknown";
}

const char *clink_source_name(clink_source source) {
  switch (source) {
    case CLINK_SOURCE_NONE: return "none";
    case CLINK_SOURCE_PRIMARY: return "primary";
    case CLINK_SOURCE_CACHE: return "cache";
    case CLINK_SOURCE_MOCK: return "mock";
    case CLINK_SOURCE_DEGRADED: return "degraded";
    case CLINK_SOURCE_QUEUED: return "queued";
    case CLINK_SOURCE_ALTERNATIVE: return "alternative";
  }
  return "unknown";
}
