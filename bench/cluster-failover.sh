#!/usr/bin/env bash
# Cluster failover: a three-member etcd, three `isotun server` nodes of one cluster and an `isotun gateway` in front of
# them; one `isotun connect` client through the gateway. ROUNDS times: the node serving the client is killed (SIGKILL),
# and the script times how long until the client's tunnel carries a ping again, on another node, with its address.
# The killed node is started again before the next round. Root (network namespaces); traffic stays on veths between
# namespaces this script makes (198.18.70.0/24) and removes, with every process it started (by PID).
#   sudo bench/cluster-failover.sh [ROUNDS]
set -euo pipefail
rounds=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/isotun" --help >/dev/null # builds the CLI when needed
exe="$root/.isotun/bin/isotun"
command -v etcd >/dev/null || { echo "etcd is missing (Debian package etcd-server)" >&2; exit 1; }
command -v ping >/dev/null || { echo "ping is missing (Debian package iputils-ping)" >&2; exit 1; }
work=$(mktemp -d)
srv=isotun-cf-srv cli=isotun-cf-cli
declare -A pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for ns in "$cli" "$srv" isotun-cf-n1-acme isotun-cf-n2-acme isotun-cf-n3-acme; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

start() { # start NAME COMMAND...: in the server namespace, logging to $work/NAME.log
  local name=$1; shift
  ip netns exec "$srv" "$@" >"$work/$name.log" 2>&1 &
  pids[$name]=$!
}

wait_listening() { # wait_listening PORT SECONDS
  for _ in $(seq $(($2 * 10))); do
    ip netns exec "$srv" ss -Htln "sport = :$1" | grep -q . && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; return 1
}

ip netns add "$srv"
ip netns add "$cli"
ip -n "$srv" link set lo up
ip -n "$cli" link set lo up
ip link add cf-s0 netns "$srv" type veth peer name cf-c0 netns "$cli"
ip -n "$srv" addr add 198.18.70.1/24 dev cf-s0
ip -n "$cli" addr add 198.18.70.2/24 dev cf-c0
ip -n "$srv" link set cf-s0 up
ip -n "$cli" link set cf-c0 up

cd "$work"
"$exe" pki init >/dev/null
"$exe" pki server --name cluster --ip 198.18.70.1 >/dev/null
head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >pw
"$exe" user add --file acme.passwd --user alice --password-file pw >/dev/null

# etcd: three members on 127.0.0.1.
cluster_urls=""
for i in 1 2 3; do cluster_urls+="${cluster_urls:+,}e$i=http://127.0.0.1:$((23800 + i))"; done
for i in 1 2 3; do
  start "etcd$i" etcd --name "e$i" --data-dir "$work/etcd$i" \
    --listen-client-urls "http://127.0.0.1:$((23790 + i))" --advertise-client-urls "http://127.0.0.1:$((23790 + i))" \
    --listen-peer-urls "http://127.0.0.1:$((23800 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((23800 + i))" \
    --initial-cluster "$cluster_urls" --initial-cluster-state new
done
for i in 1 2 3; do wait_listening $((23790 + i)) 30; done

ports=(0 1443 2443 3443)
for i in 1 2 3; do
  mkdir -p "n$i"
  cat >"n$i/isotun.yaml" <<CONF
listen: 198.18.70.1:${ports[$i]}
tls:
  certificate: ../pki/cluster.crt
  key: ../pki/cluster.key
admin:
  listen: off
state: isotun.db
cluster:
  etcd: [http://127.0.0.1:23791, http://127.0.0.1:23792, http://127.0.0.1:23793]
  node: node-$i
tenants:
  - name: acme
    namespace: isotun-cf-n$i-acme
    pool: 10.30.0.0/24
    password-file: ../acme.passwd
CONF
done
node() { start "node$1" "$exe" server --config "$work/n$1/isotun.yaml"; wait_listening "${ports[$1]}" 30; }
for i in 1 2 3; do node "$i"; done
cat >gateway.yaml <<CONF
listen: 198.18.70.1:443
admin:
  listen: off
default:
  passthrough:
    backends: [198.18.70.1:1443, 198.18.70.1:2443, 198.18.70.1:3443]
no-sni: default
CONF
start gateway "$exe" gateway --config "$work/gateway.yaml"
wait_listening 443 30

pin=$("$exe" pki pin pki/cluster.crt)
ip netns exec "$cli" "$exe" connect https://198.18.70.1/acme --user alice --password-file pw --servercert "$pin" \
  --interface cf0 --reconnect-timeout 120 >"$work/client.log" 2>&1 &
pids[client]=$!
address=""
for _ in $(seq 300); do
  address=$(ip -n "$cli" -4 -o addr show dev cf0 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4 }') || true
  [ -n "$address" ] && break
  sleep 0.1
done
[ -n "$address" ] || { echo "the client did not connect:"; cat "$work/client.log"; exit 1; }
echo "client up at $address through the gateway; $rounds rounds"

serving() { # the node whose log says the client's tunnel is up last (each node logs "tunnel up for alice")
  local best="" bestline=""
  for i in 1 2 3; do
    local line; line=$(grep -h "tunnel up for alice" "$work/node$i.log" 2>/dev/null | tail -1 | cut -c1-24) || true
    if [ -n "$line" ] && [[ "$line" > "$bestline" ]]; then best=$i; bestline=$line; fi
  done
  echo "$best"
}

for r in $(seq "$rounds"); do
  n=$(serving)
  [ -n "$n" ] || { echo "round $r: cannot tell which node serves the client" >&2; exit 1; }
  t0=$(date +%s.%N)
  kill -KILL "${pids[node$n]}"
  wait "${pids[node$n]}" 2>/dev/null || true
  back=""
  for _ in $(seq 600); do
    # The tunnel carries packets again: an echo to the tenant's gateway comes back.
    if ip netns exec "$cli" ping -c1 -W1 10.30.0.1 >/dev/null 2>&1; then
      back=$(date +%s.%N); break
    fi
    sleep 0.1
  done
  [ -n "$back" ] || { echo "round $r: the client did not come back"; tail -5 "$work/client.log"; exit 1; }
  now=$(ip -n "$cli" -4 -o addr show dev cf0 | awk '{ sub(/\/.*/, "", $4); print $4 }')
  printf 'round %d: node-%s killed; the tunnel carries packets again after %.1f s, on node-%s, address %s%s\n' \
    "$r" "$n" "$(awk -v a="$t0" -v b="$back" 'BEGIN { print b - a }')" "$(serving)" "$now" "$([ "$now" = "$address" ] && echo " (the same)" || echo " (CHANGED)")"
  node "$n"
  sleep 3 # the gateway's probes see the restarted node again
done
