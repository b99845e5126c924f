#!/usr/bin/env bash
# Label Studio for the human-review step, in its own venv so its ~200 pinned dependencies
# (Django 5, its own pydantic/boto3 pins) never touch Airflow's .venv. We talk to it over HTTP only.
#
#   bash scripts/labelstudio.sh install          # .labelstudio/venv from scripts/labelstudio.lock (idempotent)
#   bash scripts/labelstudio.sh start [--port N] # 127.0.0.1, SQLite in .labelstudio/data, admin + token, waits for /health
#   bash scripts/labelstudio.sh status           # prints the URL and where the credentials are; exit 1 when down
#   bash scripts/labelstudio.sh stop
#
# After `start`, `.labelstudio/env` holds LABEL_STUDIO_URL, LABEL_STUDIO_PORT, LABEL_STUDIO_PID,
# LABEL_STUDIO_TOKEN (legacy `Token` auth), LABEL_STUDIO_USERNAME and LABEL_STUDIO_PASSWORD
# (for a browser login). The file is created readable by its owner only (0600), and the script prints
# its path, never the token or the password (terminals, CI logs and screen shares keep what is printed).
# The Airflow connection is then
#   AIRFLOW_CONN_LABEL_STUDIO_DEFAULT="labelstudio://:${LABEL_STUDIO_TOKEN}@127.0.0.1:${LABEL_STUDIO_PORT}/?__extra__=%7B%22scheme%22%3A%22http%22%7D"
# or, simpler, JSON: {"conn_type": "labelstudio", "host": "http://127.0.0.1:PORT", "password": "TOKEN"}.
#
# Re-lock (pins label-studio and every transitive dependency for Python 3.11):
#   echo 'label-studio==1.23.2' | .venv/bin/uv pip compile - --python-version 3.11 -o scripts/labelstudio.lock
set -euo pipefail
cd "$(dirname "$0")/.."

LS_VERSION=1.23.2
LS_HOME=${LABEL_STUDIO_HOME:-.labelstudio}
VENV=$LS_HOME/venv
DATA=${LABEL_STUDIO_DATA_DIR:-$LS_HOME/data}
ENV_FILE=$LS_HOME/env
LOG=$LS_HOME/labelstudio.log
LOCK=scripts/labelstudio.lock
STAMP=$VENV/.installed-lock
START_TIMEOUT=${LABEL_STUDIO_START_TIMEOUT:-300}

log() { echo "labelstudio: $*" >&2; }

lock_hash() { sha256sum "$LOCK" | cut -d' ' -f1; }

