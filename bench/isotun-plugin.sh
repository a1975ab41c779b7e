# isotun-plugin.sh -- sourced by shared/bench/anchors.sh (EXTRA_TESTS=...): Isotun measured in the same run,
# same namespaces, same iperf3, as stunnel, OpenVPN and ocserv.
#   test_isotun     isotun connect  -> isotun server   (Isotun client and server)
#   test_isotun_oc  openconnect     -> isotun server   (stock client, compare with ocserv_cstp)
# ISOTUN: the isotun executable (default: the repository's ./isotun, built in Release on first use).
# The tenant MTU is 1472 (ISOTUN_MTU), the MTU ocserv hands the same openconnect client in test_ocserv.

ISOTUN_ROOT=${ISOTUN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
ISOTUN=${ISOTUN:-$ISOTUN_ROOT/.isotun/bin/isotun}
"$ISOTUN_ROOT/isotun" --version >/dev/null || die "cannot build isotun"

isotun_server_setup() {  # writes $WORK/isotun/{server.yaml,bench.passwd,pw}
  local d="$WORK/isotun"; mkdir -p "$d"
  echo "isotun-bench-pw" >"$d/pw"; chmod 600 "$d/pw"
  "$ISOTUN" user add --file "$d/bench.passwd" --user bench --password-file "$d/pw" >/dev/null || fail "isotun user add failed"
  cat >"$d/server.yaml" <<CONF
listen: $IP_SRV:8443
tls:
  certificate: $PKI/server.crt
  key: $PKI/server.key
admin:
  listen: off
state: $d/isotun.db
cookie:
  key-file: $d/cookie.key
tenants:
  - name: bench
    namespace: host
    device: isotun-b0
    pool: 10.203.0.0/24
    routes: [10.203.0.0/24]
    mtu: ${ISOTUN_MTU:-1472}
    rate-limit: ${ISOTUN_RATE:-0}
    password-file: $d/bench.passwd
CONF
  spawn isotun-srv "$NS_SRV" "$ISOTUN" server --config "$d/server.yaml"
  ISOTUN_SRV_PID=$SPAWN_PID
  wait_for 30 listening "$NS_SRV" 8443 || fail "isotun server not listening: $(logtail isotun-srv 8)"
}

# jit_settle <pid>: until that process's background compiler is idle (bench/jit-settle.sh; at once for a C program).
jit_settle() { bash "$ISOTUN_ROOT/bench/jit-settle.sh" "$1"; }

# Warms a tunnel before its throughput is taken, as every isotun row is: a 2 s transfer through it, then a wait until
# both processes' background compilers are idle. A fresh .NET process runs its first calls through unoptimised code
# and compiles the hot ones again, optimised, in the background; an operator's server and client have long done that
# (the C anchors have nothing to warm). ISOTUN_TPUT_WARM=0 measures them cold.
tput_warm() {  # tput_warm <dst_ip> <pids...>
  local dst=$1 p; shift
  [ "${ISOTUN_TPUT_WARM:-2}" -gt 0 ] || return 0
  spawn iperf3-warm "$NS_SRV" iperf3 -s -1 -p 5302
  wait_for 10 listening "$NS_SRV" 5302 || fail "iperf3 (warm-up) not listening"
  nsx "$NS_CLI" timeout 30 iperf3 -c "$dst" -p 5302 -t "${ISOTUN_TPUT_WARM:-2}" $IPERF_ARGS >/dev/null 2>&1 || true
  for p in "$@"; do jit_settle "$p"; done
}

isotun_tput() {  # isotun_tput <row> <notes> <isotun connect args...>
  local row=$1 notes=$2; shift 2
  start_iperf_server
  isotun_server_setup
  isotun_client_up "$@"
  tput_warm 10.203.0.1 "$ISOTUN_CLI_PID" "$ISOTUN_SRV_PID"
  measure "$row" 10.203.0.1 "$IPERF_PORT" "$ISOTUN_CLI_PID" "$ISOTUN_SRV_PID" "$(link_mtu "$NS_CLI" isotun-c0)" "TLS1.3 (SslStream/OpenSSL)" "$notes"
}

test_isotun() { isotun_tput isotun "isotun connect -> isotun server, extensions batch+gso (+queues; one flow uses one)"; }

# Several flows at once (iperf3 -P $PARALLEL, default 4): what queues are worth, and stunnel (a TLS connection per
# flow) as the anchor. On this machine client and server share the same 2 vCPUs.
isotun_parallel() {  # isotun_parallel <row> <test function> <args...>: runs an anchors test with -P, its row renamed
  # Named apart: the test function's own locals (say, "row") shadow ours inside measure().
  local parallel_row=$1 fn=$2; shift 2
  local IPERF_ARGS="$IPERF_ARGS -P ${PARALLEL:-4}"
  eval "measure_single() $(declare -f measure | tail -n +2)"
  measure() { shift; measure_single "$parallel_row" "$@"; }
  "$fn" "$@"
  eval "measure() $(declare -f measure_single | tail -n +2)"
}
test_stunnel_p4() { isotun_parallel stunnel_p4 test_stunnel; }
test_isotun_p4() { local IPERF_ARGS="$IPERF_ARGS -P ${PARALLEL:-4}"; isotun_tput isotun_p4 "isotun, ${PARALLEL:-4} flows, --queues 2" --queues 2; }
test_isotun_p4_q1() { local IPERF_ARGS="$IPERF_ARGS -P ${PARALLEL:-4}"; isotun_tput isotun_p4_q1 "isotun, ${PARALLEL:-4} flows, --queues 1" --queues 1; }

test_isotun_oc() {
  start_iperf_server
  isotun_server_setup
  local d="$WORK/isotun"
  cat >"$d/oc-script.sh" <<'SCRIPT'
#!/bin/sh
case "$reason" in
  connect)
    ip link set dev "$TUNDEV" up mtu "${INTERNAL_IP4_MTU:-1400}"
    ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
    ip route add 10.203.0.0/24 dev "$TUNDEV" ;;
esac
exit 0
SCRIPT
  chmod 755 "$d/oc-script.sh"
  SPAWN_STDIN="$d/pw" spawn openconnect-isotun "$NS_CLI" openconnect --protocol=anyconnect --no-dtls --non-inter \
      --passwd-on-stdin --user bench --cafile "$PKI/ca.crt" --script "$d/oc-script.sh" --interface oc1 \
      "https://$IP_SRV:8443/"
  local c=$SPAWN_PID
  wait_for 30 sh -c "ip -n '$NS_CLI' -4 -o addr show dev oc1 | grep -q inet" || fail "openconnect -> isotun not up: $(logtail openconnect-isotun 8) / $(logtail isotun-srv 6)"
  wait_for 10 ip netns exec "$NS_CLI" ping -c1 -W1 10.203.0.1 || fail "no ping through openconnect -> isotun"
  tput_warm 10.203.0.1 "$ISOTUN_SRV_PID"
  measure isotun_oc 10.203.0.1 "$IPERF_PORT" "$c" "$ISOTUN_SRV_PID" "$(link_mtu "$NS_CLI" oc1)" "TLS1.3" \
    "stock openconnect -> isotun server"
}

