/* The outbox store on SQLite: WAL, synchronous=FULL (a commit is durable when
 * it returns), BEGIN IMMEDIATE for every write transaction, integer
 * millisecond timestamps, and a schema version in PRAGMA user_version (a
 * newer one is refused, never touched). Used by one thread only (the
 * database thread), so the connection is opened without its mutex.
 *
 * Counts per state are kept in memory (a full count is a scan): loaded at
 * open, changed by each transaction's writes when it commits, and counted
 * again whenever PRAGMA data_version says another connection (another
 * process on the same file) committed. Pure. Every statement of the schema
 * lives here, next to the schema, which is why the file is ~650 lines. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

#include "base/internal.h"
#include "base/deadline.h"
#include "outbox/store.h"

#define SCHEMA_VERSION 1

static const char schema_sql[] =
    "CREATE TABLE messages("
    " id INTEGER PRIMARY KEY AUTOINCREMENT," /* ids are never reused */
    " state INTEGER NOT NULL,"
    " prompt TEXT NOT NULL,"
    " operation TEXT NOT NULL,"
    " session_id TEXT,"
    " idem_key TEXT UNIQUE,"
    " metadata TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " due_ms INTEGER NOT NULL,"
    " lease_until_ms INTEGER NOT NULL DEFAULT 0,"
    " last_error INTEGER NOT NULL DEFAULT 0,"
    " error_text TEXT,"
    " response TEXT);"
    /* Pending in id order (leasing), leased (recovery), counts per state. */
    "CREATE INDEX messages_state ON messages(state, id);"
    /* The head of each session's undelivered messages (order per session). */
    "CREATE INDEX messages_session ON messages(session_id, id)"
    " WHERE session_id IS NOT NULL AND state < 2;"
    "PRAGMA user_version = 1;";

enum {
  S_BEGIN, S_COMMIT, S_ROLLBACK, S_FIND_KEY, S_INSERT, S_LEASE_SELECT, S_LEASE_UPDATE,
  S_STATE_OF, S_COMPLETE, S_RESCHEDULE, S_DEAD, S_RELEASE, S_EXPIRED, S_GET, S_OLDEST,
  S_NEXT_DUE, S_NEXT_LEASE, S_COUNT, S_DATA_VERSION, S_N
};

static const char *const sql[S_N] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_FIND_KEY] = "SELECT id FROM messages WHERE idem_key = ?1",
    [S_INSERT] = "INSERT INTO messages(state, prompt, operation, session_id, idem_key, metadata,"
                 " created_ms, updated_ms, due_ms) VALUES(0, ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
    [S_LEASE_SELECT] =
        "SELECT m.id FROM messages AS m WHERE m.state = 0 AND m.due_ms <= ?1"
        " AND (m.session_id IS NULL OR m.id = (SELECT MIN(h.id) FROM messages AS h"
        " WHERE h.session_id = m.session_id AND h.state < 2))"
        " ORDER BY m.id LIMIT ?2",
    [S_LEASE_UPDATE] = "UPDATE messages SET state = 1, attempts = attempts + 1,"
                       " lease_until_ms = ?2, updated_ms = ?3 WHERE id = ?1 AND state = 0",
    [S_STATE_OF] = "SELECT state, attempts FROM messages WHERE id = ?1",
    [S_COMPLETE] = "UPDATE messages SET state = 2, response = ?2, updated_ms = ?3,"
                   " lease_until_ms = 0 WHERE id = ?1",
    [S_RESCHEDULE] = "UPDATE messages SET state = 0, last_error = ?2, error_text = ?3,"
                     " due_ms = ?4, updated_ms = ?5, lease_until_ms = 0 WHERE id = ?1",
    [S_DEAD] = "UPDATE messages SET state = 3, last_error = ?2, error_text = ?3,"
               " updated_ms = ?4, lease_until_ms = 0 WHERE id = ?1",
    [S_RELEASE] = "UPDATE messages SET state = 0, attempts = attempts - 1,"
                  " lease_until_ms = 0, updated_ms = ?2 WHERE id = ?1",
    [S_EXPIRED] = "SELECT id, attempts FROM messages WHERE state = 1 AND lease_until_ms <= ?1",
    [S_GET] = "SELECT id, state, attempts, last_error, created_ms, updated_ms, due_ms,"
              " lease_until_ms, prompt, operation, session_id, idem_key, metadata, response,"
              " error_text FROM messages WHERE id = ?1",
    [S_OLDEST] = "SELECT created_ms FROM messages WHERE state = 0 ORDER BY id LIMIT 1",
    [S_NEXT_DUE] = "SELECT MIN(due_ms) FROM messages WHERE state = 0 AND due_ms > ?1",
    [S_NEXT_LEASE] = "SELECT MIN(lease_until_ms) FROM messages WHERE state = 1",
    [S_COUNT] = "SELECT state, COUNT(*) FROM messages GROUP BY state",
    [S_DATA_VERSION] = "PRAGMA data_version",
};

