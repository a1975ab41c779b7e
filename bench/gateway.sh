#!/usr/bin/env bash
# Passthrough throughput and connection rate: isotun gateway vs HAProxy (Debian package), one run, same namespaces,
# same backend, same client. Both proxies route by SNI (HAProxy: req.ssl_sni after inspect-delay) and pass TLS through.
# Needs root, haproxy, python3, openssl. Traffic stays in namespaces made here (198.18.22.0/24, 198.18.23.0/24).
# Usage: sudo bench/gateway.sh [bulk-bytes] [rate-seconds] [rate-threads]      Results: bench/out/gateway-*.txt
# ISOTUN=path runs that isotun build as the gateway (say, a published one) instead of the ./isotun build.
# GW_WARM=seconds of connections through each proxy before measuring (default 5; 0: a cold gateway).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
size="${1:-1073741824}"; secs="${2:-10}"; threads="${3:-4}"; rounds="${ROUNDS:-3}"
out="$root/bench/out"; work="$(mktemp -d /tmp/isotun-bench-gw.XXXXXX)"; mkdir -p "$out"
CLI=isotun-bgw-cli GW=isotun-bgw-gw SRV=isotun-bgw-srv
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in $CLI $GW $SRV; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)"; exit 1; }
isotun="$root/isotun"; "$isotun" --help >/dev/null   # builds on first use

for ns in $CLI $GW $SRV; do ip netns del "$ns" 2>/dev/null || true; ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add bgw-c0 netns $CLI type veth peer name bgw-g0 netns $GW
ip link add bgw-g1 netns $GW type veth peer name bgw-s0 netns $SRV
ip -n $CLI addr add 198.18.22.2/24 dev bgw-c0; ip -n $GW addr add 198.18.22.1/24 dev bgw-g0
ip -n $GW addr add 198.18.23.1/24 dev bgw-g1;  ip -n $SRV addr add 198.18.23.2/24 dev bgw-s0
for l in "$CLI bgw-c0" "$GW bgw-g0" "$GW bgw-g1" "$SRV bgw-s0"; do set -- $l; ip -n "$1" link set "$2" up; done

(cd "$work" && "$isotun" pki init >/dev/null && "$isotun" pki server --name bench.example >/dev/null)
ip netns exec $SRV python3 "$root/bench/gateway_peer.py" server 198.18.23.2 443 "$work/pki/bench.example.crt" "$work/pki/bench.example.key" & pids+=($!)

cat > "$work/gateway.yaml" <<YAML
listen: 198.18.22.1:443
admin: { listen: "off" }
routes:
  - sni: bench.example
    passthrough: { backend: 198.18.23.2:443 }
limits: { per-ip-connections: 8000, per-ip-rate: 100000, per-ip-burst: 100000, max-connections: 8000, ban-after: 0 }
YAML
cat > "$work/haproxy.cfg" <<CFG
global
  maxconn 8000
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 198.18.22.1:8443
  tcp-request inspect-delay 5s
  tcp-request content accept if { req_ssl_hello_type 1 }
  use_backend be if { req.ssl_sni -i bench.example }
backend be
  server s1 198.18.23.2:443
CFG
ip netns exec $GW "${ISOTUN:-$root/.isotun/bin/isotun}" gateway --config "$work/gateway.yaml" >"$work/gateway.log" 2>&1 & pids+=($!)
gwpid=$!
ip netns exec $GW haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 & pids+=($!)
for port in 443 8443; do
  for _ in $(seq 50); do ip netns exec $GW ss -Htln "sport = :$port" | grep -q . && break; sleep 0.2; done
done
sleep 1

peer() { ip netns exec $CLI python3 "$root/bench/gateway_peer.py" "$@"; }
# Direct (no proxy) is not possible from the client host by design; the baseline is the same path through HAProxy.
# Warm both proxies first, as an operator's have been: isotun's runtime compiles its connection path at first and again,
# optimised, once it has run often (a third of the gateway's CPU in a 6 s run from a cold start went to compiling).
# GW_WARM=0 measures a cold gateway.
if [ "${GW_WARM:-5}" -gt 0 ]; then
  peer rate 198.18.22.1 443 bench.example "$threads" "${GW_WARM:-5}" >/dev/null
  peer rate 198.18.22.1 8443 bench.example "$threads" "${GW_WARM:-5}" >/dev/null
  peer bulk 198.18.22.1 443 bench.example 268435456 >/dev/null
  # ...and let its background compiler finish what the warm-up started.
  bash "$root/bench/jit-settle.sh" "$gwpid"
fi
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ); res="$out/gateway-$(date -u +%Y%m%dT%H%M%S).txt"
{
  echo "# gateway passthrough bench, $stamp, $(nproc) cores, $(haproxy -v | head -1)"
  echo "# bulk: one TLS download of $size bytes; rate: $threads threads, full TCP+TLS 1.3 connection + one round trip, $secs s"
  for r in $(seq "$rounds"); do
    echo "round $r isotun bulk_MBps $(peer bulk 198.18.22.1 443 bench.example "$size")"
    echo "round $r haproxy bulk_MBps $(peer bulk 198.18.22.1 8443 bench.example "$size")"
    echo "round $r isotun rate_cps_errors $(peer rate 198.18.22.1 443 bench.example "$threads" "$secs")"
    echo "round $r haproxy rate_cps_errors $(peer rate 198.18.22.1 8443 bench.example "$threads" "$secs")"
  done
} | tee "$res"
awk '/^round/ { v[$3" "$4] += $5; n[$3" "$4]++ }
     END { for (k in v) m[k] = v[k] / n[k];
           printf "mean bulk MB/s: isotun %.1f, haproxy %.1f, ratio %.2f\n", m["isotun bulk_MBps"], m["haproxy bulk_MBps"], m["isotun bulk_MBps"] / m["haproxy bulk_MBps"];
           printf "mean conn/s:    isotun %.1f, haproxy %.1f, ratio %.2f\n", m["isotun rate_cps_errors"], m["haproxy rate_cps_errors"], m["isotun rate_cps_errors"] / m["haproxy rate_cps_errors"] }' "$res" | tee -a "$res"
