#!/usr/bin/env bash
# Browser tests and PNG export (kaleido) drive Debian's chromium (Playwright cannot download its own
# browsers offline), and need a Korean font: without one every Hangul syllable is drawn as a box.
# Installs chromium and fonts-nanum when missing (as root on Debian, as in CI); otherwise says what to do.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
korean=""
if command -v fc-list >/dev/null 2>&1; then korean="$(fc-list :lang=ko family 2>/dev/null || true)"; fi
if [ -z "$korean" ]; then need+=(fonts-nanum); fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${need[*]} for the browser tests and PNG export…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" fontconfig >/dev/null
  fc-cache -f >/dev/null 2>&1 || true
else
  echo "Missing ${need[*]}: install them (e.g. 'sudo apt-get install ${need[*]}'); without chromium the browser" \
       "tests are skipped, without a Korean font (fonts-nanum or fonts-noto-cjk) Korean renders as boxes." >&2
fi
