#!/usr/bin/env bash
# Builds the downstream project (a user's crate, outside the workspace and its
# release profile) under each profile a user may choose, and runs it: every
# spawn, pool and start-up check must pass in every build.
#
#   downstream/run.sh [PROFILE...]     (default: all of them)
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../target/downstream}"
profiles=("$@")
if [ ${#profiles[@]} -eq 0 ]; then
  profiles=(dev release cgu256 thin fat small abort incremental)
fi
for p in "${profiles[@]}"; do
  echo "== downstream: profile $p"
  cargo build --quiet --profile "$p" -p downstream-app
  dir="$p"
  [ "$p" = dev ] && dir=debug
  timeout 300 "$CARGO_TARGET_DIR/$dir/downstream-app"
done
