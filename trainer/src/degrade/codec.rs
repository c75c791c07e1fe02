//! Pictures through GStreamer's real encoders and decoders: 8-bit RGB → I420 (BT.601 studio
//! swing, chroma averaged over 2×2 as 4:2:0 streams carry it) → encoder → decoder → the Y plane
//! exactly as a decoder hands it to `sesrupscale`.
//!
//! Every encoder runs on one thread at a constant quantiser or quality, so the same picture and
//! [`Degradation`] always give the same bytes.

use super::spec::{Codec, Degradation, Frames};
use anyhow::{anyhow, bail, Context, Result};
use gst::prelude::*;
use gst_video::prelude::*;
use sesr::color::rgb_to_ycbcr;
use sesr::RgbPlanes;
use std::sync::Once;

/// An 8-bit I420 picture of even size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Yuv420 {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Yuv420 {
    /// The picture of `rgb` (0..=255 planes), its right column and bottom row repeated where a
    /// dimension is odd.
    pub fn from_rgb(rgb: &RgbPlanes) -> Yuv420 {
        Self::padded(rgb, 0, 0, 2)
    }

    /// The picture of `rgb` moved by (`dx`, `dy`) pixels (sample (x, y) is the image's
    /// (x − dx, y − dy), edges repeated: one frame of a pan), its size padded (edges repeated)
    /// to a multiple of `to` (even, for 4:2:0).
    pub fn padded(rgb: &RgbPlanes, dx: i64, dy: i64, to: usize) -> Yuv420 {
        let (w, h) = (rgb.width(), rgb.height());
        let (ew, eh) = (w.next_multiple_of(to), h.next_multiple_of(to));
        let mut ycc = vec![[0f32; 3]; ew * eh];
        for y in 0..eh {
            let sy = (y as i64 - dy).clamp(0, h as i64 - 1) as usize;
            for x in 0..ew {
                let sx = (x as i64 - dx).clamp(0, w as i64 - 1) as usize;
                let i = sy * w + sx;
                ycc[y * ew + x] = rgb_to_ycbcr(rgb.r.data[i], rgb.g.data[i], rgb.b.data[i]);
            }
        }
        let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        let y = ycc.iter().map(|p| q(p[0])).collect();
        let (cw, ch) = (ew / 2, eh / 2);
        let mut u = Vec::with_capacity(cw * ch);
        let mut v = Vec::with_capacity(cw * ch);
        for cy in 0..ch {
            for cx in 0..cw {
                let at = |dx: usize, dy: usize| ycc[(2 * cy + dy) * ew + 2 * cx + dx];
                let (a, b, c, d) = (at(0, 0), at(1, 0), at(0, 1), at(1, 1));
                u.push(q((a[1] + b[1] + c[1] + d[1]) / 4.0));
                v.push(q((a[2] + b[2] + c[2] + d[2]) / 4.0));
            }
        }
        Yuv420 { width: ew, height: eh, y, u, v }
    }

    /// The picture in GStreamer's default I420 layout (rows padded to 4 bytes).
    fn buffer(&self) -> Result<gst::Buffer> {
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, self.width as u32, self.height as u32)
            .build()?;
        let mut data = vec![0u8; info.size()];
        for (k, plane, w) in [(0, &self.y, self.width), (1, &self.u, self.width / 2), (2, &self.v, self.width / 2)] {
            let (off, stride) = (info.offset()[k], info.stride()[k] as usize);
            for (r, row) in plane.chunks_exact(w).enumerate() {
                data[off + r * stride..off + r * stride + w].copy_from_slice(row);
            }
        }
        Ok(gst::Buffer::from_mut_slice(data))
    }
}

/// How many frames an inter clip has, and which of them is kept: the next-to-last, a B frame
/// where the codec makes B frames, a P frame otherwise.
pub const CLIP_FRAMES: usize = 8;
pub const CLIP_TARGET: usize = CLIP_FRAMES - 2;

fn init() -> Result<()> {
    static INIT: Once = Once::new();
    let mut err = None;
    INIT.call_once(|| err = gst::init().err());
    match err {
        Some(e) => Err(anyhow!("GStreamer could not start: {e}")),
        None => Ok(()),
    }
}

