/* The durable outbox: the SQLite store on an injected clock (every state,
 * lease expiry, late outcomes, idempotency, order per session, the size
 * bound, counts seen by a second connection, bad files), then the outbox on
 * a loop (enqueue and read-back, group commit, delivery by a host function
 * and through a pool of the fake CLI, backoff and dead letters, lease expiry,
 * bounds, closing from every callback), and bad disks in forked children:
 * a full disk (RLIMIT_FSIZE) and a read-only directory.
 *
 * No sleeps: tests count callbacks after uv_run returns; waiting for time is
 * a uv_timer on the loop. Every public call goes through API(), and every
 * callback checks it is not running inside one of them. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <claudelink.h>

#include "base/deadline.h"
#include "outbox/store.h"
#include "testutil.h"

#ifndef CLINK__HAVE_SQLITE
/* Built without SQLite (meson -Doutbox=disabled): the API is there and says
 * so. */
START_TEST(outbox_not_supported) {
  uv_loop_t loop;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  clink_outbox *ob = NULL;
  ck_assert_int_eq(clink_outbox_open(&ob, &loop, "/tmp/x.db", NULL, NULL, NULL), UV_ENOTSUP);
  ck_assert_ptr_null(ob);
  clink_outbox_config *cfg;
  ck_assert_int_eq(clink_outbox_config_new(&cfg), 0);
  clink_outbox_config_free(cfg);
  CLINK_TEST_LOOP_DONE(&loop);
}
END_TEST

