//! `bench-train`: training throughput (crops/s) of one AMSGrad step through the
//! collapse-in-forward path, side by side with the same step through the expanded network.

use crate::optim::AmsGrad;
use crate::train::set_threads;
use anyhow::Result;
use clap::Args;
use sesr::{ExpandedSesr, Preset};
use std::time::Instant;
use tch::{nn::VarStore, Kind, Tensor};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Models to measure.
    #[arg(long, num_args = 1.., default_values = ["m3", "m5"])]
    pub models: Vec<Preset>,
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, default_value_t = 64)]
    pub crop: usize,
    /// Timed steps per configuration (after 2 warm-up steps); the median step time is used.
    #[arg(long, default_value_t = 6)]
    pub steps: usize,
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long)]
    pub threads: Option<usize>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(args: BenchArgs) -> Result<()> {
    set_threads(args.threads);
    let device = sesr::tensor::parse_device(&args.device)?;
    println!(
        "training step: batch {} of {}x{} LR crops, x{}, AMSGrad, L1; device {device:?}, {} libtorch threads",
        args.batch,
        args.crop,
        args.crop,
        args.scale,
        tch::get_num_threads()
    );
    println!("{:<6} {:<22} {:>12} {:>10} {:>9}", "model", "forward", "step (ms)", "crops/s", "speed-up");
    for preset in &args.models {
        let cfg = preset.config(args.scale);
        let mut rates = Vec::new();
        for expanded in [true, false] {
            tch::manual_seed(0);
            let vs = VarStore::new(device);
            let model = ExpandedSesr::new(&vs.root(), cfg);
            let mut opt = AmsGrad::new(&vs, 5e-4, 1e-7);
            let c = args.crop as i64;
            let lr = Tensor::rand([args.batch as i64, 1, c, c], (Kind::Float, device));
            let hr = Tensor::rand(
                [args.batch as i64, 1, c * args.scale as i64, c * args.scale as i64],
                (Kind::Float, device),
            );
            let mut times = Vec::new();
            for i in 0..args.steps + 2 {
                let t0 = Instant::now();
                let sr = if expanded { model.forward_expanded(&lr) } else { model.forward_collapsing(&lr) };
                let loss = (sr - &hr).abs().mean(Kind::Float);
                opt.zero_grad();
                loss.backward();
                opt.step();
                let _ = loss.double_value(&[]);
                if let tch::Device::Cuda(i) = device {
                    tch::Cuda::synchronize(i as i64);
                }
                if i >= 2 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            let t = median(times);
            rates.push(args.batch as f64 / t);
            let label = if expanded { "expanded (baseline)" } else { "collapse-in-forward" };
            let speedup = if expanded { "1.00x".to_string() } else { format!("{:.2}x", rates[1] / rates[0]) };
            println!(
                "{:<6} {:<22} {:>12.1} {:>10.1} {:>9}",
                preset.name(),
                label,
                t * 1e3,
                args.batch as f64 / t,
                speedup
            );
        }
    }
    Ok(())
}