# ------------------------------------------------------------------ extras ---
# Results that do not fit anchors' throughput/handshake tables go to $ISOTUN_BENCH_OUT/*.json.
ISOTUN_BENCH_OUT=${ISOTUN_BENCH_OUT:-$ISOTUN_ROOT/bench/out}
mkdir -p "$ISOTUN_BENCH_OUT"

isotun_client_up() {  # isotun_client_up <extra connect args...>
  local d="$WORK/isotun"
  spawn isotun-cli "$NS_CLI" "$ISOTUN" connect "https://$IP_SRV:8443/" --user bench --password-file "$d/pw" \
        --cafile "$PKI/ca.crt" --interface isotun-c0 "$@"
  ISOTUN_CLI_PID=$SPAWN_PID
  wait_for 30 sh -c "ip -n '$NS_CLI' -4 -o addr show dev isotun-c0 | grep -q inet" || fail "isotun tunnel not up: $(logtail isotun-cli 8)"
  wait_for 10 ip netns exec "$NS_CLI" ping -c1 -W1 10.203.0.1 || fail "no ping through the isotun tunnel"
}

# Plain CSTP between two Isotun ends (no batching, no GSO): what the extensions are worth.
test_isotun_plain() {
  start_iperf_server
  isotun_server_setup
  isotun_client_up --no-extensions --no-offload
  tput_warm 10.203.0.1 "$ISOTUN_CLI_PID" "$ISOTUN_SRV_PID"
  measure isotun_plain 10.203.0.1 "$IPERF_PORT" "$ISOTUN_CLI_PID" "$ISOTUN_SRV_PID" "$(link_mtu "$NS_CLI" isotun-c0)" "TLS1.3 (SslStream/OpenSSL)" \
    "isotun connect --no-extensions --no-offload -> isotun server"
}

