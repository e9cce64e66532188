#!/usr/bin/env bash
# Builds, with no registry, an image equivalent to sync/sidecar/Containerfile: a Debian root file system
# made by debootstrap (from the Debian mirror apt already uses here), tuned as the Containerfile does,
# and imported with `podman import`. Tags it twice: the sync sidecar, and a dev image on the same base
# (the end-to-end test needs both and can pull neither).
#
#   sudo sync/sidecar/build-local.sh [--force]
#
# Cached: when the image exists and was built by this very script (label io.kubedev.recipe holds the
# script's sha256), nothing is done. --force rebuilds. Needs root (debootstrap), podman and debootstrap.
# Environment: KUBEDEV_SIDECAR_IMAGE, KUBEDEV_DEV_IMAGE (tags), KUBEDEV_DEBIAN_MIRROR (mirror URL).
set -euo pipefail
# debootstrap and chroot live in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

sidecar_image=${KUBEDEV_SIDECAR_IMAGE:-localhost/kubedev-sidecar:local}
dev_image=${KUBEDEV_DEV_IMAGE:-localhost/kubedev-dev:local}
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-local.sh: unknown argument '$arg' (known: --force)." >&2; exit 2 ;;
  esac
done

die() { echo "build-local.sh: $*" >&2; exit 1; }

for tool in podman debootstrap tar chroot sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing. Install it: apt-get install -y podman runc debootstrap"
done

recipe=$(sha256sum "$0" | cut -d' ' -f1)
if [ "$force" = 0 ] && podman image exists "$sidecar_image"; then
  have=$(podman image inspect --format '{{index .Config.Labels "io.kubedev.recipe"}}' "$sidecar_image" 2>/dev/null || true)
  if [ "$have" = "$recipe" ]; then
    podman image exists "$dev_image" || podman tag "$sidecar_image" "$dev_image"
    echo "build-local.sh: $sidecar_image is up to date (cached); nothing to do."
    exit 0
  fi
  echo "build-local.sh: $sidecar_image was built by another version of this script; rebuilding."
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root. Run: sudo $0"

# The Debian release and mirror: the ones apt uses on this machine, so no other host is contacted.
. /etc/os-release
suite=${VERSION_CODENAME:-}
[ -n "$suite" ] || die "/etc/os-release names no VERSION_CODENAME; this script builds on Debian. Set KUBEDEV_DEBIAN_MIRROR and run it on Debian."
mirror=${KUBEDEV_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # deb822 sources: the URIs of a stanza whose Suites list holds exactly "$suite".
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uris = ""; ok = 0; enabled = 1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); uris = u[1] }
          if ($i ~ /^Suites:/) { sub(/^Suites:[ \t]*/, "", $i); n = split($i, s, /[ \t]+/); for (j = 1; j <= n; j++) if (s[j] == suite) ok = 1 }
          if ($i ~ /^Enabled:[ \t]*no/) enabled = 0
        }
        if (ok && enabled && uris != "") { print uris; exit }
      }' "$f")
    [ -n "$mirror" ] && break
  done
fi
if [ -z "$mirror" ]; then
  # One-line sources: "deb [options] URL SUITE COMPONENTS".
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk -v suite="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) { print $i; exit } }')
fi
[ -n "$mirror" ] || die "found no Debian mirror for '$suite' in /etc/apt/sources.list*. Set KUBEDEV_DEBIAN_MIRROR to the URL apt uses."

work=$(mktemp -d /var/tmp/kubedev-sidecar.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
start=$(date +%s)

echo "build-local.sh: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include=openssh-server,tar,inotify-tools,xxhash "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above). Check that apt can reach $mirror: apt-get update"; }

# What the Containerfile's RUN does, in the new root.
chroot "$rootfs" /bin/sh -eu -c '
  rm -f /etc/ssh/ssh_host_*
  groupadd --gid 1000 dev
  useradd --uid 1000 --gid 1000 --home-dir /home/dev --create-home --shell /bin/sh dev
  usermod --password "*" dev
  mkdir -p /run/sshd /etc/kubedev/sshd /etc/kubedev/host-keys /etc/kubedev/authorized-keys /workspace
  chown dev:dev /workspace
  apt-get clean
  rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/log/*.log
'

echo "build-local.sh: importing $sidecar_image"
tar --numeric-owner -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
  | podman import \
      --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'USER=1000:1000' \
      --change 'WORKDIR=/workspace' \
      --change 'EXPOSE=2222' \
      --change 'CMD=["/usr/sbin/sshd","-D","-e","-f","/etc/kubedev/sshd/sshd_config"]' \
      --change "LABEL=io.kubedev.recipe=$recipe" \
      - "$sidecar_image" >/dev/null
podman tag "$sidecar_image" "$dev_image"
echo "build-local.sh: built $sidecar_image and $dev_image in $(( $(date +%s) - start )) s"
