#!/usr/bin/env bash
# Install Debian's prometheus-alertmanager when it is missing (the alert end-to-end tests
# start their own instances of /usr/bin/prometheus-alertmanager). Idempotent and quiet;
# installing needs root.
set -euo pipefail

BINARY=/usr/bin/prometheus-alertmanager

if [ -x "$BINARY" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-alertmanager: prometheus-alertmanager is missing and installing it needs root" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-alertmanager: prometheus-alertmanager is missing and apt-get is not available" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends prometheus-alertmanager; } >"$log" 2>&1; then
    echo "ensure-alertmanager: installing prometheus-alertmanager failed:" >&2
    tail -n 40 "$log" >&2
    exit 1
fi

# The package starts a system-wide daemon (port 9093) when an init system runs; the tests
# start their own instances on free ports, so stop the packaged one if it runs.
if command -v service >/dev/null 2>&1; then
    service prometheus-alertmanager stop >/dev/null 2>&1 || true
fi

if [ ! -x "$BINARY" ]; then
    echo "ensure-alertmanager: $BINARY still not found after install" >&2
    exit 1
fi