ping_stats() {  # ping_stats <count> [target] -> JSON {count,min,avg,p50,p99,max,loss}, percentiles from every reply
  ip netns exec "$NS_CLI" ping -n -c "$1" -i 0.2 -W 2 "${2:-10.203.0.1}" 2>&1 | awk -v n="$1" '
    / time=/ { for (i = 1; i <= NF; i++) if ($i ~ /^time=/) { t[++k] = substr($i, 6) + 0 } }
    END {
      if (k == 0) exit 1
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (t[j] < t[i]) { x = t[i]; t[i] = t[j]; t[j] = x }
      for (i = 1; i <= k; i++) sum += t[i]
      p50 = t[int((k - 1) * 0.50) + 1]; p99 = t[int((k - 1) * 0.99 + 0.5) + 1]
      printf "{\"count\":%d,\"received\":%d,\"min_ms\":%.3f,\"avg_ms\":%.3f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"loss\":\"%d%%\"}\n", n, k, t[1], sum / k, p50, p99, t[k], (n - k) * 100 / n }'
}

# Every tunnel is warmed up the same way before its idle RTT is taken: 400 quick pings, then a second of rest (and,
# for a .NET end, until its background compiler is idle: jit_settle). A fresh .NET process runs its first calls
# through unoptimized code and compiles the hot ones in the background; a server that has run for a while has long
# done that, and the C anchors have nothing to warm.
rtt_warm() {  # rtt_warm <target>
  ip netns exec "$NS_CLI" ping -q -n -c 400 -i 0.005 -W 2 "$1" >/dev/null 2>&1 || true
  sleep 1
}

# One row of the RTT table: $ISOTUN_BENCH_OUT/rtt/<row>.json, and a marker row in anchors' throughput list.
rtt_record() {  # rtt_record <row> <idle json> [<under-bulk json>]
  local row=$1 idle=$2 busy=${3:-null}
  mkdir -p "$ISOTUN_BENCH_OUT/rtt"
  jq -n --arg name "$row" --argjson idle "$idle" --argjson busy "$busy" '{name:$name, idle:$idle, under_bulk:$busy}' >"$ISOTUN_BENCH_OUT/rtt/$row.json"
  log "[$row] idle avg $(jq -r .avg_ms <<<"$idle") ms, max $(jq -r .max_ms <<<"$idle") ms$([ "$busy" = null ] || echo ", under bulk p99 $(jq -r .p99_ms <<<"$busy") ms")"
  echo "$row" >>"$RES/order"
  jq -n --arg name "$row" '{name:$name, ok:true, sender_gbps:0, receiver_gbps:0, cipher:"(ping RTT, see the RTT table)", notes:"not a throughput row"}' >"$RES/$row.json"
}

# Idle RTT through an anchor's own tunnel, in the same run as Isotun's: the anchors test brings its tunnel up as for
# throughput, and a ping to the address it would measure takes the place of iperf3 (measure is swapped meanwhile).
rtt_of() {  # rtt_of <row> <anchors test function> [args...]
  local rtt_row=$1 fn=$2; shift 2
  eval "measure_tput() $(declare -f measure | tail -n +2)"
  measure() {
    rtt_warm "$2"
    local p; for p in $4 $5; do jit_settle "$p"; done # a .NET end's compiler
    local st; st=$(ping_stats "${RTT_N:-25}" "$2") || fail "ping $2 through the tunnel failed"
    rtt_record "$rtt_row" "$st"
  }
  "$fn" "$@"
  eval "measure() $(declare -f measure_tput | tail -n +2)"
}
test_rtt_raw()      { rtt_of rtt_raw test_raw; }
test_rtt_ocserv()   { rtt_of rtt_ocserv test_ocserv; }
test_rtt_ovpn_udp() { rtt_of rtt_ovpn_udp test_ovpn udp; }
test_rtt_isotun_oc() { rtt_of rtt_isotun_oc test_isotun_oc; }

