#!/usr/bin/env bash
# Soak: SESSIONS sessions (default 100; certificate logins, no TUN on the client side) move data through the server
# for MINUTES minutes (default 60): each sends PPS ICMP echo requests a second (env PPS, default 10) of BYTES bytes
# (env BYTES, default 1000) in CSTP DATA frames to the tenant's gateway, which the kernel behind the server's TUN
# answers, and answers the server's DPD (`isotun lab load --traffic`). Every 30 s the server's RSS, open descriptors,
# threads and CPU time go into bench/out/soak-<time>.tsv. At the end: RSS after the warm-up and at the end, the most
# descriptors, the echoes sent and answered, and a verdict. PASS needs all of:
#   - RSS flat: the samples fall in three thirds by time (the first is the warm-up); the last third's mean RSS is within
#     10 % of the second third's, and the samples after the warm-up, cut in four blocks, do not rise block after block
#     to end more than 5 % above the first block;
#   - descriptors not growing: the last third's most is at most the second third's most plus 2 % (at least 5);
#   - every session up to the end, and at least 99 % of the echoes answered.
# Runtime settings in the environment reach the server, e.g. DOTNET_GCgen0size=0x400000 (see docs/benchmarks.md).
# Root (network namespaces); traffic stays on a veth between two namespaces this script makes (198.19.204.0/24) and
# removes, with everything else it started.
#   sudo bench/soak.sh [MINUTES] [SESSIONS]
set -euo pipefail
minutes=${1:-60}
n=${2:-100}
pps=${PPS:-10}
bytes=${BYTES:-1000}
interval=30
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/isotun" --help >/dev/null # builds the CLI when needed
. "$root/bench/server-lib.sh"
bench_workdir soak
srv=isotun-soak-srv cli=isotun-soak-cli
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$cli" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bench_two_hosts "$srv" "$cli" sk 198.19.204.1 198.19.204.2

cd "$work"
bench_server_config soak 198.19.204.1 off load
cat >>server.yaml <<CONF
limits:
  max-sessions: $((n + 100))
  # every session comes from the one client host
  per-source-connections: $((n + 100))
tenants:
  - name: soak
    namespace: host
    device: isotun-soak
    pool: 10.207.0.0/20
    max-sessions: $n
    max-sessions-per-user: $n
CONF
bench_server_start "$srv"

ip netns exec "$cli" "$exe" lab load https://198.19.204.1/ -c pki/soak-load.crt -k pki/soak-load.key --cafile pki/ca.crt \
  --sessions "$n" --parallel 32 --hold $((minutes * 60)) --traffic "$pps" --packet-bytes "$bytes" >load.log 2>&1 &
lpid=$!
pids+=("$lpid")
for _ in $(seq 600); do grep -q '^sessions=' load.log && break; sleep 0.5; done
grep '^sessions=' load.log || { echo "the sessions did not come up"; tail -5 load.log; exit 1; }

hz=$(getconf CLK_TCK)
printf 't_s\trss_kib\tfds\tthreads\tcpu_s\n' >"$tsv"
start=$(date +%s)
sample() {
  local t rss fds threads cpu
  t=$(($(date +%s) - start))
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$spid/status")
  threads=$(awk '/^Threads/ {print $2}' "/proc/$spid/status")
  fds=$(ls "/proc/$spid/fd" | wc -l)
  cpu=$(awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$spid/stat")
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$rss" "$fds" "$threads" "$cpu" | tee -a "$tsv"
}
echo "samples every ${interval} s into $tsv (t_s rss_kib fds threads cpu_s):"
sample
while kill -0 "$lpid" 2>/dev/null; do
  for _ in $(seq "$interval"); do kill -0 "$lpid" 2>/dev/null || break; sleep 1; done
  kill -0 "$lpid" 2>/dev/null && sample
done
load_rc=0
wait "$lpid" || load_rc=$?
kill -0 "$spid" 2>/dev/null || { echo "the server is gone"; tail -5 server.log; exit 1; }

cp load.log "${tsv%.tsv}.load.log"
echo "== the load client (all its lines: ${tsv%.tsv}.load.log)"
grep -E '^(sessions=|traffic)' load.log | tail -3
result=$(grep '^traffic: ' load.log | tail -1)
sent=$(sed -n 's/.* sent=\([0-9]*\).*/\1/p' <<<"$result")
replies=$(sed -n 's/.* replies=\([0-9]*\).*/\1/p' <<<"$result")
ended=$(sed -n 's/.* ended-by-server=\([0-9]*\).*/\1/p' <<<"$result")
echo "== the server over $minutes min with $n sessions at $pps packets/s each"
awk -F'\t' -v sent="${sent:-0}" -v replies="${replies:-0}" -v ended="${ended:-1}" -v load_rc="$load_rc" '
  NR == 1 { next }
  { t[++k] = $1; rss[k] = $2; fds[k] = $3 }
  function mean(a, from, to,   s, i) { s = 0; for (i = from; i <= to; i++) s += a[i]; return s / (to - from + 1) }
  function most(a, from, to,   m, i) { m = a[from]; for (i = from; i <= to; i++) if (a[i] > m) m = a[i]; return m }
  END {
    if (k < 6) { print "too few samples (" k ") for a verdict: run for 3 minutes or more"; exit 1 }
    # thirds by time; the first is the warm-up
    span = t[k]; a = 1; while (t[a] < span / 3) a++; b = a; while (t[b] < 2 * span / 3) b++
    mid = mean(rss, a, b - 1); last = mean(rss, b, k)
    flat = last <= 1.10 * mid && last >= 0.90 * mid
    # four blocks after the warm-up, each mean above the one before, and the last more than 5 % above the first
    m = k - a + 1; rising = 1
    for (q = 0; q < 4; q++) blk[q] = mean(rss, a + int(q * m / 4), a + int((q + 1) * m / 4) - 1)
    for (q = 1; q < 4; q++) if (blk[q] <= blk[q - 1]) rising = 0
    growing = rising && blk[3] > 1.05 * blk[0]
    fmid = most(fds, a, b - 1); flast = most(fds, b, k); slack = fmid * 0.02 < 5 ? 5 : fmid * 0.02
    fdok = flast <= fmid + slack
    answered = sent > 0 ? replies / sent : 0
    traffic = sent > 0 && answered >= 0.99 && ended == 0 && load_rc == 0
    printf "RSS after the warm-up (t=%d s): %d KiB; at the end (t=%d s): %d KiB; mean of the second third %.0f KiB, of the last %.0f KiB (%+.1f %%)\n", t[a], rss[a], t[k], rss[k], mid, last, (last / mid - 1) * 100
    printf "RSS after the warm-up in four blocks: %.0f %.0f %.0f %.0f KiB%s\n", blk[0], blk[1], blk[2], blk[3], growing ? " (rising steadily)" : ""
    printf "descriptors: %d at the start, most %d in the second third, %d in the last, %d at the end\n", fds[1], fmid, flast, fds[k]
    printf "echo requests sent %d, answered %d (%.3f %%), sessions ended by the server %d\n", sent, replies, answered * 100, ended
    printf "verdict: %s (RSS flat: %s, no steady growth: %s, descriptors not growing: %s, traffic: %s)\n",
      flat && !growing && fdok && traffic ? "PASS" : "FAIL", flat ? "yes" : "no", growing ? "no" : "yes", fdok ? "yes" : "no", traffic ? "yes" : "no"
    exit !(flat && !growing && fdok && traffic)
  }' "$tsv"
