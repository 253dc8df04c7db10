#!/bin/sh
# Reports benchmark: 10,000 hosts and 100,000 findings to report.xlsx + report.json with
# rdsaudit (excelize StreamWriter), then the same rows with Python XlsxWriter in
# constant_memory mode, in the same run. Prints time and peak RSS of each.
# Usage: report/bench/run.sh   (from the repository root)
set -eu
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go test -c -o "$out/report.test" ./report
echo "== rdsaudit (xlsx + json), deflate level ${RDSAUDIT_BENCH_LEVEL:-1}"
RDSAUDIT_BENCH_OUT=$out /usr/bin/time -f "peak-rss-kb %M wall-s %e" \
  "$out/report.test" -test.run XXX -test.bench BenchmarkWrite10k -test.benchtime 1x 2>&1 | grep -E "Benchmark|peak-rss"
ls -l "$out/report.xlsx" "$out/report.json" | awk '{print $5, $9}'
echo "== Python XlsxWriter $(/usr/bin/python3 -c 'import xlsxwriter; print(xlsxwriter.__version__)') constant_memory (xlsx only)"
/usr/bin/time -f "peak-rss-kb %M wall-s %e" /usr/bin/python3 "$(dirname "$0")/xlsxwriter_bench.py" "$out/xw.xlsx" 2>&1
ls -l "$out/xw.xlsx" | awk '{print $5, $9}'
