//! Magnitude pruning of the collapsed convolutions (spec §6): masks over conv weights (biases
//! and PReLU slopes are never pruned), chosen globally across layers by weight magnitude.

use tch::{Kind, Tensor};

/// Masks of ones, one per conv weight.
pub fn full_masks(weights: &[&Tensor]) -> Vec<Tensor> {
    weights.iter().map(|w| w.ones_like().detach()).collect()
}

/// Prunes `rate` of the still-unpruned weights, globally by magnitude: returns new masks where
/// the `floor(rate · remaining)` smallest |w| among mask = 1 are set to 0.
pub fn magnitude_prune(weights: &[&Tensor], masks: &[Tensor], rate: f64) -> Vec<Tensor> {
    assert_eq!(weights.len(), masks.len());
    tch::no_grad(|| {
        let alive: Vec<Tensor> = weights
            .iter()
            .zip(masks)
            .map(|(w, m)| w.abs().to_kind(Kind::Float).masked_select(&m.to_kind(Kind::Bool)))
            .collect();
        let all = Tensor::cat(&alive, 0);
        let remaining = all.numel();
        let k = (rate * remaining as f64).floor() as i64;
        if k == 0 {
            return masks.iter().map(|m| m.copy()).collect();
        }
        // Threshold: the k-th smallest surviving magnitude; ties at the threshold are all pruned.
        let thr = all.kthvalue(k, 0, false).0.double_value(&[]);
        weights.iter().zip(masks).map(|(w, m)| (m * w.abs().gt(thr).to_kind(m.kind())).detach()).collect()
    })
}

/// Fraction of conv weights pruned.
pub fn sparsity(masks: &[Tensor]) -> f64 {
    let total: usize = masks.iter().map(|m| m.numel()).sum();
    let kept: f64 = masks.iter().map(|m| m.sum(Kind::Float).double_value(&[])).sum();
    1.0 - kept / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn rounds_prune_a_fraction_of_what_remains() {
        tch::manual_seed(1);
        let a = Tensor::randn([16, 1, 5, 5], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([16, 16, 3, 3], (Kind::Float, Device::Cpu)) * 0.1;
        let w = [&a, &b];
        let m0 = full_masks(&w);
        assert_eq!(sparsity(&m0), 0.0);
        let m1 = magnitude_prune(&w, &m0, 0.2);
        assert!((sparsity(&m1) - 0.2).abs() < 0.002, "{}", sparsity(&m1));
        let m2 = magnitude_prune(&w, &m1, 0.2);
        assert!((sparsity(&m2) - 0.36).abs() < 0.002, "{}", sparsity(&m2));
        // Global, not per layer: the small-magnitude layer loses more.
        let per_layer = |m: &Tensor| 1.0 - m.mean(Kind::Float).double_value(&[]);
        assert!(per_layer(&m1[1]) > per_layer(&m1[0]));
        // Pruned weights are the smallest ones: every kept |w| ≥ every pruned |w|.
        let kept_min = a.abs().masked_select(&m1[0].to_kind(Kind::Bool)).min().double_value(&[]);
        let pruned_max = a.abs().masked_select(&m1[0].eq(0.0)).max().double_value(&[]);
        assert!(kept_min >= pruned_max);
        // Once pruned, always pruned.
        let was_pruned = m1[0].ones_like() - &m1[0];
        assert_eq!((&m2[0] * was_pruned).sum(Kind::Float).double_value(&[]), 0.0);
    }
}
