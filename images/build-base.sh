#!/usr/bin/env bash
# Build the node's base image from Debian packages, for hosts that reach no container
# registry: a minbase bookworm root with python3 and venv, stripped of docs and caches.
# Usage: images/build-base.sh [IMAGE]   (default cqkd-base:bookworm; kept if it exists)
# Environment: CQKD_DEBIAN_MIRROR (default http://deb.debian.org/debian), FORCE=1 rebuilds.
set -euo pipefail

image="${1:-cqkd-base:bookworm}"
mirror="${CQKD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="bookworm"

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image already present"
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "error: debootstrap needs root; run as root (or with sudo)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "error: debootstrap is missing: apt-get install -y debootstrap" >&2
    exit 1
}

rootfs="$(mktemp -d /var/tmp/cqkd-base.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$rootfs" "$mirror" >/dev/null

# Keep later apt installs in derived images as lean as this one (as the official slim images do).
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/cqkd-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
cat >"$rootfs/etc/apt/apt.conf.d/cqkd-slim" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CFG
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
    "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
    "$rootfs"/var/log/* "$rootfs"/tmp/*
echo "deb $mirror $suite main" >"$rootfs/etc/apt/sources.list"

tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'LABEL io.cqkd.project=cqkd' \
    --change "LABEL org.opencontainers.image.title=cqkd-base org.opencontainers.image.description=\"Debian $suite minbase with python3 and venv\"" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$image" >/dev/null
docker image inspect --format "built base image $image ({{.Size}} bytes)" "$image"
