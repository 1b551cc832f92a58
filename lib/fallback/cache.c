/* Fallback cache: prompt normalisation, keys, and the in-memory store (see
 * cache.h). */
#include "fallback/cache.h"

#include "base/deadline.h"
#include "base/internal.h"

/* ------------------------------------------------------------------ keys */

/* ASCII whitespace: space, \t, \n, \v, \f, \r. */
static const unsigned char ws_table[256] = {['\t'] = 1, ['\n'] = 1, ['\v'] = 1,
                                            ['\f'] = 1, ['\r'] = 1, [' '] = 1};

static inline int is_ws(unsigned char c) { return ws_table[c]; }

/* The normalised prompt, one byte at a time: a run of whitespace becomes one
 * space unless it ends the text; leading whitespace is skipped at init. */
typedef struct norm_it {
  const unsigned char *p;
} norm_it;

static inline void norm_init(norm_it *it, const char *s) {
  it->p = (const unsigned char *)(s ? s : "");
  while (is_ws(*it->p)) it->p++;
}

static inline int norm_next(norm_it *it) {
  unsigned char c = *it->p;
  if (c == 0) return -1;
  if (is_ws(c)) {
    while (is_ws(*it->p)) it->p++;
    return *it->p == 0 ? -1 : ' ';
  }
  it->p++;
  return c;
}

size_t clink__normalize_prompt(const char *prompt, char *out, size_t cap) {
  norm_it it;
  norm_init(&it, prompt);
  size_t n = 0;
  int c;
  while ((c = norm_next(&it)) >= 0) {
    if (n + 1 < cap) out[n] = (char)c;
    n++;
  }
  if (cap > 0) out[n < cap ? n : cap - 1] = '\0';
  return n;
}

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

static inline uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
  return h;
}

void clink__cache_key_init(clink__cache_key *k, const char *operation, const char *profile,
                           const char *conversation, const char *prompt) {
  k->operation = operation ? operation : "";
  k->profile = profile ? profile : "";
  k->conversation = conversation ? conversation : "";
  k->prompt = prompt ? prompt : "";
  const char *parts[3] = {k->operation, k->profile, k->conversation};
  size_t len = 0;
  uint64_t h = FNV_OFFSET;
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(parts[i]);
    k->part_len[i] = n;
    h = fnv(h, (const unsigned char *)parts[i], n + 1); /* with its NUL separator */
    len += n + 1;
  }
  norm_it it;
  norm_init(&it, k->prompt);
  size_t n = 0;
  int c;
  while ((c = norm_next(&it)) >= 0) {
    h = (h ^ (unsigned char)c) * FNV_PRIME;
    n++;
  }
  /* A final mix: the bucket index takes the low bits. */
  h ^= h >> 33;
  h *= UINT64_C(0xff51afd7ed558ccd);
  h ^= h >> 33;
  k->hash = h;
  k->norm_len = n;
  k->len = len + n;
}

/* ---------------------------------------------------------------- entries */

typedef struct entry {
  struct entry *hnext;       /* bucket chain */
  struct entry *prev, *next; /* LRU list: head is the most recent */
  uint64_t hash;
  uint64_t stored_ms, fresh_until, stale_until;
  size_t key_len, answer_len, cap; /* cap: room for the answer (+ NUL) */
  uint32_t refs;
  unsigned linked : 1;
  char data[]; /* key (op \0 profile \0 conv \0 norm), then the answer + NUL */
} entry;

size_t clink__cache_entry_cost(size_t key_len, size_t answer_len) {
  return sizeof(entry) + key_len + answer_len + 1;
}

/* What an entry counts: its allocation (the answer's room, not its length). */
static size_t cost(const entry *e) { return sizeof(entry) + e->key_len + e->cap; }

