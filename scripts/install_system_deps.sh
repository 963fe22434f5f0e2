#!/usr/bin/env bash
# System packages LiveRoom needs beyond Python wheels (Debian 12). Idempotent: apt runs only when
# something is missing, so `make` can call this every time.
#
#   tesseract-ocr, tesseract-ocr-chi-sim, tesseract-ocr-eng   OCR of viewers' pictures (vision/ocr.py)
#   fonts-wqy-microhei                                        a CJK font: demo product pictures and the
#                                                             pictures the tests/evals render (vision/synth.py)
#   fontconfig                                                fc-list, to find a CJK font if that one moves
#
# Run as root (CI, containers) or with sudo available. Set LIVEROOM_SKIP_APT=1 to skip entirely.
set -euo pipefail

PKGS=(tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng fonts-wqy-microhei fontconfig)

if [[ "${LIVEROOM_SKIP_APT:-0}" == "1" ]]; then
  echo "install_system_deps: skipped (LIVEROOM_SKIP_APT=1)"
  exit 0
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_system_deps: all present (${PKGS[*]})"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_system_deps: apt-get not found; install these yourself: ${missing[*]}" >&2
  exit 1
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install_system_deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install_system_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Check what the code relies on, so a broken install fails here rather than in a test.
tesseract --list-langs 2>&1 | grep -qx chi_sim || { echo "install_system_deps: tesseract chi_sim missing" >&2; exit 1; }
tesseract --list-langs 2>&1 | grep -qx eng || { echo "install_system_deps: tesseract eng missing" >&2; exit 1; }
echo "install_system_deps: done"