int main(void) {
  Suite *s = suite_create("outbox");
  TCase *tc = tcase_create("disabled");
  tcase_add_test(tc, outbox_not_supported);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
#else
#include <sqlite3.h>

static int in_api, api_rc;
#define API(expr) (in_api++, api_rc = (expr), in_api--, api_rc)
#define NOT_IN_API() ck_assert_msg(in_api == 0, "callback inside an API call")

/* ------------------------------------------------------------ temp files */

static char dir[256], db[300];

static void make_db_path(void) {
  snprintf(dir, sizeof(dir), "/tmp/clink-outbox-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(db, sizeof(db), "%s/outbox.db", dir);
}

static void remove_db(void) {
  char p[320];
  const char *sfx[] = {"", "-wal", "-shm", "-journal"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof(p), "%s%s", db, sfx[i]);
    unlink(p);
  }
  rmdir(dir);
}

static void write_file(const char *path, const void *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
  close(fd);
}

/* ============================================================ the store */

static const clink__ob_store_vt *vt = &clink__ob_store_sqlite;

static clink__ob_store *store_open(void) {
  clink__ob_store *s;
  char err[256];
  int rc = vt->open(&s, db, 1000, err, sizeof(err));
  ck_assert_msg(rc == 0, "open: %s: %s", clink_err_name(rc), err);
  return s;
}

static int64_t put(clink__ob_store *s, const char *prompt, const char *session, const char *key,
                   uint64_t now, int want_outcome) {
  clink__ob_strs m = {prompt, "chat", session, key, "{\"a\":1}", NULL, NULL};
  int64_t id = 0;
  int outcome = -1;
  ck_assert_int_eq(vt->begin(s, now), 0);
  ck_assert_int_eq(vt->enqueue(s, &m, 100, now, &id, &outcome), 0);
  ck_assert_int_eq(vt->commit(s, now), 0);
  ck_assert_int_eq(outcome, want_outcome);
  return id;
}

/* Leases up to max at now; returns how many (rows freed unless kept). */
static size_t lease(clink__ob_store *s, size_t max, uint64_t lease_ms, uint64_t now,
                    clink_outbox_msg **keep, uint64_t *next) {
  clink_outbox_msg *rows[16];
  size_t n = 0;
  uint64_t nx = 0;
  ck_assert_int_eq(vt->begin(s, now), 0);
  ck_assert_int_eq(vt->lease(s, max, lease_ms, now, rows, &n, &nx), 0);
  ck_assert_int_eq(vt->commit(s, now), 0);
  for (size_t i = 0; i < n; i++) {
    if (keep)
      keep[i] = rows[i];
    else
      free(rows[i]);
  }
  if (next) *next = nx;
  return n;
}

static clink_outbox_msg *get(clink__ob_store *s, int64_t id) {
  clink_outbox_msg *m = NULL;
  ck_assert_int_eq(vt->get(s, id, 0, &m), 0);
  return m;
}

static void expect_counts(clink__ob_store *s, uint64_t p, uint64_t l, uint64_t dl, uint64_t dd) {
  clink__ob_counts c;
  ck_assert_int_eq(vt->stats(s, 0, &c), 0);
  ck_assert_uint_eq(c.pending, p);
  ck_assert_uint_eq(c.leased, l);
  ck_assert_uint_eq(c.delivered, dl);
  ck_assert_uint_eq(c.dead, dd);
}

/* Runs one outcome write in its own transaction; returns applied. */
typedef enum { OUT_COMPLETE, OUT_RESCHEDULE, OUT_DEAD, OUT_RELEASE } outcome_kind;
static int outcome(clink__ob_store *s, outcome_kind k, int64_t id, uint32_t attempt,
                   uint64_t due, uint64_t now) {
  int applied = -1;
  ck_assert_int_eq(vt->begin(s, now), 0);
  switch (k) {
    case OUT_COMPLETE:
      ck_assert_int_eq(vt->complete(s, id, attempt, "the answer", now, &applied), 0);
      break;
    case OUT_RESCHEDULE:
      ck_assert_int_eq(vt->reschedule(s, id, attempt, CLINK_EEXITED, "died", due, now, &applied),
                       0);
      break;
    case OUT_DEAD:
      ck_assert_int_eq(vt->dead_letter(s, id, attempt, CLINK_EEXITED, "died again", now, &applied),
                       0);
      break;
    case OUT_RELEASE:
      ck_assert_int_eq(vt->release(s, id, attempt, now, &applied), 0);
      break;
  }
  ck_assert_int_eq(vt->commit(s, now), 0);
  return applied;
}

START_TEST(store_every_state) {
  make_db_path();
  clink__ob_store *s = store_open();
  int64_t a = put(s, "first", NULL, NULL, 1000, CLINK__OB_NEW);
  int64_t b = put(s, "second", NULL, NULL, 1001, CLINK__OB_NEW);
  ck_assert_int_lt(a, b);
  expect_counts(s, 2, 0, 0, 0);
  clink_outbox_msg *m = get(s, a);
  ck_assert_int_eq(m->state, CLINK_OUTBOX_PENDING);
  ck_assert_str_eq(m->prompt, "first");
  ck_assert_str_eq(m->metadata, "{\"a\":1}");
  ck_assert_uint_eq(m->created_ms, 1000);
  free(m);

  clink_outbox_msg *rows[2];
  ck_assert_uint_eq(lease(s, 2, 500, 2000, rows, NULL), 2);
  ck_assert_int_eq(rows[0]->id, a); /* oldest first */
  ck_assert_int_eq(rows[0]->state, CLINK_OUTBOX_LEASED);
  ck_assert_uint_eq(rows[0]->attempts, 1);
  ck_assert_uint_eq(rows[0]->lease_until_ms, 2500);
  free(rows[0]);
  free(rows[1]);
  expect_counts(s, 0, 2, 0, 0);

  ck_assert_int_eq(outcome(s, OUT_COMPLETE, a, 1, 0, 2100), 1);
  m = get(s, a);
  ck_assert_int_eq(m->state, CLINK_OUTBOX_DELIVERED);
  ck_assert_str_eq(m->response, "the answer");
  free(m);

  /* A failure: pending again with its error, due after the backoff. */
  ck_assert_int_eq(outcome(s, OUT_RESCHEDULE, b, 1, 3000, 2100), 1);
  m = get(s, b);
  ck_assert_int_eq(m->state, CLINK_OUTBOX_PENDING);
  ck_assert_int_eq(m->last_error, CLINK_EEXITED);
  ck_assert_str_eq(m->error_text, "died");
  ck_assert_uint_eq(m->due_ms, 3000);
  free(m);
  expect_counts(s, 1, 0, 1, 0);
  uint64_t next = 0;
  ck_assert_uint_eq(lease(s, 2, 500, 2999, NULL, &next), 0); /* not due yet */
  ck_assert_uint_eq(next, 3000);
  ck_assert_uint_eq(lease(s, 2, 500, 3000, rows, NULL), 1);
  ck_assert_uint_eq(rows[0]->attempts, 2);
  free(rows[0]);
  ck_assert_int_eq(outcome(s, OUT_DEAD, b, 2, 0, 3100), 1);
  m = get(s, b);
  ck_assert_int_eq(m->state, CLINK_OUTBOX_DEAD);
  ck_assert_str_eq(m->error_text, "died again");
  ck_assert_uint_eq(m->attempts, 2);
  free(m);
  expect_counts(s, 0, 0, 1, 1);
  ck_assert_uint_eq(lease(s, 2, 500, 9999, NULL, &next), 0);
  ck_assert_uint_eq(next, CLINK__NEVER);
  m = NULL;
  ck_assert_int_eq(vt->get(s, 999, 0, &m), UV_ENOENT);
  vt->close(s);

  /* Everything survives a reopen, counts included. */
  s = store_open();
  expect_counts(s, 0, 0, 1, 1);
  vt->close(s);
  remove_db();
}
END_TEST

START_TEST(store_lease_expiry) {
  make_db_path();
  clink__ob_store *s = store_open();
  int64_t a = put(s, "a", NULL, NULL, 1000, CLINK__OB_NEW);
  uint64_t next = 0;
  ck_assert_uint_eq(lease(s, 1, 500, 1000, NULL, &next), 1);
  ck_assert_uint_eq(lease(s, 1, 500, 1000, NULL, &next), 0);
  ck_assert_uint_eq(next, 1500); /* the lease's end */

  size_t req, dead;
  ck_assert_int_eq(vt->begin(s, 1499), 0);
  ck_assert_int_eq(vt->recover(s, 3, 1499, NULL, 0, &req, &dead), 0);
  ck_assert_int_eq(vt->commit(s, 1499), 0);
  ck_assert_uint_eq(req + dead, 0); /* 1 ms early: still held */
  expect_counts(s, 0, 1, 0, 0);

  ck_assert_int_eq(vt->begin(s, 1500), 0);
  ck_assert_int_eq(vt->recover(s, 3, 1500, NULL, 0, &req, &dead), 0);
  ck_assert_int_eq(vt->commit(s, 1500), 0);
  ck_assert_uint_eq(req, 1);
  ck_assert_uint_eq(dead, 0);
  expect_counts(s, 1, 0, 0, 0);
  clink_outbox_msg *m = get(s, a);
  ck_assert_str_eq(m->error_text, "lease expired");
  ck_assert_uint_eq(m->attempts, 1);
  free(m);

  /* Recovered but not yet leased again: attempt 1's late success still
   * counts (it is the latest attempt). */
  ck_assert_int_eq(outcome(s, OUT_COMPLETE, a, 1, 0, 1600), 1);
  expect_counts(s, 0, 0, 1, 0);

  /* Leased again after expiry: attempt 1's late outcome no longer holds. */
  int64_t b = put(s, "b", NULL, NULL, 2000, CLINK__OB_NEW);
  ck_assert_uint_eq(lease(s, 1, 100, 2000, NULL, NULL), 1);
  ck_assert_int_eq(vt->begin(s, 2100), 0);
  ck_assert_int_eq(vt->recover(s, 3, 2100, NULL, 0, &req, &dead), 0);
  ck_assert_int_eq(vt->commit(s, 2100), 0);
  ck_assert_uint_eq(lease(s, 1, 100, 2100, NULL, NULL), 1);
  ck_assert_int_eq(outcome(s, OUT_COMPLETE, b, 1, 0, 2150), 0);
  ck_assert_int_eq(outcome(s, OUT_RESCHEDULE, b, 1, 0, 2150), 0);
  ck_assert_int_eq(outcome(s, OUT_DEAD, b, 1, 0, 2150), 0);
  m = get(s, b);
  ck_assert_int_eq(m->state, CLINK_OUTBOX_LEASED);
  ck_assert_uint_eq(m->attempts, 2);
  free(m);

  /* Out of attempts when its lease expires: dead-lettered. */
  int64_t ids[4];
  ck_assert_int_eq(vt->begin(s, 2200), 0);
  ck_assert_int_eq(vt->recover(s, 2, 2200, ids, 4, &req, &dead), 0);
  ck_assert_int_eq(vt->commit(s, 2200), 0);
  ck_assert_uint_eq(dead, 1);
  ck_assert_int_eq(ids[0], b);
  m = get(s, b);
  ck_assert_int_eq(m->state, CLINK_OUTBOX_DEAD);
  ck_assert_int_eq(m->last_error, UV_ETIMEDOUT);
  free(m);
  expect_counts(s, 0, 0, 1, 1);

  /* A lease never handed out goes back without using an attempt. */
  int64_t c = put(s, "c", NULL, NULL, 3000, CLINK__OB_NEW);
  ck_assert_uint_eq(lease(s, 1, 100, 3000, NULL, NULL), 1);
  ck_assert_int_eq(outcome(s, OUT_RELEASE, c, 1, 0, 3001), 1);
  m = get(s, c);
  ck_assert_int_eq(m->state, CLINK_OUTBOX_PENDING);
  ck_assert_uint_eq(m->attempts, 0);
  free(m);
  vt->close(s);
  remove_db();
}
END_TEST

START_TEST(store_idempotency) {
  make_db_path();
  clink__ob_store *s = store_open();
  int64_t a = put(s, "a", NULL, "key-1", 1000, CLINK__OB_NEW);
  ck_assert_int_eq(put(s, "a again", NULL, "key-1", 1001, CLINK__OB_EXISTED), a);
  /* Twice inside one transaction, too. */
  clink__ob_strs m = {"b", "chat", NULL, "key-2", NULL, NULL, NULL};
  int64_t id1, id2;
  int o1, o2;
  ck_assert_int_eq(vt->begin(s, 1002), 0);
  ck_assert_int_eq(vt->enqueue(s, &m, 100, 1002, &id1, &o1), 0);
  ck_assert_int_eq(vt->enqueue(s, &m, 100, 1002, &id2, &o2), 0);
  ck_assert_int_eq(vt->commit(s, 1002), 0);
  ck_assert_int_eq(o1, CLINK__OB_NEW);
  ck_assert_int_eq(o2, CLINK__OB_EXISTED);
  ck_assert_int_eq(id1, id2);
  expect_counts(s, 2, 0, 0, 0);
  /* Still the first's id once it is delivered. */
  ck_assert_uint_eq(lease(s, 4, 100, 2000, NULL, NULL), 2);
  ck_assert_int_eq(outcome(s, OUT_COMPLETE, a, 1, 0, 2001), 1);
  ck_assert_int_eq(put(s, "a", NULL, "key-1", 2002, CLINK__OB_EXISTED), a);
  clink_outbox_msg *g = get(s, a);
  ck_assert_str_eq(g->key, "key-1");
  free(g);
  vt->close(s);
  remove_db();
}
END_TEST

START_TEST(store_order_per_session) {
  make_db_path();
  clink__ob_store *s = store_open();
  int64_t a1 = put(s, "a1", "A", NULL, 1000, CLINK__OB_NEW);
  int64_t a2 = put(s, "a2", "A", NULL, 1000, CLINK__OB_NEW);
  int64_t b1 = put(s, "b1", "B", NULL, 1000, CLINK__OB_NEW);
  int64_t n1 = put(s, "n1", NULL, NULL, 1000, CLINK__OB_NEW);
  int64_t n2 = put(s, "n2", NULL, NULL, 1000, CLINK__OB_NEW);
  clink_outbox_msg *rows[8];
  /* One per session at a time; no session means no order. */
  size_t n = lease(s, 8, 1000, 1000, rows, NULL);
  ck_assert_uint_eq(n, 4);
  int64_t want[] = {a1, b1, n1, n2};
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(rows[i]->id, want[i]);
    free(rows[i]);
  }
  ck_assert_uint_eq(lease(s, 8, 1000, 1000, NULL, NULL), 0);
  /* a1 fails and backs off: a2 still waits behind it. */
  ck_assert_int_eq(outcome(s, OUT_RESCHEDULE, a1, 1, 1500, 1100), 1);
  ck_assert_uint_eq(lease(s, 8, 1000, 1200, NULL, NULL), 0);
  ck_assert_uint_eq(lease(s, 8, 1000, 1500, rows, NULL), 1);
  ck_assert_int_eq(rows[0]->id, a1);
  free(rows[0]);
  ck_assert_int_eq(outcome(s, OUT_COMPLETE, a1, 2, 0, 1600), 1);
  ck_assert_uint_eq(lease(s, 8, 1000, 1600, rows, NULL), 1);
  ck_assert_int_eq(rows[0]->id, a2);
  free(rows[0]);
  /* A dead head does not block the session either. */
  int64_t b2 = put(s, "b2", "B", NULL, 1700, CLINK__OB_NEW);
  ck_assert_int_eq(outcome(s, OUT_DEAD, b1, 1, 0, 1700), 1);
  ck_assert_uint_eq(lease(s, 8, 1000, 1700, rows, NULL), 1);
  ck_assert_int_eq(rows[0]->id, b2);
  free(rows[0]);
  vt->close(s);
  remove_db();
}
END_TEST