static int key_equals(const entry *e, const clink__cache_key *k) {
  if (e->hash != k->hash || e->key_len != k->len) return 0;
  const char *d = e->data;
  const char *parts[3] = {k->operation, k->profile, k->conversation};
  for (int i = 0; i < 3; i++) {
    size_t n = k->part_len[i] + 1;
    if (memcmp(d, parts[i], n) != 0) return 0;
    d += n;
  }
  const unsigned char *u = (const unsigned char *)d;
  norm_it it;
  norm_init(&it, k->prompt);
  int c;
  while ((c = norm_next(&it)) >= 0)
    if (*u++ != (unsigned char)c) return 0;
  return 1;
}

static void key_write(char *d, const clink__cache_key *k) {
  const char *parts[3] = {k->operation, k->profile, k->conversation};
  for (int i = 0; i < 3; i++) {
    size_t n = k->part_len[i] + 1;
    memcpy(d, parts[i], n);
    d += n;
  }
  norm_it it;
  norm_init(&it, k->prompt);
  int c;
  while ((c = norm_next(&it)) >= 0) *d++ = (char)c;
}

/* ------------------------------------------------------------ memory store */

typedef struct mem_store {
  clink__cache_store base;
  entry **buckets;
  size_t nbuckets; /* a power of two, or 0 before the first put */
  entry *head, *tail;
  size_t count, bytes;
  size_t max_entries, max_bytes;
  clink__cache_stats st;
} mem_store;

