#!/usr/bin/env bash
# Checks the two ways of installing the element (run by scripts/test.sh; needs what
# scripts/setup.sh installs, no root, and writes only below a temporary folder):
#
#  1. meson: `meson setup --prefix=P`, `meson compile`, `meson install` (then again with DESTDIR)
#     put libgstsesr.so, stripped, in P/lib/gstreamer-1.0 and nothing outside P (no
#     libsesrtorch.so by default); gst-inspect-1.0 and a pipeline load it from there.
#  2. scripts/package-deb.sh: the package holds the stripped plugin in the system plugin folder
#     and nothing else but its documentation, its Depends name the GStreamer libraries and no
#     torch; unpacked with dpkg-deb -x, gst-inspect-1.0 and a pipeline load it from there.
#
# gst-inspect-1.0 runs with a temporary registry, and must report the plugin file under test
# (not a copy installed elsewhere).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
system_plugins="$(pkg-config --variable=pluginsdir gstreamer-1.0)"

fail() { echo "FAILED: $*" >&2; exit 1; }

# The plugin file $1 is stripped, small, and links no libtorch.
check_so() {
  [ -f "$1" ] || fail "$1 missing"
  local size
  size="$(stat -c %s "$1")"
  if readelf -S "$1" | grep -qE ' \.(symtab|debug_[a-z]+) '; then fail "$1 is not stripped"; fi
  [ "$size" -lt $((20 * 1024 * 1024)) ] || fail "$1 has $size bytes: not stripped?"
  if readelf -d "$1" | grep -E '\(NEEDED\)' | grep -qi torch; then fail "$1 links libtorch"; fi
  if readelf -d "$1" | grep -qE '\((RUNPATH|RPATH)\)'; then fail "$1 has an rpath"; fi
  echo "   $1: stripped, $size bytes, no libtorch, no rpath"
}

# gst-inspect-1.0 finds sesrupscale in the plugin folder $1 (that very file), and a pipeline
# runs it.
check_loads() {
  local dir="$1" out
  export GST_REGISTRY="$tmp/registry-$RANDOM.bin" GST_PLUGIN_PATH="$dir" GST_PLUGIN_SYSTEM_PATH="$system_plugins"
  out="$(gst-inspect-1.0 sesrupscale)" || fail "gst-inspect-1.0 sesrupscale with GST_PLUGIN_PATH=$dir"
  grep -qE "Filename +$dir/libgstsesr.so" <<<"$out" ||
    fail "gst-inspect-1.0 did not load $dir/libgstsesr.so: $(grep Filename <<<"$out")"
  gst-launch-1.0 -q videotestsrc num-buffers=5 ! video/x-raw,width=320,height=180 ! sesrupscale ! fakesink ||
    fail "the pipeline with $dir/libgstsesr.so"
  unset GST_REGISTRY GST_PLUGIN_PATH GST_PLUGIN_SYSTEM_PATH
  echo "   gst-inspect-1.0 and gst-launch-1.0 load $dir/libgstsesr.so"
}

echo "-- meson setup/compile/install into a temporary prefix"
prefix="$tmp/prefix"
meson setup "$tmp/build" "$root" --prefix="$prefix" --libdir=lib >"$tmp/meson.log" ||
  { cat "$tmp/meson.log"; fail "meson setup"; }
meson compile -C "$tmp/build" >>"$tmp/meson.log" 2>&1 || { tail -n 40 "$tmp/meson.log"; fail "meson compile"; }
meson install -C "$tmp/build" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "meson install"; }
installed="$(cd "$prefix" && find . -type f | sort)"
[ "$installed" = "./lib/gstreamer-1.0/libgstsesr.so" ] ||
  fail "meson install wrote, below $prefix: $installed (expected lib/gstreamer-1.0/libgstsesr.so alone)"
if grep -E '^Installing ' "$tmp/install.log" | grep -v " to $prefix/"; then fail "meson installed outside $prefix"; fi
check_so "$prefix/lib/gstreamer-1.0/libgstsesr.so"
check_loads "$prefix/lib/gstreamer-1.0"
DESTDIR="$tmp/dest" meson install -C "$tmp/build" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "meson install with DESTDIR"; }
[ -f "$tmp/dest$prefix/lib/gstreamer-1.0/libgstsesr.so" ] || fail "DESTDIR: no $tmp/dest$prefix/lib/gstreamer-1.0/libgstsesr.so"
echo "   DESTDIR honoured"

echo "-- the Debian package (scripts/package-deb.sh)"
deb="$(bash "$root/scripts/package-deb.sh" "$tmp/deb" | tail -n 1)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
plugin_dir="usr/lib/$multiarch/gstreamer-1.0"
files="$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $NF}' | sort)"
expected="$(printf './%s\n' "$plugin_dir/libgstsesr.so" usr/share/doc/gstreamer1.0-sesr/copyright | sort)"
[ "$files" = "$expected" ] || fail "$deb holds: $files (expected: $expected)"
depends="$(dpkg-deb -f "$deb" Depends)"
for lib in libc6 libgstreamer1.0-0 libgstreamer-plugins-base1.0-0; do
  grep -qE "(^|, )$lib( |,|$)" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
if grep -qi torch <<<"$depends"; then fail "Depends names torch: $depends"; fi
[ "$(dpkg-deb -f "$deb" Package)" = gstreamer1.0-sesr ] || fail "package name"
echo "   $(basename "$deb"): $(stat -c %s "$deb") bytes; Depends: $depends"
dpkg-deb -x "$deb" "$tmp/root"
check_so "$tmp/root/$plugin_dir/libgstsesr.so"
check_loads "$tmp/root/$plugin_dir"
