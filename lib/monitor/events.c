/* Event records, redaction and the JSON line (see events.h). */
#include "monitor/events.h"

#include <ctype.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/internal.h"
#include "wire/json-out.h"

/* --------------------------------------------------------------- secrets */

static int has_ci(const char *s, const char *needle) {
  size_t n = strlen(needle);
  for (; *s; s++)
    if (strncasecmp(s, needle, n) == 0) return 1;
  return 0;
}

int clink__secret_key(const char *key) {
  static const char *const words[] = {"secret", "token",      "password", "passwd",
                                      "authorization", "cookie", "credential", "api_key",
                                      "apikey", "api-key"};
  if (key == NULL) return 0;
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(words); i++)
    if (has_ci(key, words[i])) return 1;
  return 0;
}

#define REDACTED "[REDACTED]"

/* An environment-style name whose value is a secret. */
static int secret_name(const char *name, size_t n) {
  char buf[128];
  if (n == 0 || n >= sizeof(buf)) return 0;
  memcpy(buf, name, n);
  buf[n] = '\0';
  return strncmp(buf, "ANTHROPIC_", 10) == 0 || clink__secret_key(buf) || strstr(buf, "KEY");
}

static int token_char(unsigned char c) { return isalnum(c) || c == '-' || c == '_' || c == '.'; }

/* Appends n bytes (keeping the count past cap, like snprintf). */
static void put(char *out, size_t cap, size_t *len, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++, (*len)++)
    if (*len + 1 < cap) out[*len] = p[i];
}

size_t clink__redact(const char *v, char *out, size_t cap) {
  size_t len = 0;
  const char *p = v ? v : "";
  while (*p) {
    /* sk-ant-... API keys. */
    if (strncmp(p, "sk-ant-", 7) == 0) {
      put(out, cap, &len, REDACTED, sizeof(REDACTED) - 1);
      p += 7;
      while (token_char((unsigned char)*p)) p++;
      continue;
    }
    /* Bearer tokens. */
    if (strncasecmp(p, "bearer ", 7) == 0) {
      put(out, cap, &len, p, 7);
      p += 7;
      if (token_char((unsigned char)*p)) {
        put(out, cap, &len, REDACTED, sizeof(REDACTED) - 1);
        while (*p && !isspace((unsigned char)*p) && *p != '"' && *p != ',') p++;
      }
      continue;
    }
    /* NAME=value where NAME names a secret (argv, env dumps). */
    if (isupper((unsigned char)*p) && (p == v || !isalnum((unsigned char)p[-1]))) {
      const char *q = p;
      while (isupper((unsigned char)*q) || isdigit((unsigned char)*q) || *q == '_') q++;
      if (*q == '=' && secret_name(p, (size_t)(q - p))) {
        put(out, cap, &len, p, (size_t)(q - p) + 1);
        p = q + 1;
        if (*p == '\'' || *p == '"') {
          /* A quoted value: redacted to its closing quote, spaces included. */
          char quote = *p++;
          put(out, cap, &len, &quote, 1);
          put(out, cap, &len, REDACTED, sizeof(REDACTED) - 1);
          while (*p && *p != quote) p++;
          if (*p) put(out, cap, &len, p++, 1);
          continue;
        }
        put(out, cap, &len, REDACTED, sizeof(REDACTED) - 1);
        while (*p && !isspace((unsigned char)*p) && *p != '"' && *p != ',' && *p != '\'') p++;
        continue;
      }
      put(out, cap, &len, p, (size_t)(q - p));
      p = q;
      continue;
    }
    put(out, cap, &len, p, 1);
    p++;
  }
  if (cap > 0) out[len < cap ? len : cap - 1] = '\0';
  return len;
}

/* ---------------------------------------------------------------- record */

static size_t str_need(const char *key, const char *s) {
  if (s == NULL) return 0;
  if (clink__secret_key(key)) return sizeof(REDACTED);
  char one;
  return clink__redact(s, &one, 1) + 1;
}

/* Copies s (redacted) into *at; returns the copy. */
static const char *str_put(char **at, const char *key, const char *s) {
  if (s == NULL) return NULL;
  char *dst = *at;
  size_t n;
  if (clink__secret_key(key)) {
    memcpy(dst, REDACTED, sizeof(REDACTED));
    n = sizeof(REDACTED);
  } else {
    n = clink__redact(s, dst, (size_t)-1 >> 1) + 1;
  }
  *at += n;
  return dst;
}

