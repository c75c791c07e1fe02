//! `upscale`: one image through a model — Y by the model, Cb/Cr bicubic, RGB out.

use crate::models::Upscaler;
use anyhow::{bail, Context, Result};
use clap::Args;
use sesr::color::{from_ycbcr, to_ycbcr};
use sesr::image_io::{load_rgb, save_rgb};
use sesr::resize::upscale_bicubic;
use sesr::{Plane, RgbPlanes};
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
    /// Also write a side-by-side strip of the same crop: nearest-neighbour LR, bicubic, SESR
    /// (and the HR reference with --hr).
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// HR reference for --compare (the same scene at the output size).
    #[arg(long, requires = "compare")]
    pub hr: Option<PathBuf>,
    /// Side of the compared crop, in output pixels (centred).
    #[arg(long, default_value_t = 192)]
    pub crop: usize,
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
    if let Some(cmp) = &args.compare {
        let bicubic = img.map_planes(|p| upscale_bicubic(p, s));
        let nearest = img.map_planes(|p| Plane::from_fn(p.width * s, p.height * s, |x, y| p.get(x / s, y / s)));
        let mut panels = vec![("nearest", nearest), ("bicubic", bicubic), ("SESR", out.clone())];
        if let Some(hr) = &args.hr {
            let hr = load_rgb(hr)?;
            if hr.width() < out.width() || hr.height() < out.height() {
                bail!("{}: HR reference is smaller than the upscaled image", args.hr.as_ref().unwrap().display());
            }
            panels.push(("HR", hr));
        }
        let strip = compare_strip(&panels, args.crop);
        save_rgb(&strip, cmp).with_context(|| format!("cannot write {}", cmp.display()))?;
        let names: Vec<&str> = panels.iter().map(|p| p.0).collect();
        println!("comparison strip ({}) -> {}", names.join(" | "), cmp.display());
    }
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

/// The same centred `crop`×`crop` window of every image (the first one's size sets the centre),
/// side by side with 4-pixel white gaps.
pub fn compare_strip(panels: &[(&str, RgbPlanes)], crop: usize) -> RgbPlanes {
    let (w, h) = (panels[0].1.width(), panels[0].1.height());
    let (cw, ch) = (crop.min(w), crop.min(h));
    let (x0, y0) = ((w - cw) / 2, (h - ch) / 2);
    let gap = 4;
    let total = panels.len() * cw + (panels.len() - 1) * gap;
    let mut strip = RgbPlanes {
        r: Plane::filled(total, ch, 255.0),
        g: Plane::filled(total, ch, 255.0),
        b: Plane::filled(total, ch, 255.0),
    };
    for (i, (_, img)) in panels.iter().enumerate() {
        let ox = i * (cw + gap);
        for (dst, src) in [(&mut strip.r, &img.r), (&mut strip.g, &img.g), (&mut strip.b, &img.b)] {
            for y in 0..ch {
                for x in 0..cw {
                    dst.set(ox + x, y, src.get(x0 + x, y0 + y));
                }
            }
        }
    }
    strip
}
