#!/usr/bin/env bash
# `./isotun install` and `./isotun uninstall`: a self-contained build on the PATH, a commented config in /etc/isotun
# and the systemd units of the server and the gateway. See docs/operations.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=common.sh
. "$root/deploy/common.sh"

usage() {
  cat <<'EOF'
Usage:
  isotun install   [--prefix DIR] [--from DIR] [--config-dir DIR] [--state-dir DIR] [--unit-dir DIR]
  isotun uninstall [--prefix DIR] [--config-dir DIR] [--state-dir DIR] [--unit-dir DIR] [--purge]

install    publishes a self-contained build (dotnet publish -c Release --self-contained) into PREFIX/lib/isotun,
           links PREFIX/bin/isotun to it, writes CONFIG-DIR/isotun.yaml and gateway.yaml (commented examples;
           existing files are kept), creates STATE-DIR (0700) and installs isotun-server.service and
           isotun-gateway.service into UNIT-DIR. Nothing is enabled or started; run again to upgrade: the units
           that are running are restarted.
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

# systemctl only for the system's own unit directory on a machine that runs systemd.
with_systemd() { [ "$unit_dir" = /etc/systemd/system ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

install_all() {
  [ -n "$from" ] || from="$(bash "$root/deploy/publish.sh")" || exit 1
  [ -x "$from/isotun" ] || fail "$from/isotun is not an executable isotun build"

  # The program: a fresh copy, then the link on the PATH.
  mkdir -p "$prefix/lib" "$prefix/bin"
  copy_program "$from" "$lib"
  ln -sfn "$lib/isotun" "$bin"
  echo "installed $bin -> $lib/isotun"

  # Config: commented examples, never over an existing file. State outside /etc, which the units keep read-only.
  # Made if missing; an existing directory keeps the mode its operator gave it.
  [ -d "$config_dir" ] || install -d -m 0755 "$config_dir"
  [ -d "$state_dir" ] || install -d -m 0700 "$state_dir"
  for f in "${isotun_configs[@]}"; do
    if [ -e "$config_dir/$f" ]; then
      echo "kept $config_dir/$f"
    else
      example_config "$f" "$bin" "$state_dir" >"$config_dir/$f.new"
      chmod 0644 "$config_dir/$f.new"
      mv "$config_dir/$f.new" "$config_dir/$f"
      echo "wrote $config_dir/$f (an example: make the files it names, then edit it)"
    fi
  done

  # Units, with this install's paths.
  install -d -m 0755 "$unit_dir"
  for u in "${isotun_units[@]}"; do
    unit "$u" "$bin" "$config_dir" "$state_dir" >"$unit_dir/$u.new"
    chmod 0644 "$unit_dir/$u.new"
    mv "$unit_dir/$u.new" "$unit_dir/$u"
    echo "installed $unit_dir/$u"
  done
  if with_systemd; then
    systemctl daemon-reload
    # An upgrade: a unit that runs now runs the new program (and its unit) from here on.
    for u in "${isotun_units[@]}"; do
      if systemctl is-active --quiet "$u"; then systemctl try-restart "$u" && echo "restarted $u"; fi
    done
  fi

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
    for u in "${isotun_units[@]}"; do systemctl disable --now "$u" >/dev/null 2>&1 || true; done
  fi
  for u in "${isotun_units[@]}"; do
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
