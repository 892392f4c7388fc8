#!/bin/sh
# The browser of the `hwgan app` test: Debian's headless Chromium and its driver, from apt (as
# root; Selenium is told never to download one). Skips the install when both are there.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
