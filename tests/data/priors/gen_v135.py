"""Reference values from ngmix **v1.3.5** (the version ngmixer ran) for the priors that
ngmixer's `priors.py` builds and that `../ngmix/priors.json` (ngmix 2.4.2) does not cover:
the COSMOS g priors, ZDisk2D, the Y1 TwoSidedErf settings, GMixND and the joint
PriorSimpleSep with the Y1 MOF settings (plus its gflat copy).

How it was run (no ngmix install needed; numpy only):

    mkdir work && cd work && mkdir ngmix numba
    for f in priors.py gexceptions.py shape.py joint_prior.py gmix_ndim.py \
             gmix_ndim_nb.py simplex.py; do
        git -C <ngmix repo> show v1.3.5:ngmix/$f > ngmix/$f
    done
    touch ngmix/__init__.py
    # numba stub: njit is the identity
    printf 'def njit(*a, **k):\n    if a and callable(a[0]) and not k: return a[0]\n    return lambda f: f\n' > numba/__init__.py
    python <this file> ngmix_v135.json

Non-finite numbers are written as the strings "Infinity", "-Infinity", "NaN";
"GMixRangeError" marks where ngmix raised.
"""
import json
import math
import platform
import sys

import numpy as np

sys.path.insert(0, ".")
# ngmix v1.3.5's simplex.py calls numpy.asfarray, removed in numpy 2
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=float: np.asarray(a, dtype=dtype)
from ngmix import priors, joint_prior  # noqa: E402
from ngmix.gmix_ndim import GMixND  # noqa: E402
from ngmix.gexceptions import GMixRangeError  # noqa: E402

# The Nelder-Mead in set_maxval1d passes a size-1 array; old numpy converted it to a float
# implicitly inside math.erf, numpy 2 refuses. Same value, explicit conversion:
priors.GPriorBase.get_prob_scalar1d_neg = (
    lambda self, g, *a: -self.get_prob_scalar1d(float(np.asarray(g).ravel()[0])))

rng = np.random.RandomState(8675309)


def fnum(v):
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def safe(fn, *a):
    try:
        v = fn(*a)
        if isinstance(v, tuple):
            return [fnum(x) for x in v]
        return fnum(v)
    except GMixRangeError:
        return "GMixRangeError"


out = {}

# ---------------------------------------------------------------- g priors
gpts = [(0.0, 0.0), (0.05, 0.0), (0.1, -0.2), (0.3, 0.3), (0.5, -0.4),
        (0.0, 0.78), (0.7, 0.1), (0.79, 0.0), (0.8, 0.0), (0.0, 0.95),
        (0.999, 0.0), (1.0, 0.0), (0.9, 0.9)]


def gprior_block(p, ctor, has_fdiff=False):
    rows = []
    for g1, g2 in gpts:
        g = float(np.hypot(g1, g2))
        r = {"g": [g1, g2],
             "lnprob2d": safe(p.get_lnprob_scalar2d, g1, g2),
             "prob2d": safe(p.get_prob_scalar2d, g1, g2),
             "prob1d_of_|g|": safe(p.get_prob_scalar1d, g)}
        if has_fdiff:
            r["fdiff"] = safe(p.get_fdiff, g1, g2)
        rows.append(r)
    g1s, g2s = p.sample2d(200000)
    gabs = np.hypot(g1s, g2s)
    return {"ctor": ctor, "points": rows,
            "sample_stats_200k": {"mean_g1": g1s.mean(), "mean_g2": g2s.mean(),
                                  "std_g1": g1s.std(), "std_g2": g2s.std(),
                                  "mean_|g|": gabs.mean(), "std_|g|": gabs.std(),
                                  "max_|g|": gabs.max()}}