/// The encoder and decoder of `d` as a `gst-launch-1.0` fragment; `gop` frames a key frame.
pub fn coder_chain(d: &Degradation, gop: usize) -> String {
    let q = d.level;
    let inter = d.frames == Frames::Inter;
    let bframes = if inter { 2 } else { 0 };
    match d.codec {
        // Intra pictures are coded at the QP asked (ip-factor 1); in a clip x264's own ratios
        // put the key frame below it and B frames above it, as in any stream.
        Codec::H264 => format!(
            "x264enc pass=quant quantizer={q} threads=1 key-int-max={gop} bframes={bframes} b-adapt=false \
             {ip} ! h264parse ! avdec_h264 max-threads=1",
            ip = if inter { "" } else { "ip-factor=1.0" }
        ),
        Codec::H265 => format!(
            "x265enc qp={q} key-int-max={gop} option-string=\"pools=none:frame-threads=1:lookahead-slices=0:\
             bframes={bframes}:b-adapt=0:log-level=none{ip}\" ! h265parse ! avdec_h265 max-threads=1",
            ip = if inter { "" } else { ":ipratio=1.0" }
        ),
        Codec::Vp8 | Codec::Vp9 => format!(
            "{name}enc end-usage=cq cq-level={q} min-quantizer={q} max-quantizer={q} threads=1 deadline=1 \
             cpu-used=4 lag-in-frames=0 keyframe-max-dist={gop} ! {name}dec",
            name = d.codec.name()
        ),
        // mjpegtools' encoder: libav's (avenc_mpeg2video) refuses every frame rate in
        // GStreamer 1.22 ("does not support 1000000000/1 fps").
        Codec::Mpeg2 => format!(
            "mpeg2enc format=3 quantisation={q} min-gop-size={gop} max-gop-size={gop} b-per-refframe={bframes} ! \
             mpegvideoparse ! avdec_mpeg2video max-threads=1"
        ),
        Codec::Jpeg => format!("jpegenc quality={q} ! jpegdec"),
    }
}

/// Codes `frames` (all of one size) as one stream and returns each decoded Y plane, in display
/// order, cropped to `width`×`height`.
pub fn roundtrip(frames: &[Yuv420], d: &Degradation, width: usize, height: usize) -> Result<Vec<Vec<u8>>> {
    init()?;
    let Some(first) = frames.first() else { bail!("no frames to code") };
    let (fw, fh) = (first.width, first.height);
    let launch = format!(
        "appsrc name=src format=time caps=video/x-raw,format=I420,width={fw},height={fh},framerate=25/1,\
         interlace-mode=progressive,colorimetry=bt601,pixel-aspect-ratio=1/1 ! {} ! videoconvert ! \
         video/x-raw,format=I420 ! appsink name=sink sync=false",
        coder_chain(d, frames.len())
    );
    let pipeline = gst::parse::launch(&launch)
        .with_context(|| format!("{d}: GStreamer could not build `{launch}` (is the codec's plugin installed?)"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
    let src = pipeline.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).context("appsrc")?;
    let sink = pipeline.by_name("sink").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).context("appsink")?;
    let result = (|| -> Result<Vec<Vec<u8>>> {
        pipeline.set_state(gst::State::Playing).with_context(|| format!("{d}: the pipeline did not start"))?;
        for (i, f) in frames.iter().enumerate() {
            let mut buf = f.buffer()?;
            {
                let b = buf.get_mut().unwrap();
                b.set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
                b.set_duration(gst::ClockTime::from_mseconds(40));
            }
            src.push_buffer(buf).map_err(|e| anyhow!("{d}: pushing frame {i}: {e:?}"))?;
        }
        src.end_of_stream().map_err(|e| anyhow!("{d}: end of stream: {e:?}"))?;
        let mut out = Vec::new();
        while let Ok(sample) = sink.pull_sample() {
            let buf = sample.buffer().context("a sample without a buffer")?;
            let info = gst_video::VideoInfo::from_caps(sample.caps().context("a sample without caps")?)?;
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info)
                .map_err(|_| anyhow!("{d}: unreadable decoded frame"))?;
            let (data, stride) = (frame.plane_data(0)?, frame.plane_stride()[0] as usize);
            if frame.width() as usize != fw || frame.height() as usize != fh {
                bail!("{d}: decoded {}x{}, coded {fw}x{fh}", frame.width(), frame.height());
            }
            let mut y = Vec::with_capacity(width * height);
            for r in 0..height {
                y.extend_from_slice(&data[r * stride..r * stride + width]);
            }
            out.push(y);
        }
        Ok(out)
    })();
    let bus_error = pipeline.bus().and_then(|bus| {
        bus.iter().find_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        })
    });
    let _ = pipeline.set_state(gst::State::Null);
    let out = result?;
    if let Some(e) = bus_error {
        bail!("{d}: {e}");
    }
    if out.len() != frames.len() {
        bail!("{d}: {} frames coded, {} decoded", frames.len(), out.len());
    }
    Ok(out)
}

