# What an installed isotun is made of, wherever it goes: sourced by install.sh (`./isotun install`) and by
# deb/build.sh (the Debian package), so that both install the same program, examples and units.
deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

isotun_units=(isotun-server.service isotun-gateway.service)
# The configs in /etc/isotun, made by example_config.
isotun_configs=(isotun.yaml gateway.yaml)

# copy_program FROM LIB: a fresh copy of the published build FROM as LIB, with the openconnect --script that makes a
# stock client a site gateway (docs/sites.md).
copy_program() {
  rm -rf "$2.new" "$2.old"
  cp -a "$1/." "$2.new"
  install -m 0755 "$deploy_dir/openconnect/site-gateway.sh" "$2.new/site-gateway.sh"
  # Swapped by two renames, so that the program is missing for no longer than between them.
  if [ -e "$2" ]; then mv "$2" "$2.old"; fi
  mv "$2.new" "$2"
  rm -rf "$2.old"
}

# example_config NAME EXE STATE_DIR: the commented example of NAME (isotun.yaml or gateway.yaml) on stdout.
example_config() {
  case "$1" in
    isotun.yaml) "$2" config example --state-dir "$3" ;;
    gateway.yaml) "$2" gateway --example ;;
  esac
}

# unit NAME BIN CONFIG_DIR STATE_DIR: the unit NAME of deploy/systemd on stdout, with these paths instead of the
# ones it is written with (/usr/local/bin/isotun, /etc/isotun/, /var/lib/isotun).
unit() {
  sed -e "s|/usr/local/bin/isotun|$2|g" \
      -e "s|/etc/isotun/|$3/|g" \
      -e "s|/var/lib/isotun|$4|g" \
      "$deploy_dir/systemd/$1"
}
