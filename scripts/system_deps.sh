#!/usr/bin/env bash
# Debian packages the features need (OCR, speech, a browser for the browser tests). Each feature keeps
# its own idempotent installer as scripts/install_*_deps.sh; this runs them all. Skips quietly where
# apt-get is unavailable or we are not root (the features then report what is missing).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "system deps: apt-get unavailable or not root; skipping (see README)" >&2
  exit 0
fi
for f in install_*_deps.sh; do
  [ -e "$f" ] || continue
  echo "system deps: $f"
  bash "$f"
done
