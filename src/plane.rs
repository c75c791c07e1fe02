//! Planar floating-point images.

/// One image plane of `f32` samples, row-major, tightly packed.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Plane {
    pub fn new(width: usize, height: usize) -> Self {
        Plane { width, height, data: vec![0.0; width * height] }
    }

    pub fn filled(width: usize, height: usize, v: f32) -> Self {
        Plane { width, height, data: vec![v; width * height] }
    }

    pub fn from_vec(width: usize, height: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), width * height, "plane data length");
        Plane { width, height, data }
    }

    pub fn from_fn(width: usize, height: usize, f: impl Fn(usize, usize) -> f32) -> Self {
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                data.push(f(x, y));
            }
        }
        Plane { width, height, data }
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    #[inline]
    pub fn set(&mut self, x: usize, y: usize, v: f32) {
        self.data[y * self.width + x] = v;
    }

    pub fn row(&self, y: usize) -> &[f32] {
        &self.data[y * self.width..(y + 1) * self.width]
    }

    /// The sub-rectangle `[x0, x0+w) × [y0, y0+h)`.
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Plane {
        assert!(x0 + w <= self.width && y0 + h <= self.height, "crop outside the plane");
        let mut data = Vec::with_capacity(w * h);
        for y in y0..y0 + h {
            data.extend_from_slice(&self.data[y * self.width + x0..y * self.width + x0 + w]);
        }
        Plane { width: w, height: h, data }
    }

    pub fn map(&self, f: impl Fn(f32) -> f32) -> Plane {
        Plane { width: self.width, height: self.height, data: self.data.iter().map(|&v| f(v)).collect() }
    }

    /// One of the 8 symmetries of the square (`t` in 0..8): transposed if `t & 4`, then
    /// mirrored left-right if `t & 1`, then upside down if `t & 2`. [`Plane::undihedral`] undoes
    /// it; the self-ensemble (`trainer eval --self-ensemble`) averages a model over all 8.
    pub fn dihedral(&self, t: u8) -> Plane {
        let (w, h) = if t & 4 != 0 { (self.height, self.width) } else { (self.width, self.height) };
        Plane::from_fn(w, h, |x, y| {
            let x = if t & 1 != 0 { w - 1 - x } else { x };
            let y = if t & 2 != 0 { h - 1 - y } else { y };
            if t & 4 != 0 {
                self.get(y, x)
            } else {
                self.get(x, y)
            }
        })
    }

    /// The inverse of [`Plane::dihedral`]`(t)`: `p.dihedral(t).undihedral(t) == p`.
    pub fn undihedral(&self, t: u8) -> Plane {
        self.dihedral(inverse_symmetry(t))
    }

    /// Samples in \[0, 1\] quantised to 8 bits and back: `round(clamp(v,0,1)·255)/255`.
    pub fn quantize_unit(&self) -> Plane {
        self.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0)
    }
}

/// The symmetry that undoes [`Plane::dihedral`]`(t)`. Flips are their own inverses; undoing a
/// transpose followed by flips means the flips first, and a flip before a transpose is the other
/// axis's flip after it: so with `t & 4` the two flip bits trade places.
pub fn inverse_symmetry(t: u8) -> u8 {
    if t & 4 != 0 {
        4 | (t & 1) << 1 | (t & 2) >> 1
    } else {
        t
    }
}

/// An RGB image as three planes, samples in 0..=255 (not necessarily integral).
#[derive(Debug, Clone, PartialEq)]
pub struct RgbPlanes {
    pub r: Plane,
    pub g: Plane,
    pub b: Plane,
}

impl RgbPlanes {
    pub fn width(&self) -> usize {
        self.r.width
    }
    pub fn height(&self) -> usize {
        self.r.height
    }

    pub fn planes(&self) -> [&Plane; 3] {
        [&self.r, &self.g, &self.b]
    }

    pub fn map_planes(&self, f: impl Fn(&Plane) -> Plane) -> RgbPlanes {
        RgbPlanes { r: f(&self.r), g: f(&self.g), b: f(&self.b) }
    }

    /// Crops to the largest size that is a multiple of `scale` ("modcrop"), keeping the top left.
    pub fn modcrop(&self, scale: usize) -> RgbPlanes {
        let w = self.width() - self.width() % scale;
        let h = self.height() - self.height() % scale;
        self.map_planes(|p| p.crop(0, 0, w, h))
    }

    /// Rounds and saturates every sample to 0..=255, as storing to 8 bits does.
    pub fn round_u8(&self) -> RgbPlanes {
        self.map_planes(|p| p.map(|v| v.round().clamp(0.0, 255.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_and_modcrop() {
        let p = Plane::from_fn(5, 3, |x, y| (x + 10 * y) as f32);
        let c = p.crop(1, 1, 3, 2);
        assert_eq!(c.data, vec![11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
        let rgb = RgbPlanes { r: p.clone(), g: p.clone(), b: p };
        let m = rgb.modcrop(2);
        assert_eq!((m.width(), m.height()), (4, 2));
        assert_eq!(m.r.row(1), &[10.0, 11.0, 12.0, 13.0]);
    }

    #[test]
    fn dihedral_symmetries_are_distinct_and_undone() {
        let p = Plane::from_fn(5, 3, |x, y| (x + 10 * y) as f32);
        let all: Vec<Plane> = (0..8).map(|t| p.dihedral(t)).collect();
        for (t, d) in all.iter().enumerate() {
            assert_eq!(d.undihedral(t as u8), p, "t = {t}");
            assert_eq!((d.width, d.height), if t & 4 != 0 { (3, 5) } else { (5, 3) });
            assert!(all[..t].iter().all(|e| e != d), "t = {t} repeats another");
        }
        // The corners say which is which: t = 1 mirrors, t = 4 transposes, t = 7 is both
        // flips after the transpose (a half turn of the transpose).
        assert_eq!(all[1].row(0), &[4.0, 3.0, 2.0, 1.0, 0.0]);
        assert_eq!(all[4].row(0), &[0.0, 10.0, 20.0]);
        assert_eq!(all[7].row(0), &[24.0, 14.0, 4.0]);
    }

    #[test]
    fn quantize() {
        let p = Plane::from_vec(4, 1, vec![-0.2, 0.5, 1.3, 0.1]);
        let q = p.quantize_unit();
        assert_eq!(q.data[0], 0.0);
        assert_eq!(q.data[1], 128.0 / 255.0);
        assert_eq!(q.data[2], 1.0);
        assert_eq!(q.data[3], 26.0 / 255.0);
    }
}
