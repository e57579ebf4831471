//! The two GalSim interpolants metacal uses: the quintic k-space kernel (applied to the padded
//! DFT of a stamp) and the Fourier transform of `Lanczos(15, conserve_dc=True)` (the x
//! interpolant), plus GalSim's `goodFFTSize` (METACAL.md §3.2–3.3).

use std::sync::OnceLock;

/// GSParams `kvalue_accuracy` (default).
pub(crate) const KVALUE_ACCURACY: f64 = 1.0e-5;

/// GalSim `goodFFTSize`: the smallest of `2^k` and `3·2^k` that is `>= n (1 - 1e-5)` and
/// `>= 6` (2 for `n <= 2`).
pub fn good_fft_size(n: usize) -> usize {
    if n <= 2 {
        return 2;
    }
    let insize = (1.0 - 1.0e-5) * n as f64;
    let l2 = std::f64::consts::LN_2;
    let log2n = l2 * (insize.ln() / l2).ceil();
    let log2n3 = (3f64.ln() + l2 * ((insize.ln() - 3f64.ln()) / l2).ceil()).max(6f64.ln());
    ((log2n.min(log2n3)).exp() - 1.0e-5).ceil() as usize
}

/// The quintic x-kernel of GalSim (`Quintic::xval`, not the ALT branch); zero for `|x| >= 3`.
#[inline]
pub fn quintic(x: f64) -> f64 {
    let a = x.abs();
    if a <= 1.0 {
        1.0 + a * a * a * (-95.0 / 12.0 + a * (23.0 / 2.0 + a * (-55.0 / 12.0)))
    } else if a <= 2.0 {
        (a - 1.0)
            * (a - 2.0)
            * (-23.0 / 4.0 + a * (29.0 / 2.0 + a * (-83.0 / 8.0 + a * (55.0 / 24.0))))
    } else if a <= 3.0 {
        (a - 2.0) * (a - 3.0) * (a - 3.0) * (-9.0 / 4.0 + a * (25.0 / 12.0 + a * (-11.0 / 24.0)))
    } else {
        0.0
    }
}

/// Sine integral `Si(x)` (continued fraction for |x| > 2, power series below; Numerical
/// Recipes `cisi` with a double-precision tolerance).
pub(crate) fn sine_integral(x: f64) -> f64 {
    const EPS: f64 = 1.0e-16;
    const FPMIN: f64 = 1.0e-300;
    const MAXIT: usize = 1000;
    let t = x.abs();
    if t == 0.0 {
        return 0.0;
    }
    let si = if t > 2.0 {
        // Lentz's method on the complex continued fraction of E1(i t)
        let (mut br, bi) = (1.0, t);
        let (mut cr, mut ci) = (1.0 / FPMIN, 0.0);
        let inv = |r: f64, i: f64| {
            let d = r * r + i * i;
            (r / d, -i / d)
        };
        let (mut dr, mut di) = inv(br, bi);
        let (mut hr, mut hi) = (dr, di);
        for i in 2..MAXIT {
            let a = -((i - 1) as f64).powi(2);
            br += 2.0;
            // d = 1 / (a d + b)
            let (xr, xi) = (a * dr + br, a * di + bi);
            let (ndr, ndi) = inv(xr, xi);
            dr = ndr;
            di = ndi;
            // c = b + a / c
            let (icr, ici) = inv(cr, ci);
            cr = br + a * icr;
            ci = bi + a * ici;
            // del = c d
            let delr = cr * dr - ci * di;
            let deli = cr * di + ci * dr;
            let nhr = hr * delr - hi * deli;
            let nhi = hr * deli + hi * delr;
            hr = nhr;
            hi = nhi;
            if (delr - 1.0).abs() + deli.abs() < EPS {
                break;
            }
        }
        // h *= (cos t - i sin t)
        let (c, s) = (t.cos(), t.sin());
        let im = hi * c - hr * s;
        std::f64::consts::FRAC_PI_2 + im
    } else {
        let mut sum = 0.0;
        let mut sums = 0.0;
        let mut sumc = 0.0;
        let mut sign = 1.0;
        let mut fact = 1.0;
        let mut odd = true;
        for k in 1..MAXIT {
            fact *= t / k as f64;
            let term = fact / k as f64;
            sum += sign * term;
            let err = term / sum.abs();
            if odd {
                sign = -sign;
                sums = sum;
                sum = sumc;
            } else {
                sumc = sum;
                sum = sums;
            }
            if err < EPS {
                break;
            }
            odd = !odd;
        }
        let _ = sumc;
        sums
    };
    if x < 0.0 {
        -si
    } else {
        si
    }
}

/// The Fourier transform of GalSim's `Lanczos(15, conserve_dc=True)`, tabulated on GalSim's
/// grid (step `(kvalue_accuracy/200)^¼ / n`) and interpolated with a natural cubic spline, as
/// GalSim does; zero beyond `u_max`.
#[derive(Debug)]
pub struct Lanczos15 {
    /// Last tabulated `u` with `|X̂(u)| > kvalue_accuracy` (2.018721 for n = 15).
    pub u_max: f64,
    step: f64,
    y: Vec<f64>,
    y2: Vec<f64>,
}

