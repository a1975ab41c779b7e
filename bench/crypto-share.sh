#!/usr/bin/env bash
# The server's crypto CPU share measured two ways on the same run, while iperf3 moves data both ways through the
# lab's tunnel:
#   isotun  rate of isotun_tls_crypto_seconds_total over rate of process_cpu_seconds_total (its admin listener);
#   perf    the share of the server's CPU samples (perf record -p -g) that are TLS record work: taken in OpenSSL, or
#           in SslStream's own code (not in the socket calls under it); see bench/perf-tls-share.awk. The server
#           runs with the runtime's perf map on, so that perf can name JIT code.
# Usage: sudo bench/crypto-share.sh [SECONDS] [RUNS]   (defaults 10 and 3). Needs perf (Debian: linux-perf) and
# iperf3. Brings the lab up (./isotun lab up) and takes it down at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs=${1:-10}
runs=${2:-3}
for tool in perf iperf3; do
  command -v "$tool" >/dev/null || { echo "crypto-share: $tool is missing (Debian package ${tool/perf/linux-perf})" >&2; exit 1; }
done
work=$(mktemp -d)
cleanup() {
  [ -f "$work/iperf.pid" ] && kill "$(cat "$work/iperf.pid")" 2>/dev/null || true
  ./isotun lab down >/dev/null 2>&1 || true
  # The perf maps the lab's processes wrote (perf reads them from /tmp only).
  find /tmp -maxdepth 1 -name 'perf-*.map' -newer "$work/start" -delete 2>/dev/null || true
  rm -rf "$work"
}
touch "$work/start"
trap cleanup EXIT

# Perf map on, and JIT code mapped plainly, so that perf names managed frames (the script's own lab only).
DOTNET_PerfMapEnabled=3 DOTNET_EnableWriteXorExecute=0 ./isotun lab up >/dev/null
pid=$(cat .isotun/lab/pids/server.pid)
ip netns exec isotun-lab-svc iperf3 -s -p 5201 -D --pidfile "$work/iperf.pid"
sleep 1
# Warm up first: right after start, the JIT's recompiling of hot code would be a large part of the first run's CPU.
ip netns exec isotun-lab-cli iperf3 -c 198.18.1.2 -p 5201 -t 5 --bidir >/dev/null

# The server's two counters, summed over tenants and directions: "crypto cpu" (seconds).
scrape() {
  ip netns exec isotun-lab-srv bash -c 'exec 3<>/dev/tcp/127.0.0.1/9410; printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3; cat <&3' |
    awk '/^isotun_tls_crypto_seconds_total/ { c += $NF } /^process_cpu_seconds_total/ { p = $NF } END { printf "%.6f %.6f\n", c, p }'
}

printf '%-4s %12s %12s %10s\n' run isotun perf ratio
for run in $(seq 1 "$runs"); do
  read -r c0 p0 < <(scrape)
  ip netns exec isotun-lab-cli iperf3 -c 198.18.1.2 -p 5201 -t "$secs" --bidir >/dev/null &
  load=$!
  perf record -q -F 499 -g -p "$pid" -o "$work/perf.data" -- sleep "$secs" 2>/dev/null
  wait "$load"
  read -r c1 p1 < <(scrape)
  tls=$(perf script -i "$work/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null | awk -f bench/perf-tls-share.awk | awk '{ print $3 }')
  awk -v run="$run" -v c="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" -v p="$(awk -v a="$p0" -v b="$p1" 'BEGIN { print b - a }')" -v perf="$tls" \
    'BEGIN { own = p > 0 ? c / p : 0; printf "%-4s %11.1f%% %11.1f%% %10.2f\n", run, own * 100, perf * 100, (perf > 0 ? own / perf : 0) }'
done
