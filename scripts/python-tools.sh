#!/usr/bin/env bash
# Creates (once, and again whenever scripts/python-tools.txt changes) the project's venv of
# pinned Python tools used by the tests (cmaes for the CMA-ES cross-check; cfn-lint and checkov
# for the synthesized templates) and prints the path of its python. Packages come from PyPI.
#   scripts/python-tools.sh            -> .cache/python-tools/venv/bin/python
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REQS="$ROOT/scripts/python-tools.txt"
VENV="$ROOT/.cache/python-tools/venv"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
# One build at a time: e2e files that need the venv run in parallel (vitest workers), and two
# builds of one folder would remove each other's files.
mkdir -p "$(dirname "$VENV")"
# Its physical path: checkouts that share the folder through a symlink then agree on one venv.
VENV="$(cd "$(dirname "$VENV")" && pwd -P)/venv"
STAMP="$VENV/.requirements.sha256"
exec 9>"$(dirname "$VENV")/.lock"
flock 9
# A venv made under another path (reached through a symlink from another checkout) has scripts
# whose #! names that path: it is rebuilt here, not used.
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ] ||
  ! grep -qF -- "-m venv $VENV" "$VENV/pyvenv.cfg" 2>/dev/null; then
  # The stamp is written last: a crash mid-install leaves no stamp, so the next call rebuilds.
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" >&2
  echo "$want" > "$STAMP"
fi
echo "$VENV/bin/python"
