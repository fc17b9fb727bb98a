#!/usr/bin/env bash
# Install Debian's ngircd when it is missing. Idempotent and quiet; run as root.
set -euo pipefail

if command -v ngircd >/dev/null 2>&1 || [ -x /usr/sbin/ngircd ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-ngircd: ngircd is missing and installing it needs root" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-ngircd: ngircd is missing and apt-get is not available" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends ngircd; } >"$log" 2>&1; then
    echo "ensure-ngircd: installing ngircd failed:" >&2
    tail -n 40 "$log" >&2
    exit 1
fi

# The Debian package starts a system-wide daemon on port 6667 when an init system
# runs; the tests start their own instance, so stop the packaged one if it runs.
if command -v service >/dev/null 2>&1; then
    service ngircd stop >/dev/null 2>&1 || true
fi

if ! command -v ngircd >/dev/null 2>&1 && [ ! -x /usr/sbin/ngircd ]; then
    echo "ensure-ngircd: ngircd still not found after install" >&2
    exit 1
fi