START_TEST(store_bounded) {
  make_db_path();
  clink__ob_store *s = store_open();
  clink__ob_strs m = {"x", "chat", NULL, NULL, NULL, NULL, NULL};
  int64_t id;
  int o;
  ck_assert_int_eq(vt->begin(s, 1000), 0);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(vt->enqueue(s, &m, 3, 1000, &id, &o), 0);
    ck_assert_int_eq(o, CLINK__OB_NEW);
  }
  ck_assert_int_eq(vt->enqueue(s, &m, 3, 1000, &id, &o), 0);
  ck_assert_int_eq(o, CLINK_EOUTBOX_FULL);
  ck_assert_int_eq(vt->commit(s, 1000), 0);
  /* Leased ones still count; delivered ones do not. */
  clink_outbox_msg *rows[1];
  ck_assert_uint_eq(lease(s, 1, 100, 1000, rows, NULL), 1);
  ck_assert_int_eq(vt->begin(s, 1000), 0);
  ck_assert_int_eq(vt->enqueue(s, &m, 3, 1000, &id, &o), 0);
  ck_assert_int_eq(o, CLINK_EOUTBOX_FULL);
  ck_assert_int_eq(vt->commit(s, 1000), 0);
  ck_assert_int_eq(outcome(s, OUT_COMPLETE, rows[0]->id, 1, 0, 1001), 1);
  free(rows[0]);
  ck_assert_int_eq(vt->begin(s, 1002), 0);
  ck_assert_int_eq(vt->enqueue(s, &m, 3, 1002, &id, &o), 0);
  ck_assert_int_eq(o, CLINK__OB_NEW);
  ck_assert_int_eq(vt->commit(s, 1002), 0);
  expect_counts(s, 3, 0, 1, 0);
  vt->close(s);
  remove_db();
}
END_TEST

START_TEST(store_rollback_and_second_connection) {
  make_db_path();
  clink__ob_store *s = store_open();
  clink__ob_store *t = store_open();
  put(s, "a", NULL, NULL, 1000, CLINK__OB_NEW);
  expect_counts(t, 1, 0, 0, 0); /* another connection's commit is seen */
  clink__ob_strs m = {"b", "chat", NULL, NULL, NULL, NULL, NULL};
  int64_t id;
  int o;
  ck_assert_int_eq(vt->begin(s, 1001), 0);
  ck_assert_int_eq(vt->enqueue(s, &m, 100, 1001, &id, &o), 0);
  vt->rollback(s);
  expect_counts(s, 1, 0, 0, 0);
  clink_outbox_msg *g = NULL;
  ck_assert_int_eq(vt->get(s, id, 0, &g), UV_ENOENT);
  put(t, "c", NULL, NULL, 1002, CLINK__OB_NEW);
  expect_counts(s, 2, 0, 0, 0);
  vt->close(t);
  vt->close(s);
  remove_db();
}
END_TEST

static int open_error(char *err, size_t n) {
  clink__ob_store *s = (void *)1;
  int rc = vt->open(&s, db, 1000, err, n);
  ck_assert_ptr_null(s);
  return rc;
}

