//! The SESR network in its two forms and the exact collapse between them (spec §1–2).
//!
//! * [`ExpandedSesr`] — the training-time network: every *linear block* is a k×k conv to `p`
//!   channels followed by a 1×1 conv, with no activation between them.
//! * [`CollapsedSesr`] — the inference network: each linear block collapsed analytically into a
//!   single k×k conv, `Wc = W2·W1`, `bc = W2·b1 + b2`, with the residual identity folded into
//!   the centre tap.
//!
//! [`ExpandedSesr::collapse`] is differentiable: training runs the collapsed forward and the
//! gradients flow back into the expanded weights ("collapse in the graph", about 2× faster than
//! the expanded forward, spec §2).

use crate::config::{BlockKind, SesrConfig};
use crate::Error;
use std::path::Path;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

/// Glorot-uniform initialisation of a conv kernel (Keras' default): fan_in = in·k², fan_out = out·k².
fn glorot(cin: i64, cout: i64, k: i64) -> Init {
    let bound = (6.0 / ((cin + cout) * k * k) as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

/// A k×k convolution with bias and 'same' zero padding.
#[derive(Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Conv {
    pub fn kernel(&self) -> i64 {
        self.weight.size()[3]
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let pad = self.kernel() / 2;
        x.conv2d(&self.weight, Some(&self.bias), [1, 1], [pad, pad], [1, 1], 1)
    }

    fn detached(&self) -> Conv {
        Conv { weight: self.weight.detach().copy(), bias: self.bias.detach().copy() }
    }

    fn to(&self, device: Device, kind: Kind) -> Conv {
        Conv { weight: self.weight.to_device(device).to_kind(kind), bias: self.bias.to_device(device).to_kind(kind) }
    }
}

/// The identity as a `c→c` k×k kernel: 1 at `[i, i, k/2, k/2]`.
fn identity_kernel(c: i64, k: i64, like: &Tensor) -> Tensor {
    Tensor::eye(c, (like.kind(), like.device())).reshape([c, c, 1, 1]).constant_pad_nd([k / 2, k / 2, k / 2, k / 2])
}

/// The fixed 3×3 filters of the edge branches, `(name, taps)` in row-major order: Sobel-x,
/// Sobel-y and the 4-neighbour Laplacian, each scaled to unit L2 norm (their learnable 1×1
/// convs carry the scale).
pub const EDGE_FILTERS: [(&str, [f32; 9]); 3] = {
    const S: f32 = 0.288_675_13; // 1/√12
    const L: f32 = 0.223_606_8; // 1/√20
    [
        ("sobel_x", [-S, 0.0, S, -2.0 * S, 0.0, 2.0 * S, -S, 0.0, S]),
        ("sobel_y", [-S, -2.0 * S, -S, 0.0, 0.0, 0.0, S, 2.0 * S, S]),
        ("laplacian", [0.0, L, 0.0, L, -4.0 * L, L, 0.0, L, 0.0]),
    ]
};

/// An edge branch: a fixed 3×3 filter on every input channel (depthwise, no bias), then a
/// learnable 1×1 conv `in→out` (no bias). Its collapsed kernel is `W[o,i]·filter`, exact at the
/// borders because the fixed filter is the branch's only spatial op and comes first.
#[derive(Debug)]
pub struct EdgeBranch {
    /// The fixed 3×3 taps (not a variable; follows `weight`'s device and kind when used).
    pub taps: [f32; 9],
    /// `[out, in, 1, 1]`.
    pub weight: Tensor,
}

impl EdgeBranch {
    fn filter(&self) -> Tensor {
        Tensor::from_slice(&self.taps).reshape([3, 3]).to_kind(self.weight.kind()).to_device(self.weight.device())
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let c = x.size()[1];
        let depthwise = self.filter().reshape([1, 1, 3, 3]).repeat([c, 1, 1, 1]);
        let e = x.conv2d(&depthwise, None::<Tensor>, [1, 1], [1, 1], [1, 1], c);
        e.conv2d(&self.weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
    }

    /// `[out, in, k, k]`: the 1×1 weights times the filter centred in a k×k kernel (k ≥ 3, odd).
    fn collapse(&self, k: i64) -> Tensor {
        let pad = (k - 3) / 2;
        let f = self.filter().constant_pad_nd([pad, pad, pad, pad]).reshape([1, 1, k, k]);
        &self.weight * f
    }
}

/// The extra branches of a [`BlockKind::Ecb`] linear block, beside SESR's k×k expand-squeeze.
#[derive(Debug)]
pub struct EcbBranches {
    /// 1×1 conv `in→p`.
    pub pw_expand: Conv,
    /// 1×1 conv `p→out`.
    pub pw_squeeze: Conv,
    /// Sobel-x, Sobel-y, Laplacian (the order of [`EDGE_FILTERS`]).
    pub edges: Vec<EdgeBranch>,
}

/// A collapsible linear block: k×k conv `in→p`, then 1×1 conv `p→out`, optionally `+ x`; with
/// [`BlockKind::Ecb`] also the parallel branches of [`EcbBranches`], summed. Every branch is
/// linear and has no spatial op after its first, so the sum collapses exactly into one k×k conv.
#[derive(Debug)]
pub struct LinearBlock {
    pub expand: Conv,
    pub project: Conv,
    pub residual: bool,
    /// The ECB branches (`None` for plain SESR blocks).
    pub ecb: Option<EcbBranches>,
}

impl LinearBlock {
    /// A plain SESR block: variables `<path>/conv_kxk/{weight,bias}` and `<path>/conv_1x1/{weight,bias}`.
    pub fn new(vs: &nn::Path, cin: i64, mid: i64, cout: i64, k: i64, residual: bool) -> Self {
        Self::with_kind(vs, cin, mid, cout, k, residual, BlockKind::Plain)
    }

    /// A block of the given kind. [`BlockKind::Ecb`] adds the variables
    /// `<path>/conv_1x1_expand/{weight,bias}` (`p×in`), `<path>/conv_1x1_squeeze/{weight,bias}`
    /// (`out×p`) — Glorot-uniform / zero like the main branch — and `<path>/{sobel_x,sobel_y,
    /// laplacian}/weight` (`out×in`, Glorot-uniform with the fan of a 3×3 conv, since their
    /// unit-norm filters spread each weight over 3×3 taps). The main branch's variables are
    /// created first, under the plain names, so a plain block's checkpoint layout is unchanged.
    pub fn with_kind(vs: &nn::Path, cin: i64, mid: i64, cout: i64, k: i64, residual: bool, kind: BlockKind) -> Self {
        assert!(!residual || cin == cout, "a residual block keeps its width");
        assert!(k >= 3 && k % 2 == 1, "the kernel must be odd and at least 3×3");
        let conv = |name: &str, cin: i64, cout: i64, k: i64| {
            let a = vs / name;
            Conv { weight: a.var("weight", &[cout, cin, k, k], glorot(cin, cout, k)), bias: a.zeros("bias", &[cout]) }
        };
        let expand = conv("conv_kxk", cin, mid, k);
        let project = conv("conv_1x1", mid, cout, 1);
        let ecb = match kind {
            BlockKind::Plain => None,
            BlockKind::Ecb => {
                let pw_expand = conv("conv_1x1_expand", cin, mid, 1);
                let pw_squeeze = conv("conv_1x1_squeeze", mid, cout, 1);
                let edges = EDGE_FILTERS
                    .iter()
                    .map(|(name, taps)| EdgeBranch {
                        taps: *taps,
                        weight: (vs / *name).var("weight", &[cout, cin, 1, 1], glorot(cin, cout, 3)),
                    })
                    .collect();
                Some(EcbBranches { pw_expand, pw_squeeze, edges })
            }
        };
        LinearBlock { expand, project, residual, ecb }
    }

    /// The block as trained: every branch run separately and summed (and the skip).
    pub fn forward_expanded(&self, x: &Tensor) -> Tensor {
        let mut terms = vec![self.project.forward(&self.expand.forward(x))];
        if let Some(e) = &self.ecb {
            terms.push(e.pw_squeeze.forward(&e.pw_expand.forward(x)));
            terms.extend(e.edges.iter().map(|b| b.forward(x)));
        }
        if self.residual {
            terms.push(x.shallow_clone());
        }
        sum(terms)
    }

    /// The block as one conv: `Wc[o,i] = Σ_q W2[o,q]·W1[q,i]`, `bc = W2·b1 + b2`, plus the identity
    /// at the centre tap for residual blocks; ECB branches add `P2·P1` at the centre tap (bias
    /// `P2·p1 + p2`) and `E_b[o,i]·filter_b` for each edge branch. Differentiable in the block's
    /// weights.
    pub fn collapse(&self) -> Conv {
        let s1 = self.expand.weight.size();
        let (mid, cin, k) = (s1[0], s1[1], s1[3]);
        let cout = self.project.weight.size()[0];
        let w2 = self.project.weight.reshape([cout, mid]);
        let mut weights = vec![w2.matmul(&self.expand.weight.reshape([mid, cin * k * k])).reshape([cout, cin, k, k])];
        let mut biases = vec![w2.mv(&self.expand.bias) + &self.project.bias];
        if let Some(e) = &self.ecb {
            let pmid = e.pw_expand.weight.size()[0];
            let q2 = e.pw_squeeze.weight.reshape([cout, pmid]);
            let centre = q2.matmul(&e.pw_expand.weight.reshape([pmid, cin])).reshape([cout, cin, 1, 1]);
            weights.push(centre.constant_pad_nd([k / 2, k / 2, k / 2, k / 2]));
            biases.push(q2.mv(&e.pw_expand.bias) + &e.pw_squeeze.bias);
            weights.extend(e.edges.iter().map(|b| b.collapse(k)));
        }
        if self.residual {
            weights.push(identity_kernel(cout, k, &self.expand.weight));
        }
        Conv { weight: sum(weights), bias: sum(biases) }
    }

    /// Zeroes every branch's last layer (weights and biases): the block then adds nothing, so a
    /// residual block computes the identity. Its first layers keep their values, so the
    /// gradients of the zeroed layers are not zero and training moves the block away from it.
    fn zero_outputs(&self) {
        let zero = |t: &Tensor| {
            let _ = t.shallow_clone().zero_();
        };
        tch::no_grad(|| {
            zero(&self.project.weight);
            zero(&self.project.bias);
            if let Some(e) = &self.ecb {
                zero(&e.pw_squeeze.weight);
                zero(&e.pw_squeeze.bias);
                e.edges.iter().for_each(|b| zero(&b.weight));
            }
        });
    }

    /// Copies `src`'s weights into `self` (same kind), keeping only the input channels `ins`
    /// and the output channels `outs` (`None`: all). The expansion width is unchanged.
    fn copy_selected(&self, src: &LinearBlock, ins: Option<&Tensor>, outs: Option<&Tensor>) {
        let sel = |t: &Tensor, dim: i64, idx: Option<&Tensor>| match idx {
            Some(i) => t.index_select(dim, i),
            None => t.copy(),
        };
        let set = |dst: &Tensor, src: Tensor| {
            let mut d = dst.shallow_clone();
            d.copy_(&src);
        };
        let first = |dst: &Conv, src: &Conv| {
            set(&dst.weight, sel(&src.weight, 1, ins));
            set(&dst.bias, src.bias.copy());
        };
        let last = |dst: &Conv, src: &Conv| {
            set(&dst.weight, sel(&src.weight, 0, outs));
            set(&dst.bias, sel(&src.bias, 0, outs));
        };
        tch::no_grad(|| {
            first(&self.expand, &src.expand);
            last(&self.project, &src.project);
            match (&self.ecb, &src.ecb) {
                (None, None) => {}
                (Some(d), Some(s)) => {
                    first(&d.pw_expand, &s.pw_expand);
                    last(&d.pw_squeeze, &s.pw_squeeze);
                    for (db, sb) in d.edges.iter().zip(&s.edges) {
                        set(&db.weight, sel(&sel(&sb.weight, 1, ins), 0, outs));
                    }
                }
                _ => panic!("copy_selected between blocks of different kinds"),
            }
        });
    }
}

/// The sum of the tensors in order (out of place: they stay in the autograd graph).
fn sum(terms: Vec<Tensor>) -> Tensor {
    let mut it = terms.into_iter();
    let first = it.next().expect("at least one term");
    it.fold(first, |acc, t| acc + t)
}

/// `pixel_shuffle` to the output resolution: ×2 once, ×4 as two ×2 steps (the reference's order).
pub(crate) fn upsample(o: &Tensor, scale: usize) -> Tensor {
    match scale {
        2 => o.pixel_shuffle(2),
        4 => o.pixel_shuffle(2).pixel_shuffle(2),
        s => panic!("unsupported scale {s}"),
    }
}

/// The training-time (expanded) SESR network.
#[derive(Debug)]
pub struct ExpandedSesr {
    pub cfg: SesrConfig,
    pub input: LinearBlock,
    pub blocks: Vec<LinearBlock>,
    /// One PReLU slope per channel after each residual block, initialised at 0.
    pub alphas: Vec<Tensor>,
    pub output: LinearBlock,
}

impl ExpandedSesr {
    /// Builds the network's variables under `vs`: `input/…`, `block{i}/…`, `block{i}/prelu/weight`,
    /// `output/…`, with linear blocks of kind `cfg.block`. Kernels Glorot-uniform, biases and
    /// PReLU slopes zero (spec §1).
    pub fn new(vs: &nn::Path, cfg: SesrConfig) -> Self {
        let (m, f, p, s2) = (cfg.m, cfg.f as i64, cfg.p as i64, cfg.out_channels() as i64);
        let kind = cfg.block;
        let input = LinearBlock::with_kind(&(vs / "input"), 1, p, f, 5, false, kind);
        let mut blocks = Vec::with_capacity(m);
        let mut alphas = Vec::with_capacity(m);
        for i in 0..m {
            let b = vs / format!("block{i}");
            blocks.push(LinearBlock::with_kind(&b, f, p, f, 3, true, kind));
            alphas.push((&b / "prelu").zeros("weight", &[f]));
        }
        let output = LinearBlock::with_kind(&(vs / "output"), f, p, s2, 5, false, kind);
        ExpandedSesr { cfg, input, blocks, alphas, output }
    }

    /// The expanded forward, not clamped: `x` is Y in [0, 1], `[N, 1, H, W]`.
    pub fn forward_expanded(&self, x: &Tensor) -> Tensor {
        let f0 = self.input.forward_expanded(&(x - 0.5));
        let mut h = f0.shallow_clone();
        for (b, a) in self.blocks.iter().zip(&self.alphas) {
            h = b.forward_expanded(&h).prelu(a);
        }
        upsample(&(self.output.forward_expanded(&(h + &f0)) + x), self.cfg.scale)
    }

    /// The collapsed network, computed in the autograd graph of the expanded weights. Its config
    /// is plain whatever the block kind: the collapsed network is the same either way.
    pub fn collapse(&self) -> CollapsedSesr {
        CollapsedSesr {
            cfg: self.cfg.with_block(BlockKind::Plain),
            input: self.input.collapse(),
            blocks: self.blocks.iter().zip(&self.alphas).map(|(b, a)| (b.collapse(), a.shallow_clone())).collect(),
            output: self.output.collapse(),
        }
    }

    /// The collapsed network as fresh tensors with no autograd history (for inference/export).
    pub fn collapse_detached(&self) -> CollapsedSesr {
        tch::no_grad(|| self.collapse().detached())
    }

    /// Training forward: collapse in the graph, then the collapsed forward (not clamped).
    pub fn forward_collapsing(&self, x: &Tensor) -> Tensor {
        self.collapse().forward_unclamped(x)
    }
}

impl ExpandedSesr {
    /// Makes residual block `i` the identity map: its branches add nothing and its PReLU slopes
    /// are 1. A deeper network whose first blocks hold a shallower one's weights and whose
    /// further blocks are made the identity computes exactly the shallower network (the blocks
    /// run in sequence, and the long skip adds the input conv's output after the last one), so
    /// it can be fine-tuned from it (`train --init` of an M5 run into an M7).
    pub fn make_identity_block(&self, i: usize) {
        self.blocks[i].zero_outputs();
        tch::no_grad(|| {
            let _ = self.alphas[i].shallow_clone().fill_(1.0);
        });
    }
}

impl ExpandedSesr {
    /// A narrower network keeping only the feature channels `keep` (indices into `0..f`) of the
    /// residual stream, with its variables created under `vs` (structured pruning: `f` shrinks,
    /// so inference really gets faster). Expansion widths `p` are unchanged. Because every
    /// block is linear up to the PReLU, which is per channel, the result is exactly the
    /// collapsed network with those channels removed from every layer.
    pub fn select_channels(&self, vs: &nn::Path, keep: &[i64]) -> ExpandedSesr {
        let f = keep.len();
        let cfg = SesrConfig { f, ..self.cfg };
        let new = ExpandedSesr::new(vs, cfg);
        let dev = self.input.expand.weight.device();
        let idx = Tensor::from_slice(keep).to_device(dev);
        new.input.copy_selected(&self.input, None, Some(&idx));
        for ((nb, na), (b, a)) in new.blocks.iter().zip(&new.alphas).zip(self.blocks.iter().zip(&self.alphas)) {
            nb.copy_selected(b, Some(&idx), Some(&idx));
            tch::no_grad(|| na.shallow_clone().copy_(&a.index_select(0, &idx)));
        }
        new.output.copy_selected(&self.output, Some(&idx), None);
        new
    }
}

/// Importance of each feature channel of the residual stream: the mean |weight| of every
/// collapsed kernel slice that reads or writes it, summed over layers.
pub fn channel_importance(c: &CollapsedSesr) -> Vec<f64> {
    let f = c.cfg.f;
    let mean_abs = |t: &Tensor, dim: i64| -> Vec<f64> {
        let other: Vec<i64> = (0..4).filter(|&d| d != dim).collect();
        Vec::<f64>::try_from(t.abs().mean_dim(other.as_slice(), false, Kind::Double)).unwrap()
    };
    let mut score = vec![0.0; f];
    let mut add = |v: Vec<f64>| {
        for (s, x) in score.iter_mut().zip(v) {
            *s += x;
        }
    };
    tch::no_grad(|| {
        add(mean_abs(&c.input.weight, 0));
        for (conv, _) in &c.blocks {
            add(mean_abs(&conv.weight, 0));
            add(mean_abs(&conv.weight, 1));
        }
        add(mean_abs(&c.output.weight, 1));
    });
    score
}

/// The `n` most important channels (sorted by index).
pub fn top_channels(c: &CollapsedSesr, n: usize) -> Vec<i64> {
    let score = channel_importance(c);
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let mut keep: Vec<i64> = order.into_iter().take(n).map(|i| i as i64).collect();
    keep.sort();
    keep
}

impl nn::ModuleT for ExpandedSesr {
    /// Collapse-in-graph forward; clamped to [0, 1] outside training.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = self.forward_collapsing(xs);
        if train {
            y
        } else {
            y.clamp(0.0, 1.0)
        }
    }
}

/// The inference (collapsed) SESR network: `m + 2` small convolutions.
#[derive(Debug)]
pub struct CollapsedSesr {
    pub cfg: SesrConfig,
    /// 5×5 conv 1→f.
    pub input: Conv,
    /// 3×3 conv f→f (identity folded in) and its PReLU slopes.
    pub blocks: Vec<(Conv, Tensor)>,
    /// 5×5 conv f→s².
    pub output: Conv,
}

impl CollapsedSesr {
    /// Forward without the final clamp.
    pub fn forward_unclamped(&self, x: &Tensor) -> Tensor {
        let f0 = self.input.forward(&(x - 0.5));
        let mut h = f0.shallow_clone();
        for (conv, alpha) in &self.blocks {
            h = conv.forward(&h).prelu(alpha);
        }
        upsample(&(self.output.forward(&(h + &f0)) + x), self.cfg.scale)
    }

    /// `forward(x: [N,1,H,W] Y in [0,1]) -> [N,1,sH,sW]` clamped to [0, 1].
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_unclamped(x).clamp(0.0, 1.0)
    }

    pub fn detached(&self) -> CollapsedSesr {
        CollapsedSesr {
            cfg: self.cfg,
            input: self.input.detached(),
            blocks: self.blocks.iter().map(|(c, a)| (c.detached(), a.detach().copy())).collect(),
            output: self.output.detached(),
        }
    }

    pub fn to(&self, device: Device, kind: Kind) -> CollapsedSesr {
        CollapsedSesr {
            cfg: self.cfg,
            input: self.input.to(device, kind),
            blocks: self.blocks.iter().map(|(c, a)| (c.to(device, kind), a.to_device(device).to_kind(kind))).collect(),
            output: self.output.to(device, kind),
        }
    }

    /// The convolutions in order: input, blocks, output.
    pub fn convs(&self) -> Vec<&Conv> {
        std::iter::once(&self.input)
            .chain(self.blocks.iter().map(|(c, _)| c))
            .chain(std::iter::once(&self.output))
            .collect()
    }

    /// The network with every conv weight multiplied by its mask (same order as
    /// [`convs`](Self::convs)); biases and PReLU slopes are not masked. Differentiable.
    pub fn masked(self, masks: &[Tensor]) -> CollapsedSesr {
        assert_eq!(masks.len(), self.blocks.len() + 2, "one mask per conv");
        let m = |c: Conv, k: &Tensor| Conv { weight: c.weight * k, bias: c.bias };
        let n = masks.len();
        CollapsedSesr {
            cfg: self.cfg,
            input: m(self.input, &masks[0]),
            blocks: self.blocks.into_iter().zip(&masks[1..n - 1]).map(|((c, a), k)| (m(c, k), a)).collect(),
            output: m(self.output, &masks[n - 1]),
        }
    }

    /// Number of conv weights (biases and slopes not counted).
    pub fn weight_count(&self) -> usize {
        self.convs().iter().map(|c| c.weight.numel()).sum()
    }

    /// Named tensors: `input.weight`, `block{i}.weight|bias|alpha`, `output.bias`, …
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![
            ("input.weight".to_string(), self.input.weight.shallow_clone()),
            ("input.bias".to_string(), self.input.bias.shallow_clone()),
        ];
        for (i, (c, a)) in self.blocks.iter().enumerate() {
            v.push((format!("block{i}.weight"), c.weight.shallow_clone()));
            v.push((format!("block{i}.bias"), c.bias.shallow_clone()));
            v.push((format!("block{i}.alpha"), a.shallow_clone()));
        }
        v.push(("output.weight".to_string(), self.output.weight.shallow_clone()));
        v.push(("output.bias".to_string(), self.output.bias.shallow_clone()));
        v
    }

    /// Rebuilds from [`named_tensors`](Self::named_tensors), checking every shape against `cfg`.
    pub fn from_named(cfg: SesrConfig, named: Vec<(String, Tensor)>) -> Result<Self, Error> {
        let mut map: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
        let (f, s2) = (cfg.f as i64, cfg.out_channels() as i64);
        let mut take = |name: &str, shape: &[i64]| -> Result<Tensor, Error> {
            let t = map.remove(name).ok_or_else(|| Error::Model(format!("missing tensor '{name}'")))?;
            if t.size() != shape {
                return Err(Error::Model(format!("tensor '{name}' has shape {:?}, expected {shape:?}", t.size())));
            }
            Ok(t.to_kind(Kind::Float))
        };
        let input = Conv { weight: take("input.weight", &[f, 1, 5, 5])?, bias: take("input.bias", &[f])? };
        let mut blocks = Vec::with_capacity(cfg.m);
        for i in 0..cfg.m {
            let conv = Conv {
                weight: take(&format!("block{i}.weight"), &[f, f, 3, 3])?,
                bias: take(&format!("block{i}.bias"), &[f])?,
            };
            blocks.push((conv, take(&format!("block{i}.alpha"), &[f])?));
        }
        let output = Conv { weight: take("output.weight", &[s2, f, 5, 5])?, bias: take("output.bias", &[s2])? };
        if let Some(extra) = map.keys().next() {
            return Err(Error::Model(format!("unexpected tensor '{extra}' for config {cfg:?}")));
        }
        Ok(CollapsedSesr { cfg, input, blocks, output })
    }

    /// The weights as plain float32 arrays (for the native kernel and the safetensors file).
    pub fn to_weights(&self) -> Result<crate::weights::CollapsedWeights, Error> {
        let named = self
            .named_tensors()
            .into_iter()
            .map(|(n, t)| {
                let shape = t.size().iter().map(|&d| d as usize).collect();
                let t = t.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous().flatten(0, -1);
                (n, shape, Vec::<f32>::try_from(&t).expect("a float tensor converts to Vec<f32>"))
            })
            .collect();
        crate::weights::CollapsedWeights::from_named(self.cfg, named)
    }

    /// From plain float32 weights (CPU, float32).
    pub fn from_weights(w: &crate::weights::CollapsedWeights) -> Self {
        let named = w
            .named()
            .into_iter()
            .map(|(n, s, d)| (n, Tensor::from_slice(d).reshape(s.iter().map(|&v| v as i64).collect::<Vec<_>>())))
            .collect();
        Self::from_named(w.cfg, named).expect("checked weights fit their config")
    }

    /// Saves the weights as safetensors (temp file + rename, so a reader never sees half a file).
    pub fn save_safetensors(&self, path: &Path) -> Result<(), Error> {
        let named = self.named_tensors();
        let tmp = crate::image_io::tmp_sibling(path);
        Tensor::write_safetensors(&named, &tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })
    }

    /// As [`load_safetensors`](Self::load_safetensors), from the bytes of a float32 file.
    pub fn from_safetensors_bytes(cfg: SesrConfig, bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self::from_weights(&crate::weights::CollapsedWeights::from_safetensors_bytes(cfg, bytes)?))
    }

    pub fn load_safetensors(cfg: SesrConfig, path: &Path) -> Result<Self, Error> {
        let named = Tensor::read_safetensors(path).map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
        Self::from_named(cfg, named)
    }

    /// Traces the clamped forward into a TorchScript module with the plugin's contract:
    /// `forward(x: float32 [N,1,H,W]) -> float32 [N,1,sH,sW]`, any H, W ≥ 1.
    pub fn to_torchscript(&self) -> Result<tch::CModule, Error> {
        self.to_torchscript_with(Precision::Fp32)
    }

    /// As [`to_torchscript`](Self::to_torchscript), with the network computing in `precision`
    /// inside (weights stored in it; the float32 input is cast on entry and the output cast
    /// back), so the contract — float32 in, float32 out — is unchanged.
    pub fn to_torchscript_with(&self, precision: Precision) -> Result<tch::CModule, Error> {
        let kind = precision.kind();
        let model = self.to(Device::Cpu, kind).detached();
        let example = Tensor::rand([1, 1, 24, 20], (Kind::Float, Device::Cpu));
        // No cast at all in float32; otherwise casts that follow the weights' and the input's
        // device (`type_as`), so that the traced graph does not pin the CPU and the module runs
        // on whatever device it is loaded on.
        let mut f = |inputs: &[Tensor]| match precision {
            Precision::Fp32 => vec![model.forward(&inputs[0])],
            _ => vec![model.forward(&inputs[0].type_as(&model.input.weight)).type_as(&inputs[0])],
        };
        let m = tch::no_grad(|| tch::CModule::create_by_tracing("SESR", "forward", &[example], &mut f))?;
        Ok(m)
    }

    /// Writes [`to_torchscript`](Self::to_torchscript) to `path` (temp file + rename).
    pub fn export_torchscript(&self, path: &Path) -> Result<(), Error> {
        self.export_torchscript_with(path, Precision::Fp32)
    }

    /// Writes [`to_torchscript_with`](Self::to_torchscript_with) to `path` (temp file + rename).
    pub fn export_torchscript_with(&self, path: &Path, precision: Precision) -> Result<(), Error> {
        let m = self.to_torchscript_with(precision)?;
        let tmp = crate::image_io::tmp_sibling(path);
        m.save(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })
    }
}

