/* Command line and environment. Flags win over the environment. */
#include "config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_uint(const char *v, unsigned long long max, unsigned long long *out) {
  char *end;
  if (v == NULL || *v < '0' || *v > '9') return -1;
  unsigned long long n = strtoull(v, &end, 10);
  if (*end != '\0' || n > max) return -1;
  *out = n;
  return 0;
}

static int bad(char *err, size_t n, const char *prefix, const char *what) {
  snprintf(err, n, "%s%s", prefix, what);
  return 2;
}

/* A tuning variable: a positive integer, else the default. */
static unsigned long long env_uint(const char *name, unsigned long long def,
                                   unsigned long long max, int *ok) {
  const char *v = getenv(name);
  unsigned long long n;
  if (v == NULL || *v == '\0') return def;
  if (parse_uint(v, max, &n) != 0 || n == 0) {
    *ok = 0;
    return def;
  }
  return n;
}

int server_config_load(server_config *c, int argc, char **argv, char *err, size_t errlen) {
  memset(c, 0, sizeof(*c));
  c->host = "127.0.0.1";
  c->port = 8989;
  c->pool_min = 1;
  c->pool_max = 10;
  c->log_level = CLINK_LOG_INFO;
  int ok = 1;
  c->max_body = (size_t)env_uint("CLAUDELINK_MAX_BODY_BYTES", 1 << 20, 1ull << 30, &ok);
  if (!ok) return bad(err, errlen, "bad ", "CLAUDELINK_MAX_BODY_BYTES");
  c->max_inflight = (unsigned)env_uint("CLAUDELINK_MAX_INFLIGHT", 256, 1000000, &ok);
  if (!ok) return bad(err, errlen, "bad ", "CLAUDELINK_MAX_INFLIGHT");
  c->request_timeout_s = (unsigned)env_uint("CLAUDELINK_REQUEST_TIMEOUT_S", 30, 86400, &ok);
  if (!ok) return bad(err, errlen, "bad ", "CLAUDELINK_REQUEST_TIMEOUT_S");
  c->max_connections = (unsigned)env_uint("CLAUDELINK_MAX_CONNECTIONS", 1000, 100000, &ok);
  if (!ok) return bad(err, errlen, "bad ", "CLAUDELINK_MAX_CONNECTIONS");
  c->max_sessions = (unsigned)env_uint("CLAUDELINK_MAX_SESSIONS", 10000, 10000000, &ok);
  if (!ok) return bad(err, errlen, "bad ", "CLAUDELINK_MAX_SESSIONS");
  c->shutdown_timeout_ms = 1000 * env_uint("CLAUDELINK_SHUTDOWN_TIMEOUT_S", 30, 86400, &ok);
  if (!ok) return bad(err, errlen, "bad ", "CLAUDELINK_SHUTDOWN_TIMEOUT_S");

  /* The environment first; flags below override it. */
  const char *v;
  if ((v = getenv("HOST")) && *v) c->host = v;
  if ((v = getenv("PORT")) && *v) {
    unsigned long long n;
    if (parse_uint(v, 65535, &n) != 0) return bad(err, errlen, "bad PORT: ", v);
    c->port = (int)n;
  }
  if ((v = getenv("LOG_LEVEL")) && *v) {
    if (clink_log_level_parse(v, &c->log_level) != 0)
      return bad(err, errlen, "bad LOG_LEVEL (DEBUG, INFO, WARNING, ERROR, CRITICAL): ", v);
  }
  if ((v = getenv("CLAUDELINK_ADMIN_TOKEN")) && *v) c->admin_token = v;
  if ((v = getenv("CLAUDELINK_ISOLATE")) && *v) {
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
      return bad(err, errlen, "bad CLAUDELINK_ISOLATE (0 or 1): ", v);
    c->isolate = strcmp(v, "1") == 0;
  }

  int min_set = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    unsigned long long n;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return bad(err, errlen, "", "help");
    if (strncmp(a, "--", 2) != 0) return bad(err, errlen, "unexpected argument: ", a);
    if (val == NULL) return bad(err, errlen, "a value is needed after ", a);
    i++;
    if (strcmp(a, "--cli") == 0) {
      c->cli_path = val;
    } else if (strcmp(a, "--host") == 0) {
      c->host = val;
    } else if (strcmp(a, "--port") == 0) {
      if (parse_uint(val, 65535, &n) != 0) return bad(err, errlen, "bad --port: ", val);
      c->port = (int)n;
    } else if (strcmp(a, "--pool-min") == 0) {
      if (parse_uint(val, 10000, &n) != 0) return bad(err, errlen, "bad --pool-min: ", val);
      c->pool_min = (unsigned)n;
      min_set = 1;
    } else if (strcmp(a, "--pool-max") == 0) {
      if (parse_uint(val, 10000, &n) != 0 || n == 0)
        return bad(err, errlen, "bad --pool-max: ", val);
      c->pool_max = (unsigned)n;
    } else if (strcmp(a, "--db") == 0) {
      c->db_path = val;
    } else if (strcmp(a, "--mock-response") == 0) {
      c->mock_response = val;
    } else if (strcmp(a, "--alt-env") == 0) {
      const char *eq = strchr(val, '=');
      if (eq == NULL || eq == val) return bad(err, errlen, "bad --alt-env (NAME=VALUE): ", val);
      if (c->n_alt_env == SERVER_MAX_ALT_ENV) return bad(err, errlen, "", "too many --alt-env");
      c->alt_env[c->n_alt_env++] = val;
    } else if (strcmp(a, "--alt-model") == 0) {
      c->alt_model = val;
    } else {
      return bad(err, errlen, "unknown option: ", a);
    }
  }
  if (*c->host == '\0') return bad(err, errlen, "", "empty host");
  if (c->pool_min > c->pool_max) {
    if (min_set) return bad(err, errlen, "", "--pool-min is above --pool-max");
    c->pool_min = c->pool_max;
  }
  return 0;
}

int server_host_is_loopback(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (strcasecmp(host, "localhost") == 0) return 1;
  if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return 0;
}

int server_config_has_alt(const server_config *c) { return c->n_alt_env > 0 || c->alt_model; }
