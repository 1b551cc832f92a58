/* The fallback cache: keys, prompt normalisation and the store interface.
 * Pure; internal.
 *
 * A key is operation + profile identity + conversation + the prompt with its
 * whitespace collapsed and trimmed. Keys are never materialised to look up:
 * clink__cache_key_init() hashes the parts in one pass and the store
 * compares them in another, so a lookup allocates nothing whatever the
 * prompt's size.
 *
 * The store is an interface (a table of functions) so that a shared store
 * (Redis) can replace the in-memory one later; a network store would answer
 * lookup with UV_EAGAIN and complete through a callback, which the callers
 * would then grow. Time is now_ms in, from the caller's clock. */
#ifndef CLINK_FALLBACK_CACHE_H
#define CLINK_FALLBACK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "claudelink.h"

typedef struct clink__cache_key {
  const char *operation;    /* never NULL */
  const char *profile;      /* "" for none */
  const char *conversation; /* "" for none */
  const char *prompt;       /* raw: normalised on the fly */
  size_t part_len[3];       /* strlen of operation, profile, conversation */
  uint64_t hash;
  size_t norm_len; /* length of the normalised prompt */
  size_t len;      /* bytes of the stored form: op \0 profile \0 conv \0 norm */
} clink__cache_key;

/* Fills k (NULL profile / conversation count as ""); one pass over the
 * prompt; never allocates. */
void clink__cache_key_init(clink__cache_key *k, const char *operation, const char *profile,
                           const char *conversation, const char *prompt);

/* The prompt with every run of ASCII whitespace (space, \t, \n, \v, \f, \r)
 * made one space and both ends trimmed: writes at most cap bytes (NUL
 * included when cap > 0) and returns the full length (like snprintf). */
size_t clink__normalize_prompt(const char *prompt, char *out, size_t cap);

/* A hit: the answer stays valid (even if evicted or cleared meanwhile) until
 * release(). */
typedef struct clink__cache_hit {
  const char *answer; /* NUL-terminated */
  size_t len;
  uint64_t age_ms;
  int stale; /* past its TTL, inside the stale-if-error window */
  void *handle;
} clink__cache_hit;

typedef struct clink__cache_stats {
  uint64_t entries, bytes;
  uint64_t hits, misses, stores, evictions, expired;
} clink__cache_stats;

typedef struct clink__cache_store clink__cache_store;

typedef struct clink__cache_store_ops {
  /* 0 and *hit (a reference) when an entry for k lives at now_ms (fresh, or
   * stale within its stale-if-error window); UV_ENOENT otherwise. Entries
   * found dead are dropped. Never allocates. */
  int (*lookup)(clink__cache_store *s, const clink__cache_key *k, uint64_t now_ms,
                clink__cache_hit *hit);
  /* Drops the reference a hit holds. s may be NULL and must not be used:
   * the store may be gone (a fallback freed from a call's callback). */
  void (*release)(clink__cache_store *s, clink__cache_hit *hit);
  /* Stores answer[0..len) for k (replacing an earlier one): fresh until
   * now + ttl_ms, served on error until stale_ms after that (both saturate;
   * CLINK__NEVER: forever). UV_ENOMEM; UV_E2BIG when it alone exceeds the
   * byte bound (nothing stored; an earlier entry for k is dropped). */
  int (*put)(clink__cache_store *s, const clink__cache_key *k, const char *answer, size_t len,
             uint64_t now_ms, uint64_t ttl_ms, uint64_t stale_ms);
  /* Drops every entry; returns how many. */
  int (*clear)(clink__cache_store *s);
  /* New bounds; evicts least recently used entries until they hold. */
  int (*set_limits)(clink__cache_store *s, size_t max_entries, size_t max_bytes);
  void (*stats)(const clink__cache_store *s, clink__cache_stats *out);
  /* Frees the store; entries still referenced by hits are freed on their
   * release (which then must not touch the store: see the memory store). */
  void (*destroy)(clink__cache_store *s);
} clink__cache_store_ops;

struct clink__cache_store {
  const clink__cache_store_ops *ops;
};

/* The in-memory store: a chained hash table (power-of-two buckets, grown at
 * load 1) and an LRU list; a hit is a bucket walk, a compare and a list
 * move. */
int clink__cache_memory_new(clink__cache_store **out, size_t max_entries, size_t max_bytes);

/* Bytes an entry counts against the byte bound. */
size_t clink__cache_entry_cost(size_t key_len, size_t answer_len);

#endif
