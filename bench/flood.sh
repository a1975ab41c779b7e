#!/usr/bin/env bash
# Connection flood: SOURCES addresses x PER_SOURCE connections (default 200 x 50 = 10,000) held against the server's
# TLS listener, slowloris style (`isotun lab flood`: some send nothing, some part of a ClientHello, some complete TLS
# and send part of a request head, each a byte now and then; what the server closes is opened again), while a
# legitimate client on another host logs in again and again (certificate login + CONNECT, `isotun lab load
# --timed-logins`). HEAVY more sources (default 0) open 400 connections each, over the server's per-source cap (256).
# Prints the flood's counts, the login times (the goal: each under 1 s while the flood is held), and the server's
# counters from its /metrics. Root (network namespaces); the traffic stays on veths between three namespaces this
# script makes (198.19.200.0/24 and the sources 198.19.201.0/24 and 198.19.202.0/24 on the flood's side, 198.19.203.0/24
# on the client's) and removes, with everything else it started.
#   sudo bench/flood.sh [SOURCES] [PER_SOURCE] [HEAVY]     (env LOGINS: timed logins 0.5 s apart, default 20)
set -euo pipefail
sources=${1:-200}
per=${2:-50}
heavy=${3:-0}
logins=${LOGINS:-20}
heavy_per=400
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/isotun" --help >/dev/null # builds the CLI when needed
exe="$root/.isotun/bin/isotun"
. "$root/bench/server-lib.sh"
work=$(mktemp -d)
srv=isotun-flood-srv cli=isotun-flood-cli usr=isotun-flood-usr
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "$usr" "$cli" "$srv"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# Every held connection is a descriptor on both sides.
need=$((sources * per + heavy * heavy_per + 1000))
if [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || { echo "flood: $need open files needed, the limit is $(ulimit -n)" >&2; exit 1; }
fi

for ns in "$srv" "$cli" "$usr"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add fl-s0 netns "$srv" type veth peer name fl-c0 netns "$cli"
ip link add fl-s1 netns "$srv" type veth peer name fl-u0 netns "$usr"
ip -n "$srv" addr add 198.19.200.1/24 dev fl-s0
ip -n "$cli" addr add 198.19.200.2/24 dev fl-c0
ip -n "$srv" addr add 198.19.203.1/24 dev fl-s1
ip -n "$usr" addr add 198.19.203.2/24 dev fl-u0
for i in $(seq 1 "$sources"); do echo "addr add 198.19.201.$i/32 dev fl-c0"; done | ip -n "$cli" -batch -
for i in $(seq 1 "$heavy"); do echo "addr add 198.19.202.$i/32 dev fl-c0"; done | ip -n "$cli" -batch -
ip -n "$srv" link set fl-s0 up
ip -n "$srv" link set fl-s1 up
ip -n "$cli" link set fl-c0 up
ip -n "$usr" link set fl-u0 up
ip -n "$srv" route add 198.19.201.0/24 dev fl-s0
ip -n "$srv" route add 198.19.202.0/24 dev fl-s0
ip -n "$usr" route add 198.19.200.0/24 via 198.19.203.1

cd "$work"
# limits.max-connections and limits.per-source-connections keep their defaults (16384 and 256).
bench_server_config flood 198.19.200.1 127.0.0.1:9410 legit
cat >>server.yaml <<CONF
tenants:
  - name: flood
    namespace: host
    device: isotun-flood
    pool: 10.206.0.0/24
CONF
bench_server_start "$srv"

login() {
  ip netns exec "$usr" "$exe" lab load https://198.19.200.1/ -c pki/flood-legit.crt -k pki/flood-legit.key --cafile pki/ca.crt \
    --timed-logins "$1" --login-interval-ms 500 || true
}
scrape() {
  ip netns exec "$srv" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9410; printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3; cat <&3' |
    grep -E '^isotun_(listener_refused_total|listener_accept_errors_total|connections_closed_total|tls_handshakes_total|auth_attempts_total)' || true
}
echo "== before the flood: $logins logins"
login "$logins" | tail -1

cpu() { awk '{print $14 + $15}' "/proc/$spid/stat"; }
before=$(cpu) began=$SECONDS
ip netns exec "$cli" "$exe" lab flood 198.19.200.1:443 --sources 198.19.201.0/24 --source-count "$sources" --per-source "$per" --hold 3600 >flood.log 2>&1 &
pids+=("$!")
floods=("$!")
logs=(flood.log)
if [ "$heavy" -gt 0 ]; then
  ip netns exec "$cli" "$exe" lab flood 198.19.200.1:443 --sources 198.19.202.0/24 --source-count "$heavy" --per-source "$heavy_per" --hold 3600 >heavy.log 2>&1 &
  pids+=("$!")
  floods+=("$!")
  logs+=(heavy.log)
fi
up() { [ "$(cat "${logs[@]}" | grep -c '^flood: up')" -eq "${#logs[@]}" ]; }
for _ in $(seq 600); do up && break; sleep 0.5; done
up || { echo "the flood did not come up"; tail -n 3 "${logs[@]}"; exit 1; }
grep -h '^flood: up' "${logs[@]}"
sleep 12 # past the handshake timeout (10 s): the first held connections have been closed and opened again
echo "== during the flood: server fds $(ls "/proc/$spid/fd" | wc -l), RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/$spid/status"); $logins logins"
login "$logins" | tee logins.log
echo "== server counters, still under the flood"
scrape
for p in "${floods[@]}"; do kill -TERM "$p"; done
for p in "${floods[@]}"; do wait "$p" || true; done
echo "server CPU while the flood was held ($((SECONDS - began)) s, from its first connection): $(( ($(cpu) - before) * 1000 / $(getconf CLK_TCK) )) ms ($(nproc) cores)"
echo "== the flood, as its clients saw it"
grep -h '^flood: [0-9]' "${logs[@]}"
awk -v goal=1000 '/^login [0-9]+: [0-9]/ { ms = $3 + 0; if (ms > max) max = ms; n++ } /^login [0-9]+: failed/ { f++ } /^warm-up login: [0-9]/ { w = $3 }
  END { printf "legitimate logins under the flood: %d, slowest %.1f ms, failed %d (and the client process'"'"'s first, warm-up login: %s ms): %s\n",
    n, max, f, w, (n > 0 && f == 0 && max < goal) ? "PASS (each under 1 s)" : "FAIL" }' logins.log
