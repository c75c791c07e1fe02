//! PNG plots of training metrics (loss and validation PSNR per epoch), drawn with plotters.

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// Fonts searched for axis labels (Debian's fonts-dejavu-core, installed by scripts/setup.sh).
const FONT_PATHS: [&str; 2] =
    ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];

fn ensure_font() -> Result<()> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = FONT_PATHS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| format!("no font for plot labels (looked for {})", FONT_PATHS.join(", ")))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| "invalid font".to_string())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// A parsed CSV: column names and numeric rows.
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

pub fn read_csv(path: &Path) -> Result<Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let columns: Vec<String> = lines.next().unwrap_or_default().split(',').map(str::to_string).collect();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|v| v.trim().parse::<f64>().unwrap_or(f64::NAN)).collect())
        .collect();
    Ok(Table { columns, rows })
}

impl Table {
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r.get(i).copied().unwrap_or(f64::NAN)).collect())
    }
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        v.filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

/// One panel: series of (x, y) points with names.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws panels side by side into a PNG (written to a temporary file, then renamed).
pub fn draw(panels: &[Panel], out: &Path) -> Result<()> {
    ensure_font()?;
    if panels.is_empty() {
        bail!("nothing to plot");
    }
    let tmp = out.with_file_name(format!(".{}.tmp.png", out.file_stem().unwrap_or_default().to_string_lossy()));
    {
        let root = BitMapBackend::new(&tmp, (560 * panels.len() as u32, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        for (area, p) in root.split_evenly((1, panels.len())).iter().zip(panels) {
            let (x0, x1) = range(p.series.iter().flat_map(|s| s.1.iter().map(|q| q.0)));
            let (y0, y1) = range(p.series.iter().flat_map(|s| s.1.iter().map(|q| q.1)));
            let mut chart = ChartBuilder::on(area)
                .caption(p.title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(64)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            chart.configure_mesh().x_desc(p.x_label).y_desc(p.y_label).draw()?;
            for (i, (name, pts)) in p.series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let pts: Vec<(f64, f64)> = pts.iter().copied().filter(|q| q.1.is_finite()).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                    .label(name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart.draw_series(pts.iter().map(|&q| Circle::new(q, 3, color.filled())))?;
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        }
        root.present()?;
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// `plot.png` of a training run from its `metrics.csv`: loss and validation PSNR-Y per epoch.
pub fn plot_training(csv: &Path, out: &Path) -> Result<()> {
    let t = read_csv(csv)?;
    let epochs = t.column("epoch").ok_or_else(|| anyhow!("{}: no epoch column", csv.display()))?;
    let loss = t.column("train_loss").unwrap_or_default();
    let mut panels = vec![Panel {
        title: "training loss (L1)",
        x_label: "epoch",
        y_label: "loss",
        series: vec![("L1".into(), epochs.iter().copied().zip(loss).collect())],
    }];
    let psnr: Vec<(String, Vec<(f64, f64)>)> = t
        .columns
        .iter()
        .filter_map(|c| c.strip_prefix("psnr_").map(|n| (n.to_string(), c)))
        .map(|(n, c)| (n, epochs.iter().copied().zip(t.column(c).unwrap()).collect()))
        .collect();
    if !psnr.is_empty() {
        panels.push(Panel { title: "validation PSNR-Y", x_label: "epoch", y_label: "dB", series: psnr });
    }
    draw(&panels, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_a_metrics_file() {
        let dir = std::env::temp_dir().join(format!("sesr-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("metrics.csv");
        std::fs::write(
            &csv,
            "epoch,train_loss,crops_per_s,seconds,psnr_Set5\n1,0.02,100,10,36.1\n2,0.018,100,10,36.5\n",
        )
        .unwrap();
        let png = dir.join("plot.png");
        plot_training(&csv, &png).unwrap();
        let img = image::open(&png).unwrap();
        assert_eq!((img.width(), img.height()), (1120, 420));
        // Not a blank canvas: some pixels are not white.
        assert!(img.to_rgb8().pixels().filter(|p| p.0 != [255, 255, 255]).count() > 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
