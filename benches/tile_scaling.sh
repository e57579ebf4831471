#!/usr/bin/env bash
# Scaling of whole ngmixit runs with the size of a tile: simulated 4-band tiles (griz, EPOCHS
# single-epoch images + coadd per band, boxes 32/48/64, 10 % blends, masks) of 10^2, 10^3 and
# 10^4 objects, fitted on one and on two threads. Reports objects per second, the peak resident
# memory of the fit and the size of the inputs, the 2-thread speed-up, and a projection for a
# DES tile (10^4 objects, griz, 10 epochs per band).
#
# usage: benches/tile_scaling.sh [SIZES] [EPOCHS]     (defaults: "100 1000 10000" and 3)
# The tiles are written to $OUT (default target/tile-scaling; 10^4 objects take ~6 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="${1:-100 1000 10000}"
EPOCHS="${2:-3}"
OUT="${OUT:-target/tile-scaling}"
mkdir -p "$OUT"
cargo build -q --release --bin ngmixit --example make_sim_tile
RS=target/release/ngmixit
CFG=tests/data/e2e/run-e2e01max.yaml
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%8s %6s %10s %10s %9s %11s %11s %8s\n' nobj epochs obj/s_1t obj/s_2t speedup rss_1t_MB rss_2t_MB inputs_MB
for n in $SIZES; do
    dir="$OUT/n$n-e$EPOCHS"
    if [ ! -e "$dir/t-z-meds.fits" ]; then
        npair=$((n / 10))
        target/release/examples/make_sim_tile --nobj $((n - npair)) --npair "$npair" \
            --mask-every 10 --bands griz --epochs "$EPOCHS" --seed 9 "$dir" t >/dev/null
    fi
    files=("$dir"/t-{g,r,i,z}-meds.fits)
    inputs=$(du -cm "${files[@]}" | tail -1 | cut -f1)
    declare -A rate rss
    for th in 1 2; do
        log="$OUT/n$n-t$th.time"
        /usr/bin/time -f "%e %M" -o "$log" "$RS" --threads "$th" --seed 1 "$CFG" \
            "$OUT/n$n-t$th.fits" "${files[@]}" 2>/dev/null
        read -r secs kb < "$log"
        rate[$th]=$(python3 -c "print('%.1f' % ($n / $secs))")
        rss[$th]=$((kb / 1024))
    done
    printf '%8d %6d %10s %10s %8.2fx %11s %11s %8s\n' "$n" "$EPOCHS" "${rate[1]}" "${rate[2]}" \
        "$(python3 -c "print(${rate[2]} / ${rate[1]})")" "${rss[1]}" "${rss[2]}" "$inputs"
    last_rate1=${rate[1]}
done
# cost per object grows about linearly with the number of epochs fitted (PSF fits and
# likelihood passes are per epoch)
python3 - "$last_rate1" "$EPOCHS" <<'PY'
import sys
rate, ep = float(sys.argv[1]), int(sys.argv[2])
per_obj = (1.0 / rate) * (10 + 1) / (ep + 1)
print("projected DES tile (1e4 objects, griz, 10 epochs + coadd): %.0f s on one core, %.0f s on two"
      % (1e4 * per_obj, 1e4 * per_obj / 1.9))
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
