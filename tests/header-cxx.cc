// The public header must be usable from C++ (extern "C", no C-only constructs).
#include <claudelink.h>

#include <cstring>

int main() {
  clink_options *o = nullptr;
  if (clink_options_new(&o) != 0) return 1;
  clink_options_free(o);
  return std::strcmp(clink_version_string(), CLINK_VERSION_STRING) == 0 ? 0 : 1;
}
