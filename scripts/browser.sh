#!/usr/bin/env bash
# What the web UI's browser tests need (tests/ui.rs): Debian's Chromium and
# Node.js, installed from Debian packages on first run (needs root or sudo),
# and playwright-core from npm at the version tests/ui/package-lock.json
# pins, in tests/ui/node_modules. playwright-core downloads no browser: the
# tests drive /usr/bin/chromium. Trellis itself needs none of this.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ! -d tests/ui/node_modules/playwright-core ]; then
  (cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "browser tests ready: $(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p 'require("./tests/ui/node_modules/playwright-core/package.json").version')"
