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

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn map_range(r: gst::IntRange<i32>, scale: i32, way: Way) -> Option<glib::SendValue> {
    // In i64, where nothing below overflows; sizes below 1 are no sizes.
    let (step, s) = (i64::from(r.step().max(1)), i64::from(scale.max(1)));
    let (min, max) = (i64::from(r.min()).max(1), i64::from(r.max()));
    let (lo, hi, st) = match way {
        Way::Up => (min * s, max.min(i64::from(i32::MAX) / s) * s, step * s),
        Way::Down => {
            // Multiples of `scale` on the step grid inside [min, max], divided: `v` maps when
            // `v·s` is a multiple of `step`, i.e. `v` a multiple of `step / gcd(step, s)`.
            let st = step / gcd(step, s);
            ((min + s - 1).div_euclid(s), max.div_euclid(s), st)
        }
    };
    // The first value on the step grid (ranges from caps start on it already).
    let lo = lo.div_euclid(st) * st + if lo.rem_euclid(st) == 0 { 0 } else { st };
    let narrow = |v: i64| i32::try_from(v).ok();
    if lo > hi {
        None
    } else if hi - lo < st {
        Some(narrow(lo)?.to_send_value())
    } else if st > 1 {
        Some(gst::IntRange::with_step(narrow(lo)?, narrow(hi - (hi - lo) % st)?, narrow(st)?).to_send_value())
    } else {
        Some(gst::IntRange::new(narrow(lo)?, narrow(hi)?).to_send_value())
    }
}

/// The largest output width or height: 16K. Every output plane then stays below 4 GiB (GStreamer
/// sizes planes in 32 bits) and a frame below 1 GiB per plane; an 8K input at ×2 fits, at ×4
/// it does not.
pub const MAX_OUTPUT_SIDE: u32 = 16384;

