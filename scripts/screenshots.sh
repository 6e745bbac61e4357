#!/bin/sh
# Screenshots of the storefront and the seller page (issue 20) at desktop
# (1280 px) and phone (375 px) width, into docs/screenshots/ (or $1).
# Needs Debian's chromium and chromium-driver (or CHROME/CHROMEDRIVER set),
# as the browser tests do. Boots its own node on 127.0.0.1 port 0 with a
# temporary data directory, seeds a small shop through the HTTP API, and
# stops everything it started before it exits.
set -eu
cd "$(dirname "$0")/.."
exec cargo run --quiet --example screenshots -- --out "${1:-docs/screenshots}"
