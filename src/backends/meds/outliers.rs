//! Outlier rejection across epochs (meds `reject_outliers`).

use crate::error::{Error, Result};

/// Default significance of [`reject_outliers`].
pub const OUTLIER_NSIGMA: f64 = 5.0;
/// Default fraction of the median of [`reject_outliers`].
pub const OUTLIER_A: f64 = 0.3;

/// Zero the weight of outlier pixels, with the defaults `nsigma = 5`, `A = 0.3`.
///
/// See [`reject_outliers_with`].
///
/// # Errors
/// [`Error::Invalid`] when the lists differ in length or an image and its weight (or two
/// images) differ in size.
pub fn reject_outliers(images: &[&[f64]], weights: &mut [&mut [f64]]) -> Result<usize> {
    reject_outliers_with(images, weights, OUTLIER_NSIGMA, OUTLIER_A)
}

/// Zero the weight of pixels that deviate from the per-pixel median of the stack
/// (meds `reject_outliers`, spec §3.4).
///
/// With fewer than 3 images nothing happens. Otherwise `med` is the median over the stack
/// (images assumed aligned; the mean of the two central values for an even count; NaN if any
/// value is NaN), each weight is clipped at 0, and pixels with
/// `wt (im - med)² > (nsigma + A |med| sqrt(wt))²` get weight 0. Returns the number of pixels
/// rejected over all images.
///
/// # Errors
/// [`Error::Invalid`] when the lists differ in length or the sizes differ.
pub fn reject_outliers_with(
    images: &[&[f64]],
    weights: &mut [&mut [f64]],
    nsigma: f64,
    a: f64,
) -> Result<usize> {
    if images.len() != weights.len() {
        return Err(Error::Invalid(format!(
            "reject_outliers: {} images but {} weight maps",
            images.len(),
            weights.len()
        )));
    }
    let nim = images.len();
    if nim < 3 {
        return Ok(0);
    }
    let npix = images[0].len();
    for (i, (im, wt)) in images.iter().zip(weights.iter()).enumerate() {
        if im.len() != npix || wt.len() != npix {
            return Err(Error::Invalid(format!(
                "reject_outliers: image {i} has {} pixels and weight {} (expected {npix})",
                im.len(),
                wt.len()
            )));
        }
    }
    let mut med = vec![0.0; npix];
    let mut stack = vec![0.0; nim];
    for (p, m) in med.iter_mut().enumerate() {
        for (s, im) in stack.iter_mut().zip(images) {
            *s = im[p];
        }
        *m = median(&mut stack);
    }
    let mut nreject = 0;
    for (im, wt) in images.iter().zip(weights.iter_mut()) {
        for p in 0..npix {
            let w = &mut wt[p];
            if *w < 0.0 {
                *w = 0.0;
            }
            let d = im[p] - med[p];
            let chi2 = d * d * *w;
            let mut maxval = med[p].abs() * a * w.sqrt() + nsigma;
            maxval *= maxval;
            if chi2 > maxval {
                *w = 0.0;
                nreject += 1;
            }
        }
    }
    Ok(nreject)
}

/// numpy median of a small slice (reordered in place).
fn median(v: &mut [f64]) -> f64 {
    if v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_cosmic_ray() {
        let a = vec![1.0, 2.0, 3.0, 4.0];
        let b = vec![1.1, 2.1, 2.9, 4.0];
        let c = vec![0.9, 50.0, 3.1, 4.0];
        let (mut wa, mut wb, mut wc) = (vec![1.0; 4], vec![1.0; 4], vec![1.0; 4]);
        let n = {
            let mut ws: Vec<&mut [f64]> = vec![&mut wa, &mut wb, &mut wc];
            reject_outliers(&[&a, &b, &c], &mut ws).unwrap()
        };
        // median at pixel 1 is 2.1; |50-2.1| = 47.9 > 5 + 0.3*2.1.
        assert_eq!(n, 1);
        assert_eq!(wc, vec![1.0, 0.0, 1.0, 1.0]);
        assert_eq!(wa, vec![1.0; 4]);
    }

    #[test]
    fn fewer_than_three_images_do_nothing_and_negative_weights_clip() {
        let a = vec![0.0, 100.0];
        let b = vec![0.0, 0.0];
        let (mut wa, mut wb) = (vec![1.0, 1.0], vec![-1.0, 1.0]);
        let mut ws: Vec<&mut [f64]> = vec![&mut wa, &mut wb];
        assert_eq!(reject_outliers(&[&a, &b], &mut ws).unwrap(), 0);
        assert_eq!(wb, vec![-1.0, 1.0]);

        let c = vec![0.0, 0.0];
        let (mut wa, mut wb, mut wc) = (vec![1.0, 1.0], vec![-1.0, 1.0], vec![1.0, 1.0]);
        let mut ws: Vec<&mut [f64]> = vec![&mut wa, &mut wb, &mut wc];
        assert_eq!(reject_outliers(&[&a, &b, &c], &mut ws).unwrap(), 1);
        assert_eq!(wa, vec![1.0, 0.0]);
        assert_eq!(wb, vec![0.0, 1.0]);
    }

    #[test]
    fn even_count_median_and_size_errors() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(median(&mut v), 2.5);
        let a = vec![0.0; 3];
        let b = vec![0.0; 2];
        let mut w1 = vec![1.0; 3];
        let mut w2 = vec![1.0; 2];
        let mut w3 = vec![1.0; 3];
        let mut ws: Vec<&mut [f64]> = vec![&mut w1, &mut w2, &mut w3];
        assert!(reject_outliers(&[&a, &b, &a], &mut ws).is_err());
    }
}
