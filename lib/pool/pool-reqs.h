/* The pool's acquire requests: a slab grown in chunks (an acquire served
 * from idle never allocates), and the intrusive lists they wait in. Pure;
 * internal to lib/pool. */
#ifndef CLINK_POOL_REQS_H
#define CLINK_POOL_REQS_H

#include <stddef.h>
#include <stdint.h>

#include "claudelink.h"

#define CLINK__POOL_SID_INLINE 64
#define CLINK__POOL_WHERE_MAX 64

typedef enum clink__req_where { R_FREE, R_WAIT, R_VALIDATING, R_DONE } clink__req_where;

struct clink__pool_member;

typedef struct clink__pool_req {
  struct clink__pool_req *prev, *next;
  clink_acquire_cb cb;
  void *ud;
  char where[CLINK__POOL_WHERE_MAX]; /* a copy: the caller's string may go */
  char *sid; /* NULL, sid_buf, or heap */
  char sid_buf[CLINK__POOL_SID_INLINE];
  uint64_t start_ns, deadline_ms, retry_after;
  int status;
  clink__req_where in;
  unsigned waited : 1;
  struct clink__pool_member *m;
} clink__pool_req;

typedef struct clink__req_chunk {
  struct clink__req_chunk *next;
  clink__pool_req r[];
} clink__req_chunk;

typedef struct clink__rlist {
  clink__pool_req *head, *tail;
} clink__rlist;

typedef struct clink__req_slab {
  clink__pool_req *free;
  clink__req_chunk *chunks;
} clink__req_slab;

/* Adds n free requests. 0 or UV_ENOMEM. */
int clink__req_slab_grow(clink__req_slab *slab, size_t n);
/* A cleared request, growing the slab by a chunk when empty; NULL on
 * UV_ENOMEM. */
clink__pool_req *clink__req_get(clink__req_slab *slab);
/* Copies sid (NULL allowed) and where (NULL allowed, truncated). 0 or
 * UV_ENOMEM. */
int clink__req_set(clink__pool_req *r, const char *sid, const char *where);
void clink__req_put(clink__req_slab *slab, clink__pool_req *r);
void clink__req_slab_free(clink__req_slab *slab);

void clink__rl_append(clink__rlist *l, clink__pool_req *r);
void clink__rl_prepend(clink__rlist *l, clink__pool_req *r);
void clink__rl_remove(clink__rlist *l, clink__pool_req *r);

#endif
