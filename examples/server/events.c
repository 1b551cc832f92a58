/* The last events, kept for the status page (GET /events). The sink hands
 * every event at or above LOG_LEVEL to the ring (and, separately, writes it
 * to stderr as a JSON line). */
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct event_ring {
  char **lines; /* JSON objects, oldest at (next - count) */
  size_t cap, count;
  uint64_t next_seq; /* seq of the next event */
  uint64_t dropped;  /* lost to out of memory */
};

int event_ring_new(event_ring **out, size_t capacity) {
  event_ring *r = calloc(1, sizeof(*r));
  if (r == NULL) return UV_ENOMEM;
  r->lines = calloc(capacity, sizeof(char *));
  if (r->lines == NULL) {
    free(r);
    return UV_ENOMEM;
  }
  r->cap = capacity;
  *out = r;
  return 0;
}

void event_ring_free(event_ring *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->cap; i++) clink_free(r->lines[i]);
  free(r->lines);
  free(r);
}

void event_ring_on_event(clink_events *sink, const clink_event *ev, void *ud) {
  event_ring *r = ud;
  char *json = NULL;
  (void)sink;
  /* The access log (DEBUG) goes to stderr only: the ring keeps what an
   * operator looks for. */
  if (strcmp(ev->event, "http_request") == 0) return;
  if (clink_event_to_json(ev, &json) != 0) {
    r->dropped++;
    return;
  }
  size_t slot = r->next_seq % r->cap;
  clink_free(r->lines[slot]);
  r->lines[slot] = json;
  r->next_seq++;
  if (r->count < r->cap) r->count++;
}

void event_ring_render(const event_ring *r, uint64_t since, sbuf *out) {
  sbuf_printf(out, "{\"next\":%llu,\"dropped\":%llu,\"events\":[",
              (unsigned long long)r->next_seq, (unsigned long long)r->dropped);
  uint64_t first = r->next_seq - r->count;
  if (since > first) first = since;
  for (uint64_t seq = first; seq < r->next_seq; seq++) {
    const char *line = r->lines[seq % r->cap];
    if (seq != first) sbuf_add(out, ",", 1);
    /* {"seq":N, + the event's own members */
    sbuf_printf(out, "{\"seq\":%llu,", (unsigned long long)seq);
    sbuf_str(out, line + 1);
  }
  sbuf_str(out, "]}");
}

void server_event(server *s, clink_log_level level, const char *event,
                  const clink_event_field *fields, size_t n) {
  if (s->events) clink_events_emit(s->events, level, "http_server", event, fields, n);
}
