/* The server's sessions: a session id the clients see, mapped to the CLI
 * conversation that holds its history (the pool's affinity key). One chat
 * runs at a time per session; the others wait in a short FIFO. Bounded:
 * when full, the least recently used idle session is forgotten. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define BUCKETS 4096
#define SESSION_QUEUE 16

struct session {
  char id[SESSION_ID_MAX];
  char *conversation;
  uint64_t created_ms, last_used_ms, turns;
  int busy, deleted, refs;
  chat_ctx *q[SESSION_QUEUE];
  size_t q_head, q_len;
  session *hnext;
  session *prev, *next; /* LRU: most recent at head */
  session_table *t;
};

struct session_table {
  session *b[BUCKETS];
  session *head, *tail;
  size_t count, max;
  uint64_t created_total;
};

static unsigned hash(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h % BUCKETS;
}

int session_table_new(session_table **out, unsigned max_sessions) {
  session_table *t = calloc(1, sizeof(*t));
  if (t == NULL) return UV_ENOMEM;
  t->max = max_sessions;
  *out = t;
  return 0;
}

static void session_free(session *se) {
  free(se->conversation);
  free(se);
}

static void lru_unlink(session_table *t, session *se) {
  if (se->prev) se->prev->next = se->next;
  else t->head = se->next;
  if (se->next) se->next->prev = se->prev;
  else t->tail = se->prev;
  se->prev = se->next = NULL;
}

static void lru_front(session_table *t, session *se) {
  se->next = t->head;
  se->prev = NULL;
  if (t->head) t->head->prev = se;
  t->head = se;
  if (t->tail == NULL) t->tail = se;
}

static void detach(session_table *t, session *se) {
  session **pp = &t->b[hash(se->id)];
  while (*pp && *pp != se) pp = &(*pp)->hnext;
  if (*pp) *pp = se->hnext;
  lru_unlink(t, se);
  t->count--;
  se->deleted = 1;
  se->t = NULL;
}

void session_table_free(session_table *t) {
  if (t == NULL) return;
  while (t->head) {
    session *se = t->head;
    detach(t, se);
    if (se->refs == 0) session_free(se);
  }
  free(t);
}

static void new_id(char out[SESSION_ID_MAX]) {
  unsigned char r[16];
  if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) != 0) {
    uint64_t x = uv_hrtime();
    for (size_t i = 0; i < sizeof(r); i++) r[i] = (unsigned char)((x >> (8 * (i % 8))) ^ (i * 37));
  }
  r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
  r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
  snprintf(out, SESSION_ID_MAX,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
           r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
           r[15]);
}

session *session_create(session_table *t, uint64_t now_ms) {
  if (t->count >= t->max) {
    /* Forget the least recently used idle session. */
    session *victim = t->tail;
    while (victim && (victim->busy || victim->refs)) victim = victim->prev;
    if (victim == NULL) return NULL;
    detach(t, victim);
    session_free(victim);
  }
  session *se = calloc(1, sizeof(*se));
  if (se == NULL) return NULL;
  do new_id(se->id);
  while (session_find(t, se->id));
  se->created_ms = se->last_used_ms = now_ms;
  se->t = t;
  unsigned h = hash(se->id);
  se->hnext = t->b[h];
  t->b[h] = se;
  lru_front(t, se);
  t->count++;
  t->created_total++;
  return se;
}

session *session_find(session_table *t, const char *id) {
  for (session *se = t->b[hash(id)]; se; se = se->hnext)
    if (strcmp(se->id, id) == 0) return se;
  return NULL;
}

int session_delete(session_table *t, const char *id) {
  session *se = session_find(t, id);
  if (se == NULL) return UV_ENOENT;
  detach(t, se);
  if (se->refs == 0) session_free(se);
  return 0;
}

const char *session_id(const session *se) { return se->id; }
const char *session_conversation(const session *se) { return se->conversation; }
int session_deleted(const session *se) { return se->deleted; }

void session_set_conversation(session *se, const char *conversation) {
  if (conversation == NULL) return;
  if (se->conversation && strcmp(se->conversation, conversation) == 0) return;
  char *c = strdup(conversation);
  if (c == NULL) return;
  free(se->conversation);
  se->conversation = c;
}

void session_render(const session *se, sbuf *out) {
  char created[32], used[32];
  iso8601(created, se->created_ms);
  iso8601(used, se->last_used_ms);
  sbuf_str(out, "{\"session_id\":");
  sbuf_json_str(out, se->id);
  sbuf_printf(out, ",\"created\":\"%s\",\"last_used\":\"%s\",\"turns\":%llu,\"busy\":%s}",
              created, used, (unsigned long long)se->turns, se->busy ? "true" : "false");
}

void session_render_list(const session_table *t, sbuf *out, size_t max) {
  size_t n = 0;
  sbuf_printf(out, "{\"active_count\":%zu,\"total_created\":%llu,\"sessions\":[", t->count,
              (unsigned long long)t->created_total);
  for (const session *se = t->head; se && n < max; se = se->next, n++) {
    if (n) sbuf_add(out, ",", 1);
    session_render(se, out);
  }
  sbuf_str(out, "]}");
}

int session_enter(session *se, chat_ctx *c) {
  if (!se->busy) {
    se->busy = 1;
    return 1;
  }
  if (se->q_len == SESSION_QUEUE) return -1;
  se->q[(se->q_head + se->q_len++) % SESSION_QUEUE] = c;
  return 0;
}

chat_ctx *session_leave(session *se, uint64_t now_ms) {
  se->last_used_ms = now_ms;
  se->turns++;
  if (se->t) {
    lru_unlink(se->t, se);
    lru_front(se->t, se);
  }
  if (se->q_len == 0) {
    se->busy = 0;
    return NULL;
  }
  chat_ctx *c = se->q[se->q_head];
  se->q_head = (se->q_head + 1) % SESSION_QUEUE;
  se->q_len--;
  return c;
}

void session_ref(session *se) { se->refs++; }

void session_unref(session *se) {
  if (--se->refs == 0 && se->deleted) session_free(se);
}
