/* claudelink-outbox: a durable outbox of prompts, delivered through a pool.
 *
 *   claudelink-outbox --db PATH enqueue [--key KEY] [--session ID] MESSAGE...
 *       one line per MESSAGE on stdout, its id, printed only once the message
 *       is durable; exit 0. With several MESSAGEs and --key, the n-th one's
 *       key is KEY/n.
 *   claudelink-outbox --db PATH deliver [--cli PATH] [--size N] [--follow]
 *                     [--lease-ms MS] [--max-attempts N]
 *       delivers pending messages through a pool of N (default 2); one JSON
 *       line per delivered message: {"id":..,"key":..,"attempts":N,
 *       "response":".."}. Without --follow it exits once nothing is pending or
 *       in flight: 0, or 1 if anything was dead-lettered. SIGINT and SIGTERM
 *       stop it cleanly (attempts in flight finish first).
 *   claudelink-outbox --db PATH status
 *       {"pending":N,"in_flight":N,"delivered":N,"dead":N}
 *   claudelink-outbox --db PATH show ID
 *       the message, its state, attempts, last error and response (JSON);
 *       exit 1 when there is no such id.
 * Errors go to stderr, one line naming the cause; exit 2 on bad usage.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <claudelink.h>

typedef struct app {
  uv_loop_t *loop;
  clink_outbox *ob;
  clink_pool *pool;
  const char *cmd;
  /* enqueue */
  const char *key, *session;
  char **msgs;
  int n_msgs, n_acked, n_keys;
  char **keys;
  /* deliver */
  int follow;
  int dead;
  int stopping;
  uv_timer_t check;
  uv_signal_t sigint, sigterm;
  int have_watchers;
  clink_events *sink;
  /* show */
  int64_t id;
  int rc;
} app;

static void usage(void) {
  fprintf(stderr,
          "usage: claudelink-outbox --db PATH enqueue [--key KEY] [--session ID] MESSAGE...\n"
          "       claudelink-outbox --db PATH deliver [--cli PATH] [--size N] [--follow]"
          " [--lease-ms MS] [--max-attempts N]\n"
          "       claudelink-outbox --db PATH status\n"
          "       claudelink-outbox --db PATH show ID\n");
  exit(2);
}

static void fail(app *a, const char *what, int err) {
  const char *detail = a->ob ? clink_outbox_last_error(a->ob) : "";
  fprintf(stderr, "claudelink-outbox: %s: %s%s%s\n", what, clink_strerror(err),
          *detail ? ": " : "", detail);
  a->rc = 1;
}

static void print_json(cJSON *o) {
  char *s = cJSON_PrintUnformatted(o);
  if (s) {
    printf("%s\n", s);
    fflush(stdout);
    cJSON_free(s);
  }
  cJSON_Delete(o);
}

static void add_str(cJSON *o, const char *name, const char *v) {
  if (v)
    cJSON_AddStringToObject(o, name, v);
  else
    cJSON_AddNullToObject(o, name);
}

static void on_pool_closed(clink_pool *pool, void *ud) {}

static void on_closed(clink_outbox *ob, void *ud) {
  app *a = ud;
  a->ob = NULL;
  if (a->sink) clink_events_close(a->sink, NULL, NULL);
  a->sink = NULL;
  /* The outbox waited for the attempts in flight: the pool can go now. */
  if (a->pool) clink_pool_shutdown(a->pool, CLINK_POOL_DRAIN, on_pool_closed, a);
  a->pool = NULL;
}

