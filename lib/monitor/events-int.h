/* How library objects emit into a sink (see clink_events in claudelink.h).
 * Cheap when nobody listens: enabled() is a few compares, so callers check
 * it before building fields. */
#ifndef CLINK_EVENTS_INT_H
#define CLINK_EVENTS_INT_H

#include "claudelink.h"

int clink__events_enabled(const clink_events *sink, clink_log_level level);
int clink__events_emit(clink_events *sink, clink_log_level level, const char *component,
                       const char *event, const clink_event_field *fields, size_t n);
int clink__events_emit_at(clink_events *sink, uint64_t unix_ms, clink_log_level level,
                          const char *component, const char *event,
                          const clink_event_field *fields, size_t n);

/* Field makers. */
static inline clink_event_field clink__f_str(const char *key, const char *s) {
  clink_event_field f = {key, s ? CLINK_FIELD_STRING : CLINK_FIELD_NULL, s, 0, 0.0};
  return f;
}
static inline clink_event_field clink__f_int(const char *key, int64_t i) {
  clink_event_field f = {key, CLINK_FIELD_INT, NULL, i, 0.0};
  return f;
}
static inline clink_event_field clink__f_dbl(const char *key, double d) {
  clink_event_field f = {key, CLINK_FIELD_DOUBLE, NULL, 0, d};
  return f;
}
static inline clink_event_field clink__f_bool(const char *key, int b) {
  clink_event_field f = {key, CLINK_FIELD_BOOL, NULL, b != 0, 0.0};
  return f;
}

#endif
