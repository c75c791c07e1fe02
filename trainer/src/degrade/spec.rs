//! What a degradation is: a codec, its quantiser or quality, and intra or inter frames; parsed
//! from `h264:32`, `h264:32:inter`, `jpeg:60`, `clean`.

use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// A codec that GStreamer's encoders and decoders run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// x264 (`x264enc`) at a constant quantiser (`--qp`, 0–50), decoded by libav.
    H264,
    /// x265 (`x265enc`) at a constant quantiser (0–51), decoded by libav.
    H265,
    /// libvpx VP8 at a fixed quantiser (0–63).
    Vp8,
    /// libvpx VP9 at a fixed quantiser (0–63).
    Vp9,
    /// mjpegtools' MPEG-2 encoder (`mpeg2enc`) at a quantisation factor (1–31).
    Mpeg2,
    /// libjpeg (`jpegenc`) at a quality (1–100), 4:2:0 as webcams' MJPEG.
    Jpeg,
}

impl Codec {
    #[cfg(test)]
    pub const ALL: [Codec; 6] = [Codec::H264, Codec::H265, Codec::Vp8, Codec::Vp9, Codec::Mpeg2, Codec::Jpeg];

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::Mpeg2 => "mpeg2",
            Codec::Jpeg => "jpeg",
        }
    }

    /// The values the level may take, and whether a larger one means worse pictures.
    pub fn level_range(self) -> (u32, u32, bool) {
        match self {
            Codec::H264 => (0, 50, true),
            Codec::H265 => (0, 51, true),
            Codec::Vp8 | Codec::Vp9 => (0, 63, true),
            Codec::Mpeg2 => (1, 31, true),
            Codec::Jpeg => (1, 100, false),
        }
    }

    /// Whether the codec has inter frames (JPEG codes every picture alone).
    pub fn has_inter(self) -> bool {
        self != Codec::Jpeg
    }
}

impl FromStr for Codec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "h264" | "avc" | "x264" => Codec::H264,
            "h265" | "hevc" | "x265" => Codec::H265,
            "vp8" => Codec::Vp8,
            "vp9" => Codec::Vp9,
            "mpeg2" | "mpeg-2" => Codec::Mpeg2,
            "jpeg" | "jpg" | "mjpeg" => Codec::Jpeg,
            _ => bail!("unknown codec `{s}` (one of h264, h265, vp8, vp9, mpeg2, jpeg)"),
        })
    }
}

/// Intra: the picture is coded alone (a key frame). Inter: it is a predicted frame of a short
/// pan over the image (P and B frames), as most frames of a video are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Frames {
    Intra,
    Inter,
}

/// One way the LR picture is coded before the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Degradation {
    pub codec: Codec,
    /// QP, quantiser or quality, in the codec's own terms ([`Codec::level_range`]).
    pub level: u32,
    pub frames: Frames,
}

impl fmt::Display for Degradation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.codec.name(), self.level)?;
        if self.frames == Frames::Inter {
            write!(f, ":inter")?;
        }
        Ok(())
    }
}

impl FromStr for Degradation {
    type Err = anyhow::Error;
    /// `CODEC:LEVEL[:intra|:inter]`, e.g. `h264:32`, `vp9:40:inter`, `jpeg:60`.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            bail!("`{s}`: expected CODEC:LEVEL[:intra|:inter], e.g. h264:32 or jpeg:60");
        }
        let codec: Codec = parts[0].parse()?;
        let level: u32 = parts[1].parse().map_err(|_| anyhow::anyhow!("`{s}`: `{}` is not a number", parts[1]))?;
        let (lo, hi, _) = codec.level_range();
        if !(lo..=hi).contains(&level) {
            bail!("`{s}`: the {} level must be in {lo}..={hi}", codec.name());
        }
        let frames = match parts.get(2).map(|p| p.to_ascii_lowercase()) {
            None => Frames::Intra,
            Some(p) if p == "intra" => Frames::Intra,
            Some(p) if p == "inter" => Frames::Inter,
            Some(p) => bail!("`{s}`: `{p}` is neither intra nor inter"),
        };
        if frames == Frames::Inter && !codec.has_inter() {
            bail!("`{s}`: {} has no inter frames", codec.name());
        }
        Ok(Degradation { codec, level, frames })
    }
}

/// `--degrade` values: `clean` (no codec) or a [`Degradation`].
pub fn parse_degrade(s: &str) -> Result<Option<Degradation>, String> {
    if s.eq_ignore_ascii_case("clean") || s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    s.parse::<Degradation>().map(Some).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in ["h264:32", "h265:28:inter", "vp9:40", "vp8:20:inter", "mpeg2:8", "jpeg:60"] {
            let d: Degradation = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        let d: Degradation = "HEVC:30:intra".parse().unwrap();
        assert_eq!((d.codec, d.level, d.frames), (Codec::H265, 30, Frames::Intra));
        assert_eq!(parse_degrade("clean").unwrap(), None);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (s, needle) in [
            ("h264", "CODEC:LEVEL"),
            ("av1:30", "unknown codec"),
            ("h264:x", "not a number"),
            ("h264:60", "0..=50"),
            ("jpeg:0", "1..=100"),
            ("jpeg:60:inter", "no inter frames"),
            ("h264:30:both", "neither intra nor inter"),
        ] {
            let e = s.parse::<Degradation>().unwrap_err().to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }
}
