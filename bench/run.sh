#!/usr/bin/env bash
# Isotun side by side with stunnel, OpenVPN TCP/UDP and ocserv, in ONE run of the anchors script (ANCHORS), then
# docs/benchmarks.md (throughput section) and docs/benchmarks.svg are rewritten from the results.
#   sudo bench/run.sh                 # everything (~4 min)
#   DURATION=20 sudo bench/run.sh     # longer iperf3 runs
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
anchors=${ANCHORS:-$root/../shared/bench/anchors.sh}
[ -f "$anchors" ] || { echo "the side-by-side anchors script is not at $anchors: give its path in ANCHORS=..." >&2; exit 1; }
missing=()
for p in iperf3:iperf3 stunnel:stunnel4 openvpn:openvpn ocserv:ocserv openconnect:openconnect python3:python3 jq:jq openssl:openssl; do
  command -v "${p%%:*}" >/dev/null 2>&1 || missing+=("${p#*:}")
done
[ ${#missing[@]} -eq 0 ] || { echo "missing programs; install with: apt-get install ${missing[*]}" >&2; exit 1; }
out=${ISOTUN_BENCH_OUT:-$root/bench/out}
mkdir -p "$out"
rm -rf "$out/rtt" "$out/rtt.json" "$out/sessions.json"
"$root/isotun" --version >/dev/null
export ISOTUN_BENCH_OUT=$out EXTRA_TESTS=$root/bench/isotun-plugin.sh ANCHORS_JSON=$out/anchors.json
# 1,000 handshakes per probe for stunnel and isotun alike (anchors' default, 200, is a third of a second here: a few
# clock ticks of server CPU, and a moment of the machine's noise could make a run's rate).
export HS_N=${HS_N:-1000}
export TESTS=${TESTS:-"raw stunnel ovpn_tcp ovpn_tcp_nodelay ovpn_udp ocserv isotun isotun_plain isotun_oc stunnel_p4 isotun_p4 isotun_p4_q1 isotun_ratelimit rtt_raw rtt_ocserv rtt_ovpn_udp rtt_isotun_oc isotun_rtt isotun_sessions handshake isotun_handshake handshake_par"}
bash "$anchors" 2>&1 | tee "$out/anchors.log"
python3 "$root/bench/report.py" "$out" "$root/docs/benchmarks.md" "$root/docs/benchmarks.svg"
echo "wrote docs/benchmarks.md and docs/benchmarks.svg"
