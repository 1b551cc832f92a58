/* Standalone driver for a fuzz target, linked instead of libFuzzer when
 * fuzzing is off:
 *
 *   fuzz-framer FILE|DIR...   runs each file (each regular file of each
 *                             directory, in name order) through the target
 *   fuzz-framer               runs standard input as one input
 *
 * Each input is handed over in a malloc'd buffer of exactly its size, so
 * ASan and valgrind see any read past its end. Arguments starting with '-'
 * (libFuzzer flags) are ignored. Exits 1 when given paths but no input, so a
 * misspelt corpus directory cannot pass as an empty success. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static unsigned long n_inputs;

static int run_stream(FILE *fp, const char *name) {
  size_t len = 0, cap = 4096;
  char *buf = fuzz_xrealloc(NULL, cap);
  size_t got;
  while ((got = fread(buf + len, 1, cap - len, fp)) > 0) {
    len += got;
    if (len == cap) buf = fuzz_xrealloc(buf, cap *= 2);
  }
  if (ferror(fp)) {
    fprintf(stderr, "%s: read error\n", name);
    free(buf);
    return -1;
  }
  /* Exact size: nothing readable after the last byte. */
  uint8_t *exact = fuzz_xrealloc(NULL, len);
  if (len > 0) memcpy(exact, buf, len);
  free(buf);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  n_inputs++;
  return 0;
}

static int run_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = run_stream(fp, path);
  fclose(fp);
  return rc;
}

static int visible(const struct dirent *d) { return d->d_name[0] != '.'; }

static int run_dir(const char *dir) {
  struct dirent **names;
  int n = scandir(dir, &names, visible, alphasort);
  if (n < 0) {
    fprintf(stderr, "%s: %s\n", dir, strerror(errno));
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(dir) + strlen(names[i]->d_name) + 2;
    char *path = fuzz_xrealloc(NULL, len);
    snprintf(path, len, "%s/%s", dir, names[i]->d_name);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && run_file(path) != 0) rc = -1;
    free(path);
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  int paths = 0, rc = 0;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] == '-') continue;
    paths++;
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
      rc = -1;
    } else if (S_ISDIR(st.st_mode)) {
      if (run_dir(argv[i]) != 0) rc = -1;
    } else if (run_file(argv[i]) != 0) {
      rc = -1;
    }
  }
  if (paths == 0 && run_stream(stdin, "<stdin>") != 0) rc = -1;
  printf("%s: %lu inputs\n", argv[0], n_inputs);
  if (paths > 0 && n_inputs == 0) {
    fprintf(stderr, "no input found\n");
    return 1;
  }
  return rc == 0 ? 0 : 1;
}
