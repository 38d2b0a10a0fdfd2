#!/usr/bin/env bash
# Print one digest of everything the node image is built from (node sources, Dockerfile,
# wheelhouse recipe): the image carries it as a label, so a rebuild happens only on change.
set -euo pipefail
cd "$(dirname "$0")/.."
find Dockerfile .dockerignore images/build-wheelhouse.sh node \
    -type f -not -path 'node/build/*' -not -path '*.egg-info/*' -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
