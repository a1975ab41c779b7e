#!/usr/bin/env bash
# `./isotun install` and `./isotun uninstall`: a self-contained build on the PATH, a commented config in /etc/isotun
# and the systemd units of the server and the gateway. See docs/operations.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'EOF'
Usage:
  isotun install   [--prefix DIR] [--from DIR] [--config-dir DIR] [--state-dir DIR] [--unit-dir DIR]
  isotun uninstall [--prefix DIR] [--config-dir DIR] [--state-dir DIR] [--unit-dir DIR] [--purge]

install    publishes a self-contained build (dotnet publish -c Release --self-contained) into PREFIX/lib/isotun,
           links PREFIX/bin/isotun to it, writes CONFIG-DIR/isotun.yaml and gateway.yaml (commented examples;
           existing files are kept), creates STATE-DIR (0700) and installs isotun-server.service and
           isotun-gateway.service into UNIT-DIR. Nothing is enabled or started.
uninstall  stops and disables the units, removes them, the link and PREFIX/lib/isotun; keeps the config and the
           state unless --purge.

Options:
  --prefix DIR      where bin/isotun and lib/isotun go (default /usr/local)
  --from DIR        install this already published (or built) output instead of publishing
  --config-dir DIR  default /etc/isotun
  --state-dir DIR   default /var/lib/isotun (the state file and the cookie key)
  --unit-dir DIR    default /etc/systemd/system
  --purge           uninstall: also remove the config and state directories

Exit codes: 0 ok, 1 failure, 2 usage error.
EOF
}

fail() { echo "isotun $verb: $*" >&2; exit 1; }
usage_error() { echo "isotun $verb: $*" >&2; echo "Run 'isotun $verb --help' for usage." >&2; exit 2; }

verb="${1:-}"
shift || true
case "$verb" in
  install|uninstall) ;;
  *) usage >&2; exit 2 ;;
esac

prefix=/usr/local config_dir=/etc/isotun state_dir=/var/lib/isotun unit_dir=/etc/systemd/system from="" purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help|-\?) usage; exit 0 ;;
    --prefix|--from|--config-dir|--state-dir|--unit-dir)
      [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a directory"
      case "$1" in
        --prefix) prefix="$2" ;;
        --from) [ "$verb" = install ] || usage_error "--from is for install"; from="$2" ;;
        --config-dir) config_dir="$2" ;;
        --state-dir) state_dir="$2" ;;
        --unit-dir) unit_dir="$2" ;;
      esac
      shift 2 ;;
    --purge) [ "$verb" = uninstall ] || usage_error "--purge is for uninstall"; purge=1; shift ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done