/// The output size of a `w`×`h` input at `scale`, or why the element cannot produce it.
pub fn output_size(w: u32, h: u32, scale: u32) -> Result<(u32, u32), String> {
    let refuse = || {
        format!(
            "{w}x{h} at x{scale} would be {}x{}, larger than the {MAX_OUTPUT_SIDE}-pixel sides sesrupscale \
             produces; scale the input down first",
            u64::from(w) * u64::from(scale),
            u64::from(h) * u64::from(scale)
        )
    };
    if w == 0 || h == 0 || scale == 0 {
        return Err(format!("{w}x{h} at x{scale}: empty frame or scale"));
    }
    match (w.checked_mul(scale), h.checked_mul(scale)) {
        (Some(ow), Some(oh)) if ow <= MAX_OUTPUT_SIDE && oh <= MAX_OUTPUT_SIDE => Ok((ow, oh)),
        _ => Err(refuse()),
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
        let out = out.make_mut();
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
                // Appended, not merged: merging tests each structure for being a subset of the
                // others, and GStreamer's subtraction of int ranges with different steps aborts
                // the process (gstvalue.c, found by the property test below).
                out.append_structure_full(s, Some(features.to_owned()));
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

    /// Whether the mapped dimension `v` (int, range or list) allows `x`.
    fn allows(v: &glib::SendValue, x: i32) -> bool {
        if let Ok(i) = v.get::<i32>() {
            return i == x;
        }
        if let Ok(r) = v.get::<gst::IntRange<i32>>() {
            return r.min() <= x && x <= r.max() && (i64::from(x) - i64::from(r.min())) % i64::from(r.step()) == 0;
        }
        if let Ok(l) = v.get::<gst::List>() {
            return l.iter().any(|e| allows(e, x));
        }
        false
    }

    fn any_scale() -> impl Strategy<Value = i32> {
        prop_oneof![Just(2), Just(4), 1..=8i32]
    }

    /// A valid range: min < max, both on the step grid (GStreamer's own rules).
    fn any_range() -> impl Strategy<Value = (i32, i32, i32)> {
        (prop_oneof![Just(1), 1..=64i32, 1..=i32::MAX], any::<i32>(), any::<i32>()).prop_filter_map(
            "empty range",
            |(step, a, b)| {
                let (a, b) = (a - a % step, b - b % step);
                (a != b).then(|| (a.min(b), a.max(b), step))
            },
        )
    }

    /// A valid range of plausible sizes (steps that differ between structures included).
    fn sane_range() -> impl Strategy<Value = (i32, i32, i32)> {
        (1..=64i32, -64..=(1 << 20), 1..=(1 << 20)).prop_map(|(step, a, len)| {
            let a = a - a % step;
            (a, a + step * (1 + len / step), step)
        })
    }

    use proptest::prelude::*;

    /// Cases per property; BENCHMARKS.md counts them.
    const CASES: u32 = 2000;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn ints_map_both_ways(v in any::<i32>(), scale in any_scale()) {
            init();
            let up = map_dimension(&v.to_send_value(), scale, Way::Up);
            match v.checked_mul(scale) {
                Some(x) => {
                    let up = up.unwrap().get::<i32>().unwrap();
                    prop_assert_eq!(up, x);
                    let back = map_dimension(&up.to_send_value(), scale, Way::Down).unwrap();
                    prop_assert_eq!(back.get::<i32>().unwrap(), v);
                }
                None => prop_assert!(up.is_none()),
            }
            let down = map_dimension(&v.to_send_value(), scale, Way::Down);
            prop_assert_eq!(down.map(|d| d.get::<i32>().unwrap()), (v % scale == 0).then_some(v / scale));
        }

        #[test]
        fn ranges_map_to_exactly_the_sizes_that_map((min, max, step) in any_range(), scale in any_scale(),
                                                      probe in any::<i32>()) {
            init();
            let r = gst::IntRange::with_step(min, max, step);
            let on_grid = |x: i32| min <= x && x <= max && (i64::from(x) - i64::from(min)) % i64::from(step) == 0;
            // Sizes are positive: a probe inside the range, and its ends.
            let inside = min.max(1) + (probe.rem_euclid(1 + (max - min.max(1)).max(0)));
            for x in [inside, min, max, min.saturating_add(step), max.saturating_sub(step)] {
                let x = x - x.rem_euclid(step);
                // Up: input x allowed ⇔ x·s allowed as output.
                if let Some(up) = map_dimension(&r.to_send_value(), scale, Way::Up) {
                    if x >= 1 && on_grid(x) {
                        if let Some(xs) = x.checked_mul(scale) {
                            prop_assert!(allows(&up, xs), "{x} x{scale} in {r:?}: {up:?}");
                        }
                    }
                    if x >= 1 {
                        prop_assert!(!allows(&up, x) || (x % scale == 0 && on_grid(x / scale)), "{x} from {r:?}");
                    }
                } else {
                    prop_assert!(!(x >= 1 && on_grid(x) && x.checked_mul(scale).is_some()), "{x} lost from {r:?}");
                }
                // Down: output x allowed ⇔ x is a multiple of s and x/s the allowed input.
                let down = map_dimension(&r.to_send_value(), scale, Way::Down);
                if x >= 1 && on_grid(x) && x % scale == 0 {
                    prop_assert!(down.as_ref().is_some_and(|d| allows(d, x / scale)), "{x}/{scale} from {r:?}: {down:?}");
                }
                if let Some(d) = &down {
                    if x >= 1 && allows(d, x) {
                        prop_assert!(x.checked_mul(scale).is_some_and(on_grid), "{x}·{scale} not in {r:?}");
                    }
                }
            }
        }

        #[test]
        fn any_caps_map_without_panicking(
            dims in proptest::collection::vec((any::<i32>(), prop_oneof![sane_range(), any_range()], 0..3u8), 1..6),
            scale in any_scale(),
        ) {
            init();
            let mut caps = gst::Caps::new_empty();
            {
                let c = caps.get_mut().unwrap();
                for (i, (v, (min, max, step), kind)) in dims.iter().enumerate() {
                    let r = gst::IntRange::with_step(*min, *max, *step);
                    let value = match kind {
                        0 => v.to_send_value(),
                        1 => r.to_send_value(),
                        _ => gst::List::new([v.to_send_value(), r.to_send_value()]).to_send_value(),
                    };
                    let mut st = gst::Structure::builder("video/x-raw").field("format", "NV12").build();
                    st.set_value(if i % 2 == 0 { "width" } else { "height" }, value.clone());
                    st.set_value("height", value);
                    c.append_structure(st);
                }
            }
            for way in [Way::Up, Way::Down] {
                let out = map_caps(&caps, scale, way);
                prop_assert!(out.size() <= caps.size());
            }
        }

        #[test]
        fn output_sizes_are_checked(w in any::<u32>(), h in any::<u32>(), scale in 0..=8u32) {
            let (small_w, small_h) = (w % 20000, h % 20000);
            for (w, h) in [(w, h), (small_w, small_h)] {
                let want = u64::from(w) * u64::from(scale);
                let want_h = u64::from(h) * u64::from(scale);
                match output_size(w, h, scale) {
                    Ok((ow, oh)) => {
                        prop_assert_eq!((u64::from(ow), u64::from(oh)), (want, want_h));
                        prop_assert!(ow >= 1 && oh >= 1 && ow <= MAX_OUTPUT_SIDE && oh <= MAX_OUTPUT_SIDE);
                    }
                    Err(e) => {
                        prop_assert!(w == 0 || h == 0 || scale == 0 || want.max(want_h) > u64::from(MAX_OUTPUT_SIDE));
                        prop_assert!(e.contains(&format!("{w}x{h}")), "{}", e);
                    }
                }
            }
        }
    }

    #[test]
    fn eight_k_at_four_is_refused_with_a_message() {
        assert_eq!(output_size(7680, 4320, 2), Ok((15360, 8640)));
        let e = output_size(7680, 4320, 4).unwrap_err();
        assert!(e.contains("30720x17280") && e.contains("16384"), "{e}");
    }
}
