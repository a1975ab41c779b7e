# Sourced by bench scripts that run one isotun server in a network namespace of their own (flood.sh, soak.sh,
# reconnect-storm.sh, sites.sh), with $root set to the repository. They set $exe (the CLI; bench_workdir does it for
# some), keep the ids of what they start in the array pids (their trap ends them), and call these from their work
# directory.

# bench_workdir NAME: makes bench/out, sets $tsv to bench/out/NAME-<time>.tsv, $work to a new temporary directory (the
# caller's trap removes it) and $exe to the CLI in the run's own copy of the build there: a rebuild during a long run
# must not replace the files under its processes.
bench_workdir() {
  mkdir -p "$root/bench/out"
  tsv="$root/bench/out/$1-$(date -u +%Y%m%dT%H%M%SZ).tsv"
  work=$(mktemp -d)
  cp -a "$root/.isotun/bin" "$work/bin"
  exe="$work/bin/isotun"
}

# bench_server_config NAME IP ADMIN USER: a CA, a server certificate for IP, a client certificate for USER of tenant
# NAME (pki/NAME-USER.crt and .key), and the head of server.yaml (listener IP:443, TLS, the admin listener ADMIN);
# the caller appends its limits and tenants.
bench_server_config() {
  "$exe" pki init >/dev/null
  "$exe" pki server --name "$1" --ip "$2" >/dev/null
  "$exe" pki client --tenant "$1" --user "$4" >/dev/null
  cat >server.yaml <<CONF
listen: $2:443
tls:
  certificate: pki/$1.crt
  key: pki/$1.key
  client-ca: pki/ca.crt
admin:
  listen: $3
CONF
}

# bench_server_start NS: runs the server of ./server.yaml in NS (log server.log, its id in spid and pids) and waits
# for its listener; exits with the log's end when it does not come up.
bench_server_start() {
  ip netns exec "$1" "$exe" server --config server.yaml >server.log 2>&1 &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 150); do ip netns exec "$1" ss -Htln 'sport = :443' | grep -q . && return 0; sleep 0.2; done
  tail -5 server.log
  exit 1
}

# bench_two_hosts SRV CLI IF SRVIP CLIIP: namespaces SRV and CLI, joined by a veth (IF-s0 in SRV, IF-c0 in CLI) with
# SRVIP/24 and CLIIP/24; the caller's trap deletes both namespaces.
bench_two_hosts() {
  ip netns add "$1"
  ip netns add "$2"
  ip -n "$1" link set lo up
  ip -n "$2" link set lo up
  ip link add "$3-s0" netns "$1" type veth peer name "$3-c0" netns "$2"
  ip -n "$1" addr add "$4/24" dev "$3-s0"
  ip -n "$2" addr add "$5/24" dev "$3-c0"
  ip -n "$1" link set "$3-s0" up
  ip -n "$2" link set "$3-c0" up
}
