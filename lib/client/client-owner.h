/* The private link between a client and the object that owns it (a pool):
 * everything such an owner may use besides the public client API. The owner
 * hears every state change before the user's callback, learns when the
 * close finished, and holds the client's memory until it lets go, so a
 * pointer the user still has stays valid (a closed client, not freed
 * memory) until the owner forgets it. */
#ifndef CLINK_CLIENT_OWNER_H
#define CLINK_CLIENT_OWNER_H

#include "claudelink.h"

typedef struct clink__client_owner_ops {
  /* A transition (delivered from the loop, in order, before the user's
   * state callback). */
  void (*on_state)(void *owner, clink_client *c, clink_client_state from,
                   clink_client_state to);
  /* The close finished (after the user's close callback). The client stays
   * allocated, CLOSED, until clink__client_disown(). */
  void (*on_closed)(void *owner, clink_client *c);
} clink__client_owner_ops;

void clink__client_own(clink_client *c, const clink__client_owner_ops *ops, void *owner);
/* The owner when c is owned through ops, else NULL. */
void *clink__client_owner(const clink_client *c, const clink__client_owner_ops *ops);
/* The owner lets go: frees c when its close finished, else c frees itself
 * when it does. */
void clink__client_disown(clink_client *c);
/* The owner's connect (a user's clink_client_connect() on an owned client
 * is refused with UV_EPERM: the owner replaces dead clients itself). */
int clink__client_owner_connect(clink_client *c, clink_connect_cb cb, void *ud);
/* Whether the close finished. */
int clink__client_is_closed(const clink_client *c);

#endif