static void lru_unlink(mem_store *m, entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    m->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    m->tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push_front(mem_store *m, entry *e) {
  e->prev = NULL;
  e->next = m->head;
  if (m->head) m->head->prev = e;
  m->head = e;
  if (m->tail == NULL) m->tail = e;
}

/* Takes e out of the table and the list; frees it unless a hit holds it. */
static void drop(mem_store *m, entry *e) {
  entry **pp = &m->buckets[e->hash & (m->nbuckets - 1)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
  e->hnext = NULL;
  lru_unlink(m, e);
  m->count--;
  m->bytes -= cost(e);
  e->linked = 0;
  if (e->refs == 0) clink__free(e);
}

static entry *find(mem_store *m, const clink__cache_key *k) {
  if (m->nbuckets == 0) return NULL;
  for (entry *e = m->buckets[k->hash & (m->nbuckets - 1)]; e; e = e->hnext)
    if (key_equals(e, k)) return e;
  return NULL;
}

/* Evicts from the LRU end until adding `extra` bytes and `extra_n` entries
 * keeps both bounds. */
static void make_room(mem_store *m, size_t extra, size_t extra_n) {
  while (m->tail && (m->count + extra_n > m->max_entries || m->bytes + extra > m->max_bytes)) {
    drop(m, m->tail);
    m->st.evictions++;
  }
}

static int grow(mem_store *m) {
  size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
  entry **b = clink__calloc(n, sizeof(*b));
  if (b == NULL) return UV_ENOMEM;
  for (size_t i = 0; i < m->nbuckets; i++) {
    entry *e = m->buckets[i];
    while (e) {
      entry *next = e->hnext;
      entry **slot = &b[e->hash & (n - 1)];
      e->hnext = *slot;
      *slot = e;
      e = next;
    }
  }
  clink__free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
  return 0;
}

static int mem_lookup(clink__cache_store *s, const clink__cache_key *k, uint64_t now,
                      clink__cache_hit *hit) {
  mem_store *m = (mem_store *)s;
  entry *e = find(m, k);
  if (e != NULL && now >= e->stale_until) {
    drop(m, e);
    m->st.expired++;
    e = NULL;
  }
  if (e == NULL) {
    m->st.misses++;
    return UV_ENOENT;
  }
  if (m->head != e) {
    lru_unlink(m, e);
    lru_push_front(m, e);
  }
  e->refs++;
  m->st.hits++;
  hit->answer = e->data + e->key_len;
  hit->len = e->answer_len;
  hit->age_ms = now > e->stored_ms ? now - e->stored_ms : 0;
  hit->stale = now >= e->fresh_until;
  hit->handle = e;
  return 0;
}

static void mem_release(clink__cache_store *s, clink__cache_hit *hit) {
  (void)s;
  entry *e = hit->handle;
  hit->handle = NULL;
  if (e == NULL) return;
  if (--e->refs == 0 && !e->linked) clink__free(e);
}

static int mem_put(clink__cache_store *s, const clink__cache_key *k, const char *answer,
                   size_t len, uint64_t now, uint64_t ttl_ms, uint64_t stale_ms) {
  mem_store *m = (mem_store *)s;
  uint64_t fresh = clink__deadline(now, ttl_ms);
  uint64_t stale = clink__sat_add(fresh, stale_ms);
  size_t need = clink__cache_entry_cost(k->len, len);
  entry *old = find(m, k);
  if (need > m->max_bytes || need < len) {
    if (old) drop(m, old);
    return UV_E2BIG;
  }
  m->st.stores++;
  /* Same key, nobody reading it, room enough (and not much more): overwrite
   * in place; its cost does not change. */
  if (old && old->refs == 0 && old->cap >= len + 1 && old->cap / 2 <= len + 1) {
    old->answer_len = len;
    memcpy(old->data + old->key_len, answer, len);
    old->data[old->key_len + len] = '\0';
    old->stored_ms = now;
    old->fresh_until = fresh;
    old->stale_until = stale;
    if (m->head != old) {
      lru_unlink(m, old);
      lru_push_front(m, old);
    }
    return 0;
  }
  if (old) drop(m, old);
  if (m->count + 1 > m->nbuckets && grow(m) != 0 && m->nbuckets == 0) return UV_ENOMEM;
  entry *e = malloc(sizeof(entry) + k->len + len + 1);
  if (e == NULL) return UV_ENOMEM;
  memset(e, 0, sizeof(*e));
  e->hash = k->hash;
  e->key_len = k->len;
  e->answer_len = len;
  e->cap = len + 1;
  e->stored_ms = now;
  e->fresh_until = fresh;
  e->stale_until = stale;
  key_write(e->data, k);
  memcpy(e->data + k->len, answer, len);
  e->data[k->len + len] = '\0';
  make_room(m, need, 1);
  entry **slot = &m->buckets[e->hash & (m->nbuckets - 1)];
  e->hnext = *slot;
  *slot = e;
  lru_push_front(m, e);
  e->linked = 1;
  m->count++;
  m->bytes += need;
  return 0;
}

static int mem_clear(clink__cache_store *s) {
  mem_store *m = (mem_store *)s;
  int n = 0;
  while (m->head) {
    drop(m, m->head);
    n++;
  }
  return n;
}

static int mem_set_limits(clink__cache_store *s, size_t max_entries, size_t max_bytes) {
  mem_store *m = (mem_store *)s;
  m->max_entries = max_entries;
  m->max_bytes = max_bytes;
  make_room(m, 0, 0);
  return 0;
}

static void mem_stats(const clink__cache_store *s, clink__cache_stats *out) {
  const mem_store *m = (const mem_store *)s;
  *out = m->st;
  out->entries = m->count;
  out->bytes = m->bytes;
}

static void mem_destroy(clink__cache_store *s) {
  mem_store *m = (mem_store *)s;
  if (m == NULL) return;
  mem_clear(s);
  clink__free(m->buckets);
  clink__free(m);
}

static const clink__cache_store_ops mem_ops = {mem_lookup, mem_release, mem_put, mem_clear,
                                               mem_set_limits, mem_stats, mem_destroy};

int clink__cache_memory_new(clink__cache_store **out, size_t max_entries, size_t max_bytes) {
  if (out == NULL || max_entries == 0 || max_bytes == 0) return UV_EINVAL;
  mem_store *m = clink__calloc(1, sizeof(*m));
  if (m == NULL) return UV_ENOMEM;
  m->base.ops = &mem_ops;
  m->max_entries = max_entries;
  m->max_bytes = max_bytes;
  *out = &m->base;
  return 0;
}
