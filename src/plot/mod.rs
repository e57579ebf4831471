//! Small plots as PNG files, without a plotting library: an RGB [`Canvas`], [`Axes`] with
//! ticks, tick labels, axis labels and a title (5×7 bitmap font, scaled), points, lines, and
//! an image panel ([`Axes::image`]) for cutouts and residuals; PNG encoding is in [`png`].
//!
//! ```
//! use ngmixer::plot::{Axes, Canvas};
//! let mut c = Canvas::new(400, 300, [255, 255, 255]);
//! let ax = Axes::new([60, 30, 320, 220], (0.0, 1.0), (-1.0, 1.0));
//! ax.frame(&mut c, "x", "y", "a title");
//! ax.point(&mut c, 0.5, 0.0, 4, [200, 0, 0], true);
//! let png = c.to_png();
//! assert_eq!(&png[1..4], b"PNG");
//! ```

mod font;
pub mod png;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// Black.
pub const BLACK: Rgb = [0, 0, 0];

/// An RGB image, row-major from the top-left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixels.
    pub pix: Vec<Rgb>,
}

impl Canvas {
    /// A canvas filled with `bg`.
    pub fn new(width: usize, height: usize, bg: Rgb) -> Self {
        Self {
            width,
            height,
            pix: vec![bg; width * height],
        }
    }

    /// Set one pixel (ignored outside the canvas).
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pix[y as usize * self.width + x as usize] = c;
        }
    }

    /// The pixel at `(x, y)`, if inside.
    pub fn get(&self, x: usize, y: usize) -> Option<Rgb> {
        (x < self.width && y < self.height).then(|| self.pix[y * self.width + x])
    }

    /// Fill the rectangle `[x, x + w) × [y, y + h)`.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// A line of width `w` pixels from `(x0, y0)` to `(x1, y1)`.
    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, w: i64, c: Rgb) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as i64).max(1);
        for k in 0..=n {
            let t = k as f64 / n as f64;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            let (xi, yi) = (
                x.round() as i64 - (w - 1) / 2,
                y.round() as i64 - (w - 1) / 2,
            );
            self.fill_rect(xi, yi, w, w, c);
        }
    }

    /// A disc (`filled`) or ring of radius `r` centred on `(x, y)`.
    pub fn circle(&mut self, x: f64, y: f64, r: i64, c: Rgb, filled: bool) {
        let rf = r as f64;
        for dy in -r - 1..=r + 1 {
            for dx in -r - 1..=r + 1 {
                let d = ((dx * dx + dy * dy) as f64).sqrt();
                let on = if filled {
                    d <= rf + 0.3
                } else {
                    (d - rf).abs() <= 0.75
                };
                if on {
                    self.set(x.round() as i64 + dx, y.round() as i64 + dy, c);
                }
            }
        }
    }

    /// Width in pixels of `text` at `scale`.
    pub fn text_width(text: &str, scale: i64) -> i64 {
        text.chars().count() as i64 * 6 * scale - scale
    }

    /// Draw `text` with its top-left corner at `(x, y)`; `vertical` writes bottom to top
    /// (rotated by 90°), starting at `(x, y)` as its bottom-left corner.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, c: Rgb, vertical: bool) {
        for (k, ch) in text.chars().enumerate() {
            let g = font::glyph(ch);
            let off = k as i64 * 6 * scale;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) == 0 {
                        continue;
                    }
                    let (px, py) = if vertical {
                        (x + row as i64 * scale, y - off - col as i64 * scale - scale)
                    } else {
                        (x + off + col as i64 * scale, y + row as i64 * scale)
                    };
                    self.fill_rect(px, py, scale, scale, c);
                }
            }
        }
    }

    /// The canvas as PNG bytes.
    pub fn to_png(&self) -> Vec<u8> {
        png::encode_rgb(self.width, self.height, &self.pix)
    }
}

/// `num` rainbow colours (hue 0°–285° at full saturation and value), as ngmixer's
/// `nbrsfofs.rainbow`.
pub fn rainbow(num: usize) -> Vec<Rgb> {
    let step = if num > 1 {
        285.0 / (num - 1) as f64
    } else {
        0.0
    };
    (0..num).map(|i| hsv(i as f64 * step, 1.0, 1.0)).collect()
}

/// HSV (hue in degrees) to RGB, truncated to bytes as ngmixer does.
pub fn hsv(h: f64, s: f64, v: f64) -> Rgb {
    let h = (h / 60.0).rem_euclid(6.0);
    let i = h.floor();
    let f = h - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match i as i64 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    let c = |x: f64| (x * 255.0).clamp(0.0, 255.0) as u8;
    [c(r), c(g), c(b)]
}

/// "Nice" tick positions covering `[lo, hi]` (about `n` of them: steps 1, 2 or 5 × 10^k) and
/// the number of decimals to print them with.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> (Vec<f64>, usize) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return (vec![lo], 0);
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    (ticks, decimals)
}

/// A data rectangle on a canvas: `[x, y, w, h]` pixels, data ranges `xr`, `yr` (y up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axes {
    /// Pixel rectangle `[x, y, w, h]` (top-left corner, size).
    pub rect: [usize; 4],
    /// Data range along x.
    pub xr: (f64, f64),
    /// Data range along y.
    pub yr: (f64, f64),
}

