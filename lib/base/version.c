#include "base/internal.h"

unsigned int clink_version(void) { return CLINK_VERSION_HEX; }

const char *clink_version_string(void) { return CLINK_VERSION_STRING; }
