#!/usr/bin/env bash
# Print the path of a headless-capable Chromium; install Debian's `chromium` if absent (root + apt-get only).
# The install is quiet: apt's output goes to a temporary log, and only if the install fails is its tail
# printed on stderr (with the log's path). On success, stdout has the path and nothing else is printed.
# CHROMIUM_CANDIDATES (space-separated names or paths) overrides the list searched (tests use it).
set -u

CANDIDATES=${CHROMIUM_CANDIDATES:-"chromium /usr/bin/chromium chromium-browser google-chrome"}
TAIL_LINES=40

find_chromium() {
  local name path
  for name in $CANDIDATES; do
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
  echo "ensure_chromium: no Chromium found (tried ${CANDIDATES// /, }) and cannot install it" \
    "(needs root and apt-get). Install it, e.g. 'sudo apt-get install chromium'." >&2
  exit 1
fi

log=$(mktemp "${TMPDIR:-/tmp}/ensure_chromium.XXXXXX.log") || exit 1
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -q chromium >>"$log" 2>&1; }
if ! apt_install; then
  echo "--- ensure_chromium: install failed; running apt-get update and retrying" >>"$log"
  apt-get update -q >>"$log" 2>&1 && apt_install
fi

if path=$(find_chromium); then
  rm -f "$log"
  echo "$path"
  exit 0
fi
{
  echo "ensure_chromium: installing Debian's chromium package failed; no Chromium available."
  echo "ensure_chromium: last $TAIL_LINES lines of the apt output (all of it: $log):"
  tail -n "$TAIL_LINES" "$log"
} >&2
exit 1