START_TEST(store_bad_files) {
  char err[256];
  make_db_path();
  /* Not a database at all. */
  const char text[] = "this is a text file, not SQLite; it is long enough to hold a header....."
                      "...............................................................\n";
  write_file(db, text, sizeof(text) - 1);
  ck_assert_int_eq(open_error(err, sizeof(err)), CLINK_ESTORE_CORRUPT);
  ck_assert_msg(strstr(err, "not a database") != NULL, "%s", err);
  remove_db();

  /* A valid database with a damaged header. */
  make_db_path();
  clink__ob_store *s = store_open();
  put(s, "a", NULL, NULL, 1000, CLINK__OB_NEW);
  vt->close(s);
  int fd = open(db, O_WRONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pwrite(fd, "garbage!garbage!", 16, 0), 16);
  close(fd);
  ck_assert_int_eq(open_error(err, sizeof(err)), CLINK_ESTORE_CORRUPT);
  remove_db();

  /* A schema from a newer version: refused and left untouched. */
  make_db_path();
  sqlite3 *raw;
  ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(raw, "CREATE TABLE future(x); PRAGMA user_version = 7;", NULL,
                                NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(raw);
  ck_assert_int_eq(open_error(err, sizeof(err)), CLINK_ESTORE_VERSION);
  ck_assert_msg(strstr(err, "schema version 7") != NULL, "%s", err);
  ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
  sqlite3_stmt *st;
  ck_assert_int_eq(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
  ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "delete"); /* not switched to WAL */
  sqlite3_finalize(st);
  sqlite3_close(raw);
  remove_db();

  /* Our version number but not our tables. */
  make_db_path();
  ck_assert_int_eq(sqlite3_open(db, &raw), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(raw, "CREATE TABLE other(x); PRAGMA user_version = 1;", NULL,
                                NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(raw);
  ck_assert_int_eq(open_error(err, sizeof(err)), CLINK_ESTORE_CORRUPT);
  remove_db();

  /* A directory where the file should be; a missing parent directory. */
  make_db_path();
  ck_assert_int_eq(mkdir(db, 0700), 0);
  ck_assert_int_lt(open_error(err, sizeof(err)), 0);
  rmdir(db);
  snprintf(db, sizeof(db), "%s/no/such/dir/outbox.db", dir);
  ck_assert_int_lt(open_error(err, sizeof(err)), 0);
  snprintf(db, sizeof(db), "%s/outbox.db", dir);
  remove_db();
}
END_TEST

/* ========================================================= on the loop */

#define MAX_SEEN 512

static struct {
  clink_events *sink;
  uv_loop_t loop;
  clink_outbox *ob;
  int opens, open_status;
  int enq, enq_status[MAX_SEEN];
  int64_t enq_id[MAX_SEEN];
  int gets, get_status;
  clink_outbox_state get_state;
  unsigned get_attempts;
  char get_response[64], get_error_text[64];
  int closes;
  int delivered_calls;
  int64_t delivered_order[MAX_SEEN];
  char delivered_session[MAX_SEEN][8];
  int reports, report_state[4];
  int ev_queued, ev_delivered, ev_dead;
  int fail_always;      /* deliver fn: fail every attempt */
  int hold;             /* deliver fn: keep the delivery (finish later) */
  clink_outbox_delivery *held[MAX_SEEN];
  int n_held;
  int close_in;         /* which callback closes the outbox */
  int defer_done;       /* finish attempts from a timer */
  uv_timer_t timer;
  int in_flight, max_in_flight;
} T;

enum { CLOSE_NONE, CLOSE_IN_OPEN, CLOSE_IN_ENQUEUE, CLOSE_IN_GET, CLOSE_IN_DELIVER,
       CLOSE_IN_REPORT, CLOSE_IN_EVENT };

static void on_closed(clink_outbox *ob, void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(ud, &T);
  T.closes++;
}

static void close_now(void) {
  ck_assert_int_eq(API(clink_outbox_close(T.ob, on_closed, &T)), 0);
  ck_assert_int_eq(API(clink_outbox_close(T.ob, on_closed, &T)), UV_EBUSY);
}

static void on_open(clink_outbox *ob, int status, void *ud) {
  NOT_IN_API();
  T.opens++;
  T.open_status = status;
  if (T.close_in == CLOSE_IN_OPEN) close_now();
}

static void on_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  NOT_IN_API();
  int i = T.enq++;
  ck_assert_int_lt(i, MAX_SEEN);
  T.enq_status[i] = status;
  T.enq_id[i] = id;
  if (T.close_in == CLOSE_IN_ENQUEUE && i == 0) close_now();
}

static void on_got(clink_outbox *ob, int status, const clink_outbox_msg *m, void *ud) {
  NOT_IN_API();
  T.gets++;
  T.get_status = status;
  if (m) {
    T.get_state = clink_outbox_msg_state(m);
    T.get_attempts = clink_outbox_msg_attempts(m);
    snprintf(T.get_response, sizeof(T.get_response), "%s",
             clink_outbox_msg_response(m) ? clink_outbox_msg_response(m) : "");
    snprintf(T.get_error_text, sizeof(T.get_error_text), "%s",
             clink_outbox_msg_last_error_text(m) ? clink_outbox_msg_last_error_text(m) : "");
  }
  if (T.close_in == CLOSE_IN_GET) close_now();
}

static void finish_one(clink_outbox_delivery *d) {
  const clink_outbox_msg *m = clink_outbox_delivery_msg(d);
  char answer[64];
  snprintf(answer, sizeof(answer), "answer to %s", clink_outbox_msg_prompt(m));
  T.in_flight--;
  if (T.fail_always)
    ck_assert_int_eq(API(clink_outbox_delivery_done(d, CLINK_EEXITED, "boom")), 0);
  else
    ck_assert_int_eq(API(clink_outbox_delivery_done(d, 0, answer)), 0);
}

static void on_deferred(uv_timer_t *t) {
  int n = T.n_held;
  T.n_held = 0;
  for (int i = 0; i < n; i++) finish_one(T.held[i]);
}

static void deliver(clink_outbox *ob, clink_outbox_delivery *d, void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(ud, &T);
  const clink_outbox_msg *m = clink_outbox_delivery_msg(d);
  int i = T.delivered_calls++;
  ck_assert_int_lt(i, MAX_SEEN);
  T.delivered_order[i] = clink_outbox_msg_id(m);
  snprintf(T.delivered_session[i], sizeof(T.delivered_session[i]), "%s",
           clink_outbox_msg_session_id(m) ? clink_outbox_msg_session_id(m) : "-");
  ck_assert_uint_ge(clink_outbox_msg_attempts(m), 1);
  if (++T.in_flight > T.max_in_flight) T.max_in_flight = T.in_flight;
  if (T.close_in == CLOSE_IN_DELIVER && i == 0) close_now();
  if (T.hold || T.defer_done) {
    T.held[T.n_held++] = d;
    if (T.defer_done && !uv_is_active((uv_handle_t *)&T.timer))
      uv_timer_start(&T.timer, on_deferred, 1, 0);
    return;
  }
  finish_one(d);
}

static void on_report(clink_outbox *ob, const clink_outbox_msg *m, void *ud) {
  NOT_IN_API();
  T.reports++;
  T.report_state[clink_outbox_msg_state(m)]++;
  if (clink_outbox_msg_state(m) == CLINK_OUTBOX_DELIVERED) {
    char want[64];
    snprintf(want, sizeof(want), "answer to %s", clink_outbox_msg_prompt(m));
    ck_assert_str_eq(clink_outbox_msg_response(m), want);
  }
  if (T.close_in == CLOSE_IN_REPORT && T.reports == 1) close_now();
}

static void on_event(clink_events *sink, const clink_event *ev, void *ud) {
  NOT_IN_API();
  const char *name = ev->event;
  ck_assert_str_eq(ev->component, "outbox");
  if (strcmp(name, "message_queued") == 0) T.ev_queued++;
  if (strcmp(name, "message_delivered") == 0) T.ev_delivered++;
  if (strcmp(name, "message_dead_lettered") == 0) T.ev_dead++;
  if (T.close_in == CLOSE_IN_EVENT && T.ev_queued + T.ev_delivered + T.ev_dead == 1) close_now();
}

static clink_outbox_config *base_config(void) {
  clink_outbox_config *cfg;
  ck_assert_int_eq(clink_outbox_config_new(&cfg), 0);
  clink_retry_policy *p;
  ck_assert_int_eq(clink_retry_policy_new(&p), 0);
  uint64_t delays[] = {1, 2};
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, delays, 2), 0);
  ck_assert_int_eq(clink_outbox_config_set_backoff(cfg, p), 0);
  clink_retry_policy_free(p);
  return cfg;
}