static void close_all(app *a) {
  if (a->stopping) return;
  a->stopping = 1;
  if (a->have_watchers) {
    uv_close((uv_handle_t *)&a->check, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
  }
  if (a->ob) clink_outbox_close(a->ob, on_closed, a);
}

/* ---------------------------------------------------------------- enqueue */

static void on_enqueued(clink_outbox *ob, int status, int64_t id, void *ud) {
  app *a = ud;
  if (status != 0) {
    fail(a, "enqueue", status);
  } else {
    printf("%lld\n", (long long)id);
    fflush(stdout); /* the id is out only once it is durable */
  }
  if (++a->n_acked == a->n_msgs) close_all(a);
}

static void start_enqueue(app *a) {
  for (int i = 0; i < a->n_msgs; i++) {
    const char *key = a->key;
    if (a->key && a->n_msgs > 1) {
      size_t n = strlen(a->key) + 24;
      a->keys[i] = malloc(n);
      if (a->keys[i] == NULL) exit(1);
      snprintf(a->keys[i], n, "%s/%d", a->key, i + 1);
      key = a->keys[i];
    }
    int rc = clink_outbox_enqueue(a->ob, a->msgs[i], NULL, a->session, key, NULL, on_enqueued, a);
    if (rc != 0) {
      fail(a, "enqueue", rc);
      a->n_msgs = i; /* the ones already submitted still finish */
      if (a->n_acked == a->n_msgs) close_all(a);
      return;
    }
  }
}

/* ---------------------------------------------------------------- deliver */

static void on_report(clink_outbox *ob, const clink_outbox_msg *m, void *ud) {
  app *a = ud;
  clink_outbox_state st = clink_outbox_msg_state(m);
  if (st == CLINK_OUTBOX_DELIVERED) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)clink_outbox_msg_id(m));
    add_str(o, "key", clink_outbox_msg_key(m));
    cJSON_AddNumberToObject(o, "attempts", clink_outbox_msg_attempts(m));
    add_str(o, "response", clink_outbox_msg_response(m));
    print_json(o);
  } else if (st == CLINK_OUTBOX_DEAD) {
    a->dead++;
    fprintf(stderr, "claudelink-outbox: message %lld dead-lettered after %u attempts: %s\n",
            (long long)clink_outbox_msg_id(m), clink_outbox_msg_attempts(m),
            clink_outbox_msg_last_error_text(m) ? clink_outbox_msg_last_error_text(m) : "");
  }
}

static const char *field_str(const clink_event *ev, const char *key) {
  for (size_t i = 0; i < ev->n_fields; i++)
    if (strcmp(ev->fields[i].key, key) == 0 && ev->fields[i].kind == CLINK_FIELD_STRING)
      return ev->fields[i].s;
  return NULL;
}

static void on_event(clink_events *sink, const clink_event *ev, void *ud) {
  app *a = ud;
  const char *text = field_str(ev, "error_text");
  /* Dead letters found by lease recovery have no report of their own. */
  if (strcmp(ev->event, "message_dead_lettered") == 0 && text && strstr(text, "lease expired"))
    a->dead++;
  if (ev->level >= CLINK_LOG_ERROR && strcmp(ev->event, "message_dead_lettered") != 0)
    fprintf(stderr, "claudelink-outbox: %s %s\n", ev->event, text ? text : "");
}

static void on_check(uv_timer_t *t) {
  app *a = t->data;
  clink_outbox_stats s;
  s.struct_size = sizeof(s);
  if (a->follow || clink_outbox_get_stats(a->ob, &s) != 0) return;
  if (s.pending == 0 && s.in_flight == 0 && s.delivering == 0 && s.queued == 0) close_all(a);
}

static void on_signal(uv_signal_t *h, int signum) { close_all(h->data); }

static void start_deliver(app *a) {
  int rc = clink_outbox_deliver_via_pool(a->ob, a->pool);
  if (rc == 0) rc = clink_outbox_start(a->ob);
  if (rc != 0) {
    fail(a, "deliver", rc);
    close_all(a);
  }
}

/* ------------------------------------------------------------ status, show */