/// The Y plane (8-bit code values, `w`×`h` of `lr`) that a decoder hands over for the 8-bit RGB
/// picture `lr` coded as `d`. Intra: the picture alone. Inter: frame [`CLIP_TARGET`] of a
/// [`CLIP_FRAMES`]-frame pan that moves (`step_x`, `step_y`) pixels a frame and passes over the
/// picture exactly at that frame.
pub fn degrade_y(lr: &RgbPlanes, d: &Degradation, step: (i64, i64)) -> Result<Vec<u8>> {
    let (w, h) = (lr.width(), lr.height());
    if w < 2 || h < 2 {
        bail!("{w}x{h} is too small to code");
    }
    // mpeg2enc reads the padding of a picture whose sides are not multiples of 16 from memory
    // it never wrote (measured: two runs differ at the right edge); it gets whole macroblocks.
    let pad = if d.codec == Codec::Mpeg2 { 16 } else { 2 };
    match d.frames {
        // mpeg2enc codes the first pictures of a stream coarser than its quantisation asks
        // (measured: the same PSNR at every level); its intra pictures are taken from a run of
        // key frames instead.
        Frames::Intra if d.codec == Codec::Mpeg2 => {
            Ok(roundtrip(&vec![Yuv420::padded(lr, 0, 0, pad); CLIP_FRAMES], d, w, h)?.swap_remove(CLIP_TARGET))
        }
        Frames::Intra => Ok(roundtrip(&[Yuv420::from_rgb(lr)], d, w, h)?.remove(0)),
        Frames::Inter => {
            let frames: Vec<Yuv420> = (0..CLIP_FRAMES)
                .map(|k| {
                    let t = k as i64 - CLIP_TARGET as i64;
                    Yuv420::padded(lr, t * step.0, t * step.1, pad)
                })
                .collect();
            Ok(roundtrip(&frames, d, w, h)?.swap_remove(CLIP_TARGET))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sesr::Plane;

    fn photo(w: usize, h: usize) -> RgbPlanes {
        // Smooth gradients with a few sharp edges: something a codec has to work at.
        let p = |f: &dyn Fn(usize, usize) -> f32| Plane::from_fn(w, h, |x, y| f(x, y).round().clamp(0.0, 255.0));
        RgbPlanes {
            r: p(&|x, y| 128.0 + 100.0 * ((x as f32 * 0.21).sin() * (y as f32 * 0.13).cos())),
            g: p(&|x, y| if (x / 7 + y / 5) % 2 == 0 { 40.0 } else { 210.0 }),
            b: p(&|x, y| (x * 3 + y * 2) as f32 % 256.0),
        }
    }

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let mse = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.len() as f64;
        10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
    }

    #[test]
    fn every_codec_degrades_more_at_worse_levels_and_repeats_itself() {
        let img = photo(67, 45); // odd on purpose: padded for 4:2:0, cropped back
        let clean = Yuv420::from_rgb(&img);
        let clean_y: Vec<u8> = (0..45).flat_map(|r| clean.y[r * 68..r * 68 + 67].to_vec()).collect();
        for codec in Codec::ALL {
            let (lo, hi, worse_up) = codec.level_range();
            let (good, bad) = if worse_up { (lo + (hi - lo) / 5, hi - (hi - lo) / 8) } else { (90, 15) };
            for frames in [Frames::Intra, Frames::Inter] {
                if frames == Frames::Inter && !codec.has_inter() {
                    continue;
                }
                let g = Degradation { codec, level: good, frames };
                let b = Degradation { codec, level: bad, frames };
                let yg = degrade_y(&img, &g, (2, 1)).unwrap();
                let yb = degrade_y(&img, &b, (2, 1)).unwrap();
                assert_eq!(yg.len(), 67 * 45);
                let (pg, pb) = (psnr(&yg, &clean_y), psnr(&yb, &clean_y));
                assert!(pg > pb + 1.0, "{g}: {pg:.2} dB, {b}: {pb:.2} dB");
                assert!(pb < 40.0, "{b} should visibly degrade: {pb:.2} dB");
                let again = degrade_y(&img, &b, (2, 1)).unwrap();
                let differ = again.iter().zip(&yb).filter(|(a, b)| a != b).count();
                assert_eq!(differ, 0, "{b} is not reproducible: {differ} samples differ");
            }
        }
    }

    #[test]
    fn a_pan_frame_is_the_image_moved() {
        let img = photo(10, 6);
        let f = Yuv420::padded(&img, 2, -1, 2);
        let f0 = Yuv420::from_rgb(&img);
        assert_eq!(f.y[3 * 10 + 5], f0.y[4 * 10 + 3]);
        assert_eq!(f.y[0], f0.y[10], "left edge repeated");
    }
}
