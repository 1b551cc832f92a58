#include <stdio.h>

#include "base/internal.h"

/* The pure layers use base/uv-codes.h instead of <uv.h>: same values. */
#define CLINK__UV_CODE_CHECK(name, value) \
  _Static_assert(UV_##name == (value), "base/uv-codes.h: UV_" #name " differs from <uv.h>");
CLINK__UV_CODES(CLINK__UV_CODE_CHECK)
#undef CLINK__UV_CODE_CHECK

/* libuv names its codes without the UV_ prefix; the names we hand out carry it
 * so that a log line says which library the code came from. */
#define UV_NAME_GEN(name, msg) \
  case UV_##name:              \
    return "UV_" #name;

const char *clink_strerror(int err) {
  switch (err) {
#define CLINK__STRERROR_GEN(name, value, msg) \
  case CLINK_E##name:                         \
    return msg;
    CLINK_ERRNO_MAP(CLINK__STRERROR_GEN)
#undef CLINK__STRERROR_GEN
#define UV_STRERROR_GEN(name, msg) \
  case UV_##name:                  \
    return msg;
    UV_ERRNO_MAP(UV_STRERROR_GEN)
#undef UV_STRERROR_GEN
    case 0:
      return "success";
    default:
      return "unknown error";
  }
}

const char *clink_err_name(int err) {
  switch (err) {
#define CLINK__NAME_GEN(name, value, msg) \
  case CLINK_E##name:                     \
    return "CLINK_E" #name;
    CLINK_ERRNO_MAP(CLINK__NAME_GEN)
#undef CLINK__NAME_GEN
    UV_ERRNO_MAP(UV_NAME_GEN)
    case 0:
      return "OK";
    default:
      return "UNKNOWN";
  }
}
