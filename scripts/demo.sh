#!/usr/bin/env bash
# `make demo`: the carrier sandbox plus errbot's text backend, the AttSms plugin loaded
# and configured for the sandbox from ATT_* variables. Everything stops when errbot exits.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:?VENV must point at the virtual env (make demo sets it)}
PY="$VENV/bin/python"
DEMO_DIR=${DEMO_DIR:-$(dirname "$VENV")/demo}
PORT=${SANDBOX_PORT:-8080}  # 8080 when free, otherwise any free port
mkdir -p "$DEMO_DIR" && mkdir -p -m 0700 "$DEMO_DIR/data"  # numbers, texts and the audit log: the owner only
export PYTHONPATH="$PWD/plugins"  # the sandbox also gets the repo root (carrier_sandbox)

if [ "$PORT" = 0 ] || ! "$PY" -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$PORT" 2>/dev/null; then
  PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
fi

export SANDBOX_CLIENT_ID=demo-client
export SANDBOX_CLIENT_SECRET=demo-secret
PYTHONPATH="$PWD:$PYTHONPATH" "$PY" -m carrier_sandbox --host 127.0.0.1 --port "$PORT" \
  --registration demo --delivery-delay 3 >"$DEMO_DIR/sandbox.log" 2>&1 &
SANDBOX_PID=$!
trap 'kill "$SANDBOX_PID" 2>/dev/null || true; wait "$SANDBOX_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  grep -q "listening on" "$DEMO_DIR/sandbox.log" 2>/dev/null && break
  sleep 0.1
done
grep -q "listening on" "$DEMO_DIR/sandbox.log" || { cat "$DEMO_DIR/sandbox.log"; exit 1; }
BASE="http://127.0.0.1:$PORT"

export ATT_API_BASE_URL="$BASE"
export ATT_CLIENT_ID=demo-client
export ATT_CLIENT_SECRET=demo-secret
export ATT_INBOX_ROUTES='{"demo": "@ops"}'
export ATT_POLL_INTERVAL=${ATT_POLL_INTERVAL:-5}
export ERRBOT_BACKEND=Text
export ERRBOT_ADMINS=@ops
export ERRBOT_DATA_DIR="$DEMO_DIR/data"
# errbot runs pip on the plugin's requirements at start-up (already installed: a no-op);
# keep it from burying the lines below.
export PIP_QUIET=1 PIP_DISABLE_PIP_VERSION_CHECK=1

cat <<TXT
Carrier sandbox: $BASE (log: $DEMO_DIR/sandbox.log)
Try:  !sms send +12125551234 db-1 is down      then  !sms status <messageId>
Inject an inbound SMS (from another terminal); the poller posts it within ${ATT_POLL_INTERVAL}s:
  curl -s -X POST $BASE/sandbox/inbound -H 'Content-Type: application/json' \\
       -d '{"registrationId": "demo", "senderAddress": "tel:+12125559876", "message": "On it"}'
Quit with Ctrl-D.
TXT
"$VENV/bin/errbot" -c "$PWD/config_template.py"
