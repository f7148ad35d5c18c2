#!/usr/bin/env bash
# Makes sure the Mosquitto and PostgreSQL *binaries* are present. The tests start their own
# private instances on free ports; they never use a system-wide service.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> installing test service binaries with apt-get: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  echo "==> installing test service binaries with sudo apt-get: ${need[*]}"
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "warning: ${need[*]} not installed and no root to install them;" >&2
  echo "         the suites that need them will be skipped (and fail when CI=true)." >&2
  echo "         To run them: sudo apt-get install ${need[*]}" >&2
fi
