#!/usr/bin/env bash
# Whole-run timings of this crate's ngmixit beside the Python ngmixer (e5d56b4 on ngmix
# v1.3.5), one after the other on the same machine, pinned to one core (and the Rust run
# also on two threads): the e2e01max tile and a simulated 4-band, 3-epoch + coadd tile with
# mixed boxes 32/48/64, blends and masks; and the e2e02mcal metacal run (metacal-ngmix-boot,
# fitgauss, fixnoise) on the e2e tile.
#
# usage: PYREF_DIR=/path/to/pyref benches/vs_python.sh [RUNS]
#   PYREF_DIR is what ../shared/tools/pyref/setup.sh built (it needs venv/bin/ngmixit).
#   RUNS (default 3): runs per case; the median wall time is reported.
# Prints one table; the raw times go to $OUT/times.txt (OUT defaults to target/vs-python).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
: "${PYREF_DIR:?set PYREF_DIR to the Python reference built by setup.sh}"
PY_NGMIXIT="$PYREF_DIR/venv/bin/ngmixit"
OUT="${OUT:-target/vs-python}"
mkdir -p "$OUT"
cargo build -q --release --bin ngmixit --example make_sim_tile
RS=target/release/ngmixit
CFG=tests/data/e2e/run-e2e01max.yaml

# the 4-band tile: 76 primaries + 8 companions = 84 objects
if [ ! -e "$OUT/tile4/t4-z-meds.fits" ]; then
    target/release/examples/make_sim_tile --nobj 76 --npair 8 --mask-every 10 --bands griz \
        --epochs 3 --seed 4 "$OUT/tile4" t4 >/dev/null
fi
E2E=(tests/data/meds/sim-e2e-meds.fits)
T4=("$OUT"/tile4/t4-{g,r,i,z}-meds.fits)

median() { python3 -c 'import sys,statistics; print("%.3f" % statistics.median(map(float, sys.argv[1:])))' "$@"; }

# time_case NAME CMD...: RUNS wall times (s), median printed
time_case() {
    local name="$1"; shift
    local ts=()
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(date +%s.%N)
        "$@" >/dev/null 2>&1
        t1=$(date +%s.%N)
        ts+=("$(python3 -c "print($t1 - $t0)")")
    done
    echo "$name ${ts[*]}" >> "$OUT/times.txt"
    median "${ts[@]}"
}

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
: > "$OUT/times.txt"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %10s %12s %12s %9s %9s\n' case python_1c rust_1c rust_2t ratio_1c ratio_2t
for case in e2e01max tile4 e2e02mcal; do
    CFG=tests/data/e2e/run-e2e01max.yaml
    if [ "$case" = tile4 ]; then files=("${T4[@]}"); else files=("${E2E[@]}"); fi
    if [ "$case" = e2e02mcal ]; then CFG=tests/data/e2e/run-e2e02mcal.yaml; fi
    py=$(time_case "$case-python" taskset -c 0 "$PY_NGMIXIT" --seed 1 "$CFG" "$OUT/$case-py.fits" "${files[@]}")
    r1=$(time_case "$case-rust-1" taskset -c 0 "$RS" --threads 1 --seed 1 "$CFG" "$OUT/$case-rs1.fits" "${files[@]}")
    r2=$(time_case "$case-rust-2" "$RS" --threads 2 --seed 1 "$CFG" "$OUT/$case-rs2.fits" "${files[@]}")
    printf '%-10s %9ss %11ss %11ss %8.1fx %8.1fx\n' "$case" "$py" "$r1" "$r2" \
        "$(python3 -c "print($py / $r1)")" "$(python3 -c "print($py / $r2)")"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