static void print_status(app *a) {
  clink_outbox_stats s;
  s.struct_size = sizeof(s);
  clink_outbox_get_stats(a->ob, &s);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "pending", (double)s.pending);
  cJSON_AddNumberToObject(o, "in_flight", (double)s.in_flight);
  cJSON_AddNumberToObject(o, "delivered", (double)s.delivered);
  cJSON_AddNumberToObject(o, "dead", (double)s.dead);
  print_json(o);
}

static void on_got(clink_outbox *ob, int status, const clink_outbox_msg *m, void *ud) {
  app *a = ud;
  if (status == UV_ENOENT) {
    fprintf(stderr, "claudelink-outbox: no message %lld\n", (long long)a->id);
    a->rc = 1;
  } else if (status != 0) {
    fail(a, "show", status);
  } else {
    static const char *const states[] = {"pending", "leased", "delivered", "dead"};
    clink_outbox_state st = clink_outbox_msg_state(m);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)clink_outbox_msg_id(m));
    add_str(o, "key", clink_outbox_msg_key(m));
    add_str(o, "session_id", clink_outbox_msg_session_id(m));
    add_str(o, "operation", clink_outbox_msg_operation(m));
    add_str(o, "prompt", clink_outbox_msg_prompt(m));
    add_str(o, "metadata", clink_outbox_msg_metadata(m));
    cJSON_AddStringToObject(o, "state", (unsigned)st < 4 ? states[st] : "unknown");
    cJSON_AddNumberToObject(o, "attempts", clink_outbox_msg_attempts(m));
    int err = clink_outbox_msg_last_error(m);
    if (err != 0)
      cJSON_AddStringToObject(o, "last_error", clink_err_name(err));
    else
      cJSON_AddNullToObject(o, "last_error");
    add_str(o, "last_error_text", clink_outbox_msg_last_error_text(m));
    add_str(o, "response", clink_outbox_msg_response(m));
    cJSON_AddNumberToObject(o, "created_ms", (double)clink_outbox_msg_created_ms(m));
    cJSON_AddNumberToObject(o, "updated_ms", (double)clink_outbox_msg_updated_ms(m));
    print_json(o);
  }
  close_all(a);
}

/* ------------------------------------------------------------------- main */

static void on_open(clink_outbox *ob, int status, void *ud) {
  app *a = ud;
  if (status != 0) {
    fail(a, "open", status);
    close_all(a);
    return;
  }
  if (strcmp(a->cmd, "enqueue") == 0) {
    start_enqueue(a);
  } else if (strcmp(a->cmd, "deliver") == 0) {
    start_deliver(a);
  } else if (strcmp(a->cmd, "status") == 0) {
    print_status(a);
    close_all(a);
  } else {
    int rc = clink_outbox_get(ob, a->id, on_got, a);
    if (rc != 0) {
      fail(a, "show", rc);
      close_all(a);
    }
  }
}

static unsigned long parse_num(const char *v, unsigned long max) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || n == 0 || n > max) usage();
  return n;
}

