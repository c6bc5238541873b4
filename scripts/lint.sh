#!/usr/bin/env bash
# The lint check of CI (.ci/run): ruff, configured in pyproject.toml
# ([tool.ruff]), over every Python file of the checkout. Install the pinned
# ruff with `pip install -e ".[lint]"`. Arguments are passed on, e.g.
#
#   scripts/lint.sh --statistics        # findings per rule
#   scripts/lint.sh --fix tests         # apply the safe fixes to tests/
#
# Fix with the whole configuration, never with a subset of the rules: the
# pyupgrade rewrites (Optional[X] to X | None) are safe only together with
# the `from __future__ import annotations` that isort's required import adds
# (docs/contributing.rst, "Code style").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
# Without a path among the arguments: the whole checkout.
paths=0
for arg in "$@"; do
    [ "${arg#-}" = "$arg" ] && paths=1
done
if [ $paths -eq 0 ]; then
    set -- "$@" pyg_skeleton tests benchmarks docs scripts
fi
exec "$PYTHON" -m ruff check "$@"
