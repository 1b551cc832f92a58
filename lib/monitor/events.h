/* Event records: what the sink keeps between an event and its delivery, and
 * how it is rendered. Pure; internal. */
#ifndef CLINK_EVENTS_H
#define CLINK_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "claudelink.h"

typedef struct clink__event_rec {
  struct clink__event_rec *next;
  clink_event ev; /* its pointers point into the record */
} clink__event_rec;

/* One allocation holding the event, its fields and copies of every string,
 * secrets redacted. NULL on UV_ENOMEM. */
clink__event_rec *clink__event_rec_make(uint64_t timestamp_ms, clink_log_level level,
                                        const char *component, const char *event,
                                        const clink_event_field *fields, size_t n);

/* Whether a field named key holds a secret (its value is replaced whole). */
int clink__secret_key(const char *key);
/* value with the secrets inside it replaced (API keys, bearer tokens,
 * NAME=value where NAME is ANTHROPIC_* or names a secret): writes at most
 * cap bytes (cap > 0, NUL included) and returns the full length it needs
 * (like snprintf). */
size_t clink__redact(const char *value, char *out, size_t cap);

/* {"timestamp":"2024-01-01T12:00:00.000Z","level":"INFO","event":..,
 *  "component":..,...fields} without '\n'; NULL on UV_ENOMEM. Free with
 * cJSON_free(). */
char *clink__event_json(const clink_event *ev);

/* ISO 8601 UTC with milliseconds: "2024-01-01T12:00:00.000Z" (25 bytes). */
void clink__iso8601_ms(uint64_t unix_ms, char out[32]);

/* Unix time in ms now (for timestamps only, never for deadlines). */
uint64_t clink__wall_ms(void);

#endif
