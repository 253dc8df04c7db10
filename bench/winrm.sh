#!/usr/bin/env bash
# End-to-end over WinRM: `rdsaudit simulate --hosts N` serves N generated session hosts
# (NTLMv2 over HTTPS with a throwaway CA) with LATENCY per POST and SCRIPT of script time;
# `rdsaudit run` collects them at concurrency C, RUNS times. Prints per run the wall
# time, the collector's CPU (user + sys) per host and its peak RSS, then median and
# range, and the wall time against the bound ceil(N/C) x t_host, where t_host is the
# median duration of one host measured alone (a run over one host).
# Usage: bench/winrm.sh   (from the repository root)
#   N=10000 C=128 LATENCY=25ms SCRIPT=800ms RUNS=3 by default.
set -euo pipefail
n=${N:-10000} c=${C:-128} latency=${LATENCY:-25ms} script=${SCRIPT:-800ms} runs=${RUNS:-3}
work=$(mktemp -d)
sim=
trap '[ -n "$sim" ] && kill "$sim" 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/rdsaudit" ./cmd/rdsaudit
BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64)
export BENCH_PASSWORD
"$work/rdsaudit" simulate --hosts "$n" --latency "$latency" --script-time "$script" \
  --ntlm --user 'CONTOSO\svc-rdsaudit' --password-env BENCH_PASSWORD --ca-out "$work/ca.pem" \
  > "$work/inventory.csv" 2> "$work/sim.log" &
sim=$!
for _ in $(seq 600); do grep -q '^serving' "$work/sim.log" && break; sleep 0.1; done
grep -q '^serving' "$work/sim.log" || { cat "$work/sim.log"; exit 1; }
head -n 2 "$work/inventory.csv" > "$work/one.csv"
config() { # inventory file, output dir
  cat <<YAML
inventory: {file: $1}
credentials:
  - {name: audit, username: 'CONTOSO\svc-rdsaudit', password_env: BENCH_PASSWORD}
default_credential: audit
transport: {scheme: https, auth: ntlm, ca_bundle: $work/ca.pem}
collection: {source: winrm, concurrency: $c, retries: 0}
rules_file: $PWD/samples/rules.yaml
entitlements_file: $PWD/samples/entitlements.csv
output_dir: $2
log: {level: info, format: json}
YAML
}
config "$work/one.csv" "$work/out1" > "$work/one.yaml"
config "$work/inventory.csv" "$work/out" > "$work/all.yaml"
: > "$work/results"
for i in $(seq "$runs"); do
  rm -rf "$work/out1" "$work/out"
  "$work/rdsaudit" run --config "$work/one.yaml" > /dev/null 2> "$work/one.log" || true
  python3 - "$work/one.log" >> "$work/results" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("message") == "host done":
        d = e["duration"]  # e.g. "1.02s" or "950ms"
        s = float(d[:-2]) / 1000 if d.endswith("ms") else float(d[:-1])
        print("t_host_s", s)
PY
  code=0
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$work/rdsaudit" run --config "$work/all.yaml" > "$work/stdout" 2> "$work/run.log" || code=$?
  if [ "$code" -ne 1 ] && [ "$code" -ne 0 ]; then echo "run: exit $code"; tail -5 "$work/run.log"; cat "$work/stdout"; exit 1; fi
  read -r wall user sys rss < <(tail -n 1 "$work/time")
  cpu_ms=$(python3 -c "print(round(($user + $sys) * 1000 / $n, 3))")
  echo "run $i: $n hosts at C=$c: wall $wall s, CPU ${cpu_ms} ms/host, peak RSS $((rss / 1024)) MB; $(grep coverage "$work/stdout")"
  { echo "wall_s $wall"; echo "cpu_ms_per_host $cpu_ms"; echo "peak_rss_mb $((rss / 1024))"; } >> "$work/results"
done
python3 bench/stats.py "$work/results"
python3 - "$work/results" "$n" "$c" <<'PY'
import math, statistics, sys
v = {}
for line in open(sys.argv[1]):
    k, x = line.split()
    v.setdefault(k, []).append(float(x))
n, c = int(sys.argv[2]), int(sys.argv[3])
bound = math.ceil(n / c) * statistics.median(v["t_host_s"])
print(f"bound ceil({n}/{c}) x t_host = {bound:.1f} s; wall / bound (median) = {statistics.median(v['wall_s']) / bound:.3f}")
PY