gs = priors.make_gprior_cosmos_sersic(type="erf")
gs.rng = rng
out["cosmos_sersic"] = gprior_block(gs, "make_gprior_cosmos_sersic(type='erf') = GPriorMErf([0.0250834, 1.98317, 0.0793992, 0.706151, 0.124546])")
ge = priors.make_gprior_cosmos_exp()
ge.rng = rng
out["cosmos_exp"] = gprior_block(ge, "make_gprior_cosmos_exp() = GPriorM([560.0, 1.11, 0.052, 0.791])")
gd = priors.make_gprior_cosmos_dev()
gd.rng = rng
out["cosmos_dev"] = gprior_block(gd, "make_gprior_cosmos_dev() = GPriorM([560.0, 1.28, 0.088, 0.887])")
gb = priors.GPriorBA(0.2, rng=rng)
out["ba_0.2"] = gprior_block(gb, "GPriorBA(0.2)", has_fdiff=True)

zd = priors.ZDisk2D(1.0, rng=rng)
zrows = []
for g1, g2 in gpts:
    g = float(np.hypot(g1, g2))
    zrows.append({"g": [g1, g2],
                  "lnprob2d": safe(zd.get_lnprob_scalar2d, g1, g2),
                  "prob2d": safe(zd.get_prob_scalar2d, g1, g2),
                  "lnprob1d_of_|g|": safe(zd.get_lnprob_scalar1d, g),
                  "prob1d_of_|g|": safe(zd.get_prob_scalar1d, g)})
z1, z2 = zd.sample2d(200000)
out["ZDisk2D_1"] = {"ctor": "ZDisk2D(1.0)", "points": zrows,
                    "sample_stats_200k": {"mean_g1": z1.mean(), "std_g1": z1.std(),
                                          "mean_|g|": np.hypot(z1, z2).mean()}}

# ---------------------------------------------------------------- 1-d priors (Y1 settings)


def one_d(p, xs):
    rows = []
    for x in xs:
        rows.append({"x": x, "lnprob": safe(p.get_lnprob_scalar, x),
                     "prob": safe(p.get_prob_scalar, x), "fdiff": safe(p.get_fdiff, x)})
    return rows


tT = priors.TwoSidedErf(-10.0, 0.03, 1.0e6, 1.0e5, rng=rng)
out["TwoSidedErf_T_y1"] = {"ctor": [-10.0, 0.03, 1.0e6, 1.0e5],
                           "points": one_d(tT, [-11.0, -10.2, -10.05, -10.0, -9.99, -9.9, 0.0,
                                               1.0, 5.0e5, 1.0e6, 1.2e6, 1.6e6])}
tF = priors.TwoSidedErf(-1.0e4, 1.0, 1.0e9, 0.25e8, rng=rng)
out["TwoSidedErf_counts_y1"] = {"ctor": [-1.0e4, 1.0, 1.0e9, 0.25e8],
                                "points": one_d(tF, [-1.0e4 - 10.0, -1.0e4 - 1.0, -1.0e4, -9999.5,
                                                    0.0, 100.0, 1.0e9, 1.05e9, 1.2e9])}
fl = priors.FlatPrior(0.0, 10.0, rng=rng)
out["Flat_0_10"] = {"ctor": [0.0, 10.0], "points": one_d(fl, [-0.1, 0.0, 5.0, 10.0, 10.1])}

# ---------------------------------------------------------------- GMixND
w1 = np.array([0.5, 0.3, 0.2])
m1 = np.array([0.1, 0.5, 0.9])
c1 = np.array([0.01, 0.04, 0.0025])
g1d = GMixND(w1, m1, c1, rng=rng)
x1 = [-0.5, 0.0, 0.1, 0.3, 0.5, 0.77, 0.9, 1.0, 1.5, 5.0]
out["GMixND_1d"] = {
    "weights": w1, "means": m1, "covars": c1,
    "points": [{"x": x, "lnprob": fnum(g1d.get_lnprob_scalar(x)), "prob": fnum(g1d.get_prob_scalar(x))}
               for x in x1],
}
# (GMixND.sample needs sklearn; sampling is checked analytically in the Rust tests)

