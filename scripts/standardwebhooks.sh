#!/usr/bin/env bash
# Installs the Standard Webhooks project's own verifiers, pinned, for tests/webhook_verifiers.rs:
# the Python library `standardwebhooks` (PyPI) in a virtualenv and the JavaScript one
# (`standardwebhooks` on npm) in a node_modules folder, both under
# $CARGO_TARGET_DIR/standardwebhooks (default target/standardwebhooks), where the test looks.
# Does nothing when the pinned versions are there already.
#
#   scripts/standardwebhooks.sh
#
# Needs python3 (with venv), node and npm.
set -euo pipefail

PYTHON_VERSION=1.1.0
NPM_VERSION=1.1.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${CARGO_TARGET_DIR:-$ROOT/target}/standardwebhooks"
mkdir -p "$DIR"

if ! "$DIR/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('standardwebhooks') != '$PYTHON_VERSION')" 2>/dev/null; then
  echo "installing standardwebhooks $PYTHON_VERSION (PyPI) into $DIR/venv"
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install --quiet "standardwebhooks==$PYTHON_VERSION"
fi

installed_npm="$(node -p "require('$DIR/node/node_modules/standardwebhooks/package.json').version" 2>/dev/null || true)"
if [ "$installed_npm" != "$NPM_VERSION" ]; then
  echo "installing standardwebhooks $NPM_VERSION (npm) into $DIR/node"
  mkdir -p "$DIR/node"
  npm install --silent --no-audit --no-fund --prefix "$DIR/node" "standardwebhooks@$NPM_VERSION"
fi
echo "Standard Webhooks verifiers: Python $PYTHON_VERSION in $DIR/venv, npm $NPM_VERSION in $DIR/node/node_modules"