struct clink__ob_store {
  sqlite3 *db;
  sqlite3_stmt *st[S_N];
  int64_t counts[4]; /* committed, per state */
  int64_t delta[4];  /* the open transaction's changes */
  int64_t data_version;
  char err[256];
};

/* Timestamps are uint64 in the API and INTEGER (int64) on disk; "never"
 * saturates to INT64_MAX and back. */
static int64_t to_i64(uint64_t v) { return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v; }
static uint64_t to_u64(int64_t v) {
  if (v < 0) return 0;
  return v == INT64_MAX ? CLINK__NEVER : (uint64_t)v;
}

static int map_rc(int rc, int sys) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return UV_ENOSPC;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return CLINK_ESTORE_CORRUPT;
    case SQLITE_READONLY:
      return UV_EROFS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UV_EBUSY;
    case SQLITE_NOMEM:
      return UV_ENOMEM;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_PERM:
      /* libuv's codes are -errno on Unix: EACCES, EFBIG, EIO pass as such. */
      if (sys > 0) return -sys;
      return CLINK_ESTORE_IO;
    default:
      return CLINK_ESTORE_IO;
  }
}

/* Records SQLite's text and returns the library's code for rc. */
static int fail(clink__ob_store *s, int rc) {
  snprintf(s->err, sizeof(s->err), "%s", sqlite3_errmsg(s->db));
  return map_rc(rc, sqlite3_system_errno(s->db));
}

static int fail_text(clink__ob_store *s, int code, const char *text) {
  snprintf(s->err, sizeof(s->err), "%s", text);
  return code;
}

/* Runs a statement that returns no row (or whose rows are ignored). */
static int run(clink__ob_store *s, sqlite3_stmt *st) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  int r = rc == SQLITE_DONE ? 0 : fail(s, rc);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return r;
}

static void done_with(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

/* One integer from a one-row query; *null set when the value is NULL or there
 * is no row. */
static int query_i64(clink__ob_store *s, sqlite3_stmt *st, int64_t *v, int *null) {
  int rc = sqlite3_step(st);
  int r = 0;
  *null = 1;
  if (rc == SQLITE_ROW) {
    *null = sqlite3_column_type(st, 0) == SQLITE_NULL;
    *v = sqlite3_column_int64(st, 0);
  } else if (rc != SQLITE_DONE) {
    r = fail(s, rc);
  }
  done_with(st);
  return r;
}

static int exec_sql(clink__ob_store *s, const char *text) {
  int rc = sqlite3_exec(s->db, text, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : fail(s, rc);
}

/* A pragma's single value as an integer. */
static int pragma_int(clink__ob_store *s, const char *text, int64_t *v) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, text, -1, &st, NULL);
  if (rc != SQLITE_OK) return fail(s, rc);
  int null;
  int r = query_i64(s, st, v, &null);
  sqlite3_finalize(st);
  return r;
}

static int recount(clink__ob_store *s) {
  sqlite3_stmt *st = s->st[S_COUNT];
  int64_t c[4] = {0, 0, 0, 0};
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t state = sqlite3_column_int64(st, 0);
    if (state >= 0 && state < 4) c[state] = sqlite3_column_int64(st, 1);
  }
  int r = rc == SQLITE_DONE ? 0 : fail(s, rc);
  done_with(st);
  if (r == 0) memcpy(s->counts, c, sizeof(c));
  return r;
}

/* Counts again when another connection committed since we last looked. */
static int sync_counts(clink__ob_store *s) {
  int64_t v = 0;
  int null;
  int r = query_i64(s, s->st[S_DATA_VERSION], &v, &null);
  if (r != 0 || v == s->data_version) return r;
  s->data_version = v;
  return recount(s);
}

