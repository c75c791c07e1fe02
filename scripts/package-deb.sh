#!/usr/bin/env bash
# Builds the Debian package of the element, gstreamer1.0-sesr_<version>_<arch>.deb, in $1
# (default: target/deb) and prints its path.
#
# It holds libgstsesr.so, stripped, in the system GStreamer plugin folder
# (/usr/lib/<multiarch>/gstreamer-1.0); the embedded models are inside the library. It holds no
# libsesrtorch.so (the libtorch backend, for CUDA and unchecked TorchScript weights) and depends
# on no torch: the element runs its models natively on the CPU. Building it downloads no torch.
#
#   bash scripts/package-deb.sh && sudo apt install ./target/deb/gstreamer1.0-sesr_*.deb
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
outdir="$(realpath -m "${1:-$root/target/deb}")"
cd "$root"

name=gstreamer1.0-sesr
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
plugin_dir="usr/lib/$multiarch/gstreamer-1.0"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/root"
mkdir -p "$stage/$plugin_dir" "$stage/DEBIAN" "$stage/usr/share/doc/$name"

# The plugin alone, stripped (no libtorch, no rpath).
bash scripts/cargo-build.sh "$stage/$plugin_dir/libgstsesr.so"
chmod 0644 "$stage/$plugin_dir/libgstsesr.so"

cat >"$stage/usr/share/doc/$name/copyright" <<TXT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sesr
Source: https://github.com/sesr-rs/sesr

Files: *
Copyright: the sesr developers
License: MIT or Apache-2.0
TXT

# The shared libraries it needs, as packages with their minimum versions (dpkg-shlibdeps reads
# the symbols files of the installed libraries); by hand where it cannot tell.
depends="libc6, libgcc-s1, libglib2.0-0, libgstreamer1.0-0 (>= 1.22), libgstreamer-plugins-base1.0-0 (>= 1.22)"
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
  mkdir -p "$work/src/debian"
  printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$name" "$name" >"$work/src/debian/control"
  if found="$(cd "$work/src" && dpkg-shlibdeps -O "$stage/$plugin_dir/libgstsesr.so" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')" && [ -n "$found" ]; then
    depends="$found"
  fi
fi
if [ -z "$depends" ] || grep -qi torch <<<"$depends"; then
  echo "unexpected Depends: '$depends'" >&2
  exit 1
fi

cat >"$stage/DEBIAN/control" <<CTL
Package: $name
Version: $version
Architecture: $arch
Maintainer: sesr developers <https://github.com/sesr-rs/sesr/issues>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Section: video
Priority: optional
Homepage: https://github.com/sesr-rs/sesr
Description: GStreamer element sesrupscale: SESR neural super-resolution
 sesrupscale upscales 8- and 10-bit YUV video in real time with SESR
 (Super-Efficient Super-Resolution) networks run natively on the CPU.
 The default models are built into the plugin; other exported models are
 given with the model-location property. The libtorch backend (CUDA,
 TorchScript models without native weights) is not part of this package.
CTL

mkdir -p "$outdir"
deb="$outdir/${name}_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