int main(int argc, char **argv) {
  app a;
  memset(&a, 0, sizeof(a));
  const char *db = NULL, *cli = NULL;
  unsigned long size = 2, lease_ms = 60000, max_attempts = CLINK_OUTBOX_DEFAULT_MAX_ATTEMPTS;
  int i = 1;
  if (i + 1 < argc && strcmp(argv[i], "--db") == 0) {
    db = argv[i + 1];
    i += 2;
  }
  if (db == NULL || i >= argc) usage();
  a.cmd = argv[i++];
  int is_enqueue = strcmp(a.cmd, "enqueue") == 0, is_deliver = strcmp(a.cmd, "deliver") == 0;
  while (i < argc && strncmp(argv[i], "--", 2) == 0) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(o, "--") == 0) {
      i++;
      break;
    }
    if (is_deliver && strcmp(o, "--follow") == 0) {
      a.follow = 1;
      i++;
      continue;
    }
    if (v == NULL) usage();
    if (is_enqueue && strcmp(o, "--key") == 0 && *v) {
      a.key = v;
    } else if (is_enqueue && strcmp(o, "--session") == 0 && *v) {
      a.session = v;
    } else if (is_deliver && strcmp(o, "--cli") == 0) {
      cli = v;
    } else if (is_deliver && strcmp(o, "--size") == 0) {
      size = parse_num(v, 1000);
    } else if (is_deliver && strcmp(o, "--lease-ms") == 0) {
      lease_ms = parse_num(v, 86400000);
    } else if (is_deliver && strcmp(o, "--max-attempts") == 0) {
      max_attempts = parse_num(v, 1000);
    } else {
      usage();
    }
    i += 2;
  }
  if (is_enqueue) {
    if (i >= argc) usage();
    a.msgs = argv + i;
    a.n_msgs = a.n_keys = argc - i;
    a.keys = calloc((size_t)a.n_msgs, sizeof(*a.keys));
    if (a.keys == NULL) return 1;
  } else if (strcmp(a.cmd, "show") == 0) {
    if (i + 1 != argc) usage();
    char *end;
    errno = 0;
    long long id = strtoll(argv[i], &end, 10);
    if (*argv[i] == '\0' || *end != '\0' || errno != 0) usage();
    a.id = id;
  } else if (!(is_deliver || strcmp(a.cmd, "status") == 0) || i != argc) {
    usage();
  }

  a.loop = uv_default_loop();
  clink_outbox_config *cfg;
  if (clink_outbox_config_new(&cfg) != 0) return 1;
  if (is_deliver) {
    unsigned conc = size * 4 < 1024 ? (unsigned)size * 4 : 1024;
    if (clink_outbox_config_set_lease_ms(cfg, lease_ms) != 0 ||
        clink_outbox_config_set_max_attempts(cfg, (unsigned)max_attempts) != 0 ||
        clink_outbox_config_set_concurrency(cfg, conc) != 0)
      usage();
    /* The pool exists before the outbox opens: deliveries need it at once. */
    clink_options *o;
    clink_pool_config *pc;
    if (clink_options_new(&o) != 0 || clink_pool_config_new(&pc) != 0) return 1;
    if (cli && clink_options_set_cli_path(o, cli) != 0) usage();
    clink_pool_config_set_size(pc, (unsigned)size, (unsigned)size);
    int rc = clink_pool_new(&a.pool, a.loop, o, pc);
    clink_options_free(o);
    clink_pool_config_free(pc);
    if (rc != 0) {
      fprintf(stderr, "claudelink-outbox: pool: %s\n", clink_strerror(rc));
      return 1;
    }
    uv_timer_init(a.loop, &a.check);
    uv_signal_init(a.loop, &a.sigint);
    uv_signal_init(a.loop, &a.sigterm);
    a.check.data = a.sigint.data = a.sigterm.data = &a;
    uv_timer_start(&a.check, on_check, 50, 50);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    a.have_watchers = 1;
  }
  int rc = clink_outbox_open(&a.ob, a.loop, db, cfg, on_open, &a);
  clink_outbox_config_free(cfg);
  if (rc != 0) {
    fail(&a, "open", rc);
    close_all(&a);
    if (a.pool) clink_pool_shutdown(a.pool, CLINK_POOL_DRAIN, on_pool_closed, &a);
  } else if (is_deliver) {
    clink_outbox_set_report_cb(a.ob, on_report, &a);
    if (clink_events_new(&a.sink, a.loop) == 0) {
      clink_events_set_cb(a.sink, on_event, &a);
      clink_outbox_set_events(a.ob, a.sink);
    }
  }
  uv_run(a.loop, UV_RUN_DEFAULT);
  uv_loop_close(a.loop);
  for (int k = 0; k < a.n_keys; k++) free(a.keys[k]);
  free(a.keys);
  if (a.rc == 0 && a.dead > 0) a.rc = 1;
  return a.rc;
}