w2 = np.array([0.6, 0.4])
m2 = np.array([[0.0, 1.0], [1.0, -0.5]])
c2 = np.array([[[0.2, 0.05], [0.05, 0.1]], [[0.5, -0.2], [-0.2, 0.3]]])
g2d = GMixND(w2, m2, c2, rng=rng)
x2 = [[0.0, 0.0], [0.0, 1.0], [1.0, -0.5], [0.5, 0.25], [-2.0, 3.0], [4.0, -4.0]]
out["GMixND_2d"] = {
    "weights": w2, "means": m2, "covars": c2,
    "points": [{"x": x, "lnprob": fnum(g2d.get_lnprob_scalar(x)), "prob": fnum(g2d.get_prob_scalar(x))}
               for x in x2],
}

# ngmixer load_gmixnd with cov_factor: pdf.covars *= f after construction -> icovars/norms
# (hence lnprob) unchanged.
g1d_cf = GMixND(w1, m1, c1, rng=rng)
g1d_cf.covars *= 2.0
out["GMixND_1d_cov_factor_2"] = {
    "note": "ngmixer load_gmixnd: pdf.covars *= cov_factor after construction; lnprob unchanged",
    "points": [{"x": x, "lnprob": fnum(g1d_cf.get_lnprob_scalar(x))} for x in x1[:4]],
}

# ---------------------------------------------------------------- joint prior, Y1 MOF settings
cen = priors.CenPrior(0.0, 0.0, 0.27, 0.27, rng=rng)
jp = joint_prior.PriorSimpleSep(cen, gs, tT, [tF] * 4)
jpf = joint_prior.PriorSimpleSep(cen, priors.ZDisk2D(1.0, rng=rng), tT, [tF] * 4)
jpts = [
    [0.0, 0.0, 0.0, 0.0, 1.0, 10.0, 20.0, 30.0, 40.0],
    [0.1, -0.3, 0.3, -0.2, 4.0, 100.0, 50.0, -9999.0, 1.0e9],
    [0.5, 0.5, 0.7, 0.1, -9.95, -1.0e4, 1.0, 2.0, 3.0],
    [0.01, -0.02, 0.05, 0.0, -11.0, 1.0, 1.0, 1.0, 1.0],
    [0.01, -0.02, 0.9, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0],
]
rows = []
for pars in jpts:
    pars = np.array(pars)
    r = {"pars": pars}
    for name, p in [("full", jp), ("gflat", jpf)]:
        fd = np.zeros(9)
        try:
            n = p.fill_fdiff(pars, fd)
            r[name + "_fill_fdiff"] = [fnum(v) for v in fd[:n]]
            r[name + "_nfilled"] = n
        except GMixRangeError:
            r[name + "_fill_fdiff"] = "GMixRangeError"
        r[name + "_lnprob"] = safe(p.get_lnprob_scalar, pars)
    rows.append(r)
out["PriorSimpleSep_y1_mof_4band"] = {
    "ctor": "cen=CenPrior(0,0,0.27,0.27); g=make_gprior_cosmos_sersic('erf'); "
            "T=TwoSidedErf(-10,0.03,1e6,1e5); F=4x TwoSidedErf(-1e4,1,1e9,0.25e8); "
            "gflat: g=ZDisk2D(1.0)",
    "points": rows,
}


def conv(o):
    if isinstance(o, np.ndarray):
        return [conv(v) for v in o.tolist()]
    if isinstance(o, (list, tuple)):
        return [conv(v) for v in o]
    if isinstance(o, dict):
        return {k: conv(v) for k, v in o.items()}
    if isinstance(o, (float, np.floating)):
        return fnum(o)
    if isinstance(o, np.integer):
        return int(o)
    return o


doc = {"_meta": {"ngmix_version": "1.3.5 (git tag v1.3.5, sources run with a numba stub)",
                 "numpy": np.__version__, "python": platform.python_version(),
                 "rng": "numpy RandomState(8675309), sample stats are only for statistical checks"},
       "priors": conv(out)}
with open(sys.argv[1], "w") as fobj:
    json.dump(doc, fobj, indent=1)
