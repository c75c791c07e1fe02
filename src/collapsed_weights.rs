//! The collapsed network's weights as plain float32 arrays ([`CollapsedWeights`], a
//! [`ConvWeights`] per convolution) and the arithmetic [`Precision`] they run in: what the native
//! kernel and its int8 path read. The exported files around them (the safetensors file and its
//! sidecar, digests, the int8 calibration) are [`crate::weights`]'s; these types are re-exported
//! there, under `sesr::weights`.

use crate::config::SesrConfig;
use crate::Error;

/// Arithmetic precision of an exported model or of the native kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 (the default).
    Fp32,
    /// bfloat16: fast on CPUs with AVX512-BF16 or AMX.
    Bf16,
    /// float16: for CUDA.
    Fp16,
    /// 8-bit integers (native kernel only, with calibrated activation ranges).
    Int8,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "fp16" | "float16" | "half" => Ok(Precision::Fp16),
            "int8" => Ok(Precision::Int8),
            _ => Err(Error::Config(format!("unknown precision '{s}' (expected fp32, bf16, fp16 or int8)"))),
        }
    }
}

/// One k×k convolution: OIHW weights and a bias per output channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    pub cout: usize,
    pub cin: usize,
    pub k: usize,
    /// `cout·cin·k·k` values, OIHW.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The collapsed SESR network: input 5×5 conv, `m` 3×3 blocks with PReLU slopes, output 5×5 conv.
#[derive(Debug, Clone, PartialEq)]
pub struct CollapsedWeights {
    pub cfg: SesrConfig,
    pub input: ConvWeights,
    /// Each block's conv and PReLU slopes.
    pub blocks: Vec<(ConvWeights, Vec<f32>)>,
    pub output: ConvWeights,
}

impl CollapsedWeights {
    /// The tensor names and shapes of `cfg`'s network, in order (the safetensors names of
    /// `CollapsedSesr::named_tensors`).
    pub fn layout(cfg: &SesrConfig) -> Vec<(String, Vec<usize>)> {
        let (f, s2) = (cfg.f, cfg.out_channels());
        let mut v = vec![("input.weight".to_string(), vec![f, 1, 5, 5]), ("input.bias".to_string(), vec![f])];
        for i in 0..cfg.m {
            v.push((format!("block{i}.weight"), vec![f, f, 3, 3]));
            v.push((format!("block{i}.bias"), vec![f]));
            v.push((format!("block{i}.alpha"), vec![f]));
        }
        v.push(("output.weight".to_string(), vec![s2, f, 5, 5]));
        v.push(("output.bias".to_string(), vec![s2]));
        v
    }

    /// From named float32 arrays, each checked against `cfg` (names, shapes, finite values;
    /// no tensor missing, none extra).
    pub fn from_named(cfg: SesrConfig, named: Vec<(String, Vec<usize>, Vec<f32>)>) -> Result<Self, Error> {
        cfg.validate()?;
        let mut map: std::collections::HashMap<String, (Vec<usize>, Vec<f32>)> =
            named.into_iter().map(|(n, s, d)| (n, (s, d))).collect();
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, Error> {
            let (s, d) = map.remove(name).ok_or_else(|| Error::Model(format!("missing tensor '{name}'")))?;
            if s != shape {
                return Err(Error::Model(format!("tensor '{name}' has shape {s:?}, expected {shape:?}")));
            }
            if d.len() != shape.iter().product::<usize>() {
                return Err(Error::Model(format!("tensor '{name}' holds {} values for shape {shape:?}", d.len())));
            }
            if let Some(bad) = d.iter().find(|v| !v.is_finite()) {
                return Err(Error::Model(format!("tensor '{name}' holds a non-finite value ({bad})")));
            }
            Ok(d)
        };
        let (f, s2) = (cfg.f, cfg.out_channels());
        let mut conv = |name: &str, cout: usize, cin: usize, k: usize| -> Result<ConvWeights, Error> {
            Ok(ConvWeights {
                cout,
                cin,
                k,
                weight: take(&format!("{name}.weight"), &[cout, cin, k, k])?,
                bias: take(&format!("{name}.bias"), &[cout])?,
            })
        };
        let input = conv("input", f, 1, 5)?;
        let mut blocks = Vec::with_capacity(cfg.m);
        for i in 0..cfg.m {
            blocks.push(conv(&format!("block{i}"), f, f, 3)?);
        }
        let output = conv("output", s2, f, 5)?;
        let blocks = blocks
            .into_iter()
            .enumerate()
            .map(|(i, c)| Ok((c, take(&format!("block{i}.alpha"), &[f])?)))
            .collect::<Result<Vec<_>, Error>>()?;
        if let Some(extra) = map.keys().next() {
            return Err(Error::Model(format!("unexpected tensor '{extra}' for config {cfg:?}")));
        }
        Ok(CollapsedWeights { cfg, input, blocks, output })
    }

    /// From the bytes of a float32 safetensors file.
    pub fn from_safetensors_bytes(cfg: SesrConfig, bytes: &[u8]) -> Result<Self, Error> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::Model(format!("weights: {e}")))?;
        let mut named = Vec::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(Error::Model(format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
            }
            let data: Vec<f32> =
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            named.push((name, view.shape().to_vec(), data));
        }
        Self::from_named(cfg, named)
    }

    /// Named arrays in [`layout`](Self::layout) order.
    pub fn named(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let mut arrays: Vec<&[f32]> = vec![&self.input.weight, &self.input.bias];
        for (c, a) in &self.blocks {
            arrays.extend([&c.weight[..], &c.bias[..], &a[..]]);
        }
        arrays.extend([&self.output.weight[..], &self.output.bias[..]]);
        Self::layout(&self.cfg).into_iter().zip(arrays).map(|((n, s), d)| (n, s, d)).collect()
    }

    /// The bytes of a float32 safetensors file holding these weights.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>, Error> {
        let named = self.named();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
            named.into_iter().map(|(n, s, d)| (n, s, d.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
        let views = bytes
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Model(format!("weights: {e:?}")))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        safetensors::tensor::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), &None)
            .map_err(|e| Error::Model(format!("weights: {e:?}")))
    }
}