clink__event_rec *clink__event_rec_make(uint64_t timestamp_ms, clink_log_level level,
                                        const char *component, const char *event,
                                        const clink_event_field *fields, size_t n) {
  if (component == NULL) component = "app";
  if (event == NULL) event = "event";
  size_t size = sizeof(clink__event_rec) + n * sizeof(clink_event_field);
  size += strlen(component) + 1 + strlen(event) + 1;
  for (size_t i = 0; i < n; i++) {
    size += strlen(fields[i].key ? fields[i].key : "") + 1;
    if (fields[i].kind == CLINK_FIELD_STRING) size += str_need(fields[i].key, fields[i].s);
  }
  clink__event_rec *r = malloc(size);
  if (r == NULL) return NULL;
  clink_event_field *f = (clink_event_field *)(r + 1);
  char *at = (char *)(f + n);
  r->next = NULL;
  r->ev.struct_size = sizeof(clink_event);
  r->ev.timestamp_ms = timestamp_ms;
  r->ev.level = level;
  r->ev.fields = f;
  r->ev.n_fields = n;
  memcpy(at, component, strlen(component) + 1);
  r->ev.component = at;
  at += strlen(component) + 1;
  memcpy(at, event, strlen(event) + 1);
  r->ev.event = at;
  at += strlen(event) + 1;
  for (size_t i = 0; i < n; i++) {
    const char *key = fields[i].key ? fields[i].key : "";
    f[i] = fields[i];
    memcpy(at, key, strlen(key) + 1);
    f[i].key = at;
    at += strlen(key) + 1;
    f[i].s = fields[i].kind == CLINK_FIELD_STRING ? str_put(&at, key, fields[i].s) : NULL;
  }
  return r;
}

/* ------------------------------------------------------------------ JSON */

void clink__iso8601_ms(uint64_t unix_ms, char out[32]) {
  time_t t = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  /* Fields are bounded by the struct tm ranges; %04d covers years to 9999. */
  snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", (tm.tm_year + 1900) % 10000,
           (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
           tm.tm_sec % 100, (unsigned)(unix_ms % 1000));
}

uint64_t clink__wall_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

char *clink__event_json(const clink_event *ev) {
  char ts[32];
  clink__iso8601_ms(ev->timestamp_ms, ts);
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL && clink__json_add(o, "timestamp", cJSON_CreateString(ts));
  ok = ok && clink__json_add(o, "level", cJSON_CreateString(clink_log_level_name(ev->level)));
  ok = ok && clink__json_add(o, "event", cJSON_CreateString(ev->event));
  ok = ok && clink__json_add(o, "component", cJSON_CreateString(ev->component));
  for (size_t i = 0; ok && i < ev->n_fields; i++) {
    const clink_event_field *f = &ev->fields[i];
    /* The four fixed keys win over fields of the same name. */
    if (cJSON_GetObjectItemCaseSensitive(o, f->key)) continue;
    cJSON *v = NULL;
    switch (f->kind) {
      case CLINK_FIELD_STRING: v = f->s ? cJSON_CreateString(f->s) : cJSON_CreateNull(); break;
      case CLINK_FIELD_INT: v = cJSON_CreateNumber((double)f->i); break;
      case CLINK_FIELD_DOUBLE: v = cJSON_CreateNumber(f->d); break;
      case CLINK_FIELD_BOOL: v = cJSON_CreateBool(f->i != 0); break;
      default: v = cJSON_CreateNull(); break;
    }
    ok = clink__json_add(o, f->key, v);
  }
  char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  return line;
}

/* -------------------------------------------------------------- levels */

const char *clink_log_level_name(clink_log_level level) {
  switch (level) {
    case CLINK_LOG_DEBUG: return "DEBUG";
    case CLINK_LOG_INFO: return "INFO";
    case CLINK_LOG_WARNING: return "WARNING";
    case CLINK_LOG_ERROR: return "ERROR";
    case CLINK_LOG_CRITICAL: return "CRITICAL";
  }
  return "UNKNOWN";
}

int clink_log_level_parse(const char *name, clink_log_level *out) {
  static const struct {
    const char *name;
    clink_log_level level;
  } names[] = {{"DEBUG", CLINK_LOG_DEBUG},     {"INFO", CLINK_LOG_INFO},
               {"WARNING", CLINK_LOG_WARNING}, {"WARN", CLINK_LOG_WARNING},
               {"ERROR", CLINK_LOG_ERROR},     {"CRITICAL", CLINK_LOG_CRITICAL},
               {"FATAL", CLINK_LOG_CRITICAL}};
  if (name == NULL || out == NULL) return UV_EINVAL;
  for (size_t i = 0; i < CLINK__ARRAY_SIZE(names); i++) {
    if (strcasecmp(name, names[i].name) == 0) {
      *out = names[i].level;
      return 0;
    }
  }
  return UV_EINVAL;
}

int clink_event_to_json(const clink_event *ev, char **out) {
  if (ev == NULL || out == NULL) return UV_EINVAL;
  char *line = clink__event_json(ev);
  /* Handed out as the library's own malloc'd buffer: clink_free(). */
  char *copy = line ? clink__strdup(line) : NULL;
  cJSON_free(line);
  if (copy == NULL) return UV_ENOMEM;
  *out = copy;
  return 0;
}

void clink_free(void *p) { clink__free(p); }
