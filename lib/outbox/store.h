/* The outbox's storage interface: synchronous operations, called only on the
 * database thread, each taking now_ms (wall-clock ms, injected by tests).
 * SQLite implements it now (store-sqlite.c); a Redis backend will later.
 *
 * Writes (enqueue, lease, complete, reschedule, dead_letter, release,
 * recover) run between begin() and commit(): the caller groups many into one
 * transaction (group commit). A write's return value is a storage failure
 * (< 0: the transaction must be rolled back, nothing of it counts); its
 * logical outcome comes back through an out-parameter. Nothing is durable,
 * and nothing may be acknowledged, before commit() returns 0.
 *
 * An attempt is named by (id, attempt): the attempt count at lease time. A
 * late outcome for an attempt whose lease was lost (expired and leased again)
 * does not apply. Pure; internal. */
#ifndef CLINK_OUTBOX_STORE_H
#define CLINK_OUTBOX_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "claudelink.h"

/* One stored message (also the public clink_outbox_msg). One allocation:
 * the strings live in the same block (see clink__ob_msg_new()). */
struct clink_outbox_msg {
  int64_t id;
  int state; /* clink_outbox_state */
  uint32_t attempts;
  int last_error;
  uint64_t created_ms, updated_ms, due_ms, lease_until_ms;
  char *prompt, *operation, *session_id, *key, *metadata, *response, *error_text;
};

/* The strings of a message, for clink__ob_msg_new(); NULLs allowed. */
typedef struct clink__ob_strs {
  const char *prompt, *operation, *session_id, *key, *metadata, *response, *error_text;
} clink__ob_strs;

/* A message with copies of the strings; NULL on allocation failure. Free with
 * clink__free(). */
clink_outbox_msg *clink__ob_msg_new(const clink__ob_strs *s);

/* Figures of the whole file (every process writing it). */
typedef struct clink__ob_counts {
  uint64_t pending, leased, delivered, dead;
  uint64_t oldest_pending_created_ms; /* 0: nothing pending */
} clink__ob_counts;

typedef struct clink__ob_store clink__ob_store;

/* Enqueue outcomes. */
enum { CLINK__OB_NEW = 0, CLINK__OB_EXISTED = 1 };

typedef struct clink__ob_store_vt {
  const char *name;
  /* Opens or creates; on failure *out is NULL and err holds the text. */
  int (*open)(clink__ob_store **out, const char *path, uint64_t now_ms, char *err,
              size_t err_len);
  void (*close)(clink__ob_store *s);
  /* Text of the last failure ("" if none). */
  const char *(*errmsg)(const clink__ob_store *s);

  int (*begin)(clink__ob_store *s, uint64_t now_ms);
  int (*commit)(clink__ob_store *s, uint64_t now_ms);
  void (*rollback)(clink__ob_store *s);

  /* msg: the new message's strings (prompt, operation, session_id, key,
   * metadata). *outcome: CLINK__OB_NEW, CLINK__OB_EXISTED (same key: *id is
   * the first's) or CLINK_EOUTBOX_FULL (more than max_undelivered pending +
   * leased). */
  int (*enqueue)(clink__ob_store *s, const clink__ob_strs *msg, uint64_t max_undelivered,
                 uint64_t now_ms, int64_t *id, int *outcome);
  /* Leases up to max due messages (the oldest first; per session id only the
   * oldest undelivered one, so order holds): attempts + 1, lease until
   * now + lease_ms. rows: caller's array of max; *n filled. *next_ms: when
   * something may become due (a backoff or a lease ends), CLINK__NEVER if
   * nothing; only computed when fewer than max were due. */
  int (*lease)(clink__ob_store *s, size_t max, uint64_t lease_ms, uint64_t now_ms,
               clink_outbox_msg **rows, size_t *n, uint64_t *next_ms);
  /* Outcomes of attempt (id, attempt); *applied 0 when it no longer holds. */
  int (*complete)(clink__ob_store *s, int64_t id, uint32_t attempt, const char *response,
                  uint64_t now_ms, int *applied);
  int (*reschedule)(clink__ob_store *s, int64_t id, uint32_t attempt, int err,
                    const char *text, uint64_t due_ms, uint64_t now_ms, int *applied);
  int (*dead_letter)(clink__ob_store *s, int64_t id, uint32_t attempt, int err,
                     const char *text, uint64_t now_ms, int *applied);
  /* Gives back a lease that was never handed out (attempts - 1). */
  int (*release)(clink__ob_store *s, int64_t id, uint32_t attempt, uint64_t now_ms,
                 int *applied);
  /* Expired leases: pending again (due now), or dead ("lease expired") once
   * they used max_attempts. dead_ids (caller's array of max_dead, may be
   * NULL) gets the ids dead-lettered; *n_requeued, *n_dead counted. */
  int (*recover)(clink__ob_store *s, uint32_t max_attempts, uint64_t now_ms,
                 int64_t *dead_ids, size_t max_dead, size_t *n_requeued, size_t *n_dead);

  /* Reads (no transaction needed). UV_ENOENT when absent. */
  int (*get)(clink__ob_store *s, int64_t id, uint64_t now_ms, clink_outbox_msg **out);
  int (*stats)(clink__ob_store *s, uint64_t now_ms, clink__ob_counts *out);
} clink__ob_store_vt;

#ifdef CLINK__HAVE_SQLITE
extern const clink__ob_store_vt clink__ob_store_sqlite;
#endif

#endif
