//! Model hyper-parameters: the SESR variants of the paper and their sizes.

use serde::{Deserialize, Serialize};

/// Hyper-parameters of an SESR network.
///
/// * `m` — number of residual 3×3 linear blocks,
/// * `f` — feature channels between blocks (the collapsed width),
/// * `p` — expansion channels inside a linear block (training-time width only),
/// * `scale` — upscaling factor (2 or 4),
/// * `block` — the training-time form of the linear blocks ([`BlockKind`]); it does not change
///   the collapsed network. Absent from the JSON of plain SESR (older files load as plain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SesrConfig {
    pub m: usize,
    pub f: usize,
    pub p: usize,
    pub scale: usize,
    #[serde(default, skip_serializing_if = "BlockKind::is_plain")]
    pub block: BlockKind,
}

/// The branches of a linear block while training. Every kind collapses into the same single
/// k×k conv, so inference cost and the exported model's format do not depend on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// SESR: k×k conv `in→p`, then 1×1 conv `p→out`.
    #[default]
    Plain,
    /// SESR's branch plus, in parallel (ECBSR's edge-oriented idea, arranged so that the
    /// collapse stays exact at the borders): a 1×1 expand-squeeze `in→p→out`, and fixed
    /// Sobel-x, Sobel-y and Laplacian filters on each input channel, each followed by its own
    /// learnable 1×1 conv `in→out`.
    Ecb,
}

impl BlockKind {
    pub fn is_plain(&self) -> bool {
        *self == BlockKind::Plain
    }

    pub fn name(self) -> &'static str {
        match self {
            BlockKind::Plain => "plain",
            BlockKind::Ecb => "ecb",
        }
    }
}

impl std::str::FromStr for BlockKind {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [BlockKind::Plain, BlockKind::Ecb]
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| crate::Error::Config(format!("unknown block kind '{s}' (expected plain or ecb)")))
    }
}

impl std::fmt::Display for BlockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The named variants of the paper (Bhardwaj et al., MLSys 2022, Table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    M3,
    M5,
    M7,
    M11,
    XL,
}

impl Preset {
    pub const ALL: [Preset; 5] = [Preset::M3, Preset::M5, Preset::M7, Preset::M11, Preset::XL];

    /// (m, f, p) of the variant.
    pub fn dims(self) -> (usize, usize, usize) {
        match self {
            Preset::M3 => (3, 16, 256),
            Preset::M5 => (5, 16, 256),
            Preset::M7 => (7, 16, 256),
            Preset::M11 => (11, 16, 64),
            Preset::XL => (11, 32, 64),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::M3 => "m3",
            Preset::M5 => "m5",
            Preset::M7 => "m7",
            Preset::M11 => "m11",
            Preset::XL => "xl",
        }
    }

    pub fn config(self, scale: usize) -> SesrConfig {
        let (m, f, p) = self.dims();
        SesrConfig { m, f, p, scale, block: BlockKind::Plain }
    }
}

impl std::str::FromStr for Preset {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| crate::Error::Config(format!("unknown model '{s}' (expected m3, m5, m7, m11 or xl)")))
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest number of blocks a config may ask for.
pub const MAX_M: usize = 256;
/// Largest feature width.
pub const MAX_F: usize = 1024;
/// Largest expansion width.
pub const MAX_P: usize = 1 << 16;

impl SesrConfig {
    pub fn new(m: usize, f: usize, p: usize, scale: usize) -> Result<Self, crate::Error> {
        let c = SesrConfig { m, f, p, scale, block: BlockKind::Plain };
        c.validate()?;
        Ok(c)
    }

