/* Put first on the include path of the pure layers (lib/meson.build): any
 * #include <uv.h> there, direct or through a header, stops the build. */
#error "pure library code must not include <uv.h>: only lib/**/uv-*.c may"
