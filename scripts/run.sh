#!/usr/bin/env bash
# `make run`: initialise the embedded SQLite database under ./var, then start
# the agent in a sandbox network namespace (pbxfw-sandbox: the host's own
# firewall is never touched) and the web page on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
export PBXFW_DB="${PBXFW_DB:-$PWD/var/pbxfw.db}"
SANDBOX="${PBXFW_SANDBOX:-pbxfw-sandbox}"
HOST="${PBXFW_HOST:-127.0.0.1}"
PORT="${PBXFW_PORT:-8080}"
pbxfw=.venv/bin/pbxfw
mkdir -p var

$pbxfw init
# Demo log files inside ./var, so the agent has something to follow.
$pbxfw settings set \
  log_asterisk_security="$PWD/var/log/asterisk/security_log" \
  log_asterisk_messages="$PWD/var/log/asterisk/messages" \
  asterisk_config_dir="" >/dev/null
mkdir -p var/log/asterisk
touch var/log/asterisk/security_log var/log/asterisk/messages

# The first administrator of the web page: a password generated once.
if [ -z "$($pbxfw user list)" ]; then
  password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
  printf '%s\n' "$password" | $pbxfw user add admin --password-stdin >/dev/null
  printf 'admin\n%s\n' "$password" > var/first-login.txt
  chmod 600 var/first-login.txt
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" -eq 0 ] && command -v nft >/dev/null; then
  ip netns list | grep -qw "$SANDBOX" || ip netns add "$SANDBOX"
  ip -n "$SANDBOX" link set lo up
  $pbxfw apply --netns "$SANDBOX" >/dev/null
  $pbxfw agent --netns "$SANDBOX" >var/agent.log 2>&1 &
  pids+=($!)
  echo "agent: applying rules in network namespace $SANDBOX (log: var/agent.log)"
  echo "  look at them:  ip netns exec $SANDBOX nft list table inet pbxfw"
else
  echo "agent: not started (needs root and nftables); the web page and the CLI work without it"
fi

echo
echo "pbxfw web page: http://$HOST:$PORT/"
if [ -f var/first-login.txt ]; then
  echo "  log in as $(sed -n 1p var/first-login.txt) with password $(sed -n 2p var/first-login.txt)"
  echo "  (kept in var/first-login.txt; change it with: .venv/bin/pbxfw user add admin --password-stdin)"
fi
echo "  CLI:  PBXFW_DB=$PBXFW_DB .venv/bin/pbxfw network list"
echo "Stop with Ctrl-C."
echo
$pbxfw serve --host "$HOST" --port "$PORT" --netns "$SANDBOX"
