#!/usr/bin/env bash
# Reconnect storm: N sessions (certificate logins, no TUN on the client side) are up from one client host; every
# connection drops at once and all come back with their cookies (TLS and CONNECT, no login). Prints the time until the
# last one is back, and the server's CPU time for the whole run. Root (network namespaces); traffic stays on a veth between two
# namespaces this script makes (198.18.60.0/24) and removes, with everything else it started.
#   sudo bench/reconnect-storm.sh [SESSIONS] [PARALLEL]
set -euo pipefail
n=${1:-1000}
parallel=${2:-64}
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/isotun" --help >/dev/null # builds the CLI when needed
exe="$root/.isotun/bin/isotun"
work=$(mktemp -d)
srv=isotun-storm-srv cli=isotun-storm-cli
spid=
cleanup() {
  if [ -n "$spid" ]; then kill -TERM "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
  ip netns del "$cli" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

. "$root/bench/server-lib.sh"
bench_two_hosts "$srv" "$cli" st 198.18.60.1 198.18.60.2

cd "$work"
"$exe" pki init >/dev/null
"$exe" pki server --name storm --ip 198.18.60.1 >/dev/null
"$exe" pki client --tenant storm --user load >/dev/null
cat >server.yaml <<CONF
listen: 198.18.60.1:443
tls:
  certificate: pki/storm.crt
  key: pki/storm.key
  client-ca: pki/ca.crt
admin:
  listen: off
limits:
  max-sessions: $((n + 100))
  # every session comes from the one client host
  max-connections: $((4 * n + 100))
  per-source-connections: $((4 * n + 100))
tenants:
  - name: storm
    namespace: host
    device: isotun-storm
    pool: 10.205.0.0/20
    dpd: 600
    keepalive: 600
    max-sessions: $n
    max-sessions-per-user: $n
CONF
ip netns exec "$srv" "$exe" server --config server.yaml >server.log 2>&1 &
spid=$!
for _ in $(seq 150); do ip netns exec "$srv" ss -Htln 'sport = :443' | grep -q . && break; sleep 0.2; done
ip netns exec "$srv" ss -Htln 'sport = :443' | grep -q . || { tail -5 server.log; exit 1; }

cpu() { awk '{print $14 + $15}' "/proc/$spid/stat"; }
hz=$(getconf CLK_TCK)
before=$(cpu)
ip netns exec "$cli" "$exe" lab load https://198.18.60.1/ -c pki/storm-load.crt -k pki/storm-load.key --cafile pki/ca.crt \
  --sessions "$n" --parallel "$parallel" --hold 0 --reconnect-storm
echo "server CPU for $n logins and CONNECTs, then the storm: $(( ($(cpu) - before) * 1000 / hz )) ms ($(nproc) cores)"
