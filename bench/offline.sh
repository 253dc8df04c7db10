#!/usr/bin/env bash
# End-to-end: `rdsaudit run` over generated fleets of 1,000 and 10,000 session hosts read
# from offline evidence files (bench/genfleet), RUNS times each, under /usr/bin/time.
# Prints wall time and peak RSS per run, then median and range, and the 10k/1k ratio
# of the median wall times.
# Usage: bench/offline.sh   (from the repository root; RUNS=3 by default)
set -euo pipefail
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/rdsaudit" ./cmd/rdsaudit
for n in 1000 10000; do
  go run ./bench/genfleet -hosts "$n" -out "$work/f$n"
done
: > "$work/results"
for i in $(seq "$runs"); do
  for n in 1000 10000; do
    rm -rf "$work/f$n/out"
    code=0
    /usr/bin/time -f "%e %M" -o "$work/time" "$work/rdsaudit" run --config "$work/f$n/config.yaml" > "$work/stdout" 2> "$work/stderr" || code=$?
    # Exit 1: the generated fleet carries the samples' findings (3 would be a coverage gap).
    if [ "$code" -ne 1 ]; then echo "run $n hosts: exit $code"; cat "$work/stderr"; exit 1; fi
    read -r wall rss < <(tail -n 1 "$work/time")
    echo "run $i, $n hosts: wall ${wall} s, peak RSS $((rss / 1024)) MB"
    echo "wall_s_$n $wall" >> "$work/results"
    echo "peak_rss_mb_$n $((rss / 1024))" >> "$work/results"
  done
done
python3 bench/stats.py "$work/results"
python3 - "$work/results" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    k, x = line.split()
    v.setdefault(k, []).append(float(x))
print(f"10k/1k wall ratio (medians): {statistics.median(v['wall_s_10000']) / statistics.median(v['wall_s_1000']):.2f}")
PY