static int create_schema(clink__ob_store *s) {
  int r = exec_sql(s, "BEGIN IMMEDIATE");
  if (r != 0) return r;
  int64_t version = 0;
  /* Another process may have created it while we waited for the lock. */
  r = pragma_int(s, "PRAGMA user_version", &version);
  if (r == 0 && version == 0) r = exec_sql(s, schema_sql);
  if (r == 0) r = exec_sql(s, "COMMIT");
  if (r != 0) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return r;
}

static void st_close(clink__ob_store *s) {
  if (s == NULL) return;
  for (int i = 0; i < S_N; i++) sqlite3_finalize(s->st[i]);
  sqlite3_close(s->db);
  clink__free(s);
}

static int open_db(clink__ob_store *s, const char *path) {
  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (s->db == NULL) return fail_text(s, UV_ENOMEM, "out of memory opening the database");
  if (rc != SQLITE_OK) return fail(s, rc);
  sqlite3_extended_result_codes(s->db, 1);
  /* Other processes (an enqueuing command next to a delivering one) hold
   * the write lock only for one short transaction. */
  sqlite3_busy_timeout(s->db, 10000);

  /* The first read: a file that is not SQLite fails here (SQLITE_NOTADB). */
  int64_t version = 0;
  int r = pragma_int(s, "PRAGMA user_version", &version);
  if (r != 0) return r;
  if (version > SCHEMA_VERSION) {
    char text[128];
    snprintf(text, sizeof(text), "schema version %lld is newer than this library's (%d)",
             (long long)version, SCHEMA_VERSION);
    return fail_text(s, CLINK_ESTORE_VERSION, text);
  }
  sqlite3_stmt *st;
  rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc != SQLITE_OK) return fail(s, rc);
  rc = sqlite3_step(st);
  int wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL &&
            strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
  r = rc == SQLITE_ROW ? 0 : fail(s, rc);
  sqlite3_finalize(st);
  if (r != 0) return r;
  if (!wal) return fail_text(s, CLINK_ESTORE_IO, "the database cannot use WAL journaling");
  if ((r = exec_sql(s, "PRAGMA synchronous=FULL")) != 0) return r;
  if (version == 0 && (r = create_schema(s)) != 0) return r;

  for (int i = 0; i < S_N; i++) {
    rc = sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
    if (rc != SQLITE_OK) {
      /* A file at our version without our table is not ours. */
      r = fail(s, rc);
      return (rc & 0xff) == SQLITE_ERROR ? CLINK_ESTORE_CORRUPT : r;
    }
  }
  s->data_version = -1;
  return sync_counts(s);
}

/* SQLite reports a file it cannot create with the errno of its last try
 * (often ENOENT from a read-only fallback); the directory tells the truth. */
static int explain_cantopen(clink__ob_store *s, const char *path, int r) {
  char dirpath[4096];
  const char *slash = strrchr(path, '/');
  if (slash == NULL) {
    snprintf(dirpath, sizeof(dirpath), ".");
  } else {
    size_t n = (size_t)(slash - path);
    if (n >= sizeof(dirpath)) return r;
    memcpy(dirpath, path, n);
    dirpath[n] = '\0';
    if (n == 0) snprintf(dirpath, sizeof(dirpath), "/");
  }
  if (access(dirpath, W_OK | X_OK) == 0) return r;
  int e = errno;
  char text[256];
  snprintf(text, sizeof(text), "%.100s: directory %.80s is not writable: %.30s", s->err,
           dirpath, strerror(e));
  memcpy(s->err, text, sizeof(s->err));
  return -e;
}

static int st_open(clink__ob_store **out, const char *path, uint64_t now_ms, char *err,
                   size_t err_len) {
  *out = NULL;
  clink__ob_store *s = clink__calloc(1, sizeof(*s));
  if (s == NULL) {
    snprintf(err, err_len, "out of memory");
    return UV_ENOMEM;
  }
  int r = open_db(s, path);
  if (r != 0 && s->db != NULL && (sqlite3_errcode(s->db) & 0xff) == SQLITE_CANTOPEN)
    r = explain_cantopen(s, path, r);
  if (r != 0) {
    snprintf(err, err_len, "%s", s->err);
    st_close(s);
    return r;
  }
  *out = s;
  return 0;
}

static const char *st_errmsg(const clink__ob_store *s) { return s->err; }

static int st_begin(clink__ob_store *s, uint64_t now_ms) {
  memset(s->delta, 0, sizeof(s->delta));
  int r = run(s, s->st[S_BEGIN]);
  if (r != 0) return r;
  /* Under the write lock: the counts cannot move under us now. */
  r = sync_counts(s);
  if (r != 0) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  return r;
}

