#!/usr/bin/env bash
# jit-settle.sh PID: waits (up to 30 s) until the .NET runtime's background compiler in that process has been idle for
# a second; at once when the process has none (a C program, or a process that has ended).
# After a warm-up a .NET process still compiles, optimised, what the warm-up ran often (tiered compilation works
# through a backlog, in the background, after a delay): a measurement started right away is charged that work (seen as
# a handshake probe whose server took twice its usual CPU per handshake, a fifth of it in that thread). The benches
# warm what they measure, then call this.
set -uo pipefail
task=$(grep -l '^.NET Tiered Com' /proc/"$1"/task/*/comm 2>/dev/null | head -1) || exit 0
[ -n "$task" ] || exit 0
last=-1
for _ in $(seq 30); do
  now=$(sed -E 's/^.*\) //' "${task%/comm}/stat" 2>/dev/null | awk '{print $12 + $13}') || exit 0
  [ -n "$now" ] || exit 0
  [ "$now" = "$last" ] && exit 0
  last=$now
  sleep 1
done
