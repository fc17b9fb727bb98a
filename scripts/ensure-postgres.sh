#!/usr/bin/env bash
# Make sure Debian's PostgreSQL server binaries are installed; print the directory that
# holds initdb and pg_ctl (e.g. /usr/lib/postgresql/15/bin). Idempotent and quiet.
#
# The tests start their own throwaway server from these binaries (tests/pgserver.py), so
# the cluster the package creates and may start is stopped again. Installing needs root.
set -euo pipefail

find_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
    fi
}

bindir="$(find_bindir)"
if [ -n "$bindir" ]; then
    echo "$bindir"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-postgres: PostgreSQL is missing and installing it needs root" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: PostgreSQL is missing and apt-get is not available" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql; } >"$log" 2>&1; then
    echo "ensure-postgres: installing postgresql failed:" >&2
    tail -n 40 "$log" >&2
    exit 1
fi

# Where an init system runs, the package starts a cluster on port 5432; the tests do not
# use it, so stop it (and leave the machine as it was).
if command -v pg_ctlcluster >/dev/null 2>&1; then
    for conf in /etc/postgresql/*/*/postgresql.conf; do
        [ -e "$conf" ] || continue
        version="$(basename "$(dirname "$(dirname "$conf")")")"
        cluster="$(basename "$(dirname "$conf")")"
        pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true
    done
fi

bindir="$(find_bindir)"
if [ -z "$bindir" ]; then
    echo "ensure-postgres: initdb and pg_ctl still not found after install" >&2
    exit 1
fi
echo "$bindir"
