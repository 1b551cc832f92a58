#include "session/ctl-out.h"

#include <stdio.h>

#include "base/internal.h"
#include "base/rand.h"
#include "wire/message.h"

/* Most sessions have one or two requests out at a time: start small. */
#define CTL_INITIAL 4

int clink__ctl_init(clink__ctl *c, size_t max_inflight, uint64_t seed) {
  if (max_inflight == 0) return UV_EINVAL;
  memset(c, 0, sizeof(*c));
  c->cap = max_inflight < CTL_INITIAL ? max_inflight : CTL_INITIAL;
  c->e = clink__calloc(c->cap, sizeof(*c->e));
  if (c->e == NULL) return UV_ENOMEM;
  c->max = max_inflight;
  c->rng = seed;
  return 0;
}

void clink__ctl_free(clink__ctl *c) {
  clink__free(c->e);
  c->e = NULL;
  c->cap = c->n = c->max = 0;
}

/* Ids only need to differ between processes and restarts. */
static uint32_t next_rand(clink__ctl *c) { return (uint32_t)(clink__splitmix64(&c->rng) >> 32); }

int clink__ctl_add(clink__ctl *c, const char *subtype, uint64_t deadline_ms,
                   clink__ctl_cb cb, void *ud, char id_out[CLINK__CTL_ID_MAX]) {
  if (c->n == c->cap) {
    if (c->cap == c->max) return CLINK_ETOO_MANY_REQUESTS;
    size_t ncap = c->cap * 2 < c->max ? c->cap * 2 : c->max;
    clink__ctl_entry *ne = realloc(c->e, ncap * sizeof(*ne));
    if (ne == NULL) return UV_ENOMEM;
    memset(ne + c->cap, 0, (ncap - c->cap) * sizeof(*ne));
    c->e = ne;
    c->cap = ncap;
  }
  size_t i = 0;
  while (c->e[i].used) i++;
  clink__ctl_entry *e = &c->e[i];
  snprintf(e->id, sizeof(e->id), "req_%llu_%08x", (unsigned long long)++c->counter,
           next_rand(c));
  e->subtype = subtype;
  e->deadline_ms = deadline_ms;
  e->cb = cb;
  e->ud = ud;
  e->used = 1;
  c->n++;
  memcpy(id_out, e->id, sizeof(e->id));
  return (int)i;
}

/* Removes entry i and returns a copy to call back from. */
static clink__ctl_entry take(clink__ctl *c, size_t i) {
  clink__ctl_entry e = c->e[i];
  c->e[i].used = 0;
  c->n--;
  return e;
}

void clink__ctl_cancel(clink__ctl *c, int index) {
  if (index >= 0 && (size_t)index < c->cap && c->e[index].used) take(c, (size_t)index);
}

int clink__ctl_resolve(clink__ctl *c, const clink_msg *response) {
  const char *id = clink__msg_request_id(response);
  if (id == NULL) return 0;
  for (size_t i = 0; i < c->cap; i++) {
    if (!c->e[i].used || strcmp(c->e[i].id, id) != 0) continue;
    clink__ctl_entry e = take(c, i);
    const char *st = response->control_subtype;
    int status = st && strcmp(st, "success") == 0 ? 0 : CLINK_ECONTROL_ERROR;
    if (e.cb) e.cb(e.ud, status, response);
    return 1;
  }
  return 0;
}

size_t clink__ctl_expire(clink__ctl *c, uint64_t now_ms) {
  size_t n = 0;
  for (size_t i = 0; i < c->cap; i++) {
    if (!c->e[i].used || c->e[i].deadline_ms > now_ms) continue;
    clink__ctl_entry e = take(c, i);
    n++;
    if (e.cb) e.cb(e.ud, CLINK_ECONTROL_TIMEOUT, NULL);
  }
  return n;
}

uint64_t clink__ctl_next_deadline(const clink__ctl *c) {
  uint64_t d = UINT64_MAX;
  for (size_t i = 0; i < c->cap; i++)
    if (c->e[i].used && c->e[i].deadline_ms < d) d = c->e[i].deadline_ms;
  return d;
}

void clink__ctl_fail_all(clink__ctl *c, int status) {
  for (size_t i = 0; i < c->cap; i++) {
    if (!c->e[i].used) continue;
    clink__ctl_entry e = take(c, i);
    if (e.cb) e.cb(e.ud, status, NULL);
  }
}