# Ping RTT through the isotun tunnel, idle and during a bulk iperf3 transfer over the same tunnel (50 pings, 10 s).
test_isotun_rtt() {
  isotun_server_setup
  isotun_client_up
  local idle busy
  rtt_warm 10.203.0.1
  jit_settle "$ISOTUN_CLI_PID"; jit_settle "$ISOTUN_SRV_PID"
  idle=$(ping_stats "${RTT_N:-25}") || fail "ping through the tunnel failed"
  spawn iperf3-rtt "$NS_SRV" iperf3 -s -1 -p 5301
  wait_for 10 listening "$NS_SRV" 5301 || fail "iperf3 (rtt) not listening"
  ip netns exec "$NS_CLI" iperf3 -c 10.203.0.1 -p 5301 -t 12 >/dev/null 2>&1 &
  local bulk=$!
  sleep 1
  busy=$(ping_stats 50) || fail "ping under bulk failed"
  wait "$bulk"
  rtt_record isotun_rtt "$idle" "$busy"
}

# TLS handshakes/s against the Isotun listener with the same python probe as stunnel's. The probe's
# 1-byte echo becomes a 1-byte HTTP answer ("H" of "HTTP/1.1"): Isotun is not an echo service.
test_isotun_handshake() {
  isotun_server_setup
  write_probe
  sed -i 's|s.sendall(b"x")|s.sendall(b"GET / HTTP/1.1\\r\\nHost: b\\r\\n\\r\\n")|; s|if s.recv(1) != b"x":|if s.recv(1) != b"H":|' "$WORK/tlsprobe.py"
  local d="$WORK/hs-isotun" name mode tls s=$ISOTUN_SRV_PID; mkdir -p "$d"
  # A server that has run for a while, not one just started: the runtime compiles the handshake path at first and
  # again, optimised, after a few thousand handshakes (tiered compilation), which a cold run would charge to the
  # handshakes it measures (about twice the steady cost here). HS_WARM=0 measures the cold server.
  # Each of the four kinds of handshake is warmed (the full TLS 1.3 one the most), then the compiler is let finish.
  if [ "${HS_WARM:-3000}" -gt 0 ]; then
    for spec in "${HS_WARM:-3000} full 1.3" "$(( ${HS_WARM:-3000} / 3 )) resume 1.3" "$(( ${HS_WARM:-3000} / 3 )) full 1.2" "$(( ${HS_WARM:-3000} / 3 )) resume 1.2"; do
      set -- $spec
      nsx "$NS_CLI" timeout 120 "$PY" "$WORK/tlsprobe.py" hs "$IP_SRV" 8443 "$PKI/ca.crt" "$1" "$2" "$3" >"$d/warm.json" 2>"$d/warm.err" \
        || { hs_fail isotun_full_tls13 "warm-up ($2 $3) failed: $(tail -c 300 "$d/warm.err")"; return 0; }
    done
    jit_settle "$s"
  fi
  for spec in "isotun_full_tls13 full 1.3" "isotun_resume_tls13 resume 1.3" "isotun_full_tls12 full 1.2" "isotun_resume_tls12 resume 1.2"; do
    set -- $spec; name=$1 mode=$2 tls=$3
    snap_cpu "$s" >"$d/$name.c0"
    nsx "$NS_CLI" timeout 120 "$PY" "$WORK/tlsprobe.py" hs "$IP_SRV" 8443 "$PKI/ca.crt" "$HS_N" "$mode" "$tls" \
       >"$d/$name.json" 2>"$d/$name.err" || { hs_fail "$name" "probe failed: $(tail -c 300 "$d/$name.err")"; continue; }
    snap_cpu "$s" >"$d/$name.c1"
    hs_record "$name" "python-ssl(OpenSSL) sequential, TCP connect+handshake; ttfb adds a 1-byte HTTP answer" "$tls" \
       "$([ "$mode" = resume ] && echo yes || echo no)" "$(cpu_delta "$d/$name.c0" "$d/$name.c1")" "$d/$name.json"
  done
  echo isotun_handshake >>"$RES/order"
  jq -n '{name:"isotun_handshake", ok:true, sender_gbps:0, receiver_gbps:0, cipher:"(handshakes, see handshake table)", notes:"not a throughput row"}' >"$RES/isotun_handshake.json"
}

