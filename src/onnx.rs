//! ONNX export of the collapsed network, for ONNX Runtime, OpenVINO, VapourSynth's vs-mlrt and
//! other tools: `y = Clip(DepthToSpace(Conv_out(blocks(f0) + f0) + x), 0, 1)` with
//! `f0 = Conv_in(x − ½)` and each block `PRelu(Conv(h))` — the TorchScript model's graph, with
//! standard operators only (Sub, Conv, PRelu, Add, DepthToSpace in CRD mode = `pixel_shuffle`,
//! Clip), opset 17, float32 input `[N, 1, H, W]` in [0, 1] with dynamic N, H, W.
//!
//! The file is written directly as protocol buffers (the handful of `onnx.proto` messages the
//! graph needs), so no ONNX library is required.

use crate::weights::{CollapsedWeights, ConvWeights};

/// The opset the graph is written for.
pub const OPSET: i64 = 17;
/// ONNX IR version 8 (the one of opsets 17–18).
const IR_VERSION: i64 = 8;

/// A protocol-buffer message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(((field << 3) | wire) as u64);
    }

    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// `TensorProto` of float32 `data` with `dims`.
fn tensor(name: &str, dims: &[usize], data: &[f32]) -> Msg {
    let mut t = Msg::default();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, 1); // FLOAT
    t.str(8, name);
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// `ValueInfoProto` of a float32 tensor; dims are names (dynamic) or sizes.
fn value_info(name: &str, dims: &[Result<usize, &str>]) -> Msg {
    let mut shape = Msg::default();
    for d in dims {
        let mut dim = Msg::default();
        match d {
            Ok(v) => dim.int(1, *v as i64),
            Err(p) => dim.str(2, p),
        };
        shape.msg(1, &dim);
    }
    let mut tt = Msg::default();
    tt.int(1, 1).msg(2, &shape);
    let mut ty = Msg::default();
    ty.msg(1, &tt);
    let mut vi = Msg::default();
    vi.str(1, name).msg(2, &ty);
    vi
}

enum Attr<'a> {
    Int(i64),
    Ints(&'a [i64]),
    Str(&'a str),
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> Msg {
    let mut n = Msg::default();
    for i in inputs {
        n.str(1, i);
    }
    for o in outputs {
        n.str(2, o);
    }
    n.str(3, name).str(4, op);
    for (an, a) in attrs {
        let mut m = Msg::default();
        m.str(1, an);
        match a {
            Attr::Int(v) => m.int(3, *v).int(20, 2),
            Attr::Ints(vs) => {
                for &v in vs.iter() {
                    m.int(8, v);
                }
                m.int(20, 7)
            }
            Attr::Str(s) => m.bytes(4, s.as_bytes()).int(20, 3),
        };
        n.msg(5, &m);
    }
    n
}

/// The collapsed network `w` as an ONNX model file's bytes.
pub fn to_onnx(w: &CollapsedWeights) -> Vec<u8> {
    let mut graph = Msg::default();
    let mut inits: Vec<Msg> = Vec::new();
    let mut nodes: Vec<Msg> = Vec::new();
    let conv = |name: &str, input: &str, c: &ConvWeights, inits: &mut Vec<Msg>| -> Msg {
        let (wn, bn) = (format!("{name}.weight"), format!("{name}.bias"));
        inits.push(tensor(&wn, &[c.cout, c.cin, c.k, c.k], &c.weight));
        inits.push(tensor(&bn, &[c.cout], &c.bias));
        let p = (c.k / 2) as i64;
        node(
            "Conv",
            name,
            &[input, &wn, &bn],
            &[name],
            &[("kernel_shape", Attr::Ints(&[c.k as i64, c.k as i64])), ("pads", Attr::Ints(&[p, p, p, p]))],
        )
    };
    inits.push(tensor("half", &[], &[0.5]));
    inits.push(tensor("zero", &[], &[0.0]));
    inits.push(tensor("one", &[], &[1.0]));
    nodes.push(node("Sub", "centre", &["x", "half"], &["centred"], &[]));
    nodes.push(conv("input", "centred", &w.input, &mut inits));
    let mut h = "input".to_string();
    for (i, (c, alpha)) in w.blocks.iter().enumerate() {
        let name = format!("block{i}");
        nodes.push(conv(&name, &h, c, &mut inits));
        let (an, pn) = (format!("{name}.alpha"), format!("{name}.prelu"));
        inits.push(tensor(&an, &[alpha.len(), 1, 1], alpha));
        nodes.push(node("PRelu", &pn, &[&name, &an], &[&pn], &[]));
        h = pn;
    }
    nodes.push(node("Add", "residual", &[&h, "input"], &["residual"], &[]));
    nodes.push(conv("output", "residual", &w.output, &mut inits));
    nodes.push(node("Add", "plus_x", &["output", "x"], &["plus_x"], &[]));
    // pixel_shuffle(2) once for ×2, twice for ×4 (the model's order): DepthToSpace, CRD.
    let mut up = "plus_x".to_string();
    let steps = if w.cfg.scale == 4 { 2 } else { 1 };
    for s in 0..steps {
        let name = format!("shuffle{s}");
        let bs = if w.cfg.scale == 4 { 2 } else { w.cfg.scale as i64 };
        nodes.push(node(
            "DepthToSpace",
            &name,
            &[&up],
            &[&name],
            &[("blocksize", Attr::Int(bs)), ("mode", Attr::Str("CRD"))],
        ));
        up = name;
    }
    nodes.push(node("Clip", "clip", &[&up, "zero", "one"], &["y"], &[]));
    for n in &nodes {
        graph.msg(1, n);
    }
    graph.str(2, "sesr");
    for t in &inits {
        graph.msg(5, t);
    }
    graph.str(10, "SESR collapsed network: y [N,1,sH,sW] = upscaled Y of x [N,1,H,W], both float32 in [0,1]");
    graph.msg(11, &value_info("x", &[Err("N"), Ok(1), Err("H"), Err("W")]));
    graph.msg(12, &value_info("y", &[Err("N"), Ok(1), Err("sH"), Err("sW")]));
    let mut opset = Msg::default();
    opset.str(1, "").int(2, OPSET);
    let mut model = Msg::default();
    model.int(1, IR_VERSION).str(2, "sesr").str(3, env!("CARGO_PKG_VERSION")).msg(7, &graph).msg(8, &opset);
    // A scalar for tools that read the scale from the metadata (`metadata_props`, key/value).
    let mut prop = Msg::default();
    prop.str(1, "scale").str(2, &w.cfg.scale.to_string());
    model.msg(14, &prop);
    model.0
}
