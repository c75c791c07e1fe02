# Sourced by the pipeline scripts: builds the plugin (again when a source or model is newer than
# the built library, so a script never runs a stale element) and points GStreamer at it.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
so="$root/target/release/libgstsesr.so"
if [ ! -f "$so" ] || [ -n "$(find "$root/src" "$root/plugin/src" "$root/torch-backend/src" "$root/models" \
    -maxdepth 1 -newer "$so" -print -quit 2>/dev/null)$(find "$root/src" "$root/plugin/src" -newer "$so" -name '*.rs' -print -quit 2>/dev/null)" ]; then
  bash "$root/scripts/cargo-build.sh" "$so.copy" >&2 && rm -f "$so.copy"
fi
export GST_PLUGIN_PATH="$root/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