# Full TLS 1.3 handshakes from HS_PAR (default 4) openssl s_time -new clients at once, for HS_TIME seconds, against
# stunnel (its handshake service, as in anchors' own s_time row) and against the warmed isotun listener, one after the
# other in this run: with several clients at once, accept and handshake may use both cores (client and server share
# them here). Rate = all clients' connections / wall time; CPU = the server process's, per handshake.
test_handshake_par() {
  local p=${HS_PAR:-4} d="$WORK/hs-par" spec name addr pid t0 t1 i n; mkdir -p "$d"
  write_probe
  write_stunnel_srv "$WORK/stunnel-hs-par.conf"
  spawn echo-backend-par "$NS_SRV" "$PY" "$WORK/tlsprobe.py" echo 127.0.0.1 5209
  spawn stunnel-hs-par "$NS_SRV" stunnel "$WORK/stunnel-hs-par.conf"; local st=$SPAWN_PID
  wait_for 10 listening "$NS_SRV" 5209 || fail "echo backend not listening: $(logtail echo-backend-par)"
  wait_for 10 listening "$NS_SRV" 5444 || fail "stunnel (hs) not listening: $(logtail stunnel-hs-par)"
  isotun_server_setup
  # Warm both (isotun: a few thousand handshakes for tiered compilation, as in test_isotun_handshake).
  nsx "$NS_CLI" timeout 60 openssl s_time -connect "$IP_SRV:5444" -new -tls1_3 -time 2 >/dev/null 2>&1
  nsx "$NS_CLI" timeout 60 openssl s_time -connect "$IP_SRV:8443" -new -tls1_3 -time "${HS_WARM_S:-6}" >"$d/warm.out" 2>&1 \
    || { hs_fail "isotun_full_tls13_p$p" "warm-up failed: $(tail -3 "$d/warm.out" | tr '\n' ' ')"; return 0; }
  jit_settle "$ISOTUN_SRV_PID"
  for spec in "stunnel_full_tls13_p$p $IP_SRV:5444 $st" "isotun_full_tls13_p$p $IP_SRV:8443 $ISOTUN_SRV_PID"; do
    set -- $spec; name=$1 addr=$2 pid=$3
    snap_cpu "$pid" >"$d/$name.c0"
    t0=$(date +%s.%N)
    local clients=()
    for i in $(seq "$p"); do
      nsx "$NS_CLI" timeout $((HS_TIME + 30)) openssl s_time -connect "$addr" -new -tls1_3 -time "$HS_TIME" >"$d/$name.$i.out" 2>&1 &
      clients+=($!)
    done
    wait "${clients[@]}" # the clients only: the servers are children of this shell too
    t1=$(date +%s.%N)
    snap_cpu "$pid" >"$d/$name.c1"
    n=$(cat "$d/$name".*.out | grep -oE '^[0-9]+ connections in [0-9.]+s' | awk '{s += $1} END {print s + 0}')
    [ "$n" -gt 0 ] || { hs_fail "$name" "s_time failed: $(tail -3 "$d/$name.1.out" | tr '\n' ' ')"; continue; }
    jq -n --argjson n "$n" --arg w "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" '
      ($w|tonumber) as $w | { n: $n, ok: $n, errors: 0, reused: 0, full_handshakes: $n,
        wall_s: $w, rate_per_s: ($n / $w), mean_ms: null, p50_ms: null, p90_ms: null, p99_ms: null }' >"$d/$name.json"
    hs_record "$name" "openssl s_time -new, $p at once (no cert verify)" 1.3 no "$(cpu_delta "$d/$name.c0" "$d/$name.c1")" "$d/$name.json"
  done
  echo handshake_par >>"$RES/order"
  jq -n '{name:"handshake_par", ok:true, sender_gbps:0, receiver_gbps:0, cipher:"(handshakes, see handshake table)", notes:"not a throughput row"}' >"$RES/handshake_par.json"
}

