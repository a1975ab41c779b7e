#!/usr/bin/env bash
# A self-contained build of isotun (the target machine needs no .NET): what `./isotun install` and the Debian package
# (deploy/deb/build.sh) install. Publishes into .isotun/publish/<runtime id> and prints that directory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

fail() { echo "isotun publish: $*" >&2; exit 1; }

case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64|arm64) rid=linux-arm64 ;;
  *) fail "no .NET runtime identifier for $(uname -m)" ;;
esac
command -v dotnet >/dev/null 2>&1 || fail "the .NET 10 SDK (dotnet) is required to build isotun"

out="$root/.isotun/publish/$rid"
log="$root/.isotun/publish.log"
mkdir -p "$root/.isotun"
echo "isotun publish: a self-contained build for $rid (takes a minute)..." >&2
rm -rf "$out"
if ! DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet publish "$root/src/Isotun.Cli/Isotun.Cli.csproj" \
    -c Release -r "$rid" --self-contained -o "$out" -nologo -v quiet >"$log" 2>&1; then
  cat "$log" >&2
  fail "publish failed (log: .isotun/publish.log)"
fi
echo "$out"