impl Axes {
    /// Axes over `rect` showing `xr × yr`.
    pub fn new(rect: [usize; 4], xr: (f64, f64), yr: (f64, f64)) -> Self {
        Self { rect, xr, yr }
    }

    /// Canvas position of the data point `(x, y)`.
    pub fn to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        let [px, py, w, h] = self.rect.map(|v| v as f64);
        let fx = (x - self.xr.0) / (self.xr.1 - self.xr.0);
        let fy = (y - self.yr.0) / (self.yr.1 - self.yr.0);
        (px + fx * w, py + (1.0 - fy) * h)
    }

    /// The frame, ticks with labels on all four sides (labels left and bottom), axis labels
    /// and a title.
    pub fn frame(&self, c: &mut Canvas, xlabel: &str, ylabel: &str, title: &str) {
        let [x, y, w, h] = self.rect.map(|v| v as i64);
        let (xf, yf, wf, hf) = (x as f64, y as f64, w as f64, h as f64);
        for (a, b, cx, cy) in [
            (xf, yf, xf + wf, yf),
            (xf, yf + hf, xf + wf, yf + hf),
            (xf, yf, xf, yf + hf),
            (xf + wf, yf, xf + wf, yf + hf),
        ] {
            c.line(a, b, cx, cy, 2, BLACK);
        }
        let s = 2;
        let (xt, xd) = nice_ticks(self.xr.0, self.xr.1, 6);
        for t in xt {
            let (px, _) = self.to_pixel(t, self.yr.0);
            c.line(px, yf + hf, px, yf + hf - 12.0, 2, BLACK);
            c.line(px, yf, px, yf + 12.0, 2, BLACK);
            let lab = format!("{t:.xd$}");
            let tw = Canvas::text_width(&lab, s);
            c.text(px as i64 - tw / 2, y + h + 10, &lab, s, BLACK, false);
        }
        let (yt, yd) = nice_ticks(self.yr.0, self.yr.1, 6);
        for t in yt {
            let (_, py) = self.to_pixel(self.xr.0, t);
            c.line(xf, py, xf + 12.0, py, 2, BLACK);
            c.line(xf + wf, py, xf + wf - 12.0, py, 2, BLACK);
            let lab = format!("{t:.yd$}");
            let tw = Canvas::text_width(&lab, s);
            c.text(x - 10 - tw, py as i64 - 7, &lab, s, BLACK, false);
        }
        let s3 = 3;
        let lw = Canvas::text_width(xlabel, s3);
        c.text(x + w / 2 - lw / 2, y + h + 40, xlabel, s3, BLACK, false);
        let lh = Canvas::text_width(ylabel, s3);
        c.text(x - 120, y + h / 2 + lh / 2, ylabel, s3, BLACK, true);
        let tw = Canvas::text_width(title, s3);
        c.text(x + w / 2 - tw / 2, y - 40, title, s3, BLACK, false);
    }

    /// A disc or ring marker of radius `r` at data point `(x, y)` (skipped if not finite or
    /// outside the axes).
    pub fn point(&self, c: &mut Canvas, x: f64, y: f64, r: i64, col: Rgb, filled: bool) {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        let (px, py) = self.to_pixel(x, y);
        let [rx, ry, w, h] = self.rect.map(|v| v as f64);
        if px < rx || px > rx + w || py < ry || py > ry + h {
            return;
        }
        c.circle(px, py, r, col, filled);
    }

    /// An image panel: `data` (`nrow × ncol`, row 0 drawn at the bottom as on a sky image)
    /// scaled linearly from `vmin` (first colour) to `vmax` (last) through `cmap`, filling the
    /// axes; NaN pixels are drawn magenta.
    pub fn image(
        &self,
        c: &mut Canvas,
        data: &[f64],
        nrow: usize,
        ncol: usize,
        vmin: f64,
        vmax: f64,
        cmap: Colormap,
    ) {
        let [x, y, w, h] = self.rect;
        if nrow == 0 || ncol == 0 || data.len() < nrow * ncol {
            return;
        }
        for py in 0..h {
            let row = nrow - 1 - ((py * nrow) / h).min(nrow - 1);
            for px in 0..w {
                let col = ((px * ncol) / w).min(ncol - 1);
                let v = data[row * ncol + col];
                let colour = if v.is_nan() {
                    [255, 0, 255]
                } else {
                    let t = if vmax > vmin {
                        ((v - vmin) / (vmax - vmin)).clamp(0.0, 1.0)
                    } else {
                        0.5
                    };
                    cmap.colour(t)
                };
                c.set((x + px) as i64, (y + py) as i64, colour);
            }
        }
    }
}

/// Colour maps for [`Axes::image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colormap {
    /// Black to white.
    Grey,
    /// Blue – white – red, for residuals (0.5 is white).
    Diverging,
}

impl Colormap {
    /// The colour at `t` in `[0, 1]`.
    pub fn colour(self, t: f64) -> Rgb {
        let b = |x: f64| (x * 255.0).round().clamp(0.0, 255.0) as u8;
        match self {
            Self::Grey => [b(t), b(t), b(t)],
            Self::Diverging => {
                if t < 0.5 {
                    let s = t / 0.5;
                    [b(s), b(s), 255]
                } else {
                    let s = (1.0 - t) / 0.5;
                    [255, b(s), b(s)]
                }
            }
        }
    }
}