# Memory per idle session: N certificate logins that CONNECT and then stay idle (no TUN on the load side).
test_isotun_sessions() {
  local n=${SESSIONS_N:-1000} d="$WORK/isotun-mem"; mkdir -p "$d"
  # A small CA of our own for the load client (the anchors PKI has no certificates with our OU).
  "$ISOTUN" pki init --dir "$d/pki" >/dev/null && "$ISOTUN" pki client --dir "$d/pki" --tenant bench --user load >/dev/null || fail "pki for load client"
  cat >"$d/server.yaml" <<CONF
listen: $IP_SRV:8444
tls:
  certificate: $PKI/server.crt
  key: $PKI/server.key
  client-ca: $d/pki/ca.crt
admin:
  listen: 127.0.0.1:9419
state: $d/isotun.db
cookie:
  key-file: $d/cookie.key
limits:
  max-sessions: 20000
  # every load session comes from the one client namespace's address
  max-connections: 30000
  per-source-connections: 30000
tenants:
  - name: bench
    namespace: host
    device: isotun-m0
    pool: 10.204.0.0/18   # room for 10,000 sessions (SESSIONS_N=10000)
    dpd: 600
    keepalive: ${SESSIONS_KEEPALIVE:-600}
    max-sessions: 20000
    max-sessions-per-user: 20000
CONF
  spawn isotun-mem "$NS_SRV" "$ISOTUN" server --config "$d/server.yaml"; local s=$SPAWN_PID
  wait_for 30 listening "$NS_SRV" 8444 || fail "isotun (memory test) not listening: $(logtail isotun-mem 8)"
  local load=("$ISOTUN" lab load "https://$IP_SRV:8444/" -c "$d/pki/bench-load.crt" -k "$d/pki/bench-load.key" --cafile "$PKI/ca.crt")
  ip netns exec "$NS_CLI" "${load[@]}" --sessions 20 --hold 1 >"$d/warm.log" 2>&1 || fail "warm-up load failed: $(tail -3 "$d/warm.log")"
  sleep 3
  local before after active
  before=$(awk '/VmRSS/ {print $2}' "/proc/$s/status")
  # SESSIONS_TRAFFIC=0: each session sends a keepalive every SESSIONS_KEEPALIVE seconds, as a stock client does.
  ip netns exec "$NS_CLI" "${load[@]}" --sessions "$n" --hold 60 ${SESSIONS_TRAFFIC:+--traffic "$SESSIONS_TRAFFIC"} >"$d/load.log" 2>&1 &
  local lp=$!
  wait_for $(( n / 25 + 60 )) sh -c "ip netns exec '$NS_SRV' curl -s 127.0.0.1:9419/metrics | awk '/^isotun_sessions_active/ {s+=\$2} END {exit !(s >= $n)}'" \
    || fail "not all $n sessions came up: $(tail -3 "$d/load.log")"
  sleep 5
  after=$(awk '/VmRSS/ {print $2}' "/proc/$s/status")
  active=$(ip netns exec "$NS_SRV" curl -s 127.0.0.1:9419/metrics | awk '/^isotun_sessions_active/ {s+=$2} END {print s}')
  # What the idle sessions cost in CPU: the server's user + system time over 20 s of nothing but idling.
  local t0 t1 hz; hz=$(getconf CLK_TCK)
  t0=$(awk '{print $14 + $15}' "/proc/$s/stat"); sleep 20; t1=$(awk '{print $14 + $15}' "/proc/$s/stat")
  local idle_ms=$(( (t1 - t0) * 1000 / hz ))
  kill -TERM "$lp" 2>/dev/null; wait "$lp" 2>/dev/null
  jq -n --argjson n "$n" --argjson b "$before" --argjson a "$after" --argjson act "$active" --argjson cpu "$idle_ms" \
    '{name:"isotun_sessions", sessions:$n, active:$act, rss_before_kib:$b, rss_after_kib:$a, per_session_kib:(($a - $b) / $n), idle_cpu_ms_per_s:($cpu / 20)}' >"$ISOTUN_BENCH_OUT/sessions.json"
  log "[isotun_sessions] $n idle sessions: RSS $before -> $after KiB, $(jq -r '.per_session_kib|.*10|round/10' "$ISOTUN_BENCH_OUT/sessions.json") KiB per session; server CPU while idle $(jq -r '.idle_cpu_ms_per_s' "$ISOTUN_BENCH_OUT/sessions.json") ms per second"
  echo isotun_sessions >>"$RES/order"
  jq -n '{name:"isotun_sessions", ok:true, sender_gbps:0, receiver_gbps:0, cipher:"(memory, see sessions.json)", notes:"not a throughput row"}' >"$RES/isotun_sessions.json"
}

# Per-user rate limit: iperf3 through a tenant limited to RATE bytes/s, both directions.
test_isotun_ratelimit() {
  local rate=${RATE:-12500000} d="$WORK/isotun"
  start_iperf_server
  ISOTUN_RATE=$rate isotun_server_setup
  isotun_client_up
  measure isotun_ratelimit 10.203.0.1 "$IPERF_PORT" "$ISOTUN_CLI_PID" "$ISOTUN_SRV_PID" "$(link_mtu "$NS_CLI" isotun-c0)" "TLS1.3" \
    "rate-limit $rate B/s = $(awk -v r="$rate" 'BEGIN{printf "%.3f", r*8/1e9}') Gbit/s configured"
}