pub use crate::weights::{ExportedWeights, Precision};

impl Precision {
    /// The libtorch kind of the network's arithmetic (int8 is the native kernel's alone and is
    /// never exported as TorchScript: float here).
    pub fn kind(self) -> Kind {
        match self {
            Precision::Fp32 | Precision::Int8 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
        }
    }
}

/// Checks that a TorchScript module follows the SR contract
/// `forward(x: float32 [N,1,H,W]) -> float32 [N,1,sH,sW]` by running it on a small input, and
/// returns its scale `s` (2, 3, 4 or 8).
pub fn probe_torchscript_scale(module: &tch::CModule, device: Device) -> Result<usize, Error> {
    let x = Tensor::full([1, 1, 3, 5], 0.5, (Kind::Float, device));
    let y = tch::no_grad(|| module.forward_ts(&[&x]))
        .map_err(|e| Error::Model(format!("the model does not accept a float32 [1,1,H,W] input: {e}")))?;
    let s = y.size();
    if y.kind() != Kind::Float {
        return Err(Error::Model(format!("the model returns {:?}, not float32", y.kind())));
    }
    for scale in [2i64, 3, 4, 8] {
        if s == [1, 1, 3 * scale, 5 * scale] {
            return Ok(scale as usize);
        }
    }
    Err(Error::Model(format!("output shape {s:?} for an input of [1, 1, 3, 5] is not [1, 1, 3s, 5s]")))
}

