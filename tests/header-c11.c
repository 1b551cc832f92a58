/* Compiled with -std=c11 -pedantic -Werror: the public header must be clean. */
#include <claudelink.h>

int main(void) { return clink_version() == CLINK_VERSION_HEX ? 0 : 1; }