installed() {
  [ -x "$VENV/bin/label-studio" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(lock_hash)" ]
}

cmd_install() {
  if installed; then
    log "label-studio $LS_VERSION already installed in $VENV (lock unchanged); skipping"
    return 0
  fi
  local t0=$SECONDS
  mkdir -p "$LS_HOME"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # uv resolves nothing here: the lock is complete, uv only downloads and installs it (much faster than pip).
  local uv=""
  if [ -x .venv/bin/uv ]; then uv=.venv/bin/uv; elif command -v uv >/dev/null 2>&1; then uv=$(command -v uv); fi
  if [ -n "$uv" ]; then
    "$uv" pip install --python "$VENV/bin/python" --quiet -r "$LOCK"
  else
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$LOCK"
  fi
  "$VENV/bin/python" -c "import label_studio, sys; assert label_studio.__version__ == '$LS_VERSION', label_studio.__version__" \
    || { log "installed label-studio is not $LS_VERSION"; exit 1; }
  lock_hash >"$STAMP"
  log "installed label-studio $LS_VERSION in $VENV in $((SECONDS - t0)) s"
}

read_env() { [ -f "$ENV_FILE" ] && . "$ENV_FILE"; }

healthy() { # $1 = port
  python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=3) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

running() {
  read_env || return 1
  [ -n "${LABEL_STUDIO_PID:-}" ] && kill -0 "$LABEL_STUDIO_PID" 2>/dev/null
}

secret() { # persistent per data dir, so restarts keep the same login and token
  local f=$DATA/.rekfeedback-$1
  if [ ! -s "$f" ]; then
    mkdir -p "$DATA"
    (umask 077; python3 -c "import secrets; print(secrets.token_hex(20))" >"$f")
  fi
  cat "$f"
}

free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

cmd_start() {
  local port=${LABEL_STUDIO_PORT:-8081}  # not 8080: that is Airflow's api-server (compose maps Label Studio to 8081 too)
  while [ $# -gt 0 ]; do
    case $1 in
      --port) port=$2; shift 2 ;;
      --port=*) port=${1#--port=}; shift ;;
      *) log "unknown option $1"; exit 2 ;;
    esac
  done
  [ "$port" = "0" ] && port=$(free_port)
  if running && healthy "$LABEL_STUDIO_PORT"; then
    log "already running (pid $LABEL_STUDIO_PID) on port $LABEL_STUDIO_PORT"
    show_env
    return 0
  fi
  installed || { log "not installed; run: bash scripts/labelstudio.sh install"; exit 1; }
  mkdir -p "$DATA"
  local token password username=admin@rekfeedback.local
  token=$(secret token)
  password=$(secret password)
  local t0=$SECONDS
  # setsid: own process group, so `stop` ends the server and its workers and nothing else.
  LABEL_STUDIO_BASE_DATA_DIR="$(cd "$DATA" && pwd)" \
  LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true \
  LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK=true \
  COLLECT_ANALYTICS=false \
  DJANGO_DB=sqlite \
  setsid "$VENV/bin/label-studio" start --no-browser --host 127.0.0.1 --port "$port" \
      --username "$username" --password "$password" --user-token "$token" \
      >>"$LOG" 2>&1 </dev/null 9>&- &
  local pid=$!
  # umask 077: the file is 0600 from its first byte (a chmod after writing leaves a window).
  rm -f "$ENV_FILE"
  (umask 077; cat >"$ENV_FILE") <<EOF
LABEL_STUDIO_PID=$pid
LABEL_STUDIO_PORT=$port
LABEL_STUDIO_URL=http://127.0.0.1:$port
LABEL_STUDIO_TOKEN=$token
LABEL_STUDIO_USERNAME=$username
LABEL_STUDIO_PASSWORD=$password
EOF
  chmod 600 "$ENV_FILE"  # an older file kept its mode: make sure
  while ! healthy "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "label-studio exited during start; last lines of $LOG:"; tail -20 "$LOG" >&2; exit 1
    fi
    if [ $((SECONDS - t0)) -ge "$START_TIMEOUT" ]; then
      log "no /health after ${START_TIMEOUT}s; see $LOG"; exit 1
    fi
    sleep 1
  done
  log "started pid $pid on http://127.0.0.1:$port in $((SECONDS - t0)) s"
  show_env
}

show_env() { # what a user needs, without the secrets: those stay in the 0600 file
  read_env
  echo "LABEL_STUDIO_URL=$LABEL_STUDIO_URL"
  echo "LABEL_STUDIO_USERNAME=$LABEL_STUDIO_USERNAME"
  echo "credentials (LABEL_STUDIO_TOKEN, LABEL_STUDIO_PASSWORD): $(cd "$(dirname "$ENV_FILE")" && pwd)/$(basename "$ENV_FILE") (mode 0600)"
}

cmd_stop() {
  if running; then
    kill -TERM -- "-$LABEL_STUDIO_PID" 2>/dev/null || kill -TERM "$LABEL_STUDIO_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$LABEL_STUDIO_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$LABEL_STUDIO_PID" 2>/dev/null || true
    log "stopped pid $LABEL_STUDIO_PID"
  else
    log "not running"
  fi
  # Keep the env file (token, password) but forget the pid, only if it is still the one we stopped.
  if [ -f "$ENV_FILE" ] && [ -n "${LABEL_STUDIO_PID:-}" ]; then
    sed -i "s/^LABEL_STUDIO_PID=$LABEL_STUDIO_PID\$/LABEL_STUDIO_PID=/" "$ENV_FILE"
  fi
}

cmd_status() {
  if running && healthy "$LABEL_STUDIO_PORT"; then
    log "running (pid $LABEL_STUDIO_PID) on $LABEL_STUDIO_URL"
    show_env
  elif installed; then
    log "installed, not running"; exit 1
  else
    log "not installed"; exit 1
  fi
}

# One start/stop at a time per .labelstudio (two test sessions may share a checkout).
lock() { mkdir -p "$LS_HOME"; exec 9>"$LS_HOME/.lock"; flock 9; }

case ${1:-} in
  install) lock; cmd_install ;;
  start) shift; lock; cmd_start "$@" ;;
  stop) lock; cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 install | start [--port N] | stop | status" >&2; exit 2 ;;
esac
