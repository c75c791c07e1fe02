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

use crate::config::SesrConfig;
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

/// A collapsible linear block: k×k conv `in→p`, then 1×1 conv `p→out`, optionally `+ x`.
#[derive(Debug)]
pub struct LinearBlock {
    pub expand: Conv,
    pub project: Conv,
    pub residual: bool,
}

impl LinearBlock {
    /// Variables `<path>/conv_kxk/{weight,bias}` and `<path>/conv_1x1/{weight,bias}`.
    pub fn new(vs: &nn::Path, cin: i64, mid: i64, cout: i64, k: i64, residual: bool) -> Self {
        assert!(!residual || cin == cout, "a residual block keeps its width");
        let a = vs / "conv_kxk";
        let b = vs / "conv_1x1";
        let expand =
            Conv { weight: a.var("weight", &[mid, cin, k, k], glorot(cin, mid, k)), bias: a.zeros("bias", &[mid]) };
        let project =
            Conv { weight: b.var("weight", &[cout, mid, 1, 1], glorot(mid, cout, 1)), bias: b.zeros("bias", &[cout]) };
        LinearBlock { expand, project, residual }
    }

    /// The block as trained: two convs (and the skip).
    pub fn forward_expanded(&self, x: &Tensor) -> Tensor {
        let y = self.project.forward(&self.expand.forward(x));
        if self.residual {
            y + x
        } else {
            y
        }
    }

    /// The block as one conv: `Wc[o,i] = Σ_q W2[o,q]·W1[q,i]`, `bc = W2·b1 + b2`, plus the identity
    /// at the centre tap for residual blocks. Differentiable in the block's weights.
    pub fn collapse(&self) -> Conv {
        let s1 = self.expand.weight.size();
        let (mid, cin, k) = (s1[0], s1[1], s1[3]);
        let cout = self.project.weight.size()[0];
        let w2 = self.project.weight.reshape([cout, mid]);
        let product = w2.matmul(&self.expand.weight.reshape([mid, cin * k * k])).reshape([cout, cin, k, k]);
        let bias = w2.mv(&self.expand.bias) + &self.project.bias;
        let weight = if self.residual { product + identity_kernel(cout, k, &self.expand.weight) } else { product };
        Conv { weight, bias }
    }
}

/// `pixel_shuffle` to the output resolution: ×2 once, ×4 as two ×2 steps (the reference's order).
fn upsample(o: &Tensor, scale: usize) -> Tensor {
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
    /// `output/…`. Kernels Glorot-uniform, biases and PReLU slopes zero (spec §1).
    pub fn new(vs: &nn::Path, cfg: SesrConfig) -> Self {
        let (m, f, p, s2) = (cfg.m, cfg.f as i64, cfg.p as i64, cfg.out_channels() as i64);
        let input = LinearBlock::new(&(vs / "input"), 1, p, f, 5, false);
        let mut blocks = Vec::with_capacity(m);
        let mut alphas = Vec::with_capacity(m);
        for i in 0..m {
            let b = vs / format!("block{i}");
            blocks.push(LinearBlock::new(&b, f, p, f, 3, true));
            alphas.push((&b / "prelu").zeros("weight", &[f]));
        }
        let output = LinearBlock::new(&(vs / "output"), f, p, s2, 5, false);
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

    /// The collapsed network, computed in the autograd graph of the expanded weights.
    pub fn collapse(&self) -> CollapsedSesr {
        CollapsedSesr {
            cfg: self.cfg,
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
        let rows = |t: &Tensor| t.index_select(0, &idx);
        let cols = |t: &Tensor| t.index_select(1, &idx);
        tch::no_grad(|| {
            let set = |dst: &Tensor, src: Tensor| {
                let mut d = dst.shallow_clone();
                d.copy_(&src);
            };
            set(&new.input.expand.weight, self.input.expand.weight.copy());
            set(&new.input.expand.bias, self.input.expand.bias.copy());
            set(&new.input.project.weight, rows(&self.input.project.weight));
            set(&new.input.project.bias, rows(&self.input.project.bias));
            for ((nb, na), (b, a)) in new.blocks.iter().zip(&new.alphas).zip(self.blocks.iter().zip(&self.alphas)) {
                set(&nb.expand.weight, cols(&b.expand.weight));
                set(&nb.expand.bias, b.expand.bias.copy());
                set(&nb.project.weight, rows(&b.project.weight));
                set(&nb.project.bias, rows(&b.project.bias));
                set(na, rows(a));
            }
            set(&new.output.expand.weight, cols(&self.output.expand.weight));
            set(&new.output.expand.bias, self.output.expand.bias.copy());
            set(&new.output.project.weight, self.output.project.weight.copy());
            set(&new.output.project.bias, self.output.project.bias.copy());
        });
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