    /// The same network trained with `block` linear blocks.
    pub fn with_block(self, block: BlockKind) -> Self {
        SesrConfig { block, ..self }
    }

    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.scale != 2 && self.scale != 4 {
            return Err(crate::Error::Config(format!("scale must be 2 or 4, got {}", self.scale)));
        }
        if self.f == 0 || self.p == 0 {
            return Err(crate::Error::Config("f and p must be positive".into()));
        }
        // Far beyond any SESR variant (XL: m 11, f 32, p 64), and small enough that every size
        // derived from a config (weights, MACs, buffers) fits a usize: a hostile sidecar asking
        // for billions of blocks or channels is refused here instead of overflowing later.
        for (name, v, max) in [("m", self.m, MAX_M), ("f", self.f, MAX_F), ("p", self.p, MAX_P)] {
            if v > max {
                return Err(crate::Error::Config(format!("{name} = {v} is absurd (at most {max})")));
            }
        }
        Ok(())
    }

    /// Output channels of the last conv before the pixel shuffle: s².
    pub fn out_channels(&self) -> usize {
        self.scale * self.scale
    }

    /// Weights of the collapsed network, biases and PReLU alphas not counted:
    /// P = 25f + 9f²m + 25f·s². Equal to the MACs per low-resolution pixel.
    pub fn collapsed_weights(&self) -> usize {
        25 * self.f + 9 * self.f * self.f * self.m + 25 * self.f * self.out_channels()
    }

    /// Multiply-accumulates of one collapsed forward on a `w`×`h` input.
    pub fn macs(&self, w: usize, h: usize) -> u64 {
        self.collapsed_weights() as u64 * w as u64 * h as u64
    }

    /// Receptive-field radius in low-resolution pixels: 2 (5×5 in) + m (3×3 blocks) + 2 (5×5 out).
    pub fn halo(&self) -> usize {
        4 + self.m
    }

    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    pub fn from_json(s: &str) -> Result<Self, crate::Error> {
        let c: SesrConfig =
            serde_json::from_str(s).map_err(|e| crate::Error::Config(format!("bad config JSON: {e}")))?;
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_counts_match_the_paper_table() {
        let expected = [
            (Preset::M3, 8_912),
            (Preset::M5, 13_520),
            (Preset::M7, 18_128),
            (Preset::M11, 27_344),
            (Preset::XL, 105_376),
        ];
        for (p, n) in expected {
            assert_eq!(p.config(2).collapsed_weights(), n, "{p}");
        }
    }

    #[test]
    fn macs_for_360p_to_720p() {
        // Spec: M3 2.05G, M5 3.11G, M7 4.18G, M11 6.30G, XL 24.3G for 640×360 → 1280×720.
        let expected =
            [(Preset::M3, 2.05), (Preset::M5, 3.11), (Preset::M7, 4.18), (Preset::M11, 6.30), (Preset::XL, 24.3)];
        for (p, g) in expected {
            let macs = p.config(2).macs(640, 360) as f64 / 1e9;
            assert!((macs - g).abs() < 0.006 * g.max(1.0), "{p}: {macs}");
        }
    }

    #[test]
    fn json_round_trip_and_validation() {
        let c = Preset::M5.config(4);
        assert_eq!(SesrConfig::from_json(&c.to_json()).unwrap(), c);
        assert!(SesrConfig::from_json(r#"{"m":5,"f":16,"p":256,"scale":3}"#).is_err());
        assert!(SesrConfig::from_json("{").is_err());
        assert_eq!("M11".parse::<Preset>().unwrap(), Preset::M11);
        assert!("m4".parse::<Preset>().is_err());
        // Absurd dimensions are refused with the field's name.
        for (json, field) in [
            (r#"{"m":1000000000000,"f":16,"p":256,"scale":2}"#, "m ="),
            (r#"{"m":5,"f":4294967296,"p":256,"scale":2}"#, "f ="),
            (r#"{"m":5,"f":16,"p":18446744073709551615,"scale":2}"#, "p ="),
        ] {
            let e = SesrConfig::from_json(json).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("absurd"), "{e}");
        }
        assert!(SesrConfig::new(MAX_M, MAX_F, MAX_P, 4).is_ok());
        assert!(SesrConfig::from_json(r#"{"m":-1,"f":16,"p":256,"scale":2}"#).is_err());
    }

    #[test]
    fn block_kind_is_optional_in_json_and_kept_when_not_plain() {
        // Files written before block kinds existed (the shipped models, old checkpoints) are plain.
        let old = SesrConfig::from_json(r#"{"m":3,"f":16,"p":256,"scale":2}"#).unwrap();
        assert_eq!(old, Preset::M3.config(2));
        assert_eq!(old.block, BlockKind::Plain);
        // Plain configs serialise exactly as before (no new key), so sidecars do not change.
        assert!(!Preset::M3.config(2).to_json().contains("block"));
        let ecb = Preset::M3.config(2).with_block(BlockKind::Ecb);
        assert!(ecb.to_json().contains(r#""block": "ecb""#), "{}", ecb.to_json());
        assert_eq!(SesrConfig::from_json(&ecb.to_json()).unwrap(), ecb);
        assert_ne!(ecb, Preset::M3.config(2));
        assert!(SesrConfig::from_json(r#"{"m":3,"f":16,"p":256,"scale":2,"block":"acb"}"#).is_err());
        assert_eq!("ECB".parse::<BlockKind>().unwrap(), BlockKind::Ecb);
        assert!("sobel".parse::<BlockKind>().is_err());
    }
}
