#!/usr/bin/env bash
# LocalStack's open-source core for the integration tests (issue 14).
#
#   scripts/localstack.sh install          create the cached venv (.cache/localstack/), once
#   scripts/localstack.sh start RUN_DIR    start an emulator on a free loopback port, wait until
#                                          healthy; RUN_DIR receives pid, endpoint, log, state
#   scripts/localstack.sh stop RUN_DIR     SIGTERM it, SIGKILL after 20 s, remove its state
#
# If AWS_ENDPOINT_URL answers /_localstack/health, `start` uses that emulator and starts nothing
# (RUN_DIR/pid is then absent). Either way RUN_DIR/endpoint holds the URL to use.
# LocalStack needs Python 3.13 here (on 3.11/3.12 every S3/SQS call returns HTTP 500).
set -euo pipefail

VERSION=4.14.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONSTRAINTS="$ROOT/scripts/localstack/constraints.txt"
VENV="$ROOT/.cache/localstack/venv-$VERSION"
PYTHON="${LOCALSTACK_PYTHON:-$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python}"

say() { echo "localstack: $*" >&2; }

healthy() { curl -fsS --max-time 2 "$1/_localstack/health" >/dev/null 2>&1; }

install() {
  # The marker holds what was installed; a changed version or constraints file reinstalls.
  # One install at a time (two test runs may start together); the loser finds it done.
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$VENV.lock"
  flock 9
  local want
  want="localstack-core[runtime]==$VERSION service-identity $(grep -v '^#' "$CONSTRAINTS" | tr '\n' ' ')"
  if [[ -f "$VENV/.installed" && "$(cat "$VENV/.installed")" == "$want" ]]; then return 0; fi
  [[ -x "$PYTHON" ]] || { say "Python 3.13 not found at $PYTHON (set LOCALSTACK_PYTHON)"; exit 1; }
  say "installing localstack-core $VERSION into $VENV (first run only)"
  local started=$SECONDS
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  if ! "$VENV/bin/pip" install -c "$CONSTRAINTS" "localstack-core[runtime]==$VERSION" service-identity \
    >"$VENV.pip.log" 2>&1; then
    tail -n 30 "$VENV.pip.log" >&2
    say "pip install failed (full log: $VENV.pip.log)"
    exit 1
  fi
  echo "$want" >"$VENV/.installed"
  say "installed in $((SECONDS - started)) s"
}

start() {
  local run="$1"
  mkdir -p "$run"
  if [[ -n "${AWS_ENDPOINT_URL:-}" ]] && healthy "$AWS_ENDPOINT_URL"; then
    say "using the emulator already at AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    echo "$AWS_ENDPOINT_URL" >"$run/endpoint"
    return 0
  fi
  install
  local port
  port="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  local endpoint="http://127.0.0.1:$port"
  mkdir -p "$run/state" "$run/state/tmp"
  # SQS_CLOUDWATCH_METRICS_REPORT_INTERVAL: queue-depth metrics every 5 s (default 60) for the alarm test.
  # TMPDIR: inside a container LocalStack ignores FILESYSTEM_ROOT and keeps its state under
  # $TMPDIR/localstack, CloudWatch's metrics database included; with the default /tmp every emulator
  # on the machine shares it, and one stopping deletes it under the others, whose alarms then
  # never leave OK ("unable to open database file"). Each run gets its own.
  TMPDIR="$run/state/tmp" GATEWAY_LISTEN="127.0.0.1:$port" LOCALSTACK_HOST="127.0.0.1:$port" DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 \
    DISABLE_EVENTS=1 SQS_ENDPOINT_STRATEGY=path SQS_CLOUDWATCH_METRICS_REPORT_INTERVAL=5 \
    FILESYSTEM_ROOT="$run/state" \
    nohup "$VENV/bin/python" -m localstack.runtime.main </dev/null >"$run/localstack.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$run/pid"
  for _ in $(seq 1 120); do
    if healthy "$endpoint"; then
      echo "$endpoint" >"$run/endpoint"
      say "started at $endpoint (pid $pid, log $run/localstack.log)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  say "did not become healthy at $endpoint; last lines of $run/localstack.log:"
  tail -n 20 "$run/localstack.log" >&2 || true
  stop "$run"
  exit 1
}

stop() {
  local run="$1"
  [[ -f "$run/pid" ]] || return 0 # not ours (or never started)
  local pid
  pid="$(cat "$run/pid")"
  kill -CONT "$pid" 2>/dev/null || true # in case a test left it paused
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid still running 20 s after SIGTERM; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$run/state" "$run/pid"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?usage: localstack.sh start RUN_DIR}" ;;
  stop) stop "${2:?usage: localstack.sh stop RUN_DIR}" ;;
  *)
    echo "usage: scripts/localstack.sh install | start RUN_DIR | stop RUN_DIR" >&2
    exit 2
    ;;
esac