static void setup_loop(void) {
  memset(&T, 0, sizeof(T));
  ck_assert_int_eq(uv_loop_init(&T.loop), 0);
  uv_timer_init(&T.loop, &T.timer);
  make_db_path();
}

static void open_outbox(clink_outbox_config *cfg) {
  ck_assert_int_eq(API(clink_outbox_open(&T.ob, &T.loop, db, cfg, on_open, &T)), 0);
  clink_outbox_set_report_cb(T.ob, on_report, &T);
  if (T.sink == NULL) {
    ck_assert_int_eq(clink_events_new(&T.sink, &T.loop), 0);
    clink_events_set_cb(T.sink, on_event, &T);
  }
  clink_outbox_set_events(T.ob, T.sink);
  ck_assert_int_eq(clink_outbox_set_deliver(T.ob, deliver, &T), 0);
}

static void finish_loop(void) {
  uv_close((uv_handle_t *)&T.timer, NULL);
  if (T.sink) clink_events_close(T.sink, NULL, NULL);
  T.sink = NULL;
  CLINK_TEST_LOOP_DONE(&T.loop);
  remove_db();
}

static void run(void) { uv_run(&T.loop, UV_RUN_DEFAULT); }

/* Runs the loop until cond (the loop must not run dry first). */
#define RUN_UNTIL(cond)                                                                    \
  do {                                                                                     \
    while (!(cond))                                                                        \
      ck_assert_msg(uv_run(&T.loop, UV_RUN_ONCE) != 0 || (cond), "loop ended before: " #cond); \
  } while (0)

static void stats(clink_outbox_stats *s) {
  s->struct_size = sizeof(*s);
  ck_assert_int_eq(clink_outbox_get_stats(T.ob, s), 0);
}

START_TEST(outbox_enqueue_and_get) {
  setup_loop();
  clink_outbox_config *cfg = base_config();
  open_outbox(cfg);
  clink_outbox_config_free(cfg);
  /* Requests made before the open finishes wait behind it. */
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "one", NULL, NULL, "k1", "{\"x\":[1,2]}",
                                            on_enqueued, &T)),
                   0);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "two", "summarise", "S", NULL, NULL,
                                            on_enqueued, &T)),
                   0);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "one again", NULL, NULL, "k1", NULL,
                                            on_enqueued, &T)),
                   0);
  ck_assert_int_eq(T.enq, 0); /* never inside the call */
  /* Bad input is refused at once. */
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, NULL, NULL, NULL, NULL, NULL, on_enqueued, &T)),
                   UV_EINVAL);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "x", NULL, NULL, NULL, "{not json",
                                            on_enqueued, &T)),
                   UV_EINVAL);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "x", NULL, "", NULL, NULL, on_enqueued, &T)),
                   UV_EINVAL);
  run();
  ck_assert_int_eq(T.opens, 1);
  ck_assert_int_eq(T.open_status, 0);
  ck_assert_int_eq(T.enq, 3);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(T.enq_status[i], 0);
  ck_assert_int_eq(T.enq_id[2], T.enq_id[0]); /* same key, same message */
  ck_assert_int_ne(T.enq_id[1], T.enq_id[0]);
  ck_assert_int_eq(T.ev_queued, 2);
  clink_outbox_stats s;
  stats(&s);
  ck_assert_uint_eq(s.pending, 2);
  ck_assert_uint_eq(s.enqueued, 2);
  ck_assert_uint_eq(s.queued, 0);

  ck_assert_int_eq(API(clink_outbox_get(T.ob, T.enq_id[1], on_got, &T)), 0);
  run();
  ck_assert_int_eq(T.gets, 1);
  ck_assert_int_eq(T.get_status, 0);
  ck_assert_int_eq(T.get_state, CLINK_OUTBOX_PENDING);
  ck_assert_int_eq(API(clink_outbox_get(T.ob, 4242, on_got, &T)), 0);
  run();
  ck_assert_int_eq(T.get_status, UV_ENOENT);
  close_now();
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "late", NULL, NULL, NULL, NULL, on_enqueued,
                                            &T)),
                   CLINK_ECLOSING);
  run();
  ck_assert_int_eq(T.closes, 1);
  finish_loop();
}
END_TEST

/* Delivers n messages over sessions (i % sessions; 0 sessions: none) with
 * the given concurrency; returns after close. */
static void deliver_all(int n, int sessions, unsigned concurrency) {
  clink_outbox_config *cfg = base_config();
  ck_assert_int_eq(clink_outbox_config_set_concurrency(cfg, concurrency), 0);
  open_outbox(cfg);
  clink_outbox_config_free(cfg);
  for (int i = 0; i < n; i++) {
    char prompt[32], session[16];
    snprintf(prompt, sizeof(prompt), "p%d", i);
    snprintf(session, sizeof(session), "s%d", sessions ? i % sessions : 0);
    ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, prompt, NULL, sessions ? session : NULL,
                                              NULL, NULL, on_enqueued, &T)),
                     0);
  }
  ck_assert_int_eq(API(clink_outbox_start(T.ob)), 0);
  RUN_UNTIL(T.reports == n);
  close_now();
  run();
}

START_TEST(outbox_delivers_in_order_per_session) {
  setup_loop();
  T.defer_done = 1; /* attempts overlap: order must come from the outbox */
  deliver_all(60, 3, 8);
  ck_assert_int_eq(T.closes, 1);
  ck_assert_int_eq(T.delivered_calls, 60);
  ck_assert_int_eq(T.report_state[CLINK_OUTBOX_DELIVERED], 60);
  ck_assert_int_eq(T.ev_delivered, 60);
  ck_assert_int_le(T.max_in_flight, 3); /* one per session at a time */
  for (int s = 0; s < 3; s++) {
    char name[8];
    snprintf(name, sizeof(name), "s%d", s);
    int64_t last = 0;
    for (int i = 0; i < T.delivered_calls; i++) {
      if (strcmp(T.delivered_session[i], name) != 0) continue;
      ck_assert_int_gt(T.delivered_order[i], last);
      last = T.delivered_order[i];
    }
  }
  finish_loop();
}
END_TEST

START_TEST(outbox_concurrency_across_sessions) {
  setup_loop();
  T.defer_done = 1;
  deliver_all(40, 0, 4);
  ck_assert_int_eq(T.delivered_calls, 40);
  ck_assert_int_eq(T.max_in_flight, 4); /* bounded, and used */
  ck_assert_int_eq(T.gets, 0);
  finish_loop();
}
END_TEST

START_TEST(outbox_synchronous_done) {
  setup_loop();
  deliver_all(30, 2, 16);
  ck_assert_int_eq(T.report_state[CLINK_OUTBOX_DELIVERED], 30);
  finish_loop();
}
END_TEST

