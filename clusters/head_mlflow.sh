#!/usr/bin/env bash
# The head's MLflow tracking server, one per head, on 127.0.0.1:5000 (reach it through an SSH tunnel).
#   head_mlflow.sh start [--auth-db URI] --backend-store-uri URI --artifacts-destination DIR   (every `ray up`)
#   head_mlflow.sh stop                                                        (`make cluster-down`, before `ray down`)
# With ~/.ray_xt/mlflow_credentials (user:password; `make cluster-up` makes it on your machine and the cluster files
# copy it to every node) the server is MLflow's basic-auth app: that user is its admin, its users and permissions
# live in the --auth-db database (on the shared storage, like the runs, so a new head keeps them).
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
  local auth_db="sqlite:///$state/auth.db" credentials="$HOME/.ray_xt/mlflow_credentials" app=()
  if [ "${1:-}" = "--auth-db" ]; then auth_db="$2"; shift 2; fi
  if [ -s "$credentials" ]; then
    local login user password
    login="$(head -n 1 "$credentials")"; user="${login%%:*}"; password="${login#*:}"
    if [ -z "$user" ] || [ "$user" = "$login" ] || [ -z "$password" ]; then
      echo "$credentials must hold one line user:password" >&2
      return 2
    fi
    [ -s "$state/secret_key" ] || (umask 077 && "$venv/bin/python" -c 'import secrets; print(secrets.token_hex(32))' > "$state/secret_key")
    (umask 077 && printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = %s\nadmin_username = %s\nadmin_password = %s\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n' \
      "$auth_db" "$user" "$password" > "$state/basic_auth.ini")
    export MLFLOW_AUTH_CONFIG_PATH="$state/basic_auth.ini" MLFLOW_FLASK_SERVER_SECRET_KEY="$(cat "$state/secret_key")"
    app=(--app-name basic-auth)
  fi
  # its own session, so `stop` ends the server with the web workers it forks
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$venv/bin/mlflow" server "${app[@]}" --host 127.0.0.1 --port 5000 "$@" \
    > "$state/server.log" 2>&1 < /dev/null &
  # a study submitted right after `ray up` checks the server before it starts: wait until it answers
  for _ in $(seq 120); do
    if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=2)" 2>/dev/null; then
      echo "MLflow server on 127.0.0.1:5000${app:+ (basic auth: $credentials)} (log: $state/server.log)"
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