#[cfg(test)]
mod tests {
    //! The ECB blocks collapse as exactly as the plain ones (the plain blocks' tests are in
    //! `tests/collapse.rs`).
    use super::*;
    use crate::Preset;

    /// An expanded network of `kind` with random kernels, non-zero biases and PReLU slopes.
    fn random_model(cfg: SesrConfig, kind: Kind) -> (nn::VarStore, ExpandedSesr) {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = ExpandedSesr::new(&vs.root(), cfg);
        vs.set_kind(kind);
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.ends_with("bias") {
                    t.copy_(&(Tensor::rand_like(&t) * 0.2 - 0.1));
                } else if name.ends_with("prelu.weight") {
                    t.copy_(&(Tensor::rand_like(&t) * 0.6 - 0.1));
                }
            }
        });
        (vs, model)
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    #[test]
    fn ecb_expanded_equals_collapsed_at_every_size_and_scale() {
        for preset in Preset::ALL {
            for scale in [2, 4] {
                let cfg = preset.config(scale).with_block(BlockKind::Ecb);
                let (_vs, model) = random_model(cfg, Kind::Float);
                let collapsed = model.collapse_detached();
                // Same collapsed network as plain SESR: same config, same weight count.
                assert_eq!(collapsed.cfg, preset.config(scale));
                assert_eq!(collapsed.weight_count(), cfg.collapsed_weights());
                for (h, w) in [(1, 1), (2, 5), (7, 3), (12, 9)] {
                    let x = Tensor::rand([2, 1, h, w], (Kind::Float, Device::Cpu));
                    let (e, c) = tch::no_grad(|| (model.forward_expanded(&x), collapsed.forward_unclamped(&x)));
                    assert_eq!(e.size(), [2, 1, h * scale as i64, w * scale as i64]);
                    let spread = (e.max() - e.min()).double_value(&[]);
                    assert!(spread > 1e-3, "{preset} x{scale} {h}x{w}: output is flat ({spread})");
                    let mag = e.abs().max().double_value(&[]).max(1.0);
                    let d = max_abs_diff(&e, &c);
                    assert!(d <= 1e-5 * mag, "{preset} x{scale} {h}x{w}: |expanded − collapsed| = {d:e} ({mag:.2})");
                }
            }
        }
    }

    #[test]
    fn every_ecb_branch_reaches_the_collapsed_kernel() {
        // Each branch alone (the others zeroed) collapses exactly, and changes the output: a
        // collapse that forgot a branch, or put a filter off-centre, fails here.
        let cfg = Preset::M3.config(2).with_block(BlockKind::Ecb);
        let (vs, model) = random_model(cfg, Kind::Double);
        let x = Tensor::rand([1, 1, 6, 5], (Kind::Double, Device::Cpu));
        let group = |name: &str| -> &'static str {
            for (g, parts) in [
                ("main", &[".conv_kxk.", ".conv_1x1."][..]),
                ("pointwise", &[".conv_1x1_expand.", ".conv_1x1_squeeze."][..]),
                ("sobel_x", &[".sobel_x."][..]),
                ("sobel_y", &[".sobel_y."][..]),
                ("laplacian", &[".laplacian."][..]),
            ] {
                if parts.iter().any(|p| name.contains(p)) {
                    return g;
                }
            }
            "prelu"
        };
        let branches = ["main", "pointwise", "sobel_x", "sobel_y", "laplacian"];
        let saved: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
        let mut outputs = Vec::new();
        for keep in branches {
            tch::no_grad(|| {
                for (name, mut t) in vs.variables() {
                    let g = group(&name);
                    if g != "prelu" && g != keep && name.ends_with("weight") {
                        let _ = t.zero_();
                    } else {
                        t.copy_(&saved.iter().find(|(n, _)| *n == name).unwrap().1);
                    }
                }
            });
            let (e, c) = tch::no_grad(|| (model.forward_expanded(&x), model.collapse_detached().forward_unclamped(&x)));
            assert!(max_abs_diff(&e, &c) <= 1e-10, "{keep} alone: {:e}", max_abs_diff(&e, &c));
            outputs.push(e);
        }
        for i in 0..outputs.len() {
            for j in i + 1..outputs.len() {
                let d = max_abs_diff(&outputs[i], &outputs[j]);
                assert!(d > 1e-4, "{} and {} give the same output ({d:e})", branches[i], branches[j]);
            }
        }
    }

    #[test]
    fn ecb_collapse_in_graph_gives_the_expanded_gradients() {
        let cfg = Preset::M3.config(2).with_block(BlockKind::Ecb);
        let (vs, model) = random_model(cfg, Kind::Double);
        let x = Tensor::rand([2, 1, 9, 8], (Kind::Double, Device::Cpu));
        let target = Tensor::rand([2, 1, 18, 16], (Kind::Double, Device::Cpu));
        let grads = |forward: &dyn Fn(&Tensor) -> Tensor| {
            let vars = vs.trainable_variables();
            for v in &vars {
                let mut g = v.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            (forward(&x) - &target).square().mean(Kind::Double).backward();
            vars.iter().map(|v| v.grad().copy()).collect::<Vec<_>>()
        };
        let ge = grads(&|x| model.forward_expanded(x));
        let gc = grads(&|x| model.forward_collapsing(x));
        // 5 branches' worth of variables: main (4), pointwise (4), edges (3) per block, + slopes.
        assert_eq!(ge.len(), 5 * 11 + 3);
        for (i, (a, b)) in ge.iter().zip(&gc).enumerate() {
            let s = a.abs().max().double_value(&[]);
            assert!(s > 0.0, "grad {i} is zero");
            assert!(max_abs_diff(a, b) <= 1e-9 * s + 1e-12, "grad {i}");
        }
    }

    #[test]
    fn plain_blocks_keep_their_variable_names() {
        // Checkpoints written before block kinds existed must load into a plain model.
        let vs = nn::VarStore::new(Device::Cpu);
        let _ = ExpandedSesr::new(&vs.root(), Preset::M3.config(2));
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(names.len(), 4 * 5 + 3);
        assert!(names.iter().all(|n| n.ends_with(".conv_kxk.weight")
            || n.ends_with(".conv_kxk.bias")
            || n.ends_with(".conv_1x1.weight")
            || n.ends_with(".conv_1x1.bias")
            || n.ends_with(".prelu.weight")));
        let ecb = nn::VarStore::new(Device::Cpu);
        let _ = ExpandedSesr::new(&ecb.root(), Preset::M3.config(2).with_block(BlockKind::Ecb));
        let all: Vec<String> = ecb.variables().into_keys().collect();
        assert!(names.iter().all(|n| all.contains(n)), "ECB keeps the main branch's names");
        assert!(all.contains(&"block1.sobel_y.weight".to_string()), "{all:?}");
    }

    #[test]
    fn ecb_channel_selection_is_exact() {
        let cfg = Preset::M3.config(2).with_block(BlockKind::Ecb);
        let (_vs, model) = random_model(cfg, Kind::Float);
        let keep = top_channels(&model.collapse_detached(), 12);
        let vs2 = nn::VarStore::new(Device::Cpu);
        let narrow = model.select_channels(&vs2.root(), &keep);
        assert_eq!(narrow.cfg, SesrConfig { f: 12, ..cfg });
        let x = Tensor::rand([1, 1, 11, 7], (Kind::Float, Device::Cpu));
        let c = narrow.collapse_detached();
        // The narrow expanded net equals its collapse and the full collapse's channel slice.
        let full = model.collapse_detached();
        let idx = Tensor::from_slice(&keep);
        let sliced = CollapsedSesr {
            cfg: c.cfg,
            input: Conv {
                weight: full.input.weight.index_select(0, &idx),
                bias: full.input.bias.index_select(0, &idx),
            },
            blocks: full
                .blocks
                .iter()
                .map(|(b, a)| {
                    let w = b.weight.index_select(0, &idx).index_select(1, &idx);
                    (Conv { weight: w, bias: b.bias.index_select(0, &idx) }, a.index_select(0, &idx))
                })
                .collect(),
            output: Conv { weight: full.output.weight.index_select(1, &idx), bias: full.output.bias.copy() },
        };
        let (e, k, s) =
            tch::no_grad(|| (narrow.forward_expanded(&x), c.forward_unclamped(&x), sliced.forward_unclamped(&x)));
        assert!(max_abs_diff(&e, &k) <= 1e-5);
        assert!(max_abs_diff(&k, &s) <= 1e-5);
    }

    #[test]
    fn a_deeper_network_grown_with_identity_blocks_computes_the_shallower_one() {
        for kind in [BlockKind::Plain, BlockKind::Ecb] {
            let small = Preset::M5.config(2).with_block(kind);
            let (vs5, m5) = random_model(small, Kind::Float);
            let vs7 = nn::VarStore::new(Device::Cpu);
            let m7 = ExpandedSesr::new(&vs7.root(), Preset::M7.config(2).with_block(kind));
            let src = vs5.variables();
            tch::no_grad(|| {
                for (name, mut t) in vs7.variables() {
                    match src.get(&name) {
                        Some(s) => t.copy_(s),
                        // The further blocks random, slopes away from 1, as a fresh M7 has them.
                        None => t.copy_(&(Tensor::rand_like(&t) * 0.2 - 0.1)),
                    }
                }
            });
            let x = Tensor::rand([1, 1, 9, 11], (Kind::Float, Device::Cpu));
            let y5 = tch::no_grad(|| m5.forward_expanded(&x));
            let before = tch::no_grad(|| m7.forward_expanded(&x));
            assert!(max_abs_diff(&y5, &before) > 1e-3, "{kind:?}: the random further blocks change nothing");
            for i in small.m..m7.cfg.m {
                m7.make_identity_block(i);
            }
            let (e, c) = tch::no_grad(|| (m7.forward_expanded(&x), m7.collapse_detached().forward_unclamped(&x)));
            assert!(max_abs_diff(&y5, &e) <= 1e-6, "{kind:?}: grown M7 differs from its M5");
            assert!(max_abs_diff(&y5, &c) <= 1e-5, "{kind:?}: grown M7's collapse differs from its M5");
            // The identity blocks learn: their zeroed layers get gradients.
            m7.forward_collapsing(&x).sum(Kind::Float).backward();
            let g = m7.blocks[6].project.weight.grad().abs().sum(Kind::Float).double_value(&[]);
            assert!(g > 0.0, "{kind:?}: no gradient reaches the grown block");
        }
    }
}