START_TEST(outbox_retries_then_dead_letter) {
  setup_loop();
  T.fail_always = 1;
  clink_outbox_config *cfg = base_config();
  ck_assert_int_eq(clink_outbox_config_set_max_attempts(cfg, 3), 0);
  open_outbox(cfg);
  clink_outbox_config_free(cfg);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "doomed", NULL, NULL, "d1", NULL, on_enqueued,
                                            &T)),
                   0);
  ck_assert_int_eq(API(clink_outbox_start(T.ob)), 0);
  RUN_UNTIL(T.report_state[CLINK_OUTBOX_DEAD] == 1);
  ck_assert_int_eq(T.delivered_calls, 3);
  ck_assert_int_eq(T.report_state[CLINK_OUTBOX_PENDING], 2); /* two retries scheduled */
  ck_assert_int_eq(T.ev_dead, 1);
  ck_assert_int_eq(API(clink_outbox_get(T.ob, T.enq_id[0], on_got, &T)), 0);
  RUN_UNTIL(T.gets == 1);
  ck_assert_int_eq(T.get_state, CLINK_OUTBOX_DEAD);
  ck_assert_uint_eq(T.get_attempts, 3);
  ck_assert_str_eq(T.get_error_text, "boom");
  clink_outbox_stats s;
  stats(&s);
  ck_assert_uint_eq(s.dead, 1);
  ck_assert_uint_eq(s.failures, 3);
  ck_assert_uint_eq(s.dead_lettered, 1);
  close_now();
  run();
  finish_loop();
}
END_TEST

START_TEST(outbox_lease_expires_and_redelivers) {
  setup_loop();
  T.hold = 1; /* the first attempt never finishes in time */
  clink_outbox_config *cfg = base_config();
  ck_assert_int_eq(clink_outbox_config_set_lease_ms(cfg, 30), 0);
  ck_assert_int_eq(clink_outbox_config_set_poll_ms(cfg, 0), 0);
  open_outbox(cfg);
  clink_outbox_config_free(cfg);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "slow", NULL, NULL, "slow-key", NULL,
                                            on_enqueued, &T)),
                   0);
  ck_assert_int_eq(API(clink_outbox_start(T.ob)), 0);
  RUN_UNTIL(T.delivered_calls == 1);
  uint64_t t0 = uv_now(&T.loop);
  RUN_UNTIL(T.delivered_calls == 2); /* the timer set for the lease's end */
  ck_assert_uint_ge(uv_now(&T.loop) - t0, 25);
  ck_assert_int_eq(T.delivered_order[1], T.delivered_order[0]);
  T.hold = 0;
  /* The late first attempt no longer counts; the second does. */
  clink_outbox_delivery *first = T.held[0], *second = T.held[1];
  T.n_held = 0;
  ck_assert_uint_eq(clink_outbox_msg_attempts(clink_outbox_delivery_msg(second)), 2);
  ck_assert_str_eq(clink_outbox_msg_key(clink_outbox_delivery_msg(second)), "slow-key");
  finish_one(first);
  finish_one(second);
  RUN_UNTIL(T.reports == 1);
  ck_assert_int_eq(T.report_state[CLINK_OUTBOX_DELIVERED], 1);
  close_now();
  run();
  finish_loop();
}
END_TEST

START_TEST(outbox_group_commit) {
  setup_loop();
  for (int round = 0; round < 2; round++) {
    clink_outbox_config *cfg = base_config();
    /* Round 0: group commit; round 1: one transaction per request. */
    ck_assert_int_eq(clink_outbox_config_set_group_commit(cfg, round == 0 ? 1024 : 1, 0), 0);
    open_outbox(cfg);
    clink_outbox_config_free(cfg);
    T.enq = 0;
    T.closes = 0;
    for (int i = 0; i < 300; i++)
      ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "m", NULL, NULL, NULL, NULL, on_enqueued,
                                                &T)),
                       0);
    RUN_UNTIL(T.enq == 300);
    clink_outbox_stats s;
    stats(&s);
    if (round == 0)
      ck_assert_uint_lt(s.transactions, 100); /* shared commits */
    else
      ck_assert_uint_eq(s.transactions, 300);
    close_now();
    run();
    ck_assert_int_eq(T.closes, 1);
  }
  finish_loop();
}
END_TEST

START_TEST(outbox_bounds) {
  setup_loop();
  clink_outbox_config *cfg = base_config();
  ck_assert_int_eq(clink_outbox_config_set_max_messages(cfg, 2), 0);
  ck_assert_int_eq(clink_outbox_config_set_max_queued(cfg, 3), 0);
  ck_assert_int_eq(clink_outbox_config_set_max_messages(cfg, 0), UV_EINVAL);
  ck_assert_int_eq(clink_outbox_config_set_concurrency(cfg, 0), UV_EINVAL);
  ck_assert_int_eq(clink_outbox_config_set_group_commit(cfg, 0, 0), UV_EINVAL);
  open_outbox(cfg);
  clink_outbox_config_free(cfg);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "m", NULL, NULL, NULL, NULL, on_enqueued,
                                              &T)),
                     0);
  /* The request queue is bounded... */
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "m", NULL, NULL, NULL, NULL, on_enqueued, &T)),
                   CLINK_EQUEUE_FULL);
  ck_assert_int_eq(API(clink_outbox_get(T.ob, 1, on_got, &T)), CLINK_EQUEUE_FULL);
  run();
  /* ...and so is the outbox. */
  ck_assert_int_eq(T.enq, 3);
  ck_assert_int_eq(T.enq_status[0], 0);
  ck_assert_int_eq(T.enq_status[1], 0);
  ck_assert_int_eq(T.enq_status[2], CLINK_EOUTBOX_FULL);
  ck_assert_int_eq(T.enq_id[2], 0);
  ck_assert_int_eq(T.ev_queued, 2);
  close_now();
  run();
  finish_loop();
}
END_TEST

START_TEST(outbox_bad_file) {
  setup_loop();
  write_file(db, "not sqlite at all, but long enough to look like a header to SQLite........"
                 "..................................\n", 110);
  open_outbox(NULL);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "m", NULL, NULL, NULL, NULL, on_enqueued, &T)),
                   0);
  T.close_in = CLOSE_IN_ENQUEUE;
  run();
  ck_assert_int_eq(T.open_status, CLINK_ESTORE_CORRUPT);
  ck_assert_int_eq(T.enq, 1);
  ck_assert_int_eq(T.enq_status[0], CLINK_ESTORE_CORRUPT); /* nothing acknowledged */
  ck_assert_int_eq(T.closes, 1);
  finish_loop();
}
END_TEST

/* Closes from inside callback kind `where`; the close callback runs once. */
static void close_from(int where) {
  setup_loop();
  T.close_in = where;
  T.defer_done = where == CLOSE_IN_DELIVER; /* finish after the close */
  open_outbox(NULL);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "a", NULL, NULL, NULL, NULL, on_enqueued, &T)),
                   0);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "b", NULL, NULL, NULL, NULL, on_enqueued, &T)),
                   0);
  if (where == CLOSE_IN_GET)
    ck_assert_int_eq(API(clink_outbox_get(T.ob, 1, on_got, &T)), 0);
  if (where >= CLOSE_IN_DELIVER) ck_assert_int_eq(API(clink_outbox_start(T.ob)), 0);
  run();
  ck_assert_int_eq(T.closes, 1);
  ck_assert_int_eq(T.opens, 1);
  /* Requests already queued finish with their real status. */
  if (where != CLOSE_IN_OPEN) ck_assert_int_eq(T.enq, 2);
  if (where == CLOSE_IN_DELIVER) {
    ck_assert_int_eq(T.delivered_calls, 1); /* no new attempt after close */
    ck_assert_int_eq(T.report_state[CLINK_OUTBOX_DELIVERED], 1); /* the close waited */
  }
  finish_loop();
}