# Absolute paths: they are written into the units and the config.
abs() { case "$1" in /*) printf '%s' "${1%/}" ;; *) printf '%s/%s' "$PWD" "${1%/}" ;; esac; }
prefix="$(abs "$prefix")" config_dir="$(abs "$config_dir")" state_dir="$(abs "$state_dir")" unit_dir="$(abs "$unit_dir")"
for d in "$prefix" "$config_dir" "$state_dir" "$unit_dir"; do
  [ -n "$d" ] && [ "$d" != / ] || usage_error "refusing '/' as a directory"
done

lib="$prefix/lib/isotun"
bin="$prefix/bin/isotun"
units=(isotun-server.service isotun-gateway.service)

# systemctl only for the system's own unit directory on a machine that runs systemd.
with_systemd() { [ "$unit_dir" = /etc/systemd/system ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

runtime_id() {
  case "$(uname -m)" in
    x86_64) echo linux-x64 ;;
    aarch64|arm64) echo linux-arm64 ;;
    *) fail "no .NET runtime identifier for $(uname -m)" ;;
  esac
}

publish() {
  command -v dotnet >/dev/null 2>&1 || fail "the .NET 10 SDK (dotnet) is required to build isotun"
  local rid out log
  rid="$(runtime_id)"
  out="$root/.isotun/publish/$rid"
  log="$root/.isotun/publish.log"
  mkdir -p "$root/.isotun"
  echo "isotun install: publishing a self-contained build for $rid (takes a minute)..." >&2
  rm -rf "$out"
  if ! DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet publish "$root/src/Isotun.Cli/Isotun.Cli.csproj" \
      -c Release -r "$rid" --self-contained -o "$out" -nologo -v quiet >"$log" 2>&1; then
    cat "$log" >&2
    fail "publish failed (log: .isotun/publish.log)"
  fi
  from="$out"
}

install_all() {
  [ -n "$from" ] || publish
  [ -x "$from/isotun" ] || fail "$from/isotun is not an executable isotun build"

  # The program: a fresh copy, then the link on the PATH.
  mkdir -p "$prefix/lib" "$prefix/bin"
  rm -rf "$lib.new"
  cp -a "$from/." "$lib.new"
  rm -rf "$lib"
  mv "$lib.new" "$lib"
  ln -sfn "$lib/isotun" "$bin"
  echo "installed $bin -> $lib/isotun"
  # The openconnect --script that makes a stock client a site gateway (docs/sites.md).
  install -m 0755 "$root/deploy/openconnect/site-gateway.sh" "$lib/site-gateway.sh"

  # Config: commented examples, never over an existing file. State outside /etc, which the units keep read-only.
  install -d -m 0755 "$config_dir"
  install -d -m 0700 "$state_dir"
  if [ -e "$config_dir/isotun.yaml" ]; then
    echo "kept $config_dir/isotun.yaml"
  else
    "$bin" config example --state-dir "$state_dir" >"$config_dir/isotun.yaml.new"
    chmod 0644 "$config_dir/isotun.yaml.new"
    mv "$config_dir/isotun.yaml.new" "$config_dir/isotun.yaml"
    echo "wrote $config_dir/isotun.yaml (an example: make its files, then edit it)"
  fi
  if [ -e "$config_dir/gateway.yaml" ]; then
    echo "kept $config_dir/gateway.yaml"
  else
    "$bin" gateway --example >"$config_dir/gateway.yaml.new"
    chmod 0644 "$config_dir/gateway.yaml.new"
    mv "$config_dir/gateway.yaml.new" "$config_dir/gateway.yaml"
    echo "wrote $config_dir/gateway.yaml (an example, for isotun-gateway)"
  fi

  # Units, with this install's paths.
  install -d -m 0755 "$unit_dir"
  for u in "${units[@]}"; do
    sed -e "s|/usr/local/bin/isotun|$bin|g" \
        -e "s|/etc/isotun/|$config_dir/|g" \
        -e "s|/var/lib/isotun|$state_dir|g" \
        "$root/deploy/systemd/$u" >"$unit_dir/$u.new"
    chmod 0644 "$unit_dir/$u.new"
    mv "$unit_dir/$u.new" "$unit_dir/$u"
    echo "installed $unit_dir/$u"
  done
  if with_systemd; then systemctl daemon-reload; fi

  cat <<EOF

Next:
  $bin pki init --dir $config_dir/pki
  $bin pki server --dir $config_dir/pki --name vpn.example --ip 198.18.0.1
  $bin user add --file $config_dir/acme.passwd --user alice
  $bin config validate $config_dir/isotun.yaml
  systemctl enable --now isotun-server      # and/or isotun-gateway
EOF
}

uninstall_all() {
  if with_systemd; then
    for u in "${units[@]}"; do systemctl disable --now "$u" >/dev/null 2>&1 || true; done
  fi
  for u in "${units[@]}"; do
    if [ -e "$unit_dir/$u" ]; then rm -f "$unit_dir/$u"; echo "removed $unit_dir/$u"; fi
  done
  if with_systemd; then systemctl daemon-reload; fi

  # The link only if it is ours.
  if [ -L "$bin" ] && [ "$(readlink "$bin")" = "$lib/isotun" ]; then rm -f "$bin"; echo "removed $bin"; fi
  if [ -d "$lib" ]; then rm -rf "$lib"; echo "removed $lib"; fi

  if [ "$purge" = 1 ]; then
    rm -rf "$config_dir" "$state_dir"
    echo "removed $config_dir and $state_dir"
  else
    [ -d "$config_dir" ] && echo "kept $config_dir (--purge removes it)"
    [ -d "$state_dir" ] && echo "kept $state_dir (--purge removes it)"
  fi
  return 0
}

if [ "$verb" = install ]; then install_all; else uninstall_all; fi
