#!/usr/bin/env bash
# The admin console in a real browser: installs the test dependencies (npm ci), builds the
# example server, and runs loyalty-http/console-tests against it (each test file starts its
# own server on a free port). Needs Node.js (18 or later) and Chromium; nothing is downloaded
# at run time but the npm packages of package-lock.json.
#
#   scripts/console-tests.sh            # all tests
#   CHROMIUM=/path/to/chromium scripts/console-tests.sh
#   CONSOLE_SCREENSHOTS=1 scripts/console-tests.sh   # also rewrites docs/console/*.png
set -euo pipefail
cd "$(dirname "$0")/.."

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "console tests: node and npm are missing (Debian: apt-get install -y nodejs npm)" >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "console tests: no Chromium at $CHROMIUM (Debian: apt-get install -y chromium; or set CHROMIUM)" >&2
  exit 1
fi

echo "== console tests: npm ci"
(cd loyalty-http/console-tests && npm ci --no-audit --no-fund)

echo "== console tests: building the example server"
cargo build --example server
target_dir="${CARGO_TARGET_DIR:-target}"
export CONSOLE_SERVER_BIN="$PWD/$target_dir/debug/examples/server"
case "$target_dir" in /*) export CONSOLE_SERVER_BIN="$target_dir/debug/examples/server" ;; esac

echo "== console tests: Chromium $("$CHROMIUM" --version 2>/dev/null || true)"
cd loyalty-http/console-tests
npm test
