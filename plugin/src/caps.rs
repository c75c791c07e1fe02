//! The size mapping of `sesrupscale`'s caps, as a pure function: source sizes are the sink
//! sizes times the model's scale; sink sizes are source sizes divided by it (exact multiples
//! only). Fixed ints, int ranges and lists are mapped the way C `videobox` maps them.

use gst::glib;
use gst::prelude::*;

/// Which way a size goes through the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Sink size → source size (× scale).
    Up,
    /// Source size → sink size (÷ scale).
    Down,
}

fn map_int(v: i32, scale: i32, way: Way) -> Option<i32> {
    match way {
        Way::Up => v.checked_mul(scale),
        Way::Down => (v % scale == 0).then_some(v / scale),
    }
}

fn map_range(r: gst::IntRange<i32>, scale: i32, way: Way) -> Option<glib::SendValue> {
    let (min, max, step) = (r.min(), r.max(), r.step());
    let (lo, hi, st) = match way {
        Way::Up => {
            let hi = max.min(i32::MAX / scale);
            (min.checked_mul(scale)?, hi * scale, step * scale)
        }
        Way::Down => {
            // Multiples of `scale` inside [min, max], divided.
            let lo = (min + scale - 1).div_euclid(scale);
            let hi = max.div_euclid(scale);
            let st = if step % scale == 0 { step / scale } else { 1 };
            (lo, hi, st)
        }
    };
    if lo > hi {
        None
    } else if lo == hi {
        Some(lo.to_send_value())
    } else if st > 1 {
        Some(gst::IntRange::with_step(lo, hi - (hi - lo) % st, st).to_send_value())
    } else {
        Some(gst::IntRange::new(lo, hi).to_send_value())
    }
}

/// Maps one width or height value (int, int range, or list of them). `None` when nothing maps.
pub fn map_dimension(v: &glib::SendValue, scale: i32, way: Way) -> Option<glib::SendValue> {
    if let Ok(i) = v.get::<i32>() {
        return map_int(i, scale, way).map(|i| i.to_send_value());
    }
    if let Ok(r) = v.get::<gst::IntRange<i32>>() {
        return map_range(r, scale, way);
    }
    if let Ok(list) = v.get::<gst::List>() {
        let mapped: Vec<glib::SendValue> = list.iter().filter_map(|x| map_dimension(x, scale, way)).collect();
        return match mapped.len() {
            0 => None,
            1 => mapped.into_iter().next(),
            _ => Some(gst::List::from_values(mapped).to_send_value()),
        };
    }
    None
}

/// Maps the `width` and `height` of every structure; other fields (format, framerate,
/// pixel-aspect-ratio, colorimetry, chroma-site, …) are carried over unchanged. Structures whose
/// sizes cannot map are dropped.
pub fn map_caps(caps: &gst::CapsRef, scale: i32, way: Way) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    {
        for (s, features) in caps.iter_with_features() {
            let mut s = s.to_owned();
            let mut ok = true;
            for field in ["width", "height"] {
                if let Some(v) = s.value(field).ok().cloned() {
                    match map_dimension(&v, scale, way) {
                        Some(m) => s.set_value(field, m),
                        None => ok = false,
                    }
                }
            }
            if ok {
                out.merge_structure_full(s, Some(features.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().unwrap();
    }

    #[test]
    fn fixed_ints() {
        init();
        let v = 7i32.to_send_value();
        assert_eq!(map_dimension(&v, 2, Way::Up).unwrap().get::<i32>().unwrap(), 14);
        assert!(map_dimension(&v, 2, Way::Down).is_none(), "7 is no output size of a x2 element");
        let v = 12i32.to_send_value();
        assert_eq!(map_dimension(&v, 4, Way::Down).unwrap().get::<i32>().unwrap(), 3);
        assert!(map_dimension(&i32::MAX.to_send_value(), 2, Way::Up).is_none());
    }

    #[test]
    fn ranges() {
        init();
        let r = gst::IntRange::new(1, i32::MAX).to_send_value();
        let up = map_dimension(&r, 2, Way::Up).unwrap().get::<gst::IntRange<i32>>().unwrap();
        assert_eq!((up.min(), up.step()), (2, 2));
        assert!(up.max() >= i32::MAX - 2 && up.max() % 2 == 0);
        let down = map_dimension(&gst::IntRange::new(3, 17).to_send_value(), 2, Way::Down).unwrap();
        let down = down.get::<gst::IntRange<i32>>().unwrap();
        assert_eq!((down.min(), down.max()), (2, 8));
        // A range with a single multiple collapses to a fixed int; none is no mapping.
        assert_eq!(
            map_dimension(&gst::IntRange::new(6, 9).to_send_value(), 4, Way::Down).unwrap().get::<i32>().unwrap(),
            2
        );
        assert!(map_dimension(&gst::IntRange::new(5, 7).to_send_value(), 4, Way::Down).is_none());
        // Stepped ranges keep their step in output units.
        let st = map_dimension(&gst::IntRange::with_step(16, 64, 16).to_send_value(), 2, Way::Up).unwrap();
        let st = st.get::<gst::IntRange<i32>>().unwrap();
        assert_eq!((st.min(), st.max(), st.step()), (32, 128, 32));
    }

    #[test]
    fn lists() {
        init();
        let l = gst::List::new([
            640i32.to_send_value(),
            641i32.to_send_value(),
            gst::IntRange::new(10, 20).to_send_value(),
        ]);
        let down = map_dimension(&l.to_send_value(), 2, Way::Down).unwrap().get::<gst::List>().unwrap();
        assert_eq!(down.len(), 2);
        assert_eq!(down[0].get::<i32>().unwrap(), 320);
        let r = down[1].get::<gst::IntRange<i32>>().unwrap();
        assert_eq!((r.min(), r.max()), (5, 10));
        let single = gst::List::new([641i32, 640i32]);
        assert_eq!(map_dimension(&single.to_send_value(), 2, Way::Down).unwrap().get::<i32>().unwrap(), 320);
    }

    #[test]
    fn whole_caps_keep_other_fields() {
        init();
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "NV12")
            .field("width", 320i32)
            .field("height", 181i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(4, 3))
            .field("chroma-site", "mpeg2")
            .build();
        let up = map_caps(&caps, 2, Way::Up);
        let s = up.structure(0).unwrap();
        assert_eq!(s.get::<i32>("width").unwrap(), 640);
        assert_eq!(s.get::<i32>("height").unwrap(), 362);
        assert_eq!(s.get::<gst::Fraction>("pixel-aspect-ratio").unwrap(), gst::Fraction::new(4, 3));
        assert_eq!(s.get::<&str>("chroma-site").unwrap(), "mpeg2");
        // 181 is odd: no sink size maps from it at x2, so the structure is dropped.
        let down = map_caps(&caps, 2, Way::Down);
        assert!(down.is_empty());
    }
}
