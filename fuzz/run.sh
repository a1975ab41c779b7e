#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers: SharpFuzz instruments Isotun.Protocol and Isotun.Core, AFL++ drives them.
# See docs/fuzzing.md.
#
#   fuzz/run.sh --list                the targets
#   fuzz/run.sh TARGET SECONDS        build (Release), instrument, run afl-fuzz on TARGET for SECONDS; prints the
#                                     execution count and the crash and hang counts; exits 1 if AFL saved a crash or a hang
#   fuzz/run.sh --replay [TARGET]     every seed in fuzz/corpus/TARGET (and every crash or hang a run saved) through its
#                                     target in-process, without AFL; exits 1 on an exception or an input slower than
#                                     five per-execution timeouts (the unit tests replay the corpus too, without the time limit)
#
# Environment: FUZZ_TIMEOUT_MS (per execution, default 2000), FUZZ_WORK (scratch, default fuzz/.work), FUZZ_EXECS (stop
# after about this many executions, even before SECONDS is up).
# Never more than one afl-fuzz at a time on a shared machine: each takes a core for the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

work=${FUZZ_WORK:-fuzz/.work}
build_dir=$work/build
timeout_ms=${FUZZ_TIMEOUT_MS:-2000}

usage() {
  sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

build() {
  echo "building fuzz/Isotun.Fuzz (Release)" >&2
  dotnet build fuzz/Isotun.Fuzz/Isotun.Fuzz.csproj -c Release -v q -nologo -o "$build_dir" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
}

targets() { dotnet "$build_dir/Isotun.Fuzz.dll" --list | awk '{print $1}'; }

# The saved findings of earlier runs of a target, for the replay.
findings() {
  local t=$1 d
  for d in "$work/findings/$t/default/crashes" "$work/findings/$t/default/hangs"; do
    [ -d "$d" ] && echo "$d"
  done
  return 0
}

replay() {
  local only=${1:-} failed=0 t dirs
  build
  if [ -n "$only" ] && ! targets | grep -qx "$only"; then
    echo "unknown target '$only'; fuzz/run.sh --list names them" >&2
    exit 2
  fi
  for t in $(targets); do
    [ -z "$only" ] || [ "$t" = "$only" ] || continue
    mapfile -t dirs < <(findings "$t")
    # An input slower than five per-execution timeouts fails (a saved hang, with room for the JIT and a busy
    # machine); a hang that never returns must not hang CI: the whole replay of one target gets ten minutes.
    timeout 600 dotnet "$build_dir/Isotun.Fuzz.dll" --replay "$t" --slow-ms $((5 * timeout_ms)) "fuzz/corpus/$t" "${dirs[@]}" \
      || failed=1
  done
  exit "$failed"
}

stat_of() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$2"; }

fuzz() {
  local target=$1 seconds=$2
  [[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || usage
  command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install afl++ (or use --replay, which needs no AFL)" >&2; exit 2; }
  build
  targets | grep -qx "$target" || { echo "unknown target '$target'; fuzz/run.sh --list names them" >&2; exit 2; }

  # Instrument a fresh copy each time: SharpFuzz rewrites the assemblies in place and refuses to do it twice.
  local bin=$work/instrumented
  rm -rf "$bin"
  cp -r "$build_dir" "$bin"
  dotnet tool restore >/dev/null
  # The config targets instrument YamlDotNet too, so that AFL is guided through YAML syntax, not only our walkers.
  local dll dlls=(Isotun.Protocol.dll Isotun.Core.dll)
  case "$target" in config|gateway-config) dlls+=(YamlDotNet.dll) ;; esac
  for dll in "${dlls[@]}"; do
    dotnet tool run sharpfuzz "$bin/$dll" >"$work/instrument.log" 2>&1 || { cat "$work/instrument.log" >&2; exit 1; }
  done

  local out=$work/findings/$target
  rm -rf "$out"
  mkdir -p "$out"
  local stop=(-V "$seconds")
  if [ -n "${FUZZ_EXECS:-}" ]; then
    [[ "$FUZZ_EXECS" =~ ^[0-9]+$ ]] || { echo "FUZZ_EXECS must be a number of executions" >&2; exit 2; }
    stop+=(-E "$FUZZ_EXECS")
  fi
  echo "fuzzing $target for ${seconds}s${FUZZ_EXECS:+ or $FUZZ_EXECS executions} (per-execution timeout ${timeout_ms} ms); AFL's log: $out/afl.log" >&2

  # Settings for a shared machine we do not own: no CPU-governor or core_pattern checks (nothing is written to /proc),
  # no pinning to a core, no curses UI; the dotnet host is not AFL-instrumented itself (SharpFuzz does the coverage).
  local rc=0
  AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 \
    AFL_FORKSRV_INIT_TMOUT=60000 AFL_TMPDIR="$out" \
    afl-fuzz -i "fuzz/corpus/$target" -o "$out" -t "$timeout_ms" -m none "${stop[@]}" \
      -- dotnet "$bin/Isotun.Fuzz.dll" "$target" >"$out/afl.log" 2>&1 || rc=$?

  local stats=$out/default/fuzzer_stats
  if [ ! -f "$stats" ]; then
    echo "afl-fuzz stopped before writing its statistics (exit $rc):" >&2
    tail -n 30 "$out/afl.log" >&2
    exit 1
  fi

  local crashes hangs execs rate runtime
  crashes=$(find "$out/default/crashes" -type f -name 'id:*' 2>/dev/null | wc -l)
  hangs=$(find "$out/default/hangs" -type f -name 'id:*' 2>/dev/null | wc -l)
  execs=$(stat_of execs_done "$stats")
  rate=$(stat_of execs_per_sec "$stats")
  runtime=$(stat_of run_time "$stats")
  echo "$target: $execs executions in ${runtime:-$seconds} s (${rate} execs/s), $crashes crashes, $hangs hangs" \
    "(AFL: saved_crashes $(stat_of saved_crashes "$stats"), saved_hangs $(stat_of saved_hangs "$stats"))"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$target" "$execs" "${runtime:-$seconds}" "$rate" "$crashes" "$hangs" \
    >>"$work/results.tsv"

  if [ "$crashes" -gt 0 ] || [ "$hangs" -gt 0 ]; then
    echo "AFL saved inputs that crash or hang $target:" >&2
    find "$out/default/crashes" "$out/default/hangs" -type f -name 'id:*' >&2
    echo "replay them with: fuzz/run.sh --replay $target" >&2
    exit 1
  fi
  if [ "$rc" -ne 0 ]; then
    echo "afl-fuzz exited with $rc:" >&2
    tail -n 30 "$out/afl.log" >&2
    exit 1
  fi
}

mkdir -p "$work"
case "${1:-}" in
  --list) build; dotnet "$build_dir/Isotun.Fuzz.dll" --list ;;
  --replay) [ $# -le 2 ] || usage; replay "${2:-}" ;;
  ""|-*) usage ;;
  *) [ $# -eq 2 ] || usage; fuzz "$1" "$2" ;;
esac
