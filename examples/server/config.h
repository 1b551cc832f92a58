/* claudelink-server's configuration: command line, then environment. */
#ifndef SERVER_CONFIG_H
#define SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <claudelink.h>

#define SERVER_MAX_ALT_ENV 32

typedef struct server_config {
  const char *cli_path;      /* --cli; NULL: the library's search */
  const char *host;          /* --host, HOST; default 127.0.0.1 */
  int port;                  /* --port, PORT; default 8989; 0: any free port */
  unsigned pool_min, pool_max;
  const char *db_path;       /* --db: the outbox (guaranteed requests) */
  const char *mock_response; /* --mock-response: the last fallback */
  const char *alt_env[SERVER_MAX_ALT_ENV]; /* --alt-env NAME=VALUE */
  size_t n_alt_env;
  const char *alt_model;     /* --alt-model */
  clink_log_level log_level; /* LOG_LEVEL; default INFO */
  const char *admin_token;   /* CLAUDELINK_ADMIN_TOKEN; NULL or "": none */
  /* Limits (tuning variables, see main.c). */
  size_t max_body;
  unsigned max_inflight;
  unsigned request_timeout_s;
  unsigned max_connections;
  unsigned max_sessions;
  int isolate; /* CLAUDELINK_ISOLATE=1: a process serves one conversation (pool isolation) */
  uint64_t shutdown_timeout_ms;
} server_config;

/* Fills c from argv and the environment (flags win). Returns 0, or 2 with
 * a one-line reason in err (bad usage). */
int server_config_load(server_config *c, int argc, char **argv, char *err, size_t errlen);
/* A loopback address (127.0.0.0/8, ::1, localhost). */
int server_host_is_loopback(const char *host);
/* Has an alternative provider (--alt-env or --alt-model). */
int server_config_has_alt(const server_config *c);

#endif