static int st_commit(clink__ob_store *s, uint64_t now_ms) {
  int r = run(s, s->st[S_COMMIT]);
  if (r != 0) return r;
  for (int i = 0; i < 4; i++) s->counts[i] += s->delta[i];
  memset(s->delta, 0, sizeof(s->delta));
  return 0;
}

static void st_rollback(clink__ob_store *s) {
  /* Fails harmlessly when SQLite already rolled back (after an I/O error). */
  if (!sqlite3_get_autocommit(s->db)) run(s, s->st[S_ROLLBACK]);
  memset(s->delta, 0, sizeof(s->delta));
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
  if (v == NULL)
    sqlite3_bind_null(st, i);
  else
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static int st_enqueue(clink__ob_store *s, const clink__ob_strs *m, uint64_t max_undelivered,
                      uint64_t now_ms, int64_t *id, int *outcome) {
  int null, r;
  if (m->key != NULL) {
    sqlite3_stmt *st = s->st[S_FIND_KEY];
    bind_text(st, 1, m->key);
    if ((r = query_i64(s, st, id, &null)) != 0) return r;
    if (!null) {
      *outcome = CLINK__OB_EXISTED;
      return 0;
    }
  }
  int64_t undelivered = s->counts[0] + s->delta[0] + s->counts[1] + s->delta[1];
  if (undelivered >= to_i64(max_undelivered)) {
    *outcome = CLINK_EOUTBOX_FULL;
    return 0;
  }
  sqlite3_stmt *st = s->st[S_INSERT];
  bind_text(st, 1, m->prompt);
  bind_text(st, 2, m->operation);
  bind_text(st, 3, m->session_id);
  bind_text(st, 4, m->key);
  bind_text(st, 5, m->metadata);
  sqlite3_bind_int64(st, 6, to_i64(now_ms));
  if ((r = run(s, st)) != 0) return r;
  *id = sqlite3_last_insert_rowid(s->db);
  *outcome = CLINK__OB_NEW;
  s->delta[0]++;
  return 0;
}

static const char *col_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

static int st_get(clink__ob_store *s, int64_t id, uint64_t now_ms, clink_outbox_msg **out) {
  sqlite3_stmt *st = s->st[S_GET];
  *out = NULL;
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    int r = rc == SQLITE_DONE ? UV_ENOENT : fail(s, rc);
    done_with(st);
    return r;
  }
  clink__ob_strs strs = {col_text(st, 8),  col_text(st, 9),  col_text(st, 10), col_text(st, 11),
                         col_text(st, 12), col_text(st, 13), col_text(st, 14)};
  clink_outbox_msg *m = clink__ob_msg_new(&strs);
  if (m != NULL) {
    m->id = sqlite3_column_int64(st, 0);
    m->state = (int)sqlite3_column_int64(st, 1);
    m->attempts = (uint32_t)sqlite3_column_int64(st, 2);
    m->last_error = (int)sqlite3_column_int64(st, 3);
    m->created_ms = to_u64(sqlite3_column_int64(st, 4));
    m->updated_ms = to_u64(sqlite3_column_int64(st, 5));
    m->due_ms = to_u64(sqlite3_column_int64(st, 6));
    m->lease_until_ms = to_u64(sqlite3_column_int64(st, 7));
  }
  done_with(st);
  if (m == NULL) return fail_text(s, UV_ENOMEM, "out of memory reading a message");
  *out = m;
  return 0;
}

/* The earlier of the next backoff end and the next lease end. */
static int next_wake(clink__ob_store *s, uint64_t now_ms, uint64_t *next_ms) {
  int64_t v;
  int null, r;
  *next_ms = CLINK__NEVER;
  sqlite3_bind_int64(s->st[S_NEXT_DUE], 1, to_i64(now_ms));
  if ((r = query_i64(s, s->st[S_NEXT_DUE], &v, &null)) != 0) return r;
  if (!null) *next_ms = clink__earliest(*next_ms, to_u64(v));
  if ((r = query_i64(s, s->st[S_NEXT_LEASE], &v, &null)) != 0) return r;
  if (!null) *next_ms = clink__earliest(*next_ms, to_u64(v));
  return 0;
}

