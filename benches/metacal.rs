//! Metacal images of one 48×48 observation (25×25 PSF, SE jacobian, Moffat PSF, noise):
//! the 5 types noshear, 1p, 1m, 2p, 2m, psf `fitgauss`, without and with fixnoise.
//! `setup+5` includes the stamp FFTs and the admom PSF fit(s) of `MetacalMaker::new`.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use ngmixer::gmix::{Jacobian, Model, SimpleKind};
use ngmixer::metacal::{MetacalMaker, MetacalPars};
use ngmixer::obs::Observation;

fn observation() -> Observation {
    let jac = Jacobian::new(23.3, 23.8, 0.002, 0.262, 0.264, -0.003).unwrap();
    let pjac = jac.with_cen(12.0, 12.0);
    let psf_g = Model::Simple(SimpleKind::Gauss)
        .gmix(&[0.0, 0.0, 0.02, -0.01, 0.3, 1.0])
        .unwrap();
    let gal_g = Model::Simple(SimpleKind::Gauss)
        .gmix(&[0.05, -0.03, 0.2, 0.1, 0.5, 100.0])
        .unwrap()
        .convolve(&psf_g)
        .unwrap();
    let area = jac.area();
    let render = |g: &ngmixer::gmix::GMix, j: &Jacobian, n: usize| {
        Array2::from_shape_fn((n, n), |(r, c)| {
            let (v, u) = j.vu(r as f64, c as f64);
            g.gaussians().iter().map(|x| x.eval(v, u)).sum::<f64>() * area
        })
    };
    let mut rng = ngmixer::rng::object_rng(1, 1);
    let mut img = render(&gal_g, &jac, 48);
    img.mapv_inplace(|v| v + 0.05 * ngmixer::rng::normal(&mut rng));
    let psf = Observation::with_unit_weight(render(&psf_g, &pjac, 25), pjac).unwrap();
    Observation::new(img, Array2::from_elem((48, 48), 400.0), jac)
        .unwrap()
        .with_psf(psf)
}

fn bench(c: &mut Criterion) {
    let obs = observation();
    let mut g = c.benchmark_group("metacal_48x48");
    for fixnoise in [false, true] {
        let pars = MetacalPars {
            fixnoise,
            ..MetacalPars::default()
        };
        let tag = if fixnoise { "fixnoise" } else { "nonoise" };
        g.bench_function(format!("setup+5/{tag}"), |b| {
            let mut rng = ngmixer::rng::object_rng(2, 2);
            b.iter(|| {
                let m = MetacalMaker::new(&obs, &pars, &mut rng).unwrap();
                m.make_all().unwrap()
            })
        });
        let mut rng = ngmixer::rng::object_rng(2, 2);
        let m = MetacalMaker::new(&obs, &pars, &mut rng).unwrap();
        g.bench_function(format!("5types/{tag}"), |b| {
            b.iter(|| m.make_all().unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
