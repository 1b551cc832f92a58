/* Spawn profile identity for cache keys (see profile.c). Pure; internal. */
#ifndef CLINK_FALLBACK_PROFILE_H
#define CLINK_FALLBACK_PROFILE_H

#include <stdint.h>

#include "claudelink.h"

#define CLINK__PROFILE_KEY_LEN 16

/* FNV-1a over what changes the CLI's answers; never allocates. */
uint64_t clink__profile_hash(const clink_options *opts);
/* The hash as 16 lower-case hex digits. */
void clink__profile_key(const clink_options *opts, char out[CLINK__PROFILE_KEY_LEN + 1]);

#endif
