#!/usr/bin/env bash
# The whole test suite, with what it needs: a real Redmine on 127.0.0.1
# (installed from Debian packages on first run, which needs root or sudo;
# each Redmine test resets its database), Chromium and playwright-core for
# the web UI's browser tests (scripts/browser.sh), then `cargo test`. A Redmine this script
# started is stopped again when it ends; one that was already running is
# left running.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if bash scripts/redmine.sh status 2>/dev/null; then
  started=no
else
  as_root bash scripts/redmine.sh setup
  started=yes
fi
stop_redmine() { if [ "$started" = yes ]; then as_root bash scripts/redmine.sh stop; fi; }
trap stop_redmine EXIT

bash scripts/browser.sh
cargo test --locked "$@"
