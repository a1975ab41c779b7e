# isotun-plugin.sh -- sourced by shared/bench/anchors.sh (EXTRA_TESTS=...): Isotun measured in the same run,
# same namespaces, same iperf3, as stunnel, OpenVPN and ocserv.
#   test_isotun     isotun connect  -> isotun server   (Isotun client and server)
#   test_isotun_oc  openconnect     -> isotun server   (stock client, compare with ocserv_cstp)
# ISOTUN: the isotun executable (default: the repository's ./isotun, built in Release on first use).

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
    mtu: ${ISOTUN_MTU:-1400}
    password-file: $d/bench.passwd
CONF
  spawn isotun-srv "$NS_SRV" "$ISOTUN" server --config "$d/server.yaml"
  ISOTUN_SRV_PID=$SPAWN_PID
  wait_for 30 listening "$NS_SRV" 8443 || fail "isotun server not listening: $(logtail isotun-srv 8)"
}

test_isotun() {
  start_iperf_server
  isotun_server_setup
  local d="$WORK/isotun"
  spawn isotun-cli "$NS_CLI" "$ISOTUN" connect "https://$IP_SRV:8443/" --user bench --password-file "$d/pw" \
        --cafile "$PKI/ca.crt" --interface isotun-c0
  local c=$SPAWN_PID
  wait_for 30 sh -c "ip -n '$NS_CLI' -4 -o addr show dev isotun-c0 | grep -q inet" || fail "isotun tunnel not up: $(logtail isotun-cli 8)"
  wait_for 10 ip netns exec "$NS_CLI" ping -c1 -W1 10.203.0.1 || fail "no ping through the isotun tunnel"
  measure isotun 10.203.0.1 "$IPERF_PORT" "$c" "$ISOTUN_SRV_PID" "$(link_mtu "$NS_CLI" isotun-c0)" "TLS1.3 (SslStream/OpenSSL)" \
    "isotun connect -> isotun server, plain CSTP"
}

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
  measure isotun_oc 10.203.0.1 "$IPERF_PORT" "$c" "$ISOTUN_SRV_PID" "$(link_mtu "$NS_CLI" oc1)" "TLS1.3" \
    "stock openconnect -> isotun server"
}