const LANCZOS_N: f64 = 15.0;

fn lanczos_raw(u: f64) -> f64 {
    let n = LANCZOS_N;
    let vp = n * (2.0 * u + 1.0);
    let vm = n * (2.0 * u - 1.0);
    let pi = std::f64::consts::PI;
    let r = (vm - 1.0) * sine_integral(pi * (vm - 1.0))
        - (vm + 1.0) * sine_integral(pi * (vm + 1.0))
        - (vp - 1.0) * sine_integral(pi * (vp - 1.0))
        + (vp + 1.0) * sine_integral(pi * (vp + 1.0));
    r / (2.0 * pi)
}

impl Lanczos15 {
    fn build() -> Self {
        let k: Vec<f64> = (0..6)
            .map(|j| if j == 0 { 0.0 } else { lanczos_raw(j as f64) })
            .collect();
        let c = [
            1.0 + 2.0 * (k[1] * (1.0 + 3.0 * k[1] + k[2] + k[3]) + k[2] + k[3] + k[4] + k[5]),
            -k[1] * (1.0 + 4.0 * k[1] + k[2] + 2.0 * k[3]),
            k[1] * (k[1] - 2.0 * k[2] + k[3]) - k[2],
            k[1] * (k[1] - 2.0 * k[3]) - k[3],
            k[1] * k[3] - k[4],
            -k[5],
        ];
        let ucalc = |u: f64| {
            let mut r = c[0] * lanczos_raw(u);
            for j in 1..6 {
                let jf = j as f64;
                r += c[j] * (lanczos_raw(u + jf) + lanczos_raw(u - jf));
            }
            r
        };
        let step = (KVALUE_ACCURACY / 200.0).powf(0.25) / LANCZOS_N;
        let mut y = Vec::new();
        let mut u_max = 0.0;
        let mut i = 0usize;
        loop {
            let u = i as f64 * step;
            if !((u - u_max < 1.0 / LANCZOS_N) || u < 1.1) {
                break;
            }
            let v = ucalc(u);
            if v.abs() > KVALUE_ACCURACY {
                u_max = u;
            }
            y.push(v);
            i += 1;
        }
        // natural cubic spline second derivatives on the uniform grid
        let n = y.len();
        let mut y2 = vec![0.0; n];
        let mut tmp = vec![0.0; n];
        for i in 1..n - 1 {
            let p = 0.5 * y2[i - 1] + 2.0;
            y2[i] = -0.5 / p;
            let d = (y[i + 1] - 2.0 * y[i] + y[i - 1]) / step;
            tmp[i] = (6.0 * d / (2.0 * step) - 0.5 * tmp[i - 1]) / p;
        }
        y2[n - 1] = 0.0;
        for k in (0..n - 1).rev() {
            y2[k] = y2[k] * y2[k + 1] + tmp[k];
        }
        Self { u_max, step, y, y2 }
    }

    /// The shared table (built on first use, ~2000 nodes).
    pub fn get() -> &'static Lanczos15 {
        static T: OnceLock<Lanczos15> = OnceLock::new();
        T.get_or_init(Self::build)
    }

    /// `X̂(u)` (u in cycles per pixel).
    #[inline]
    pub fn uval(&self, u: f64) -> f64 {
        let u = u.abs();
        if u > self.u_max {
            return 0.0;
        }
        let x = u / self.step;
        let mut i = x as usize;
        if i + 1 >= self.y.len() {
            i = self.y.len() - 2;
        }
        let b = x - i as f64;
        let a = 1.0 - b;
        let h2 = self.step * self.step / 6.0;
        a * self.y[i]
            + b * self.y[i + 1]
            + ((a * a * a - a) * self.y2[i] + (b * b * b - b) * self.y2[i + 1]) * h2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_sizes() {
        assert_eq!(good_fft_size(72), 96);
        assert_eq!(good_fft_size(100), 128);
        assert_eq!(good_fft_size(129), 192);
        assert_eq!(good_fft_size(193), 256);
        assert_eq!(good_fft_size(300), 384);
        assert_eq!(good_fft_size(192), 192);
    }

    #[test]
    fn si_values() {
        // Si(1) = 0.946083070367183, Si(5) = 1.549931244944674, Si(20) = 1.548241701043440
        assert!((sine_integral(1.0) - 0.946083070367183).abs() < 1e-14);
        assert!((sine_integral(5.0) - 1.549931244944674).abs() < 1e-14);
        assert!((sine_integral(20.0) - 1.548241701043440).abs() < 1e-14);
        assert!((sine_integral(-2.5) + 1.778520173443827).abs() < 1e-14);
    }

    #[test]
    fn lanczos_values() {
        let l = Lanczos15::get();
        assert!((l.u_max - 2.018721).abs() < 2e-6, "{}", l.u_max);
        assert!((l.uval(0.5) - 0.5).abs() < 1e-3);
        assert!((l.uval(0.3) - 1.0002).abs() < 1e-4);
        assert!((l.uval(0.45) - 1.0099).abs() < 1e-4);
        assert!((l.uval(0.0) - 1.0).abs() < 1e-6);
    }
}
