/* The libuv error codes the pure layers return, with libuv's own values, for
 * code that must not include <uv.h>. On Unix libuv's codes are -errno (and
 * its EAI block starts at -3000); base/uv-error.c checks every value here
 * against <uv.h> at compile time. */
#ifndef CLINK_UV_CODES_H
#define CLINK_UV_CODES_H

#include <errno.h>

#define CLINK__UV_CODES(XX)   \
  XX(E2BIG, (-E2BIG))         \
  XX(EAGAIN, (-EAGAIN))       \
  XX(EAI_AGAIN, (-3001))      \
  XX(EALREADY, (-EALREADY))   \
  XX(EBUSY, (-EBUSY))         \
  XX(ECANCELED, (-ECANCELED)) \
  XX(ECONNABORTED, (-ECONNABORTED)) \
  XX(ECONNREFUSED, (-ECONNREFUSED)) \
  XX(ECONNRESET, (-ECONNRESET)) \
  XX(EEXIST, (-EEXIST))       \
  XX(EHOSTUNREACH, (-EHOSTUNREACH)) \
  XX(EINVAL, (-EINVAL))       \
  XX(EMFILE, (-EMFILE))       \
  XX(ENETDOWN, (-ENETDOWN))   \
  XX(ENETUNREACH, (-ENETUNREACH)) \
  XX(ENFILE, (-ENFILE))       \
  XX(ENOBUFS, (-ENOBUFS))     \
  XX(ENOENT, (-ENOENT))       \
  XX(ENOMEM, (-ENOMEM))       \
  XX(ENOSPC, (-ENOSPC))       \
  XX(ENOTSUP, (-ENOTSUP))     \
  XX(EOF, (-4095))            \
  XX(EPERM, (-EPERM))         \
  XX(EPIPE, (-EPIPE))         \
  XX(ERANGE, (-ERANGE))       \
  XX(EROFS, (-EROFS))         \
  XX(ETIMEDOUT, (-ETIMEDOUT))

#ifdef CLINK__PURE
#define CLINK__UV_CODE_DEFINE(name, value) enum { UV_##name = value };
CLINK__UV_CODES(CLINK__UV_CODE_DEFINE)
#undef CLINK__UV_CODE_DEFINE
#endif

#endif
