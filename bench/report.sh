#!/bin/sh
# Reports benchmark: 10,000 hosts and 100,000 findings to report.xlsx + report.json with
# rdsaudit (excelize StreamWriter), then the same rows with Python XlsxWriter in
# constant_memory mode, in the same run, RUNS times (default 3). Prints time and peak RSS
# of each run, then median and range, and the rdsaudit/XlsxWriter ratio of the medians.
# Usage: bench/report.sh   (from the repository root)
set -eu
runs=${RUNS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -c -o "$out/report.test" ./report
: > "$out/results"
for i in $(seq "$runs"); do
  RDSAUDIT_BENCH_OUT=$out /usr/bin/time -f "%e %M" -o "$out/time" \
    "$out/report.test" -test.run XXX -test.bench BenchmarkWrite10k -test.benchtime 1x > "$out/bench.txt" 2>&1
  grep -E "^Benchmark" "$out/bench.txt"
  awk '/^Benchmark/ { for (i = 2; i < NF; i++) if ($(i+1) == "xlsx-s" || $(i+1) == "json-s") print "rdsaudit_" substr($(i+1), 1, 4) "_s", $i }' "$out/bench.txt" >> "$out/results"
  read -r wall rss < "$out/time"
  echo "run $i rdsaudit (xlsx + json, process): wall $wall s, peak RSS $((rss / 1024)) MB"
  echo "rdsaudit_process_wall_s $wall" >> "$out/results"
  echo "rdsaudit_peak_rss_mb $((rss / 1024))" >> "$out/results"
  /usr/bin/time -f "%e %M" -o "$out/time" /usr/bin/python3 "$(dirname "$0")/xlsxwriter_bench.py" "$out/xw.xlsx" > /dev/null
  read -r wall rss < "$out/time"
  echo "run $i XlsxWriter constant_memory (xlsx only): wall $wall s, peak RSS $((rss / 1024)) MB"
  echo "xlsxwriter_wall_s $wall" >> "$out/results"
  echo "xlsxwriter_peak_rss_mb $((rss / 1024))" >> "$out/results"
done
ls -l "$out/report.xlsx" "$out/report.json" "$out/xw.xlsx" | awk '{print $5, $9}'
python3 "$(dirname "$0")/stats.py" "$out/results"
python3 - "$out/results" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    k, x = line.split()
    v.setdefault(k, []).append(float(x))
m = lambda k: statistics.median(v[k])
print(f"rdsaudit xlsx / XlsxWriter (medians): {m('rdsaudit_xlsx_s') / m('xlsxwriter_wall_s'):.2f}")
PY
