//! `upscale`: one image through a model — Y by the model, Cb/Cr bicubic, RGB out.

use crate::models::Upscaler;
use anyhow::{Context, Result};
use clap::Args;
use sesr::color::{from_ycbcr, to_ycbcr};
use sesr::image_io::{load_rgb, save_rgb};
use sesr::resize::upscale_bicubic;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct UpscaleArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    /// TorchScript file or checkpoint folder.
    #[arg(long)]
    pub model: PathBuf,
    /// auto | cpu | cuda | cuda:N
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn run(args: UpscaleArgs) -> Result<()> {
    let device = sesr::tensor::parse_device(&args.device)?;
    let up = Upscaler::load(&args.model, device)?;
    let img = load_rgb(&args.input)?;
    let s = up.scale();
    let [y, cb, cr] = to_ycbcr(&img);
    let sr_y = up.upscale_y(&y.map(|v| v / 255.0))?.map(|v| v * 255.0);
    let out = from_ycbcr(&sr_y, &upscale_bicubic(&cb, s), &upscale_bicubic(&cr, s));
    save_rgb(&out, &args.output).with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{} ({}x{}) -> {} ({}x{}) with {}",
        args.input.display(),
        img.width(),
        img.height(),
        args.output.display(),
        out.width(),
        out.height(),
        up.describe()
    );
    Ok(())
}
