//! Pixel-kernel benchmarks: render and log-likelihood of cm⊗PSF3 (48 Gaussians) and exp⊗PSF3
//! (18 Gaussians) on a 48×48 stamp with a DES-like Jacobian (0.263"), the setup of ngmix's
//! `ref/ngmix/gen/timings.py`. Throughput is in Gaussian·pixels (`ngauss × npix`), so
//! criterion's "elem/s" inverts to ns per Gaussian·pixel (ngmix 2.4.2: ~3.7 ns).
//!
//! Run: `cargo bench --bench kernels -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ngmixer::gmix::{GMix, Jacobian, Model, SimpleKind, Tables};
use ngmixer::kernels::{Kernels, Policy, V1Fast, V2Fast};

const NROW: usize = 48;
const NCOL: usize = 48;

/// `band_psf(0)` of the timing harness: three Gaussians, flux 1.
fn psf3() -> GMix {
    let pars = [
        0.55, 0.02, -0.01, 0.22, 0.012, 0.20, //
        0.35, 0.02, -0.01, 0.55, 0.03, 0.50, //
        0.10, 0.02, -0.01, 1.90, 0.10, 1.75,
    ];
    let mut g = GMix::from_full_pars(&pars).expect("psf");
    g.set_flux(1.0);
    g
}

/// `band_jac(0, (48, 48))` of the timing harness.
fn jacobian() -> Jacobian {
    Jacobian::new(23.3, 23.6, 0.0, 0.263, 0.263, -0.002).expect("jacobian")
}

struct Setup {
    name: &'static str,
    gmix: GMix,
    jac: Jacobian,
    image: Vec<f64>,
    weight: Vec<f64>,
}

fn setup(name: &'static str, model: Model) -> Setup {
    let pars = [0.03, 0.02, 0.12, 0.18, 1.8, 450.0];
    let obj = model.gmix_with(&pars, Tables::V2).expect("model");
    let gmix = obj.convolve(&psf3()).expect("convolve");
    let jac = jacobian();
    let mut image = vec![0.0; NROW * NCOL];
    Kernels::scalar()
        .render::<V2Fast>(&gmix, &jac, NROW, NCOL, &mut image)
        .expect("render");
    // deterministic "noise" of sigma ~0.5 (weight 4)
    let mut state = 12345u64;
    for v in &mut image {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *v += ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 1.7;
    }
    Setup {
        name,
        gmix,
        jac,
        image,
        weight: vec![4.0; NROW * NCOL],
    }
}

fn kernels() -> Vec<Kernels> {
    Kernels::all()
}

