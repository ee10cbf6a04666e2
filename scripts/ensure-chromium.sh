#!/usr/bin/env bash
# Browser tests drive Debian's chromium (Playwright cannot download its own browsers offline).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium is not installed: install it (e.g. 'sudo apt-get install chromium') or browser tests will be skipped." >&2
fi
