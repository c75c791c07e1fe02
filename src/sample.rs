//! The sample types of the planes the engine reads and writes: 8-bit bytes, or 16-bit words
//! holding a 10-, 12- or 16-bit value at some bit position (GStreamer's `P010_10LE` keeps 10
//! bits in the high bits of each word, `I420_10LE` in the low bits). The model sees every
//! depth as a value in [0, 1]: `value / (2^bits − 1)`, and its output is rounded back to the
//! same depth — a 10-bit stream is never rounded to 8 bits on the way.

/// A sample word: `u8` or `u16` (host order; the element takes only little-endian formats on
/// little-endian hosts).
pub trait Sample: Copy + Default + Send + Sync + 'static {
    fn raw(self) -> u32;
    fn from_raw(v: u32) -> Self;
}

impl Sample for u8 {
    #[inline(always)]
    fn raw(self) -> u32 {
        self as u32
    }
    #[inline(always)]
    fn from_raw(v: u32) -> Self {
        v as u8
    }
}

impl Sample for u16 {
    #[inline(always)]
    fn raw(self) -> u32 {
        self as u32
    }
    #[inline(always)]
    fn from_raw(v: u32) -> Self {
        v as u16
    }
}

/// Where a value sits in its sample: `bits` significant bits from bit `shift` up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub bits: u32,
    pub shift: u32,
}

impl Depth {
    /// 8-bit samples in bytes.
    pub const U8: Depth = Depth { bits: 8, shift: 0 };
    /// 10 bits in the high bits of a 16-bit word (`P010_10LE`).
    pub const P010: Depth = Depth { bits: 10, shift: 6 };
    /// 10 bits in the low bits of a 16-bit word (`I420_10LE`).
    pub const LSB10: Depth = Depth { bits: 10, shift: 0 };

    /// The largest value, `2^bits − 1`.
    #[inline(always)]
    pub fn max(self) -> u32 {
        (1u32 << self.bits) - 1
    }

    /// The value of a sample (bits outside the field ignored).
    #[inline(always)]
    pub fn value<T: Sample>(self, s: T) -> u32 {
        (s.raw() >> self.shift) & self.max()
    }

    /// A sample's value in [0, 1].
    #[inline(always)]
    pub fn to_unit<T: Sample>(self, s: T) -> f32 {
        self.value(s) as f32 * (1.0 / self.max() as f32)
    }

    /// The sample of `v` in [0, 1] (clamped), rounded to the depth. [`Depth::from_level`]
    /// clamps the level, which clamps `v` (NaN gives 0).
    #[inline(always)]
    pub fn from_unit<T: Sample>(self, v: f32) -> T {
        self.from_level(v * self.max() as f32)
    }

    /// The sample of a level in `0..=max` (rounded, clamped; NaN gives 0).
    #[inline(always)]
    pub fn from_level<T: Sample>(self, level: f32) -> T {
        // Clamped before rounding, and without a saturating cast, so that loops of it vectorise
        // (a saturating cast does not): `max`/`min` send NaN to 0 as that cast did, and
        // rounding a value in `0..=max` stays there.
        #[allow(clippy::manual_clamp)] // `clamp` keeps NaN
        let level = level.max(0.0).min(self.max() as f32).round();
        // SAFETY: `level` is finite and in `0..=max`.
        T::from_raw(unsafe { level.to_int_unchecked::<u32>() } << self.shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depths_round_trip_and_keep_their_field() {
        for v in [0u32, 1, 511, 1023] {
            let p: u16 = Depth::P010.from_level(v as f32);
            assert_eq!(p as u32, v << 6);
            assert_eq!(Depth::P010.value(p), v);
            let l: u16 = Depth::LSB10.from_level(v as f32);
            assert_eq!((l as u32, Depth::LSB10.value(l)), (v, v));
            assert_eq!(Depth::LSB10.from_unit::<u16>(Depth::LSB10.to_unit(l)), l);
        }
        // Bits outside the field are ignored; levels clamp.
        assert_eq!(Depth::P010.value(0xFFFFu16), 1023);
        assert_eq!(Depth::LSB10.value(0xFC01u16), 1);
        assert_eq!(Depth::LSB10.from_level::<u16>(5000.0), 1023);
        assert_eq!(Depth::U8.from_unit::<u8>(-1.0), 0);
        for (v, want) in [(1.5f32, 1023u16), (f32::INFINITY, 1023), (f32::NEG_INFINITY, 0), (f32::NAN, 0)] {
            assert_eq!(Depth::LSB10.from_unit::<u16>(v), want, "{v}");
            assert_eq!(Depth::P010.from_unit::<u16>(v), want << 6, "{v}");
        }
        // The 8-bit arithmetic is the kernel's: x/255 in, round(v·255) out.
        for v in 0..=255u8 {
            assert_eq!(Depth::U8.to_unit(v), v as f32 * (1.0 / 255.0));
            assert_eq!(Depth::U8.from_unit::<u8>(v as f32 / 255.0), v);
        }
    }
}
