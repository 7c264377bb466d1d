#!/usr/bin/env bash
# `make sdk-suite`: runs test files of @upstash/redis's OWN test suite (github.com/upstash/redis-js,
# at a pinned commit) against edgesync-gateway in front of a fresh redis-server on 127.0.0.1 —
# a real client's expectations of the protocol, not ours. Needs the internet once (the suite's
# source, bun and the suite's one dependency are fetched into .cache/sdk-suite), so it is not
# part of `make test`; the e2e suites run the SDK's Subscriber on our side of it.
#
#   tests/gateway/sdk-suite.sh [TEST_FILE…]   (paths inside packages/redis; default: the
#                                             Subscriber tests, pkg/commands/{p,}subscribe.test.ts)
#   SDK_SUITE_SOURCE=<git URL or local clone>  where to fetch redis-js from (default: GitHub)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMMIT=777dc30585ae61e5826bb95f5a957e6dea277900  # the commit docs/upstash-rest.md cites (777dc305)
SOURCE="${SDK_SUITE_SOURCE:-https://github.com/upstash/redis-js}"
CACHE="$ROOT/.cache/sdk-suite"
GATEWAY="$ROOT/target/debug/edgesync-gateway"
TOKEN="sdk-suite-token-$RANDOM$RANDOM"
FILES=("$@")
[ ${#FILES[@]} -gt 0 ] || FILES=(pkg/commands/subscribe.test.ts pkg/commands/psubscribe.test.ts)

for tool in git npm redis-server; do
  command -v "$tool" >/dev/null || { echo "sdk-suite: $tool is missing (make tools installs redis-server)"; exit 1; }
done
[ -x "$GATEWAY" ] || { echo "sdk-suite: $GATEWAY is missing: cargo build -p edgesync-gateway"; exit 1; }

# The suite's source at the pinned commit, and bun with the suite's dependency beside it.
if [ ! -d "$CACHE/redis-js/packages/redis" ]; then
  rm -rf "$CACHE/redis-js"
  git init -q "$CACHE/redis-js"
  git -C "$CACHE/redis-js" fetch -q "$SOURCE" "$COMMIT" ||
    { echo "sdk-suite: cannot fetch $SOURCE (set SDK_SUITE_SOURCE to a local clone)"; rm -rf "$CACHE/redis-js"; exit 1; }
  git -C "$CACHE/redis-js" checkout -q "$COMMIT"
fi
SUITE="$CACHE/redis-js/packages/redis"
[ -x "$SUITE/node_modules/.bin/bun" ] ||
  (cd "$SUITE" && npm install --no-save --no-audit --no-fund --no-package-lock bun@1.4.5 uncrypto@0.1.3 >/dev/null)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
GATEWAY_PORT=$(free_port)
WORK=$(mktemp -d)
cleanup() { kill "${GATEWAY_PID:-}" "${REDIS_PID:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
GATEWAY_TOKEN="$TOKEN" "$GATEWAY" --listen "127.0.0.1:$GATEWAY_PORT" --redis-url "redis://127.0.0.1:$REDIS_PORT" \
  --acl-users provision >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
for _ in $(seq 1 100); do
  curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GATEWAY_PORT/ping" >/dev/null && break
  kill -0 "$GATEWAY_PID" 2>/dev/null || { echo "sdk-suite: the gateway exited:"; cat "$WORK/gateway.log"; exit 1; }
  sleep 0.1
done

cd "$SUITE"
UPSTASH_REDIS_REST_URL="http://127.0.0.1:$GATEWAY_PORT" UPSTASH_REDIS_REST_TOKEN="$TOKEN" \
  ./node_modules/.bin/bun test "${FILES[@]}" --timeout 20000
