/* The server's backend: everything the HTTP side asks of the library,
 * behind one table of functions (chat, outbox read-back, the health
 * renderings, readiness, management, the request meter, shutdown). The
 * HTTP side never calls the library directly for these; backend.c shows
 * how the library's parts are assembled. */
#ifndef SERVER_BACKEND_H
#define SERVER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <claudelink.h>

#include "config.h"
#include "sbuf.h"

typedef struct backend backend;

typedef struct chat_request {
  const char *message;
  const char *conversation; /* the CLI conversation to continue, or NULL */
  int guaranteed;           /* through the outbox (needs --db) */
} chat_request;

typedef struct chat_result {
  int status;               /* 0, or the error that ended the request */
  const char *response;     /* the answer (status 0, not queued) */
  const char *conversation; /* the CLI conversation that answered, or NULL */
  const char *source;       /* primary|cache|mock|degraded|alternative|queued */
  int64_t queued_id;        /* source "queued": the outbox id */
  unsigned http_status;     /* for errors: 502, 503, 504... */
  const char *error;        /* for errors: a public text (no internals) */
  int api_status;           /* an upstream API error status, 0 if none */
  uint64_t retry_after_ms;  /* for 503: when to try again, 0 if unknown */
} chat_result;

/* Text as it arrives (for streams); may be called several times. */
typedef void (*chat_text_fn)(void *ud, const char *text, size_t len);
/* Exactly once, from the loop (never inside chat()). */
typedef void (*chat_done_fn)(void *ud, const chat_result *res);

/* An outbox message as the server shows it (strings borrowed). */
typedef struct outbox_view {
  int64_t id;
  const char *state; /* PENDING, LEASED, DELIVERED, DEAD */
  unsigned attempts;
  const char *response, *last_error, *session_id;
  uint64_t created_ms, updated_ms;
} outbox_view;
/* status 0 with v, UV_ENOENT, or another error. */
typedef void (*outbox_get_fn)(void *ud, int status, const outbox_view *v);

typedef void (*backend_closed_fn)(void *ud);

/* Creates the library objects (pools, breakers, outbox) on loop. events
 * is the sink every object reports to. err: a one-line reason. */
int backend_new(backend **out, uv_loop_t *loop, const server_config *cfg, clink_events *events,
                char *err, size_t errlen);

/* One chat request; see chat_done_fn. Returns 0 or an immediate error
 * (then done is never called). */
int backend_chat(backend *b, const chat_request *req, chat_text_fn on_text, chat_done_fn done,
                 void *ud);
/* Reads an outbox message back (UV_ENOTSUP without --db). */
int backend_outbox_get(backend *b, int64_t id, outbox_get_fn done, void *ud);
int backend_has_outbox(const backend *b);

/* The renderings, appended to out. */
void backend_health_detailed(backend *b, sbuf *out);
void backend_health_stability(backend *b, sbuf *out);
void backend_metrics_json(backend *b, sbuf *out);
void backend_metrics_prometheus(backend *b, sbuf *out);
/* application/health+json; *failing set when the status is "fail". */
void backend_health_json(backend *b, sbuf *out, int *failing);
/* Ready to serve chat (a connected member, or one can be started). */
int backend_ready(backend *b);

/* Management. 0, or UV_ENOENT for an unknown breaker. */
int backend_reset_breaker(backend *b, const char *name);
/* Clears the fallback cache; the number of entries dropped. */
uint64_t backend_clear_cache(backend *b);

/* The request meter: one finished HTTP request (route NULL: answered
 * before routing, never counted as started). */
void backend_observe_request(backend *b, const char *route, unsigned status,
                             uint64_t duration_us);
/* Requests in progress (the meter's gauge). */
void backend_request_started(backend *b);

/* Graceful: pools drained in batches, the outbox closed; cb once, from
 * the loop. A second call escalates (pools closed at once). */
void backend_shutdown(backend *b, backend_closed_fn cb, void *ud);
/* Frees what is left (after the shutdown callback). */
void backend_free(backend *b);

#endif