fn bench_policy<P: Policy>(c: &mut Criterion, s: &Setup) {
    let elems = (s.gmix.len() * NROW * NCOL) as u64;
    let mut g = c.benchmark_group(format!("render/{}/{}", s.name, P::NAME));
    g.throughput(Throughput::Elements(elems));
    for k in kernels() {
        let mut out = vec![0.0; NROW * NCOL];
        g.bench_function(BenchmarkId::from_parameter(k.name()), |b| {
            b.iter(|| {
                k.render::<P>(black_box(&s.gmix), &s.jac, NROW, NCOL, black_box(&mut out))
                    .expect("render")
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group(format!("loglike/{}/{}", s.name, P::NAME));
    g.throughput(Throughput::Elements(elems));
    for k in kernels() {
        g.bench_function(BenchmarkId::from_parameter(k.name()), |b| {
            b.iter(|| {
                k.loglike::<P>(black_box(&s.gmix), &s.jac, &s.image, &s.weight, NCOL)
                    .expect("loglike")
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group(format!("fdiff/{}/{}", s.name, P::NAME));
    g.throughput(Throughput::Elements(elems));
    for k in kernels().into_iter().filter(|k| *k != Kernels::scalar()) {
        let mut out = vec![0.0; NROW * NCOL];
        g.bench_function(BenchmarkId::from_parameter(k.name()), |b| {
            b.iter(|| {
                k.fill_fdiff::<P>(
                    black_box(&s.gmix),
                    &s.jac,
                    &s.image,
                    &s.weight,
                    NCOL,
                    &mut out,
                )
                .expect("fdiff")
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let cm = setup(
        "cm_x_psf3_48x48",
        Model::Cm {
            fracdev: 0.4,
            tdbyte: 0.8,
        },
    );
    let exp = setup("exp_x_psf3_48x48", Model::Simple(SimpleKind::Exp));
    assert_eq!(cm.gmix.len(), 48);
    assert_eq!(exp.gmix.len(), 18);
    for s in [&cm, &exp] {
        bench_policy::<V1Fast>(c, s);
        bench_policy::<V2Fast>(c, s);
    }
}

/// With `KERNELS_MIN_TIME=1`: print the minimum (over 1.5 s of 8-call batches) wall time per call
/// of each fast kernel, and the on-CPU time (Linux `/proc/thread-self/schedstat`, which
/// excludes time the thread waited for a core: useful on a shared, loaded machine), instead of
/// running criterion, then exit. `KERNELS_FILTER=<substring>` selects cases.
fn min_times() {
    use std::time::Instant;
    /// On-CPU time of this thread in ns (Linux schedstat), else wall time.
    fn cpu_ns() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        s.split_whitespace().next()?.parse().ok()
    }
    /// Minimum over batches of 8 calls (for 1.5 s) of the time per call: (wall, on-CPU).
    /// Short batches let the minimum catch quiet moments of a shared host.
    fn min_of(mut f: impl FnMut()) -> (f64, f64) {
        let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < 1.5 {
            let t = Instant::now();
            let c0 = cpu_ns();
            let n = 8;
            for _ in 0..n {
                f();
            }
            let w = t.elapsed().as_secs_f64();
            let c = match (c0, cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 * 1e-9,
                _ => w,
            };
            wall = wall.min(w / n as f64);
            cpu = cpu.min(c / n as f64);
        }
        (wall, cpu)
    }
    fn one<P: Policy>(s: &Setup) {
        let elems = (s.gmix.len() * NROW * NCOL) as f64;
        let filter = std::env::var("KERNELS_FILTER").unwrap_or_default();
        for k in kernels().into_iter().filter(|k| *k != Kernels::scalar()) {
            if !format!("{} {} {}", s.name, P::NAME, k.name()).contains(&filter) {
                continue;
            }
            let mut out = vec![0.0; NROW * NCOL];
            let tr = min_of(|| {
                k.render::<P>(black_box(&s.gmix), &s.jac, NROW, NCOL, black_box(&mut out))
                    .expect("render")
            });
            let tl = min_of(|| {
                black_box(
                    k.loglike::<P>(black_box(&s.gmix), &s.jac, &s.image, &s.weight, NCOL)
                        .expect("loglike"),
                );
            });
            println!(
                "{:18} {:7} {:9} render {:7.2} us {:6.3} ns/Gpx (cpu {:6.3}) | loglike {:7.2} us {:6.3} ns/Gpx (cpu {:6.3})",
                s.name,
                P::NAME,
                k.name(),
                tr.0 * 1e6,
                tr.0 * 1e9 / elems,
                tr.1 * 1e9 / elems,
                tl.0 * 1e6,
                tl.0 * 1e9 / elems,
                tl.1 * 1e9 / elems
            );
        }
    }
    let cm = setup(
        "cm_x_psf3_48x48",
        Model::Cm {
            fracdev: 0.4,
            tdbyte: 0.8,
        },
    );
    let exp = setup("exp_x_psf3_48x48", Model::Simple(SimpleKind::Exp));
    for s in [&cm, &exp] {
        one::<V1Fast>(s);
        one::<V2Fast>(s);
    }
}

criterion_group!(kernel_benches, benches);

fn main() {
    if std::env::var_os("KERNELS_MIN_TIME").is_some() {
        min_times();
        return;
    }
    kernel_benches();
    Criterion::default().configure_from_args().final_summary();
}
