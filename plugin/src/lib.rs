//! GStreamer plugin `sesr` (element `sesrupscale`, see the element issue).
