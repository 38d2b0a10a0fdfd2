#!/usr/bin/env bash
# Build the wheelhouse the node image installs from with its network off: the node's wheel
# and every dependency, for the base image's Python (binary wheels are fetched for that
# version and platform when it differs from the controller's Python).
# Usage: images/build-wheelhouse.sh OUTDIR [PYTHON_VERSION]   e.g. build/wheelhouse 3.11
# Environment: PYTHON (default: the repository's .venv, else python3).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: $0 OUTDIR [PYTHON_VERSION]}"
python="${PYTHON:-$repo/.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"
host_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
target_version="${2:-$host_version}"
machine="$(uname -m)"

# A fixed timestamp makes the node wheel byte-identical for identical sources.
export SOURCE_DATE_EPOCH=315532800
# A fixed timestamp makes the node wheel byte-identical for identical sources.
export SOURCE_DATE_EPOCH=315532800
rm -rf "$out"
mkdir -p "$out"
"$python" -m pip wheel --quiet --wheel-dir "$out" "$repo/node"
if [[ "$target_version" != "$host_version" ]]; then
    # Pure wheels built above satisfy the target too; only binary ones are fetched again.
    "$python" -m pip download --quiet --only-binary :all: --dest "$out" --find-links "$out" \
        --python-version "$target_version" --implementation cp \
        --platform "manylinux_2_36_$machine" --platform "manylinux2014_$machine" \
        "$out"/cqkd-*.whl
fi
echo "wheelhouse $out for Python $target_version: $(find "$out" -name "*.whl" | wc -l) wheels"