static int st_lease(clink__ob_store *s, size_t max, uint64_t lease_ms, uint64_t now_ms,
                    clink_outbox_msg **rows, size_t *n, uint64_t *next_ms) {
  *n = 0;
  *next_ms = CLINK__NEVER;
  if (max == 0) return 0;
  int64_t *ids = clink__calloc(max, sizeof(*ids));
  if (ids == NULL) return fail_text(s, UV_ENOMEM, "out of memory leasing");
  size_t n_ids = 0;
  sqlite3_stmt *st = s->st[S_LEASE_SELECT];
  sqlite3_bind_int64(st, 1, to_i64(now_ms));
  sqlite3_bind_int64(st, 2, (int64_t)max);
  int rc, r = 0;
  /* Ids first, updates after: no writes under a running SELECT. */
  while ((rc = sqlite3_step(st)) == SQLITE_ROW && n_ids < max)
    ids[n_ids++] = sqlite3_column_int64(st, 0);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) r = fail(s, rc);
  done_with(st);
  uint64_t until = clink__deadline(now_ms, lease_ms);
  for (size_t i = 0; i < n_ids && r == 0; i++) {
    st = s->st[S_LEASE_UPDATE];
    sqlite3_bind_int64(st, 1, ids[i]);
    sqlite3_bind_int64(st, 2, to_i64(until));
    sqlite3_bind_int64(st, 3, to_i64(now_ms));
    if ((r = run(s, st)) != 0) break;
    if (sqlite3_changes(s->db) != 1) continue;
    s->delta[0]--;
    s->delta[1]++;
    if ((r = st_get(s, ids[i], now_ms, &rows[*n])) != 0) break;
    (*n)++;
  }
  clink__free(ids);
  if (r == 0 && *n < max) r = next_wake(s, now_ms, next_ms);
  if (r != 0) {
    for (size_t i = 0; i < *n; i++) clink__free(rows[i]);
    *n = 0;
  }
  return r;
}

/* The state of (id, attempt) when that attempt still holds (PENDING after a
 * lease recovery counts: its outcome is still the latest), else -1. */
static int attempt_state(clink__ob_store *s, int64_t id, uint32_t attempt, int *state) {
  sqlite3_stmt *st = s->st[S_STATE_OF];
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  int r = 0;
  *state = -1;
  if (rc == SQLITE_ROW) {
    int64_t cur = sqlite3_column_int64(st, 0);
    int64_t att = sqlite3_column_int64(st, 1);
    if ((cur == CLINK_OUTBOX_PENDING || cur == CLINK_OUTBOX_LEASED) && att == (int64_t)attempt)
      *state = (int)cur;
  } else if (rc != SQLITE_DONE) {
    r = fail(s, rc);
  }
  done_with(st);
  return r;
}

static int st_complete(clink__ob_store *s, int64_t id, uint32_t attempt, const char *response,
                       uint64_t now_ms, int *applied) {
  int state, r;
  *applied = 0;
  if ((r = attempt_state(s, id, attempt, &state)) != 0 || state < 0) return r;
  sqlite3_stmt *st = s->st[S_COMPLETE];
  sqlite3_bind_int64(st, 1, id);
  bind_text(st, 2, response);
  sqlite3_bind_int64(st, 3, to_i64(now_ms));
  if ((r = run(s, st)) != 0) return r;
  s->delta[state]--;
  s->delta[CLINK_OUTBOX_DELIVERED]++;
  *applied = 1;
  return 0;
}

static int do_reschedule(clink__ob_store *s, int64_t id, int err, const char *text,
                         uint64_t due_ms, uint64_t now_ms) {
  sqlite3_stmt *st = s->st[S_RESCHEDULE];
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, err);
  bind_text(st, 3, text);
  sqlite3_bind_int64(st, 4, to_i64(due_ms));
  sqlite3_bind_int64(st, 5, to_i64(now_ms));
  return run(s, st);
}

static int do_dead(clink__ob_store *s, int64_t id, int err, const char *text, uint64_t now_ms) {
  sqlite3_stmt *st = s->st[S_DEAD];
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, err);
  bind_text(st, 3, text);
  sqlite3_bind_int64(st, 4, to_i64(now_ms));
  return run(s, st);
}

static int st_reschedule(clink__ob_store *s, int64_t id, uint32_t attempt, int err,
                         const char *text, uint64_t due_ms, uint64_t now_ms, int *applied) {
  int state, r;
  *applied = 0;
  if ((r = attempt_state(s, id, attempt, &state)) != 0 || state < 0) return r;
  if ((r = do_reschedule(s, id, err, text, due_ms, now_ms)) != 0) return r;
  s->delta[state]--;
  s->delta[CLINK_OUTBOX_PENDING]++;
  *applied = 1;
  return 0;
}

