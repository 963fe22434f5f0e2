#!/usr/bin/env bash
# What the voice channel needs beyond Python wheels (Debian 12). Idempotent: apt runs only when a
# package is missing, so `make setup` / `make test` can call it every time.
#
#   espeak-ng   text-to-speech (English `en-us`, Mandarin `cmn-latn-pinyin`); also makes the test WAVs
#   sox         measuring/converting audio by hand (docs/voice.md)
#   chromium    the live-room page's browser test (Playwright drives Debian's chromium; it never
#               downloads its own browsers)
#
# The Whisper model comes from `liveroom models install`; Silero VAD ships inside the pipecat-ai wheel.
# Set LIVEROOM_SKIP_APT=1 to skip apt (e.g. no root): the voice tests that need these then skip.
set -euo pipefail

PKGS=(espeak-ng sox chromium)

if [[ "${LIVEROOM_SKIP_APT:-0}" == "1" ]]; then
  echo "install_voice_deps: apt skipped (LIVEROOM_SKIP_APT=1)"
  exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_voice_deps: not a Debian system; install ${PKGS[*]} with your package manager" >&2
  exit 0
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_voice_deps: apt packages present (${PKGS[*]})"
  exit 0
fi
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install_voice_deps: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
fi
echo "install_voice_deps: apt-get install ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# espeak-ng's Mandarin voice reads pinyin with tone digits: make sure the voice is there.
espeak-ng --voices=cmn | grep -q cmn-latn-pinyin || echo "install_voice_deps: warning: no cmn-latn-pinyin voice" >&2
