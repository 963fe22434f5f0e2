#!/usr/bin/env bash
# What the merchant console needs beyond Python wheels. Idempotent: each step runs only when its
# result is missing, so `make setup` / `make test` can call it every time.
#
#   chromium, fonts-wqy-microhei   (Debian, apt)  headless browser for the console's browser tests
#                                                  (Playwright drives /usr/bin/chromium; it never
#                                                  downloads its own browsers) and a CJK font for them
#   echarts                        (npm)          the dashboard's charting library, vendored into
#                                                  console/static/vendor/ (served by the app, no CDN)
#
# Set LIVEROOM_SKIP_APT=1 to skip apt (e.g. no root); the browser tests then skip themselves.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR="$ROOT/console/static/vendor"
ECHARTS_VERSION="5.6.0"
PKGS=(chromium fonts-wqy-microhei)

# --- Debian packages --------------------------------------------------------------------------
if [[ "${LIVEROOM_SKIP_APT:-0}" == "1" ]]; then
  echo "install_console_deps: apt skipped (LIVEROOM_SKIP_APT=1)"
else
  missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then
      if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_console_deps: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
    fi
    echo "install_console_deps: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "install_console_deps: apt packages present (${PKGS[*]})"
  fi
fi

# --- echarts from npm, vendored ----------------------------------------------------------------
stamp="$VENDOR/.echarts-$ECHARTS_VERSION"
if [[ -f "$stamp" && -s "$VENDOR/echarts.min.js" ]]; then
  echo "install_console_deps: echarts $ECHARTS_VERSION present"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install_console_deps: npm not found; install Node.js/npm (apt-get install npm) and re-run" >&2
  exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "echarts@$ECHARTS_VERSION" >/dev/null && tar -xzf "echarts-$ECHARTS_VERSION.tgz")
mkdir -p "$VENDOR"
cp "$tmp/package/dist/echarts.min.js" "$VENDOR/echarts.min.js"
cp "$tmp/package/LICENSE" "$VENDOR/ECHARTS-LICENSE.txt"
rm -f "$VENDOR"/.echarts-*
touch "$stamp"
echo "install_console_deps: echarts $ECHARTS_VERSION vendored into console/static/vendor/"
