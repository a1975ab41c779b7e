#!/usr/bin/env bash
# Site to site: TCP throughput (iperf3, one stream, SECONDS s) between a host at site A and a host at site B, through
# both sites' gateways (each an `isotun connect --site-gateway`) and the server, which carries every packet twice (in
# from gw-a's tunnel, out into gw-b's):
#   host-a 192.168.110.2 -- gw-a ==TLS==> server (tenant namespace) ==TLS==> gw-b -- host-b 192.168.120.2
# and beside it, on the same server and tunnels up at the same time, one tunnel hop: a client `isotun connect` to a
# service host behind the tenant's veth uplink (198.19.213.2):
#   client ==TLS==> server (tenant namespace) -- uplink veth -- service
# Both ways each (iperf3 -R: B to A, service to client). RUNS rounds; each round measures each direction on both
# paths one after the other, the site-to-site path first in odd rounds and the single tunnel first in even ones, and
# prints its table and the ratios site to site / single tunnel. Every measurement, with the server's CPU time over it,
# goes into bench/out/sites-<time>.tsv, the logs of the server and the three clients into sites-<time>.log.
# Root (network namespaces); traffic stays in namespaces this script makes (isotun-sitebench-*: underlay
# 198.19.210.0/24 to 198.19.213.0/24, the sites' LANs 192.168.110.0/24 and 192.168.120.0/24, pool 10.210.0.0/24) and
# removes, with every process it started (the server deletes the tenant's namespace; the script does too if left).
#   sudo bench/sites.sh [RUNS] [SECONDS]     (defaults 3 and 10)
set -euo pipefail
runs=${1:-3}
secs=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/isotun" --help >/dev/null # builds the CLI when needed
command -v iperf3 >/dev/null || { echo "sites: iperf3 is missing" >&2; exit 1; }
command -v jq >/dev/null || { echo "sites: jq is missing" >&2; exit 1; }
. "$root/bench/server-lib.sh"
bench_workdir sites
p=isotun-sitebench
srv=$p-srv cli=$p-cli gwa=$p-gwa gwb=$p-gwb hosta=$p-hosta hostb=$p-hostb svc=$p-svc tns=$p-t
made=()
pids=()
cleanup() {
  for x in "${pids[@]}"; do kill -TERM "$x" 2>/dev/null || true; done
  for x in "${pids[@]}"; do wait "$x" 2>/dev/null || true; done
  # The tenant's namespace is the server's; it deletes it when it stops. Only a leftover of this run is removed here.
  for ns in "${made[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The server listens on 198.19.210.1 (its end of the client's veth); the gateways reach it through veths of their own.
if ip netns list | grep -q "^$p-"; then echo "sites: namespaces $p-* exist already (another run?)" >&2; exit 1; fi
made=("$srv" "$cli" "$tns")
bench_two_hosts "$srv" "$cli" sb 198.19.210.1 198.19.210.2
# veth NS DEV ADDR PEERNS PEERDEV PEERADDR
veth() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}
newns() { made+=("$1"); ip netns add "$1"; ip -n "$1" link set lo up; }
for ns in "$gwa" "$gwb" "$hosta" "$hostb" "$svc"; do newns "$ns"; done
veth "$gwa" sb-a0 198.19.211.2/24 "$srv" sb-a1 198.19.211.1/24
veth "$gwb" sb-b0 198.19.212.2/24 "$srv" sb-b1 198.19.212.1/24
ip -n "$gwa" route add 198.19.210.1/32 via 198.19.211.1
ip -n "$gwb" route add 198.19.210.1/32 via 198.19.212.1
# The sites' LANs: the gateway at .1, the host at .2 with its default route through the gateway.
veth "$gwa" sb-la 192.168.110.1/24 "$hosta" lan0 192.168.110.2/24
veth "$gwb" sb-lb 192.168.120.1/24 "$hostb" lan0 192.168.120.2/24
ip -n "$hosta" route add default via 192.168.110.1
ip -n "$hostb" route add default via 192.168.120.1

cd "$work"
bench_server_config sitebench 198.19.210.1 off client
"$exe" pki client --tenant sitebench --user gw-a >/dev/null
"$exe" pki client --tenant sitebench --user gw-b >/dev/null
pin=$("$exe" pki pin pki/sitebench.crt)
cat >>server.yaml <<CONF
tenants:
  - name: sitebench
    namespace: $tns
    pool: 10.210.0.0/24
    routes: [198.19.213.0/24]
    uplink:
      veth:
        peer-namespace: $svc
        address: 198.19.213.1/24
        peer-address: 198.19.213.2/24
    sites:
      - name: site-a
        user: gw-a
        subnets: [192.168.110.0/24]
      - name: site-b
        user: gw-b
        subnets: [192.168.120.0/24]
CONF
bench_server_start "$srv"

# connect NS USER [--site-gateway]: a tunnel from NS with USER's certificate (log USER.log)
connect() {
  ip netns exec "$1" "$exe" connect https://198.19.210.1/sitebench -c "pki/sitebench-$2.crt" -k "pki/sitebench-$2.key" \
    --servercert "$pin" "${@:3}" >"$2.log" 2>&1 &
  pids+=("$!")
}
connect "$gwa" gw-a --site-gateway
connect "$gwb" gw-b --site-gateway
connect "$cli" client
for ns in "$hosta" "$hostb" "$svc"; do
  ip netns exec "$ns" iperf3 -s >"iperf-$ns.log" 2>&1 &
  pids+=("$!")
