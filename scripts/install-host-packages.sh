#!/usr/bin/env bash
# Install the Debian packages the controller needs before anything else runs: venv support
# for the virtualenv, debootstrap for the base image, promtool (Debian's prometheus package)
# for the rule checks, shellcheck for the scripts. The docker_host role installs Docker.
# Does nothing, and needs no root, when every package is already installed.
set -euo pipefail

packages=(python3-venv debootstrap prometheus shellcheck)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $EUID -ne 0 ]]; then
    echo "error: missing Debian packages: ${missing[*]}; run as root (or with sudo):" >&2
    echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
