//! `cargo run -p trainer -- <command>`: train, evaluate, export and run SESR models.

mod average;
mod bench;
mod calibrate;
mod checkpoint;
mod data;
mod degrade;
mod ema;
mod eval;
mod export;
mod fit;
mod models;
mod optim;
mod plot;
mod prune;
mod rng;
mod shrink;
mod train;
mod upscale;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "trainer", version, about = "Train, evaluate, export and run SESR super-resolution models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the expanded model (the paper's recipe by default).
    Train(train::TrainArgs),
    /// Score a model or bicubic on benchmark folders (PSNR-Y, SSIM-Y), on clean or coded input.
    Eval(EvalArgs),
    /// Write training pairs whose LR went through real codecs (H.264, HEVC, VP8/9, MPEG-2, JPEG).
    Degrade(degrade::mix::DegradeArgs),
    /// Export a checkpoint's collapsed model as TorchScript (+ JSON sidecar).
    Export(export::ExportArgs),
    /// Calibrate an exported model for the int8 kernel (stored in its sidecar).
    Calibrate(calibrate::CalibrateArgs),
    /// Upscale one image (Y by the model, chroma bicubic).
    Upscale(upscale::UpscaleArgs),
    /// Iterative magnitude pruning with rewind (lottery tickets).
    Prune(prune::PruneArgs),
    /// Structured pruning: keep the most important feature channels (f 16 → 12 → 8).
    Shrink(shrink::ShrinkArgs),
    /// Average the weights of checkpoints of one run (e.g. its last epochs).
    Average(average::AverageArgs),
    /// Benchmark training throughput: collapse-in-forward vs the expanded network.
    BenchTrain(bench::BenchArgs),
    /// (Re)draw a run's plot.png from its metrics.csv.
    Plot {
        /// Run folder.
        run: PathBuf,
    },
}

#[derive(Args)]
struct EvalArgs {
    /// Folders of HR images (e.g. Set5 Set14).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// TorchScript file or checkpoint folder.
    #[arg(long, required_unless_present = "method")]
    model: Option<PathBuf>,
    /// `bicubic` to score the baseline instead of a model.
    #[arg(long, value_parser = ["bicubic"])]
    method: Option<String>,
    /// Scale for `--method bicubic`.
    #[arg(long, default_value_t = 2)]
    scale: usize,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Run the model through the element's native CPU kernel in this precision (fp32, bf16),
    /// with 8-bit Y in and out as in the element.
    #[arg(long)]
    native: Option<sesr::model::Precision>,
    /// With `--native int8`: folders of training images whose LR crops calibrate the
    /// activation ranges (never the evaluation images). Without it, the calibration stored in
    /// the model's sidecar by `trainer calibrate` is used.
    #[arg(long, num_args = 1..)]
    calib: Vec<PathBuf>,
    /// Score the self-ensemble: the mean of the outputs over the 8 flips and turns of the
    /// input (8× the time; the "+" numbers of SR papers, not what the element runs).
    #[arg(long)]
    self_ensemble: bool,
    /// Score on LR input coded and decoded first, as video reaches the element: one or more of
    /// `clean`, `CODEC:LEVEL[:inter]` with CODEC h264, h265 (QP), vp8, vp9 (quantiser 0-63),
    /// mpeg2 (quantiser scale), jpeg (quality), e.g. `--degrade clean h264:24 h264:32 jpeg:60`.
    /// Deterministic: the same numbers on every run.
    #[arg(long, num_args = 1.., value_parser = degrade::parse_degrade)]
    degrade: Vec<Option<degrade::Degradation>>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn eval(args: EvalArgs) -> Result<()> {
    let device = sesr::tensor::parse_device(&args.device)?;
    let (up, name) = match (&args.model, &args.method) {
        (Some(m), _) => match args.native {
            Some(p) => (models::Upscaler::load_native(m, p, &args.calib)?, format!("{} native {p:?}", m.display())),
            None => (models::Upscaler::load(m, device)?, m.display().to_string()),
        },
        (None, _) => (models::Upscaler::Bicubic { scale: args.scale }, "bicubic".to_string()),
    };
    let sets = eval::load_sets(&args.dirs, up.scale(), &|m| eprintln!("warning: {m}"))?;
    let name = if args.self_ensemble { format!("{name} x8") } else { name };
    let inputs = if args.degrade.is_empty() { vec![None] } else { args.degrade.clone() };
    let mut results = Vec::new();
    for d in &inputs {
        let coded = match d {
            None => None,
            Some(d) => Some(sets.iter().map(|s| degrade::coded_set(s, d)).collect::<Result<Vec<_>>>()?),
        };
        let scores = eval::evaluate_with(&up, coded.as_ref().unwrap_or(&sets), args.self_ensemble)?;
        results.push((d.map(|d| d.to_string()).unwrap_or_else(|| "clean".into()), scores));
    }
    if args.json {
        let input = |(d, s): &(String, Vec<eval::SetScore>)| serde_json::json!({"input": d, "sets": s});
        let mut v = serde_json::json!({"method": name, "scale": up.scale(), "self_ensemble": args.self_ensemble});
        if args.degrade.is_empty() {
            v["sets"] = serde_json::to_value(&results[0].1)?;
        } else {
            v["inputs"] = results.iter().map(input).collect();
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if args.degrade.is_empty() {
        eval::print_table(&name, &results[0].1);
    } else {
        eval::print_input_table(&name, &results);
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval(a),
        Command::Degrade(a) => degrade::mix::run(a),
        Command::Export(a) => export::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::Upscale(a) => upscale::run(a),
        Command::Average(a) => average::run(a),
        Command::BenchTrain(a) => bench::run(a),
        Command::Prune(a) => prune::run(a),
        Command::Shrink(a) => shrink::run(a),
        Command::Plot { run } => plot::plot_training(&run.join("metrics.csv"), &run.join("plot.png"))
            .map(|_| println!("wrote {}", run.join("plot.png").display())),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
