#!/usr/bin/env bash
# Print the path of a headless-capable Chromium; install Debian's `chromium` if absent (root + apt-get only).
set -u

find_chromium() {
  local name path
  for name in chromium /usr/bin/chromium chromium-browser google-chrome; do
    if path=$(command -v "$name" 2>/dev/null) && [ -x "$path" ]; then
      echo "$path"
      return 0
    fi
  done
  return 1
}

if find_chromium; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: no Chromium found (tried chromium, /usr/bin/chromium, chromium-browser," \
    "google-chrome) and cannot install it (needs root and apt-get). Install it, e.g." \
    "'sudo apt-get install chromium'." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -q chromium >&2; }
if ! apt_install; then
  echo "ensure_chromium: install failed; running apt-get update and retrying" >&2
  apt-get update -q >&2 && apt_install
fi

if find_chromium; then
  exit 0
fi
echo "ensure_chromium: installing Debian's chromium package failed; no Chromium available." >&2
exit 1
