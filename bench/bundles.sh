#!/usr/bin/env bash
# Evidence bundles at scale (issue 16): a generated fleet of 10,000 session hosts
# (bench/genfleet) collected offline in SHARDS shards (one `rdsaudit collect --shard K/N`
# each, one site and key per shard) into bundles, then the central `rdsaudit run
# --bundles`, RUNS times, under /usr/bin/time; the ordinary `rdsaudit run` of the same
# fleet alongside for comparison. Prints wall time and peak RSS per run, then median and
# range. Checks that the central run's results equal the ordinary run's.
# Usage: bench/bundles.sh   (from the repository root; RUNS=3, HOSTS=10000, SHARDS=10)
set -euo pipefail
runs=${RUNS:-3}
n=${HOSTS:-10000}
shards=${SHARDS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/rdsaudit" ./cmd/rdsaudit
go run ./bench/genfleet -hosts "$n" -out "$work/f"
{
  sed 's#^output_dir:.*##' "$work/f/config.yaml" | grep -v '^\s*$'
  echo "output_dir: $work/central"
  echo "bundles:"
  echo "  trusted_keys:"
  for k in $(seq "$shards"); do
    "$work/rdsaudit" keygen --out "$work/shard$k" > /dev/null
    echo "    - {site: shard$k, public_key_file: $work/shard$k.pub}"
  done
} > "$work/f/central.yaml"
: > "$work/results"
for i in $(seq "$runs"); do
  rm -rf "$work/f/out" "$work/central" "$work/bundles"
  code=0
  /usr/bin/time -f "%e %M" -o "$work/time" "$work/rdsaudit" run --config "$work/f/config.yaml" > /dev/null 2> "$work/stderr" || code=$?
  if [ "$code" -ne 1 ]; then echo "ordinary run: exit $code"; cat "$work/stderr"; exit 1; fi
  read -r wall rss < <(tail -n 1 "$work/time")
  echo "run $i, ordinary: wall ${wall} s, peak RSS $((rss / 1024)) MB"
  echo "ordinary_wall_s $wall" >> "$work/results"
  echo "ordinary_peak_rss_mb $((rss / 1024))" >> "$work/results"
  for k in $(seq "$shards"); do
    RDSAUDIT_SITE_NAME=shard$k RDSAUDIT_SIGNING_KEY_FILE=$work/shard$k.key \
      /usr/bin/time -f "%e %M" -o "$work/time" "$work/rdsaudit" collect --config "$work/f/config.yaml" \
      --bundle "$work/bundles" --shard "$k/$shards" --log-level warn > /dev/null
    read -r wall rss < <(tail -n 1 "$work/time")
    echo "collect_wall_s $wall" >> "$work/results"
    echo "collect_peak_rss_mb $((rss / 1024))" >> "$work/results"
  done
  code=0
  /usr/bin/time -f "%e %M" -o "$work/time" "$work/rdsaudit" run --config "$work/f/central.yaml" --bundles "$work/bundles" > /dev/null 2> "$work/stderr" || code=$?
  if [ "$code" -ne 1 ]; then echo "central run: exit $code"; cat "$work/stderr"; exit 1; fi
  read -r wall rss < <(tail -n 1 "$work/time")
  echo "run $i, central from $shards bundles: wall ${wall} s, peak RSS $((rss / 1024)) MB"
  echo "central_wall_s $wall" >> "$work/results"
  echo "central_peak_rss_mb $((rss / 1024))" >> "$work/results"
  python3 - "$work"/f/out/2*/report.json "$work"/central/2*/report.json <<'PY'
import json, sys
def results(p):
    return sorted((r["rule_id"], r["subject"]["kind"], r["subject"]["name"], r.get("key", ""), r["outcome"], r.get("waived", False)) for r in json.load(open(p))["results"])
a, b = results(sys.argv[1]), results(sys.argv[2])
if a != b:
    sys.exit(f"central results differ from the ordinary run's ({len(a)} vs {len(b)})")
print(f"central results = ordinary results ({len(a)} results)")
PY
done
python3 bench/stats.py "$work/results"
