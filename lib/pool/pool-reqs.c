/* The pool's acquire requests (see pool-reqs.h). */
#include "base/internal.h"
#include "pool/pool-reqs.h"

#define REQ_CHUNK 64

int clink__req_slab_grow(clink__req_slab *slab, size_t n) {
  clink__req_chunk *ch = malloc(sizeof(*ch) + n * sizeof(clink__pool_req));
  if (ch == NULL) return UV_ENOMEM;
  ch->next = slab->chunks;
  slab->chunks = ch;
  for (size_t i = 0; i < n; i++) {
    ch->r[i].in = R_FREE;
    ch->r[i].sid = NULL;
    ch->r[i].next = slab->free;
    slab->free = &ch->r[i];
  }
  return 0;
}

clink__pool_req *clink__req_get(clink__req_slab *slab) {
  if (slab->free == NULL && clink__req_slab_grow(slab, REQ_CHUNK) != 0) return NULL;
  clink__pool_req *r = slab->free;
  slab->free = r->next;
  r->prev = r->next = NULL;
  r->sid = NULL;
  r->where[0] = '\0';
  r->m = NULL;
  r->status = 0;
  r->retry_after = 0;
  r->waited = 0;
  return r;
}

int clink__req_set(clink__pool_req *r, const char *sid, const char *where) {
  if (where) {
    size_t n = strlen(where);
    if (n >= sizeof(r->where)) n = sizeof(r->where) - 1;
    memcpy(r->where, where, n);
    r->where[n] = '\0';
  }
  if (sid == NULL) return 0;
  size_t n = strlen(sid);
  if (n < sizeof(r->sid_buf)) {
    memcpy(r->sid_buf, sid, n + 1);
    r->sid = r->sid_buf;
    return 0;
  }
  r->sid = clink__strdup(sid);
  return r->sid ? 0 : UV_ENOMEM;
}

void clink__req_put(clink__req_slab *slab, clink__pool_req *r) {
  if (r->sid && r->sid != r->sid_buf) clink__free(r->sid);
  r->sid = NULL;
  r->in = R_FREE;
  r->next = slab->free;
  slab->free = r;
}

void clink__req_slab_free(clink__req_slab *slab) {
  while (slab->chunks) {
    clink__req_chunk *ch = slab->chunks;
    slab->chunks = ch->next;
    clink__free(ch);
  }
  slab->free = NULL;
}

void clink__rl_append(clink__rlist *l, clink__pool_req *r) {
  r->next = NULL;
  r->prev = l->tail;
  if (l->tail)
    l->tail->next = r;
  else
    l->head = r;
  l->tail = r;
}

void clink__rl_prepend(clink__rlist *l, clink__pool_req *r) {
  r->prev = NULL;
  r->next = l->head;
  if (l->head)
    l->head->prev = r;
  else
    l->tail = r;
  l->head = r;
}

void clink__rl_remove(clink__rlist *l, clink__pool_req *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    l->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    l->tail = r->prev;
  r->prev = r->next = NULL;
}
