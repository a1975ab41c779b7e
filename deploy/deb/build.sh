#!/usr/bin/env bash
# Builds the Debian package isotun_<version>-1_<arch>.deb from a self-contained build: the program in /usr/lib/isotun,
# /usr/bin/isotun, the example configs as conffiles in /etc/isotun and the units in /lib/systemd/system, laid out by
# the same functions `./isotun install` uses (deploy/common.sh). See docs/operations.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../common.sh
. "$root/deploy/common.sh"

usage() {
  cat <<'EOF'
Usage: deploy/deb/build.sh [--from DIR] [--out DIR] [--maintainer "NAME <EMAIL>"] [--fast]

Builds isotun_<version>-1_<arch>.deb with dpkg-deb and prints its path. The version is the one `isotun --version`
of the build reports.

Options:
  --from DIR         package this already published self-contained build (default: publish one, deploy/publish.sh)
  --out DIR          where the .deb goes (default .isotun/deb)
  --maintainer TEXT  the package's Maintainer (default: $DEBFULLNAME <$DEBEMAIL>, else the author of the checkout's
                     last commit)
  --fast             gzip -1 instead of xz: a larger package, made in seconds rather than a minute (the tests)

Exit codes: 0 ok, 1 failure, 2 usage error.
EOF
}

fail() { echo "deb/build.sh: $*" >&2; exit 1; }
usage_error() { echo "deb/build.sh: $*" >&2; echo "Run 'deploy/deb/build.sh --help' for usage." >&2; exit 2; }

from="" out="$root/.isotun/deb" maintainer="" compression=(-Zxz)
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help|-\?) usage; exit 0 ;;
    --fast) compression=(-Zgzip -z1); shift ;;
    --from|--out|--maintainer)
      [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"
      case "$1" in
        --from) from="$2" ;;
        --out) out="$2" ;;
        --maintainer) maintainer="$2" ;;
      esac
      shift 2 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done

command -v dpkg-deb >/dev/null 2>&1 || fail "dpkg-deb is required (Debian package dpkg)"
arch="$(dpkg --print-architecture)"
case "$arch" in
  amd64|arm64) ;;  # the architectures deploy/publish.sh publishes for
  *) fail "no self-contained .NET build for the architecture $arch" ;;
esac

if [ -z "$maintainer" ]; then
  if [ -n "${DEBEMAIL:-}" ]; then
    maintainer="${DEBFULLNAME:-isotun} <$DEBEMAIL>"
  elif command -v git >/dev/null 2>&1 && git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    maintainer="$(git -C "$root" log -1 --format='%an <%ae>')"
  fi
fi
[[ "$maintainer" =~ ^[^\<\>]+\ \<[^\<\>@\ ]+@[^\<\>@\ ]+\>$ ]] \
  || fail "a maintainer 'NAME <EMAIL>' is needed: --maintainer, or DEBFULLNAME and DEBEMAIL"

[ -n "$from" ] || from="$(bash "$root/deploy/publish.sh")" || exit 1
exe="$from/isotun"
[ -x "$exe" ] && [ -f "$from/libcoreclr.so" ] || fail "$from is not a self-contained isotun build (dotnet publish --self-contained)"

# `isotun --version` prints the assembly's informational version, e.g. 0.1.0+<commit> (VersionPrefix in
# Directory.Build.props); the commit is not a version.
upstream="$("$exe" --version)" || fail "$exe --version failed"
upstream="${upstream%%+*}"
[[ "$upstream" =~ ^[0-9][A-Za-z0-9.~]*$ ]] || fail "'$upstream' from $exe --version is not a Debian upstream version"
version="$upstream-1"

# The changelog's date: SOURCE_DATE_EPOCH when the caller fixes it (a reproducible build), else the last commit's.
epoch="${SOURCE_DATE_EPOCH:-}"
if [ -z "$epoch" ] && command -v git >/dev/null 2>&1; then epoch="$(git -C "$root" log -1 --format=%ct 2>/dev/null || true)"; fi
[ -n "$epoch" ] || epoch="$(date +%s)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
# dpkg-deb packs the modes as they are on disk: they must not depend on the caller's umask.
chmod 0755 "$stage"
umask 022

