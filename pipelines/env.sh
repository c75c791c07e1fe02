# Sourced by the pipeline scripts: builds the plugin once and points GStreamer at it.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$root/target/release/libgstsesr.so" ]; then
  bash "$root/scripts/cargo-build.sh" "$root/target/release/libgstsesr.so.copy" >&2 && rm -f "$root/target/release/libgstsesr.so.copy"
fi
export GST_PLUGIN_PATH="$root/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
