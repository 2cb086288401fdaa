#!/usr/bin/env bash
# The head's MLflow tracking server, one per head, on 127.0.0.1:5000 (reach it through an SSH tunnel).
#   head_mlflow.sh start --backend-store-uri URI --artifacts-destination DIR   (head_start_ray_commands, every `ray up`)
#   head_mlflow.sh stop                                                        (`make cluster-down`, before `ray down`)
# `start` stops the server an earlier `ray up` started, so bringing a cluster up again never leaves two; `stop` is
# needed because `ray down` stops only Ray's own processes and, with the `local` provider, keeps the machine.
set -euo pipefail
state="$HOME/mlflow"
pidfile="$state/server.pid"
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv"
mkdir -p "$state"

stop() {
  [ -f "$pidfile" ] || return 0
  local group
  group="$(cat "$pidfile")"
  # the pid file of a server that died with its machine may name a process that is not ours any more
  if ps -o args= -p "$group" 2>/dev/null | grep -q "mlflow"; then
    kill -TERM -- "-$group" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$group" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$group" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

start() {
  stop
  # its own session, so `stop` ends the server with the web workers it forks
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$venv/bin/mlflow" server --host 127.0.0.1 --port 5000 "$@" \
    > "$state/server.log" 2>&1 < /dev/null &
  # a study submitted right after `ray up` checks the server before it starts: wait until it answers
  for _ in $(seq 120); do
    if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=2)" 2>/dev/null; then
      echo "MLflow server on 127.0.0.1:5000 (log: $state/server.log)"
      return 0
    fi
    sleep 1
  done
  echo "MLflow server did not answer on 127.0.0.1:5000 within 120 s; its log ($state/server.log) ends:" >&2
  tail -n 20 "$state/server.log" >&2
  return 1
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 start [mlflow server options] | stop" >&2; exit 2 ;;
esac
