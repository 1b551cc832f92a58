/* What clink_ask needs of a pool that the public API does not give: its
 * loop, its breaker, and the identity of its spawn profile for cache keys.
 * uv-pool-view.c is the one file of lib/fallback that reads other layers'
 * internals (pool, spawn); public accessors in lib/pool would replace it.
 * Internal. */
#ifndef CLINK_FALLBACK_POOL_VIEW_H
#define CLINK_FALLBACK_POOL_VIEW_H

#include <stdint.h>

#include "claudelink.h"

#define CLINK__PROFILE_KEY_LEN 16

/* The loop the pool runs on. */
uv_loop_t *clink__pool_view_loop(const clink_pool *pool);
/* The pool's breaker (clink_pool_set_breaker()), or NULL. */
clink_breaker *clink__pool_view_breaker(const clink_pool *pool);
/* The identity of the pool's spawn profile: a 64-bit FNV-1a hash of every
 * option that changes what the CLI answers (path, cwd, environment edits,
 * flags, hooks), never of callbacks, limits or timeouts, as 16 lower-case hex
 * digits. The same options give the same identity in every process, so a
 * shared cache can use it. Never allocates. */
void clink__pool_view_profile_key(const clink_pool *pool, char out[CLINK__PROFILE_KEY_LEN + 1]);

#endif