done

# Up: each tunnel has its address, and each gateway the route to the other site that the server pushes.
up() {
  ip -n "$cli" -4 -o addr show dev isotun0 2>/dev/null | grep -q inet &&
    ip -n "$gwa" -4 route show 192.168.120.0/24 2>/dev/null | grep -q isotun0 &&
    ip -n "$gwb" -4 route show 192.168.110.0/24 2>/dev/null | grep -q isotun0
}
for _ in $(seq 150); do up && break; sleep 0.2; done
up || { echo "sites: the tunnels did not come up"; for f in gw-a gw-b client server; do echo "== $f"; tail -5 "$f.log"; done; exit 1; }

# iperf NS TARGET SECONDS [-R]: the receiver's Gbit/s and the sender's retransmits ("- -" when iperf3 fails)
iperf() {
  local out line
  out=$(timeout $(($3 + 30)) ip netns exec "$1" iperf3 -c "$2" -t "$3" -J "${@:4}" 2>/dev/null) || true
  line=$(jq -r '"\(.end.sum_received.bits_per_second // "-") \(.end.sum_sent.retransmits // "-")"' <<<"$out" 2>/dev/null) || true
  awk '$1 ~ /^[0-9.e+]+$/ { printf "%.2f %s\n", $1 / 1e9, $2; next } { print "- -" }' <<<"${line:--}"
}
# The first packets also find each path ready end to end; retried until both carry data (the JIT warms up too).
for path in "$hosta 192.168.120.2" "$cli 198.19.213.2"; do
  for try in $(seq 10); do
    read -r g _ < <(iperf ${path% *} ${path#* } 2)
    [ "$g" != - ] && break
    [ "$try" = 10 ] && { echo "sites: no data through ${path#* }"; for f in gw-a gw-b client server; do echo "== $f"; tail -5 "$f.log"; done; exit 1; }
    sleep 1
  done
done

cpu() { awk '{print $14 + $15}' "/proc/$spid/stat"; }
hz=$(getconf CLK_TCK)
printf 'round\tpath\tdirection\tgbit_s\tretransmits\tserver_cpu_s\tserver_cpu_s_per_gb\n' >"$tsv"
declare -A r
# measure ROUND PATH DIRECTION: one iperf3 run; its line into the TSV, its Gbit/s into r[PATH DIRECTION]
measure() {
  local ns target flag=() g re c0 c1 s pg
  case $2 in
    site-to-site) ns=$hosta target=192.168.120.2 ;;
    single) ns=$cli target=198.19.213.2 ;;
  esac
  [ "$3" = reverse ] && flag=(-R)
  c0=$(cpu)
  read -r g re < <(iperf "$ns" "$target" "$secs" "${flag[@]}")
  c1=$(cpu)
  s=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
  # CPU seconds per GB (10^9 bytes) that crossed: the received Gbit/s over the run's seconds
  pg=$(awk -v g="$g" -v s="$s" -v t="$secs" 'BEGIN { if (g == "-" || g == 0) print "-"; else printf "%.2f", s / (g * t / 8) }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$g" "$re" "$s" "$pg" >>"$tsv"
  r["$2 $3"]=$g r["$2 $3 cpu"]=$pg
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

echo "iperf3 -t $secs, one TCP stream; server CPU is the server process's user+system time over the run ($(nproc) cores)"
echo "forward: host-a -> host-b, client -> service; reverse (-R): host-b -> host-a, service -> client"
for round in $(seq 1 "$runs"); do
  if [ $((round % 2)) = 1 ]; then order=(site-to-site single); else order=(single site-to-site); fi
  for dir in forward reverse; do
    for path in "${order[@]}"; do measure "$round" "$path" "$dir"; done
  done
  echo
  echo "== round $round of $runs (${order[0]} first)"
  printf '%-9s %13s %14s %14s %32s\n' direction "site to site" "single tunnel" "site / single" "server CPU s/GB, site | single"
  for dir in forward reverse; do
    printf '%-9s %13s %14s %14s %32s\n' "$dir" "${r[site-to-site $dir]} Gbit/s" "${r[single $dir]} Gbit/s" \
      "$(ratio "${r[site-to-site $dir]}" "${r[single $dir]}")" "${r[site-to-site $dir cpu]} | ${r[single $dir cpu]}"
  done
done

kill -0 "$spid" 2>/dev/null || { echo "sites: the server is gone"; tail -5 server.log; exit 1; }
for f in server gw-a gw-b client; do echo "== $f"; cat "$f.log"; done >"${tsv%.tsv}.log"
echo
echo "== means over $runs rounds (TSV: $tsv)"
awk -F'\t' 'NR > 1 && $4 != "-" { s[$2 " " $3] += $4; n[$2 " " $3]++; c[$2 " " $3] += $7 }
  END {
    for (d = 0; d < 2; d++) {
      dir = d ? "reverse" : "forward"; a = "site-to-site " dir; b = "single " dir
      if (!n[a] || !n[b]) continue
      sa = s[a] / n[a]; sb = s[b] / n[b]
      printf "%-8s site to site %.2f Gbit/s, single tunnel %.2f Gbit/s: %.2f; server CPU s/GB %.2f and %.2f: %.2f\n",
        dir, sa, sb, (sb > 0 ? sa / sb : 0), c[a] / n[a], c[b] / n[b], (c[b] > 0 ? c[a] / c[b] : 0)
    }
  }' "$tsv"