# The program, private to the package; the link on the PATH is relative, as Debian policy asks.
lib="$stage/usr/lib/isotun"
mkdir -p "$stage/usr/lib" "$stage/usr/bin"
copy_program "$from" "$lib"
# A publish leaves the execute bit on every file; only these are run.
find "$lib" -type d -exec chmod 0755 {} +
find "$lib" -type f -exec chmod 0644 {} +
chmod 0755 "$lib/isotun" "$lib/createdump" "$lib/site-gateway.sh"
ln -s ../lib/isotun/isotun "$stage/usr/bin/isotun"

# The example configs, as conffiles: dpkg keeps an operator's edits over upgrades and asks before replacing them.
install -d -m 0755 "$stage/etc/isotun"
for f in "${isotun_configs[@]}"; do
  example_config "$f" "$exe" /var/lib/isotun >"$stage/etc/isotun/$f"
  chmod 0644 "$stage/etc/isotun/$f"
done

# The units, run from /usr/bin/isotun and pointing at the manual page (`systemctl help`). The state directory is made
# by the postinst (and by systemd at start).
install -d -m 0755 "$stage/lib/systemd/system"
for u in "${isotun_units[@]}"; do
  unit "$u" /usr/bin/isotun /etc/isotun /var/lib/isotun | sed "/^Description=/a Documentation=man:isotun(1)" >"$stage/lib/systemd/system/$u"
  chmod 0644 "$stage/lib/systemd/system/$u"
done

# Documentation: copyright, changelog and a manual page made from the program's own --help.
doc="$stage/usr/share/doc/isotun"
install -d -m 0755 "$doc" "$stage/usr/share/man/man1" "$stage/usr/share/lintian/overrides"
install -m 0644 "$here/copyright" "$doc/copyright"
cat >"$doc/changelog.Debian" <<EOF
isotun ($version) unstable; urgency=medium

  * Isotun $upstream, packaged from a self-contained build by deploy/deb/build.sh.

 -- $maintainer  $(LC_ALL=C date -u -R -d "@$epoch")
EOF
"$exe" --help | awk -v version="$upstream" -f "$here/manpage.awk" >"$stage/usr/share/man/man1/isotun.1"
gzip -9n "$doc/changelog.Debian" "$stage/usr/share/man/man1/isotun.1"
install -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/isotun"

# Control files.
install -d -m 0755 "$stage/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$stage/DEBIAN/$s"; done
printf '/etc/isotun/%s\n' "${isotun_configs[@]}" >"$stage/DEBIAN/conffiles"
(cd "$stage" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
  | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
# Depends: the libraries the .NET runtime links (libc6, libgcc-s1, libstdc++6) and opens (libssl3, for TLS);
# iproute2 for the server's namespaces and routes, procps for the /bin/kill of isotun-gateway.service's reload.
# Not libicu (InvariantGlobalization in Directory.Build.props) nor zlib1g (.NET carries its own zlib-ng).
cat >"$stage/DEBIAN/control" <<EOF
Package: isotun
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: libc6 (>= 2.28), libgcc-s1 (>= 3.0), libstdc++6 (>= 6), libssl3, iproute2, procps
Recommends: ca-certificates
Suggests: openconnect
Section: net
Priority: optional
Description: multi-tenant VPN over TLS, compatible with OpenConnect
 Isotun is a VPN server that speaks the OpenConnect (AnyConnect/CSTP)
 protocol over TLS, so stock openconnect clients connect to it. One server
 serves many tenants, each in its own network namespace with its own address
 pool, users and routes.
 .
 This package holds a self-contained build (it needs no .NET installed), the
 isotun command (server, edge gateway, client, PKI and user tools, admin CLI),
 example configurations in /etc/isotun and the systemd units isotun-server and
 isotun-gateway, which are installed but neither enabled nor started.
EOF
chmod 0644 "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"

# Files made here get the changelog's time rather than now, so that the same build packed twice gives the same .deb.
find "$stage" -newermt "@$epoch" -print0 | xargs -0r touch -h -d "@$epoch"
mkdir -p "$out"
deb="$out/isotun_${version}_$arch.deb"
SOURCE_DATE_EPOCH="$epoch" dpkg-deb --build --root-owner-group "${compression[@]}" "$stage" "$deb" >/dev/null
echo "$deb"