static int st_dead_letter(clink__ob_store *s, int64_t id, uint32_t attempt, int err,
                          const char *text, uint64_t now_ms, int *applied) {
  int state, r;
  *applied = 0;
  if ((r = attempt_state(s, id, attempt, &state)) != 0 || state < 0) return r;
  if ((r = do_dead(s, id, err, text, now_ms)) != 0) return r;
  s->delta[state]--;
  s->delta[CLINK_OUTBOX_DEAD]++;
  *applied = 1;
  return 0;
}

static int st_release(clink__ob_store *s, int64_t id, uint32_t attempt, uint64_t now_ms,
                      int *applied) {
  int state, r;
  *applied = 0;
  if ((r = attempt_state(s, id, attempt, &state)) != 0 || state != CLINK_OUTBOX_LEASED)
    return r;
  sqlite3_stmt *st = s->st[S_RELEASE];
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, to_i64(now_ms));
  if ((r = run(s, st)) != 0) return r;
  s->delta[CLINK_OUTBOX_LEASED]--;
  s->delta[CLINK_OUTBOX_PENDING]++;
  *applied = 1;
  return 0;
}

static int st_recover(clink__ob_store *s, uint32_t max_attempts, uint64_t now_ms,
                      int64_t *dead_ids, size_t max_dead, size_t *n_requeued, size_t *n_dead) {
  *n_requeued = *n_dead = 0;
  size_t n = 0, cap = 0;
  int64_t(*found)[2] = NULL;
  sqlite3_stmt *st = s->st[S_EXPIRED];
  sqlite3_bind_int64(st, 1, to_i64(now_ms));
  int rc, r = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      void *p = realloc(found, ncap * sizeof(*found));
      if (p == NULL) {
        r = fail_text(s, UV_ENOMEM, "out of memory recovering leases");
        break;
      }
      found = p;
      cap = ncap;
    }
    found[n][0] = sqlite3_column_int64(st, 0);
    found[n][1] = sqlite3_column_int64(st, 1);
    n++;
  }
  if (r == 0 && rc != SQLITE_DONE) r = fail(s, rc);
  done_with(st);
  for (size_t i = 0; i < n && r == 0; i++) {
    if (found[i][1] >= (int64_t)max_attempts) {
      r = do_dead(s, found[i][0], UV_ETIMEDOUT, "lease expired", now_ms);
      if (r != 0) break;
      s->delta[CLINK_OUTBOX_DEAD]++;
      if (dead_ids != NULL && *n_dead < max_dead) dead_ids[*n_dead] = found[i][0];
      (*n_dead)++;
    } else {
      r = do_reschedule(s, found[i][0], UV_ETIMEDOUT, "lease expired", now_ms, now_ms);
      if (r != 0) break;
      s->delta[CLINK_OUTBOX_PENDING]++;
      (*n_requeued)++;
    }
    s->delta[CLINK_OUTBOX_LEASED]--;
  }
  clink__free(found);
  return r;
}

static int st_stats(clink__ob_store *s, uint64_t now_ms, clink__ob_counts *out) {
  int r = sync_counts(s);
  if (r != 0) return r;
  int64_t c[4];
  for (int i = 0; i < 4; i++) c[i] = s->counts[i] + s->delta[i];
  out->pending = c[0] > 0 ? (uint64_t)c[0] : 0;
  out->leased = c[1] > 0 ? (uint64_t)c[1] : 0;
  out->delivered = c[2] > 0 ? (uint64_t)c[2] : 0;
  out->dead = c[3] > 0 ? (uint64_t)c[3] : 0;
  int64_t v;
  int null;
  if ((r = query_i64(s, s->st[S_OLDEST], &v, &null)) != 0) return r;
  out->oldest_pending_created_ms = null ? 0 : to_u64(v);
  return 0;
}

const clink__ob_store_vt clink__ob_store_sqlite = {
    .name = "sqlite",
    .open = st_open,
    .close = st_close,
    .errmsg = st_errmsg,
    .begin = st_begin,
    .commit = st_commit,
    .rollback = st_rollback,
    .enqueue = st_enqueue,
    .lease = st_lease,
    .complete = st_complete,
    .reschedule = st_reschedule,
    .dead_letter = st_dead_letter,
    .release = st_release,
    .recover = st_recover,
    .get = st_get,
    .stats = st_stats,
};