START_TEST(close_in_open) { close_from(CLOSE_IN_OPEN); }
END_TEST
START_TEST(close_in_enqueue) { close_from(CLOSE_IN_ENQUEUE); }
END_TEST
START_TEST(close_in_get) { close_from(CLOSE_IN_GET); }
END_TEST
START_TEST(close_in_deliver) { close_from(CLOSE_IN_DELIVER); }
END_TEST
START_TEST(close_in_report) { close_from(CLOSE_IN_REPORT); }
END_TEST
START_TEST(close_in_event) { close_from(CLOSE_IN_EVENT); }
END_TEST

START_TEST(close_before_open_finishes) {
  setup_loop();
  open_outbox(NULL);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "a", NULL, NULL, NULL, NULL, on_enqueued, &T)),
                   0);
  close_now();
  run();
  ck_assert_int_eq(T.opens, 1);
  ck_assert_int_eq(T.enq, 1);
  ck_assert_int_eq(T.enq_status[0], 0); /* committed before the thread stopped */
  ck_assert_int_eq(T.closes, 1);
  /* And it is there. */
  clink__ob_store *s = store_open();
  expect_counts(s, 1, 0, 0, 0);
  vt->close(s);
  finish_loop();
}
END_TEST

/* --------------------------------------------------------- through a pool */

static clink_pool *pool;
static void on_pool_closed(clink_pool *p, void *ud) { (*(int *)ud)++; }

static void pool_deliver(clink_outbox *ob, clink_outbox_delivery *d, void *ud) {
  T.delivered_calls++;
}

static void on_pool_report(clink_outbox *ob, const clink_outbox_msg *m, void *ud) {
  NOT_IN_API();
  T.reports++;
  T.report_state[clink_outbox_msg_state(m)]++;
  if (clink_outbox_msg_state(m) == CLINK_OUTBOX_DELIVERED)
    ck_assert_str_eq(clink_outbox_msg_response(m), "xxxx"); /* the fake's text */
}

START_TEST(outbox_via_pool) {
  setup_loop();
  clink_options *o;
  clink_pool_config *pc;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_eq(clink_options_set_cli_path(o, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(o, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_pool_config_new(&pc), 0);
  ck_assert_int_eq(clink_pool_config_set_size(pc, 2, 2), 0);
  ck_assert_int_eq(clink_pool_new(&pool, &T.loop, o, pc), 0);
  clink_options_free(o);
  clink_pool_config_free(pc);
  open_outbox(NULL);
  (void)pool_deliver;
  ck_assert_int_eq(clink_outbox_deliver_via_pool(T.ob, pool), 0);
  clink_outbox_set_report_cb(T.ob, on_pool_report, &T);
  for (int i = 0; i < 25; i++)
    ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "hello", NULL, i % 5 == 0 ? NULL : "conv",
                                              NULL, NULL, on_enqueued, &T)),
                     0);
  ck_assert_int_eq(API(clink_outbox_start(T.ob)), 0);
  RUN_UNTIL(T.reports == 25);
  ck_assert_int_eq(T.report_state[CLINK_OUTBOX_DELIVERED], 25);
  close_now();
  int pool_closed = 0;
  RUN_UNTIL(T.closes == 1);
  ck_assert_int_eq(clink_pool_shutdown(pool, CLINK_POOL_DRAIN, on_pool_closed, &pool_closed), 0);
  run();
  ck_assert_int_eq(pool_closed, 1);
  finish_loop();
}
END_TEST

/* ------------------------------------------------- bad disks, in children */

/* The child's report: "A <id>" per acknowledged message, "E <code>" per
 * failure, "G <status>" for a read-back after the failures, "X" at the end. */
static FILE *report;
static int child_failures;

static void child_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  if (status == 0)
    fprintf(report, "A %lld\n", (long long)id);
  else
    fprintf(report, "E %d\n", status), child_failures++;
  fflush(report);
  (*(int *)ud)++;
}

static int child_open_status;
static void child_opened(clink_outbox *ob, int status, void *ud) { child_open_status = status; }
static void child_got(clink_outbox *ob, int status, const clink_outbox_msg *m, void *ud) {
  fprintf(report, "G %d\n", status);
  fflush(report);
}
static void child_closed(clink_outbox *ob, void *ud) { (*(int *)ud)++; }

static off_t file_size(const char *suffix) {
  char p[320];
  struct stat st;
  snprintf(p, sizeof(p), "%s%s", db, suffix);
  return stat(p, &st) == 0 ? st.st_size : 0;
}

/* In the child: a few acknowledged messages, then a file size limit just
 * above what exists, then large messages until the disk is "full". */
static void full_disk_child(int fd) {
  signal(SIGXFSZ, SIG_IGN); /* a failed write, not a killed process */
  report = fdopen(fd, "w");
  uv_loop_t loop;
  uv_loop_init(&loop);
  clink_outbox *ob;
  int done = 0, closed = 0;
  if (clink_outbox_open(&ob, &loop, db, NULL, child_opened, NULL) != 0) _exit(10);
  for (int i = 0; i < 5; i++) clink_outbox_enqueue(ob, "small", NULL, NULL, NULL, NULL,
                                                   child_enqueued, &done);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (child_open_status != 0 || done != 5) _exit(11);
  off_t biggest = file_size("");
  if (file_size("-wal") > biggest) biggest = file_size("-wal");
  if (file_size("-shm") > biggest) biggest = file_size("-shm");
  struct rlimit rl = {(rlim_t)biggest + 64 * 1024, (rlim_t)biggest + 64 * 1024};
  if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(12);
  static char big[16 * 1024];
  memset(big, 'b', sizeof(big) - 1);
  for (int i = 0; i < 200 && child_failures < 3; i++) {
    int before = done;
    clink_outbox_enqueue(ob, big, NULL, NULL, NULL, NULL, child_enqueued, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (done != before + 1) _exit(13);
  }
  clink_outbox_get(ob, 1, child_got, NULL);
  clink_outbox_close(ob, child_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (closed != 1 || uv_loop_close(&loop) != 0) _exit(16);
  fprintf(report, "X\n");
  fclose(report);
  _exit(0);
}

static char child_out[1 << 16];

static void run_child(void (*fn)(int), int *status) {
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    fn(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], child_out + n, sizeof(child_out) - 1 - n)) > 0) n += (size_t)r;
  child_out[n] = '\0';
  close(fds[0]);
  ck_assert_int_eq(waitpid(pid, status, 0), pid);
}


/* Through clink_ask: an API 400 cannot be fixed by retrying (dead at its
 * first attempt), a 529 can (retried until its attempts run out). */
