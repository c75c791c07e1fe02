//! Compressed-video input for training and scoring: LR pictures coded and decoded by real
//! codecs through GStreamer ([`codec`]), named by a [`spec::Degradation`] (`h264:32`,
//! `jpeg:60`, …), and the seeded mix of them `trainer degrade` writes to disk ([`mix`]).

pub mod codec;
pub mod mix;
pub mod spec;

pub use codec::degrade_y;
pub use spec::{parse_degrade, Degradation};

use anyhow::Result;
use sesr::protocol::EvalPair;
use sesr::Plane;

/// The pan of inter clips when scoring: two pixels right and one down a frame.
pub const EVAL_PAN: (i64, i64) = (2, 1);

/// `pair` with its model input replaced by the Y plane a decoder gives for its LR picture coded
/// as `d` (code values / 255, as the element reads 8-bit video). Deterministic.
pub fn degrade_pair(pair: &EvalPair, d: &Degradation) -> Result<EvalPair> {
    let y = degrade_y(&pair.lr_rgb, d, EVAL_PAN)?;
    let (w, h) = (pair.lr_rgb.width(), pair.lr_rgb.height());
    let lr_y = Plane::from_vec(w, h, y.iter().map(|&v| v as f32 / 255.0).collect());
    Ok(EvalPair { lr_y, ..pair.clone() })
}

/// `sets` followed by, for each degradation, a copy of every set with its LR coded so, named
/// `SET@CODEC:LEVEL` (`clean` adds nothing: the sets are already there).
pub fn with_coded_copies(
    sets: Vec<crate::eval::EvalSet>,
    coded: &[Option<Degradation>],
) -> Result<Vec<crate::eval::EvalSet>> {
    let mut out = Vec::new();
    for d in coded.iter().flatten() {
        for s in &sets {
            out.push(crate::eval::EvalSet { name: format!("{}@{d}", s.name), ..coded_set(s, d)? });
        }
    }
    let mut all = sets;
    all.extend(out);
    Ok(all)
}

/// One set with its LR coded as `d` (its name kept).
pub fn coded_set(s: &crate::eval::EvalSet, d: &Degradation) -> Result<crate::eval::EvalSet> {
    let images = s.images.iter().map(|(n, p)| Ok((n.clone(), degrade_pair(p, d)?))).collect::<Result<Vec<_>>>()?;
    Ok(crate::eval::EvalSet { name: s.name.clone(), images })
}
