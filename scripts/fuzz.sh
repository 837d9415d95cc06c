#!/usr/bin/env bash
# Fuzzes loyalty-core with cargo-fuzz (libFuzzer), one target at a time, each for a bounded time.
#
#   scripts/fuzz.sh                       # every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=180 scripts/fuzz.sh request_auth rule_definition
#
# Environment:
#   FUZZ_SECONDS    time per target, passed to libFuzzer as -max_total_time (default 60)
#   FUZZ_SANITIZER  none (default) or address. loyalty-core forbids unsafe code and the
#                   dependencies' features in use have none, so the fast uninstrumented build
#                   (about 10x the executions per second) is the default; address works too.
#   FUZZ_TIMEOUT    libFuzzer's per-input -timeout in seconds (default 10)
#   FUZZ_RSS_MB     libFuzzer's -rss_limit_mb (default 2048)
#   FUZZ_ARGS       more libFuzzer arguments, appended as is
#
# Works on the stable toolchain: cargo-fuzz needs nightly-only flags (-Zsanitizer,
# -Cpasses=sancov-module, ...), which RUSTC_BOOTSTRAP=1 unlocks for this build only. The build
# has its own target dir (fuzz/target/<sanitizer>), so it never locks or invalidates the
# workspace's target/.
#
# Before fuzzing, every file in fuzz/regressions/<target>/ is replayed: those are inputs that once
# crashed a target; a replay that still crashes fails the run.
#
# Seeds (fuzz/seeds/<target>/) are copied into the corpus (fuzz/corpus/<target>/, gitignored)
# first; fuzz/dicts/<target>.dict, if present, is passed as libFuzzer's -dict. A crash is
# written to fuzz/artifacts/<target>/ (gitignored); the script then prints the reproducer and
# exits non-zero. Logs go to fuzz/target/logs/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT/fuzz"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
FUZZ_RSS_MB="${FUZZ_RSS_MB:-2048}"
TARGET_DIR="$FUZZ_DIR/target/$FUZZ_SANITIZER"
LOG_DIR="$FUZZ_DIR/target/logs"

case "$FUZZ_SANITIZER" in
  none | address) ;;
  *) echo "fuzz.sh: FUZZ_SANITIZER must be none or address" >&2; exit 2 ;;
esac
[[ "$FUZZ_SECONDS" =~ ^[0-9]+$ && "$FUZZ_SECONDS" -gt 0 ]] || {
  echo "fuzz.sh: FUZZ_SECONDS must be a positive integer" >&2; exit 2
}

export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --locked
fi

cargo_fuzz() {
  cargo fuzz "$@" --fuzz-dir "$FUZZ_DIR"
}

if [[ $# -gt 0 ]]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo_fuzz list)
fi

mkdir -p "$LOG_DIR"
failed=()
summary=()

for target in "${TARGETS[@]}"; do
  echo "=== $target: build (sanitizer $FUZZ_SANITIZER)"
  cargo_fuzz build -s "$FUZZ_SANITIZER" --target-dir "$TARGET_DIR" "$target"
  binary="$TARGET_DIR/x86_64-unknown-linux-gnu/release/$target"

  regressions="$FUZZ_DIR/regressions/$target"
  if compgen -G "$regressions/*" >/dev/null; then
    echo "=== $target: replaying $(ls "$regressions" | wc -l) regression input(s)"
    for input in "$regressions"/*; do
      if ! "$binary" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" "$input" \
        >"$LOG_DIR/$target.regression.log" 2>&1; then
        echo "!!! $target: regression input still fails: $input" >&2
        grep -E "panicked|ERROR: libFuzzer|SUMMARY" "$LOG_DIR/$target.regression.log" >&2 || true
        failed+=("$target(regression $(basename "$input"))")
      fi
    done
  fi

  corpus="$FUZZ_DIR/corpus/$target"
  artifacts="$FUZZ_DIR/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  if [[ -d "$FUZZ_DIR/seeds/$target" ]]; then
    cp -n "$FUZZ_DIR/seeds/$target"/* "$corpus"/ 2>/dev/null || true
  fi
  before=$(find "$artifacts" -type f | sort)

  echo "=== $target: fuzzing for ${FUZZ_SECONDS}s"
  log="$LOG_DIR/$target.log"
  dict=()
  if [[ -f "$FUZZ_DIR/dicts/$target.dict" ]]; then
    dict=(-dict="$FUZZ_DIR/dicts/$target.dict")
  fi
  status=0
  # One job, one worker: libFuzzer runs one child process, whose own log (fuzz-0.log) lands in
  # the current directory, so run from the (gitignored) log dir. `timeout` is a backstop only.
  (
    cd "$LOG_DIR"
    timeout --signal=INT --kill-after=30 "$((FUZZ_SECONDS + 120))" \
      cargo fuzz run --fuzz-dir "$FUZZ_DIR" -s "$FUZZ_SANITIZER" --target-dir "$TARGET_DIR" \
      "$target" "$corpus" -- \
      -max_total_time="$FUZZ_SECONDS" -jobs=1 -workers=1 \
      -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" \
      -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-}
  ) >"$log" 2>&1 || status=$?
  cp "$LOG_DIR/fuzz-0.log" "$LOG_DIR/$target.job.log" 2>/dev/null || true

  done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || true)
  stats=$(grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$log" \
    | sed 's/^stat:://' | tr -s ' \n' ' ' || true)
  echo "--- $target: ${done_line:-no DONE line} ${stats}"

  after=$(find "$artifacts" -type f | sort)
  new_artifacts=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
  if [[ $status -ne 0 || -n "$new_artifacts" ]]; then
    echo "!!! $target: fuzzing failed (exit $status)" >&2
    grep -E -A3 "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written" "$log" | head -40 >&2 || true
    for artifact in $new_artifacts; do
      echo "!!! reproducer $artifact (base64):" >&2
      base64 -w0 "$artifact" >&2
      echo >&2
      echo "    replay: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s $FUZZ_SANITIZER --target-dir $TARGET_DIR $target $artifact" >&2
    done
    failed+=("$target")
    summary+=("$target: FAILED")
  else
    summary+=("$target: ok ${done_line}")
  fi
done

echo
echo "=== summary"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: failures: ${failed[*]}" >&2
  exit 1
fi