START_TEST(outbox_via_pool_classifies_failures) {
  setup_loop();
  clink_options *o;
  clink_pool_config *pc;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_eq(clink_options_set_cli_path(o, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(o, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_pool_config_new(&pc), 0);
  ck_assert_int_eq(clink_pool_config_set_size(pc, 1, 2), 0);
  ck_assert_int_eq(clink_pool_new(&pool, &T.loop, o, pc), 0);
  clink_options_free(o);
  clink_pool_config_free(pc);
  clink_outbox_config *cfg = base_config();
  ck_assert_int_eq(clink_outbox_config_set_max_attempts(cfg, 3), 0);
  open_outbox(cfg);
  clink_outbox_config_free(cfg);
  ck_assert_int_eq(clink_outbox_deliver_via_pool(T.ob, pool), 0);
  clink_outbox_set_report_cb(T.ob, on_pool_report, &T);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "fail:400", NULL, NULL, NULL, NULL,
                                            on_enqueued, &T)),
                   0);
  ck_assert_int_eq(API(clink_outbox_enqueue(T.ob, "fail:529", NULL, NULL, NULL, NULL,
                                            on_enqueued, &T)),
                   0);
  ck_assert_int_eq(API(clink_outbox_start(T.ob)), 0);
  RUN_UNTIL(T.report_state[CLINK_OUTBOX_DEAD] == 2);
  /* 400: one report (dead at once); 529: two retries, then dead. */
  ck_assert_int_eq(T.report_state[CLINK_OUTBOX_PENDING], 2);
  ck_assert_int_eq(T.reports, 4);
  T.gets = 0;
  ck_assert_int_eq(API(clink_outbox_get(T.ob, T.enq_id[0], on_got, &T)), 0);
  RUN_UNTIL(T.gets == 1);
  ck_assert_int_eq(T.get_state, CLINK_OUTBOX_DEAD);
  ck_assert_uint_eq(T.get_attempts, 1);
  close_now();
  int pool_closed = 0;
  RUN_UNTIL(T.closes == 1);
  ck_assert_int_eq(clink_pool_shutdown(pool, CLINK_POOL_DRAIN, on_pool_closed, &pool_closed), 0);
  run();
  ck_assert_int_eq(pool_closed, 1);
  finish_loop();
}
END_TEST

START_TEST(outbox_full_disk) {
  make_db_path();
  int status;
  run_child(full_disk_child, &status);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d:\n%s", status,
                child_out);
  ck_assert_msg(strstr(child_out, "\nX\n") != NULL, "%s", child_out);
  /* Failures are clear errors; every acknowledged id survives. */
  int64_t acked[256];
  int n_acked = 0, n_err = 0;
  for (char *line = strtok(child_out, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == 'A') {
      ck_assert_int_lt(n_acked, 256);
      acked[n_acked++] = atoll(line + 2);
    } else if (line[0] == 'E') {
      int code = atoi(line + 2);
      ck_assert_msg(code == UV_ENOSPC || code == UV_EFBIG || code == CLINK_ESTORE_IO,
                    "unexpected error %s", clink_err_name(code));
      n_err++;
    } else if (line[0] == 'G') {
      ck_assert_int_eq(atoi(line + 2), 0); /* reads still work */
    }
  }
  ck_assert_int_ge(n_acked, 5);
  ck_assert_int_ge(n_err, 1);
  clink__ob_store *s = store_open();
  for (int i = 0; i < n_acked; i++) free(get(s, acked[i]));
  clink__ob_counts c;
  ck_assert_int_eq(vt->stats(s, 0, &c), 0);
  ck_assert_uint_eq(c.pending, (uint64_t)n_acked); /* nothing unacknowledged either */
  vt->close(s);
  remove_db();
}
END_TEST

static void read_only_child(int fd) {
  report = fdopen(fd, "w");
  /* Root writes anywhere: become nobody so the mode bits count. */
  if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(20);
  uv_loop_t loop;
  uv_loop_init(&loop);
  clink_outbox *ob;
  int done = 0, closed = 0;
  if (clink_outbox_open(&ob, &loop, db, NULL, child_opened, NULL) != 0) _exit(21);
  clink_outbox_enqueue(ob, "m", NULL, NULL, NULL, NULL, child_enqueued, &done);
  uv_run(&loop, UV_RUN_DEFAULT);
  fprintf(report, "O %d\n", child_open_status);
  clink_outbox_close(ob, child_closed, &closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (closed != 1 || uv_loop_close(&loop) != 0) _exit(22);
  fprintf(report, "X\n");
  fclose(report);
  _exit(0);
}

START_TEST(outbox_read_only_dir) {
  make_db_path();
  ck_assert_int_eq(chmod(dir, 0555), 0);
  int status;
  run_child(read_only_child, &status);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  int open_status = 1;
  char *o = strstr(child_out, "O ");
  ck_assert_ptr_nonnull(o);
  open_status = atoi(o + 2);
  ck_assert_msg(open_status == UV_EACCES || open_status == UV_EROFS || open_status == UV_EPERM,
                "open: %s", clink_err_name(open_status));
  ck_assert_ptr_nonnull(strstr(child_out, "E ")); /* the enqueue failed too */
  ck_assert_ptr_null(strstr(child_out, "A "));

  /* An existing outbox in a directory that became read-only. */
  ck_assert_int_eq(chmod(dir, 0755), 0);
  clink__ob_store *s = store_open();
  int64_t id = put(s, "kept", NULL, NULL, 1000, CLINK__OB_NEW);
  vt->close(s);
  ck_assert_int_eq(chmod(db, 0666), 0);
  ck_assert_int_eq(chmod(dir, 0555), 0);
  run_child(read_only_child, &status);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  ck_assert_ptr_null(strstr(child_out, "A ")); /* nothing acknowledged that is not stored */
  ck_assert_int_eq(chmod(dir, 0755), 0);
  s = store_open();
  clink_outbox_msg *m = get(s, id);
  ck_assert_str_eq(m->prompt, "kept");
  free(m);
  vt->close(s);
  remove_db();
}
END_TEST

int main(void) {
  Suite *s = suite_create("outbox");
  TCase *tc = tcase_create("store");
  tcase_add_test(tc, store_every_state);
  tcase_add_test(tc, store_lease_expiry);
  tcase_add_test(tc, store_idempotency);
  tcase_add_test(tc, store_order_per_session);
  tcase_add_test(tc, store_bounded);
  tcase_add_test(tc, store_rollback_and_second_connection);
  tcase_add_test(tc, store_bad_files);
  suite_add_tcase(s, tc);

  tc = tcase_create("outbox");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, outbox_enqueue_and_get);
  tcase_add_test(tc, outbox_delivers_in_order_per_session);
  tcase_add_test(tc, outbox_concurrency_across_sessions);
  tcase_add_test(tc, outbox_synchronous_done);
  tcase_add_test(tc, outbox_retries_then_dead_letter);
  tcase_add_test(tc, outbox_lease_expires_and_redelivers);
  tcase_add_test(tc, outbox_group_commit);
  tcase_add_test(tc, outbox_bounds);
  tcase_add_test(tc, outbox_bad_file);
  tcase_add_test(tc, outbox_via_pool);
  tcase_add_test(tc, outbox_via_pool_classifies_failures);
  suite_add_tcase(s, tc);

  tc = tcase_create("close");
  tcase_add_test(tc, close_in_open);
  tcase_add_test(tc, close_in_enqueue);
  tcase_add_test(tc, close_in_get);
  tcase_add_test(tc, close_in_deliver);
  tcase_add_test(tc, close_in_report);
  tcase_add_test(tc, close_in_event);
  tcase_add_test(tc, close_before_open_finishes);
  suite_add_tcase(s, tc);

  tc = tcase_create("disks");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, outbox_full_disk);
  tcase_add_test(tc, outbox_read_only_dir);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
#endif /* CLINK__HAVE_SQLITE */
