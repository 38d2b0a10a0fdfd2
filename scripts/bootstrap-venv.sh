#!/usr/bin/env bash
# Create the project's virtualenv (.venv) and install requirements-dev.txt into it: the node
# (editable), the test tools, Ansible and Molecule. Reinstalls only when the requirements or
# the node's metadata changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp="$venv/.cqkd-requirements"
python="${PYTHON:-python3}"

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "error: $python is older than 3.11; the node needs Python >= 3.11" >&2
    exit 1
}
if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating virtualenv $venv"
    "$python" -m venv "$venv"
fi

digest="$(cat requirements-dev.txt node/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
    exit 0
fi
echo "installing requirements-dev.txt into $venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r requirements-dev.txt
echo "$digest" >"$stamp"
