//! Which metas of an input buffer `sesrupscale` keeps, and how: the rule GStreamer's own scalers
//! (`videoscale`, `videoconvertscale`) follow, as a pure function of the meta API's tags.
//!
//! The element changes the frame's size only — not its format, colorimetry or orientation — so
//! a meta is copied when it has no tags or only tags the element leaves true (`video`,
//! `colorspace`, `orientation`); a meta tagged `size` (regions of interest, crop rectangles…)
//! is rescaled by the meta's own transform function with the input and output video infos
//! (`GstVideoMetaTransform`, the "gst-video-scale" transform); anything else goes to
//! `GstBaseTransform`'s default (which keeps only metas with no tags or memory tags).

/// What to do with one meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaAction {
    /// Copied unchanged to the output buffer.
    Copy,
    /// Rescaled into the output buffer through the meta's scale transform.
    Scale,
    /// Left to the base class's default.
    Parent,
}

/// The tags the element keeps true: it changes the size and nothing else.
const KEPT_TRUE: [&str; 3] = ["video", "colorspace", "orientation"];

/// The action for a meta whose API carries `tags`.
pub fn meta_action(tags: &[&str]) -> MetaAction {
    if tags.is_empty() {
        MetaAction::Copy
    } else if tags.contains(&"size") {
        MetaAction::Scale
    } else if tags.iter().all(|t| KEPT_TRUE.contains(t)) {
        MetaAction::Copy
    } else {
        MetaAction::Parent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_tagged_metas_are_scaled() {
        // GstVideoRegionOfInterestMeta and GstVideoCropMeta: video, orientation, size.
        assert_eq!(meta_action(&["video", "orientation", "size"]), MetaAction::Scale);
        assert_eq!(meta_action(&["size"]), MetaAction::Scale);
    }

    #[test]
    fn untagged_and_size_independent_metas_are_copied() {
        assert_eq!(meta_action(&[]), MetaAction::Copy);
        assert_eq!(meta_action(&["video"]), MetaAction::Copy);
        assert_eq!(meta_action(&["video", "colorspace"]), MetaAction::Copy);
        assert_eq!(meta_action(&["orientation"]), MetaAction::Copy);
    }

    #[test]
    fn other_tags_go_to_the_base_class() {
        assert_eq!(meta_action(&["memory"]), MetaAction::Parent);
        assert_eq!(meta_action(&["video", "audio"]), MetaAction::Parent);
    }
}
