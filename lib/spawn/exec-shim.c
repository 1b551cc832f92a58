/* claudelink-exec: ties a CLI process's life to its host.
 *
 * Usage: claudelink-exec HOST_PID PROGRAM [ARGS...]
 *
 * libuv offers no hook between fork and exec, so the library starts this tiny
 * program instead of the CLI. It asks the kernel to SIGKILL it when the host
 * thread that spawned it dies (PR_SET_PDEATHSIG survives execve), checks that
 * the host did not already die before that request took effect, and execs the
 * CLI in place: same pid, same pipes, no extra process.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s HOST_PID PROGRAM [ARGS...]\n", argv[0]);
    return 125;
  }
  char *end = NULL;
  long host = strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || host <= 0) {
    fprintf(stderr, "%s: bad host pid '%s'\n", argv[0], argv[1]);
    return 125;
  }
#ifdef __linux__
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    fprintf(stderr, "%s: prctl: %s\n", argv[0], strerror(errno));
    return 125;
  }
#endif
  /* The host died between fork and prctl: we were re-parented already. */
  if ((long)getppid() != host) return 125;
  execv(argv[2], argv + 2);
  int e = errno;
  fprintf(stderr, "%s: cannot execute %s: %s\n", argv[0], argv[2], strerror(e));
  return e == ENOENT ? 127 : 126;
}
