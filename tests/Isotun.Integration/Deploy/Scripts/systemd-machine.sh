#!/usr/bin/env bash
# A throwaway machine run by a real systemd, for the tests of the units in deploy/systemd.
#   systemd-machine.sh start NAME     becomes its PID 1, in the foreground (stop it by killing that PID); systemd
#                                     logs at debug level to the machine's journal (`journalctl _PID=1` inside)
#   systemd-machine.sh cleanup NAME   after it ended: removes the cgroups it was given
# Nothing it does reaches the host:
# - new mount, PID, network, UTS, IPC and cgroup namespaces, and every mount private;
# - /etc, /var, /usr/local and /tmp are overlays whose writes (and deletions) land in a tmpfs; /run is a tmpfs;
# - /dev is a tmpfs with only null, zero, full, random, urandom, tty and net/tun bound from the host's, /sys is a
#   sysfs of its own network namespace, and its cgroups live under NAME in each hierarchy;
# - systemd loads units only from a directory of its own and /etc/systemd/system, which starts empty: starting a
#   unit pulls in none of the host's boot services (no tmpfiles clean-up of /tmp, no sysctl, no module loading, no
#   remount of /), only the minimal targets below.
# Needs root and cgroup v1 with a name=systemd hierarchy at /sys/fs/cgroup/systemd.
set -euo pipefail
# Is /sys/fs/cgroup/$1 a mounted hierarchy (not a bare directory of the tmpfs above them)?
mounted() { case "$(stat -f -c %T "/sys/fs/cgroup/$1" 2>/dev/null)" in cgroupfs|cgroup2fs) return 0 ;; *) return 1 ;; esac; }
hierarchies=(systemd devices pids memory cpu cpuacct blkio freezer unified) # unified: the cgroup2 one, where mounted

case "${1:-}" in
start)
  name=$2
  for h in "${hierarchies[@]}"; do
    mounted "$h" || continue
    mkdir -p "/sys/fs/cgroup/$h/$name"
    echo $$ >"/sys/fs/cgroup/$h/$name/cgroup.procs"
  done
  exec unshare --pid --fork --mount --net --uts --ipc --cgroup "$0" boot ;;
cleanup)
  name=$2
  for h in "${hierarchies[@]}"; do
    if mounted "$h" && [ -d "/sys/fs/cgroup/$h/$name" ]; then
      find "/sys/fs/cgroup/$h/$name" -depth -type d -exec rmdir {} + 2>/dev/null || true
    fi
  done
  exit 0 ;;
boot) ;;
*) echo "usage: $0 start NAME | cleanup NAME" >&2; exit 2 ;;
esac

mount --make-rprivate /
unified=$(mounted unified && echo yes || true)

# Memory for everything the machine writes: /run, and the upper layers of the overlays.
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/machine/hostdev
mount --rbind /dev /run/machine/hostdev
mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
for node in null zero full random urandom tty; do
  touch "/dev/$node"
  mount --bind "/run/machine/hostdev/$node" "/dev/$node"
done
mkdir -p /dev/net /dev/pts /dev/shm
touch /dev/net/tun /dev/console
mount --bind /run/machine/hostdev/net/tun /dev/net/tun
mount --bind /run/machine/hostdev/null /dev/console
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
umount -l /run/machine/hostdev

for d in etc var usr/local tmp; do
  layer="/run/machine/${d//\//-}"
  mkdir -p "$layer/upper" "$layer/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$layer/upper,workdir=$layer/work" "/$d"
done
find /etc/systemd/system -mindepth 1 -maxdepth 1 -exec rm -rf {} + # the host's enabled units: not this machine's

# /sys of its own (sysfs is per network namespace), so that what systemd remounts there is not the host's; then the
# cgroup hierarchies again, from inside the cgroup namespace: systemd sees the machine's cgroups as the roots.
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup
for h in "${hierarchies[@]}"; do
  mkdir -p "/sys/fs/cgroup/$h"
  case "$h" in
    systemd) mount -t cgroup -o none,name=systemd cgroup "/sys/fs/cgroup/$h" ;;
    unified) if [ -n "$unified" ]; then mount -t cgroup2 cgroup2 "/sys/fs/cgroup/$h"; else rmdir "/sys/fs/cgroup/$h"; fi ;;
    *) mount -t cgroup -o "$h" cgroup "/sys/fs/cgroup/$h" 2>/dev/null || rmdir "/sys/fs/cgroup/$h" ;;
  esac
done

units=/run/machine/units
mkdir -p "$units"
for target in sysinit basic shutdown sockets network network-online; do
  printf '[Unit]\nDescription=%s (an empty target of the test machine)\nDefaultDependencies=no\n' "$target" >"$units/$target.target"
done
# The journal, for systemd's own log (no kmsg: it keeps only 200 lines per 5 s there).
cp /lib/systemd/system/systemd-journald.service /lib/systemd/system/systemd-journald*.socket "$units/"
printf '[Unit]\nDescription=the test machine\nDefaultDependencies=no\nWants=systemd-journald.service\n' >"$units/isotun-test.target"
mount -t proc proc /proc
exec env container=isotun-test SYSTEMD_UNIT_PATH="$units:/etc/systemd/system" \
  /lib/systemd/systemd --system --unit=isotun-test.target --log-target=journal --log-level=debug --show-status=no
