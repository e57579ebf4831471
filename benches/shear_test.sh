#!/usr/bin/env bash
# The metacal shear test at survey scale: NGAL (default 10^6) exp galaxies with a known shear
# g = (0.02, 0), S/N SNR (default 100), in 90-degree pairs, through the metacal fitter.
# Prints m and c with 95 % intervals, the mean responses and the rate; the JSON goes to
# $OUT/shear-test.json (OUT defaults to target/shear-test).
#
# usage: benches/shear_test.sh [NGAL] [SNR] [THREADS]
# A short run first measures the rate and prints the projected time of the full run.
set -euo pipefail
cd "$(dirname "$0")/.."
NGAL="${1:-1000000}"
SNR="${2:-100}"
THREADS="${3:-0}"
OUT="${OUT:-target/shear-test}"
mkdir -p "$OUT"
cargo build -q --release --features maxlike,metacal --bin ngmixer-shear-test
BIN=target/release/ngmixer-shear-test
TARGS=()
[ "$THREADS" != 0 ] && TARGS=(--threads "$THREADS")

# rate from 2000 galaxies
"$BIN" --ngal 2000 --snr "$SNR" "${TARGS[@]}" --json "$OUT/rate.json" >/dev/null
python3 - "$OUT/rate.json" "$NGAL" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
rate = r["ngal"] / r["seconds"]
print(f"rate {rate:.1f} galaxies/s; projected time for {n} galaxies: {n / rate / 3600:.2f} h")
PY
"$BIN" --ngal "$NGAL" --snr "$SNR" "${TARGS[@]}" --json "$OUT/shear-test.json"
