#include <string.h>

#include <claudelink.h>

#include "testutil.h"

START_TEST(own_codes_have_names_and_text) {
#define CHECK_CODE(name, value, msg)                                \
  ck_assert_int_eq(CLINK_E##name, value);                           \
  ck_assert_str_eq(clink_err_name(CLINK_E##name), "CLINK_E" #name); \
  ck_assert_str_eq(clink_strerror(CLINK_E##name), msg);             \
  ck_assert_int_le(value, CLINK_ERRNO_FIRST_);                      \
  ck_assert_int_ge(value, CLINK_ERRNO_LAST_);
  CLINK_ERRNO_MAP(CHECK_CODE)
#undef CHECK_CODE
}
END_TEST

START_TEST(libuv_codes_pass_through) {
  ck_assert_str_eq(clink_err_name(UV_EPIPE), "UV_EPIPE");
  ck_assert_str_eq(clink_strerror(UV_EPIPE), uv_strerror(UV_EPIPE));
  ck_assert_str_eq(clink_err_name(UV_ECANCELED), "UV_ECANCELED");
  ck_assert_str_eq(clink_strerror(UV_ENOMEM), uv_strerror(UV_ENOMEM));
}
END_TEST

START_TEST(unknown_codes_do_not_allocate) {
  /* Same static string each time: nothing was allocated for it. */
  const char *a = clink_strerror(-29999);
  const char *b = clink_strerror(-29998);
  ck_assert_ptr_eq(a, b);
  ck_assert_str_eq(a, "unknown error");
  ck_assert_str_eq(clink_err_name(-29999), "UNKNOWN");
  ck_assert_str_eq(clink_err_name(0), "OK");
  ck_assert_str_eq(clink_strerror(0), "success");
}
END_TEST

START_TEST(codes_are_disjoint_from_libuv) {
#define CHECK_UV(name, msg) ck_assert_int_gt(UV_##name, CLINK_ERRNO_FIRST_);
  UV_ERRNO_MAP(CHECK_UV)
#undef CHECK_UV
}
END_TEST

START_TEST(version_matches_header) {
  ck_assert_uint_eq(clink_version(), CLINK_VERSION_HEX);
  ck_assert_str_eq(clink_version_string(), CLINK_VERSION_STRING);
  char buf[32];
  snprintf(buf, sizeof(buf), "%d.%d.%d", CLINK_VERSION_MAJOR, CLINK_VERSION_MINOR,
           CLINK_VERSION_PATCH);
  ck_assert_str_eq(clink_version_string(), buf);
}
END_TEST

int main(void) {
  Suite *s = suite_create("error");
  TCase *tc = tcase_create("codes");
  tcase_add_test(tc, own_codes_have_names_and_text);
  tcase_add_test(tc, libuv_codes_pass_through);
  tcase_add_test(tc, unknown_codes_do_not_allocate);
  tcase_add_test(tc, codes_are_disjoint_from_libuv);
  suite_add_tcase(s, tc);
  tc = tcase_create("version");
  tcase_add_test(tc, version_matches_header);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
