#!/usr/bin/env bash
# Menshen throughput benchmark: ONE run, same machine, same load tool, same
# upstream, same TLS certificate and protocol versions, five targets:
#   direct      the standalone upstream (menshen-loadgen upstream), plain HTTP
#   nginx       Debian nginx as a plain TLS reverse proxy in front of it
#   menshen-a1  Menshen on a signed A1 route to it (HMAC-SM3, every request
#               signed fresh by the client with a unique nonce)
#   bare        `menshen-loadgen bare-proxy`: a TLS reverse proxy on Menshen's
#               own stack (hyper-util server + rustls + hyper-util pooled
#               client) with no checks and no audit: what the stack alone
#               costs, so the gap to nginx splits into stack and Menshen's work
#   openresty-hmac  the peer in BENCH_PEER_DIR: Debian nginx + lua-nginx-module
#               verifying the same RFC 9421 HMAC-SM3 signature as menshen-a1
#               (nonce cache, JSON access-log line), pinned like nginx
#   cluster     Menshen's node 1 of `menshen demo --cluster --nodes 2`
#               (PostgreSQL store + Redis hot state, started locally by the
#               demo), the same A1 call as menshen-a1, pinned like it; also
#               the Redis round trips per call (INFO commandstats around a
#               separate short run)
#   menshen-a3 / menshen-a3-envelope  (BENCH_A3=1 or named in BENCH_TARGETS)
#               the same node, the demo's SM2 app POSTing an A3 transfer
#               (SM2-signed request, SM2-signed response, durable record) to
#               the same upstream; -envelope: the same call with two request
#               fields sealed for the bank (SM4-GCM under a fresh session key
#               SM2-wrapped by the loadgen per request) and one response
#               field sealed by Menshen for the app's encryption key (issue
#               13: envelopes add <= 15% proxy CPU per call); both paced at
#               BENCH_A3_RATE so the proxy does the same work per second
# Targets run interleaved for BENCH_ROUNDS rounds; the table shows the median
# of the rounds per target. Also measures the loadgen's own signing cost.
# Everything binds 127.0.0.1; every load run is time-limited.
#
# Env (all optional):
#   BENCH_DURATION     measured seconds per target per round   (default 10)
#   BENCH_WARMUP       warm-up seconds before each measurement (default 2)
#   BENCH_CONNECTIONS  keep-alive connections                  (default 64)
#   BENCH_ROUNDS       rounds                                  (default 3)
#   BENCH_PIN          1 = pin the proxy under test to the last CPU and the
#                      loadgen + upstream to the others (default 1 if >= 2 CPUs)
#   BENCH_A2           1 = also the A2 figures (issues #3, #4, #11): a signed A2
#                      target (SM2 both ways, durable audit record) at full
#                      load, the SM2 crypto bound measured on the proxy's CPU,
#                      and durable vs asynchronous audit latency at a paced
#                      rate (a second node started with --unsafe-async-audit)
#   BENCH_A2_RATE      requests/s of the paced A2 latency runs   (default 1000)
#   BENCH_A2_PACED_CONNECTIONS  connections for them             (default 16)
#   BENCH_A2_PACED_PIN 1 = pin the two paced nodes to the proxy's CPU as well;
#                      default 0: they may use every CPU (see bench/README.md)
#   BENCH_A3           1 = also the A3 pair menshen-a3, menshen-a3-envelope
#   BENCH_A3_RATE      requests/s of both A3 targets (paced, the same for
#                      both; default 1000; 0 = closed loop at full load)
#   BENCH_A3_CONNECTIONS  connections for them                   (default 16)
#   BENCH_AUDIT        1 = also run `menshen-loadgen audit` (audit writer alone)
#   BENCH_TARGETS      comma-separated targets to run (default: all of direct,
#                      nginx, bare, openresty-hmac, menshen-a1, cluster; the
#                      A2 targets follow BENCH_A2, the A3 ones BENCH_A3),
#                      e.g. menshen-a1,cluster or menshen-a3,menshen-a3-envelope
#   BENCH_PEER_DIR     the openresty-hmac peer (README.md, start.sh, stop.sh)
#                      (default ../shared/peers/openresty-hmac from the project
#                      root); the target is skipped with a message if absent
#   CARGO_BUILD_ARGS   extra arguments for `cargo build`
#   CARGO_TARGET_DIR   honoured (binaries are looked up where cargo put them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DUR=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
NCPU=$(nproc)
PIN=${BENCH_PIN:-$([ "$NCPU" -ge 2 ] && echo 1 || echo 0)}
A2=${BENCH_A2:-0}
A2_RATE=${BENCH_A2_RATE:-1000}
A2_PACED_CONNS=${BENCH_A2_PACED_CONNECTIONS:-16}
A2_PACED_PIN=${BENCH_A2_PACED_PIN:-0}
A3=${BENCH_A3:-0}
A3_RATE=${BENCH_A3_RATE:-1000}
A3_CONNS=${BENCH_A3_CONNECTIONS:-16}
PEER_DIR=${BENCH_PEER_DIR:-../shared/peers/openresty-hmac}
TARGETS=${BENCH_TARGETS:-}
want() { [ -z "$TARGETS" ] || [[ ",$TARGETS," == *",$1,"* ]]; }
# The A3 pair runs with BENCH_A3=1 or when BENCH_TARGETS names it.
want_a3() { [ "$A3" = 1 ] || [[ ",$TARGETS," == *",$1,"* ]]; }
for t in ${TARGETS//,/ }; do
  case $t in direct|nginx|bare|openresty-hmac|menshen-a1|cluster|menshen-a3|menshen-a3-envelope) ;; *) echo "error: BENCH_TARGETS: unknown target $t" >&2; exit 2 ;; esac
done
if ! want openresty-hmac; then
  PEER=0
elif [ -f "$PEER_DIR/start.sh" ] && [ -f "$PEER_DIR/stop.sh" ]; then
  PEER_DIR=$(cd "$PEER_DIR" && pwd)
  PEER=1
else
  PEER=0
fi

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ install
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    say "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }
NGINX=$(find_nginx)
if [ -z "$NGINX" ] && want nginx; then
  apt_install nginx-light || apt_install nginx
  NGINX=$(find_nginx)
  [ -n "$NGINX" ] || die "nginx could not be installed"
fi
# The openresty-hmac peer: the same Debian nginx plus lua-nginx-module (its
# README: nginx 1.22 + libnginx-mod-http-lua, which pulls in the NDK module,
# LuaJIT and lua-resty-core); its start.sh polls a unix socket with curl.
if [ "$PEER" = 1 ]; then
  [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || apt_install nginx libnginx-mod-http-lua
  [ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || die "libnginx-mod-http-lua could not be installed"
  command -v curl >/dev/null || apt_install curl
  command -v pgrep >/dev/null || apt_install procps
fi
command -v python3 >/dev/null || apt_install python3
command -v taskset >/dev/null || apt_install util-linux
if want cluster; then
  # `menshen demo --cluster` installs PostgreSQL and Redis itself if missing;
  # redis-cli reads the Redis command counters.
  command -v redis-cli >/dev/null || apt_install redis-tools
fi
command -v cargo >/dev/null || die "cargo (Rust toolchain) is required"

say "building (release): menshen, menshen-loadgen"
# shellcheck disable=SC2086
cargo build --release -q -p menshen -p menshen-loadgen ${CARGO_BUILD_ARGS:-}
# Where cargo put them: CARGO_TARGET_DIR, build.target-dir or ./target.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])') \
  || TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
BIN=$TARGET_DIR/release/menshen
LG=$TARGET_DIR/release/menshen-loadgen
[ -x "$BIN" ] && [ -x "$LG" ] || die "no release binaries in $TARGET_DIR/release"

# ---------------------------------------------------------------- placement
# Two cores: the proxy under test (nginx's single worker, or the whole Menshen
# process) gets the last CPU to itself; the loadgen and the upstream share the
# rest. So nginx and Menshen each get exactly one core, the same one.
if [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ]; then
  PROXY_CPUS=$((NCPU - 1))
  CLIENT_CPUS=$([ "$NCPU" -eq 2 ] && echo 0 || echo "0-$((NCPU - 2))")
  ON_PROXY=(taskset -c "$PROXY_CPUS")
  ON_CLIENT=(taskset -c "$CLIENT_CPUS")
  PLACEMENT="pinned: proxy under test on CPU $PROXY_CPUS alone; loadgen + upstream on CPU $CLIENT_CPUS"
else
  PIN=0
  PROXY_CPUS=""
  ON_PROXY=()
  ON_CLIENT=()
  PLACEMENT="not pinned: everything shares all $NCPU CPUs"
fi
# One event-loop thread each: nginx `worker_processes 1`, Menshen one tokio
# worker thread (its audit writer/index threads are extra, on the same CPU when
# pinned); so neither proxy gets more cores than the other.
MENSHEN_THREADS=${BENCH_MENSHEN_THREADS:-1}
CLIENT_THREADS=$([ "$PIN" = 1 ] && echo $((NCPU - 1)) || echo "$NCPU")

# ------------------------------------------------------------------ cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/menshen-bench.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  set +e
  # The peer's own stop.sh signals only the nginx that runs $WORK/peer/nginx.conf.
  [ "$PEER" = 1 ] && [ -d "$WORK/peer" ] && "$PEER_DIR/stop.sh" "$WORK/peer"
  if [ -s "$WORK/nginx/nginx.pid" ]; then kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null; fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  # nginx is a daemon (not our child): give its master a moment to exit.
  for _ in $(seq 50); do
    [ -s "$WORK/nginx/nginx.pid" ] && kill -0 "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || break
    sleep 0.1
  done
  [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_file() { # file seconds pid
  local deadline=$((SECONDS + $2))
  until [ -s "$1" ]; do
    kill -0 "$3" 2>/dev/null || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# ----------------------------------------------------------------- upstream
"${ON_CLIENT[@]}" "$LG" upstream --port 0 > "$WORK/upstream.addr" 2> "$WORK/upstream.log" &
UPID=$!
PIDS+=("$UPID")
wait_file "$WORK/upstream.addr" 10 "$UPID" || die "upstream did not start: $(cat "$WORK/upstream.log")"
UP=$(head -1 "$WORK/upstream.addr")
say "upstream on http://$UP (pid $UPID)"

# ------------------------------------------------------------------ Menshen
MENSHEN_LOG=warn TOKIO_WORKER_THREADS=$MENSHEN_THREADS "${ON_PROXY[@]}" \
  "$BIN" demo --dir "$WORK/demo" --gateway-port 0 --admin-port 0 --token-profile zjrcb > "$WORK/demo.log" 2>&1 &
MPID=$!
PIDS+=("$MPID")
J="$WORK/demo/demo.json"
wait_file "$J" 90 "$MPID" || die "Menshen demo did not write demo.json: $(tail -20 "$WORK/demo.log")"
jq_() { python3 -c 'import json,sys;d=json.load(open(sys.argv[1]));print(eval(sys.argv[2]))' "$J" "$1"; }
GW=$(jq_ "d['gateway_url']")
CA=$(jq_ "d['ca_cert']")
APP=$(jq_ "d['apps'][0]['app_id']")
SECRET=$(jq_ "d['apps'][0]['secret_file']")
MENSHEN_ADMIN_URL=$(jq_ "d['admin_url']")
MENSHEN_ADMIN_TOKEN_FILE=$(jq_ "d['admin_token_file']")
export MENSHEN_ADMIN_URL MENSHEN_ADMIN_TOKEN_FILE
[ "$(jq_ "[a['example_path'] for a in d['apis'] if a['api_id']=='products'][0]")" = /v1/products ] \
  || die "demo.json: no products API at /v1/products"
say "Menshen gateway $GW (pid $MPID)"

# An A1 API routed to the standalone upstream, granted to the demo's A1 app.
"$BIN" api create --api-id bench-products --method GET --path /v1/bench/products \
  --upstream "http://$UP" --level A1 --category 3 > "$WORK/api.log" 2>&1 \
  || die "api create failed: $(cat "$WORK/api.log")"
"$BIN" grant add "$APP" bench-products >> "$WORK/api.log" 2>&1 || die "grant failed: $(cat "$WORK/api.log")"
if [ "$A2" = 1 ]; then
  A2_APP=$(jq_ "d['apps'][1]['app_id']")
  A2_KEY=$(jq_ "d['apps'][1]['private_key']")
  # Category 3 (wealth management): an A2 call without a customer's consent,
  # the signature-and-record cost alone. (A2 APIs of the accounts, payment and
  # credit categories always need a customer's token: issue 11.)
  "$BIN" api create --api-id bench-accounts --method GET --path '/v1/bench/accounts/{id}' \
    --upstream "http://$UP" --level A2 --category 3 >> "$WORK/api.log" 2>&1 || die "A2 api create failed"
  "$BIN" grant add "$A2_APP" bench-accounts >> "$WORK/api.log" 2>&1 || die "A2 grant failed"
  # Issue 11: the same A2 call carrying a customer's token, on an API that
  # needs consent (token + consent + ownership check, the account in the
  # path). The node runs the zjrcb token profile (a token reusable for 2 h),
  # so one authorization serves the whole run: menshen authorize waits on the
  # app's loopback redirect URI while curl plays the customer's browser (bob:
  # password only) through the login and consent pages.
  curl -sf -X POST "$MENSHEN_ADMIN_URL/v1/apis" -H "Authorization: Bearer $(cat "$MENSHEN_ADMIN_TOKEN_FILE")" \
    -H 'content-type: application/json' \
    -d "{\"api_id\":\"bench-consent\",\"method\":\"GET\",\"path\":\"/v1/bench/accounts/{account_id}/balance\",\"upstream\":\"http://$UP\",\"level\":\"A2\",\"category\":1,\"subcategory\":1,\"controls\":{\"consent\":{\"required\":true,\"account_param\":\"account_id\"}}}" \
    >> "$WORK/api.log" 2>&1 || die "consent api create failed: $(tail -3 "$WORK/api.log")"
  "$BIN" grant add "$A2_APP" bench-consent >> "$WORK/api.log" 2>&1 || die "consent grant failed"
  BOB_ACCT=$(jq_ "d['customers'][1]['accounts'][0]")
  "$BIN" authorize --app-id "$A2_APP" --key "$A2_KEY" --ca "$CA" --redirect-uri "$(jq_ "d['apps'][1]['redirect_uri']")" \
    --scope bench-consent --wait-secs 60 --token-out "$WORK/token" "$GW" > /dev/null 2> "$WORK/authorize.log" &
  AUTHPID=$!
  for _ in $(seq 100); do grep -q 'oauth2/authorize?' "$WORK/authorize.log" 2>/dev/null && break; sleep 0.1; done
  AUTH_URL=$(grep -o 'https://[^ ]*oauth2/authorize?[^ ]*' "$WORK/authorize.log") || die "menshen authorize printed no URL: $(cat "$WORK/authorize.log")"
  C=(curl -sf --cacert "$CA" -c "$WORK/jar" -b "$WORK/jar")
  "${C[@]}" "$AUTH_URL" -o "$WORK/login.html" || die "authorize page failed"
  CSRF=$(grep -o 'name="csrf" value="[^"]*"' "$WORK/login.html" | sed 's/.*value="//;s/"$//')
  "${C[@]}" -L "$GW/oauth2/login" --data-urlencode "csrf=$CSRF" --data-urlencode "username=$(jq_ "d['customers'][1]['username']")" \
    --data-urlencode "password=$(jq_ "d['customers'][1]['password']")" --data-urlencode otp= -o "$WORK/consent.html" || die "login failed"
  CSRF=$(grep -o 'name="csrf" value="[^"]*"' "$WORK/consent.html" | sed 's/.*value="//;s/"$//')
  "${C[@]}" -L "$GW/oauth2/consent" --data-urlencode "csrf=$CSRF" --data-urlencode "account=$BOB_ACCT" \
    --data-urlencode approve=1 -o /dev/null || die "consent failed"
  wait "$AUTHPID" || die "menshen authorize failed: $(cat "$WORK/authorize.log")"
  say "customer bob authorized the A2 app for bench-consent (token profile zjrcb)"
  # Two more nodes for the latency comparison, fresh and identical but for
  # --unsafe-async-audit (A2 answered before its record is on disk) and used
  # for nothing else, so neither carries the first node's backlog (segment
  # compression, index) from the full-load runs. Only one node is under load
  # at any time. Unless BENCH_A2_PACED_PIN=1 they are not confined to one
  # CPU: the durable path hands each record to the audit writer thread, and
  # on a single busy core that thread waits for the tokio worker's scheduler
  # slice before its fdatasync can start (see bench/README.md).
  start_a2_node() { # name [demo args...] -> sets NODE_{PID,GW,APP,KEY,CA}
    local name=$1
    shift
    local on=()
    [ "$A2_PACED_PIN" = 1 ] && on=("${ON_PROXY[@]}")
    MENSHEN_LOG=warn TOKIO_WORKER_THREADS=$MENSHEN_THREADS "${on[@]}" \
      "$BIN" demo --dir "$WORK/demo-$name" --gateway-port 0 --admin-port 0 "$@" \
      > "$WORK/demo-$name.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    local j="$WORK/demo-$name/demo.json"
    wait_file "$j" 90 "$NODE_PID" || die "Menshen node $name did not start: $(tail -20 "$WORK/demo-$name.log")"
    jqn() { python3 -c 'import json,sys;d=json.load(open(sys.argv[1]));print(eval(sys.argv[2]))' "$j" "$1"; }
    NODE_GW=$(jqn "d['gateway_url']")
    NODE_APP=$(jqn "d['apps'][1]['app_id']")
    NODE_KEY=$(jqn "d['apps'][1]['private_key']")
    NODE_CA=$(jqn "d['ca_cert']")
    local admin=(env MENSHEN_ADMIN_URL="$(jqn "d['admin_url']")" MENSHEN_ADMIN_TOKEN_FILE="$(jqn "d['admin_token_file']")")
    "${admin[@]}" "$BIN" api create --api-id bench-accounts --method GET --path '/v1/bench/accounts/{id}' \
      --upstream "http://$UP" --level A2 --category 3 >> "$WORK/api.log" 2>&1 || die "A2 api create (node $name) failed"
    "${admin[@]}" "$BIN" grant add "$NODE_APP" bench-accounts >> "$WORK/api.log" 2>&1 || die "A2 grant (node $name) failed"
    local deadline=$((SECONDS + 20))
    until "$BIN" call --app-id "$NODE_APP" --key "$NODE_KEY" --ca "$NODE_CA" GET "$NODE_GW/v1/bench/accounts/6222020200112233445" \
        > "$WORK/call-$name.log" 2>&1; do
      [ "$SECONDS" -lt "$deadline" ] || die "signed A2 call to node $name never answered 2xx: $(head -20 "$WORK/call-$name.log")"
      sleep 0.2
    done
    say "Menshen node $name: $NODE_GW (pid $NODE_PID)"
  }
  start_a2_node durable
  MPID_D=$NODE_PID GW_D=$NODE_GW A2_APP_D=$NODE_APP A2_KEY_D=$NODE_KEY CA_D=$NODE_CA
  start_a2_node async --unsafe-async-audit
  MPID2=$NODE_PID GW2=$NODE_GW A2_APP2=$NODE_APP A2_KEY2=$NODE_KEY CA2=$NODE_CA
fi
if want_a3 menshen-a3 || want_a3 menshen-a3-envelope; then
  # Issue 13: the same A3 transfer twice, category 3 (no customer consent:
  # the signature, envelope and record cost alone), called by the demo's
  # SM2 app, which also has an encryption key registered. bench-xfer-env
  # carries the payee's account and name encrypted in the request and the
  # payee's account encrypted in the answer (protocol §12).
  A3_APP=$(jq_ "d['apps'][1]['app_id']")
  A3_KEY=$(jq_ "d['apps'][1]['private_key']")
  for spec in "bench-xfer-plain plain {}" \
      'bench-xfer-env envelope {"envelope":{"request":["/payee/account","/payee/name"],"response":["/payee/account"]}}'; do
    read -r id sub controls <<< "$spec"
    curl -sf -X POST "$MENSHEN_ADMIN_URL/v1/apis" -H "Authorization: Bearer $(cat "$MENSHEN_ADMIN_TOKEN_FILE")" \
      -H 'content-type: application/json' \
      -d "{\"api_id\":\"$id\",\"method\":\"POST\",\"path\":\"/v1/bench/transfers/$sub\",\"upstream\":\"http://$UP\",\"level\":\"A3\",\"category\":3,\"subcategory\":1,\"controls\":$controls}" \
      >> "$WORK/api.log" 2>&1 || die "A3 api create ($id) failed: $(tail -3 "$WORK/api.log")"
    "$BIN" grant add "$A3_APP" "$id" >> "$WORK/api.log" 2>&1 || die "A3 grant ($id) failed"
  done
  printf '%s' '{"from_account":"6222020200112233445","payee":{"account":"6217000010001234567","name":"王芳"},"amount":"100.00","currency":"CNY","remark":"invoice 2026-118"}' > "$WORK/transfer.json"
  curl -sf --cacert "$CA" "$GW/.well-known/menshen/keys" -o "$WORK/keys.json" || die "no key set at $GW/.well-known/menshen/keys"
  A3_ENC=(--encrypt /payee/account --encrypt /payee/name)
  deadline=$((SECONDS + 20))
  until "$BIN" call --app-id "$A3_APP" --key "$A3_KEY" --ca "$CA" "${A3_ENC[@]}" --data "$(cat "$WORK/transfer.json")" \
      POST "$GW/v1/bench/transfers/envelope" > "$WORK/call-a3.log" 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "enveloped A3 call never answered 2xx: $(head -20 "$WORK/call-a3.log")"
    sleep 0.2
  done
  grep -q '"payee"' "$WORK/call-a3.log" && ! grep -q '6217000010001234567' "$WORK/call-a3.log" \
    || die "the enveloped A3 answer does not carry the payee's account encrypted: $(head -5 "$WORK/call-a3.log")"
  say "enveloped A3 call answers (payee account encrypted for the app)"
fi
# The gateway picks up configuration within 1 s: poll with a signed request.
deadline=$((SECONDS + 20))
until "$BIN" call --app-id "$APP" --secret-file "$SECRET" --ca "$CA" GET "$GW/v1/bench/products" \
    > "$WORK/call.log" 2>&1; do
  [ "$SECONDS" -lt "$deadline" ] || die "signed call to $GW/v1/bench/products never answered 2xx: $(head -20 "$WORK/call.log")"
  sleep 0.2
done
say "signed A1 call answers: $(head -1 "$WORK/call.log")"

# -------------------------------------------------------------------- nginx
if want nginx; then
mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
NGPORT=$(free_port)
cat > "$WORK/nginx/nginx.conf" <<NG
# One worker: Menshen gets one core too (see bench/README.md).
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  # Client keep-alive as long as the run (Menshen does not cap requests per
  # connection either; nginx's default would reconnect every 1000 requests).
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  upstream bench_up {
    server $UP;
    keepalive 128;                  # HTTP/1.1 keep-alive pool to the upstream
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$NGPORT ssl;
    ssl_certificate     $WORK/demo/tls/server.pem;   # Menshen's own certificate
    ssl_certificate_key $WORK/demo/tls/server.key;   # (ECDSA P-256)
    ssl_protocols TLSv1.2 TLSv1.3;                   # as Menshen
    location / {
      proxy_pass http://bench_up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NG
"${ON_PROXY[@]}" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" \
  || die "nginx did not start: $(cat "$WORK/nginx/logs/error.log" 2>/dev/null)"
wait_file "$WORK/nginx/nginx.pid" 10 "$$" || die "nginx wrote no pid file"
NGMASTER=$(cat "$WORK/nginx/nginx.pid")
NGWORKER=""
for _ in $(seq 50); do
  NGWORKER=$(pgrep -P "$NGMASTER" | head -1 || true)
  [ -n "$NGWORKER" ] && break
  sleep 0.1
done
[ -n "$NGWORKER" ] || die "no nginx worker"
NGINX_URL="https://127.0.0.1:$NGPORT/v1/bench/products"
python3 - "$NGINX_URL" "$CA" <<'PY' || die "nginx does not answer over TLS with the demo certificate"
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
assert urllib.request.urlopen(sys.argv[1], context=ctx, timeout=5).status == 200
PY
say "nginx $("$NGINX" -v 2>&1 | sed 's/.*: //') on https://127.0.0.1:$NGPORT (master $NGMASTER, worker $NGWORKER)"
fi

# ---------------------------------------------------------- bare stack proxy
if want bare; then
"${ON_PROXY[@]}" env TOKIO_WORKER_THREADS="$MENSHEN_THREADS" "$LG" bare-proxy --upstream "http://$UP" \
  --cert "$WORK/demo/tls/server.pem" --key "$WORK/demo/tls/server.key" > "$WORK/bare.addr" 2> "$WORK/bare.log" &
BPID=$!
PIDS+=("$BPID")
wait_file "$WORK/bare.addr" 10 "$BPID" || die "bare-proxy did not start: $(cat "$WORK/bare.log")"
BARE_URL="https://$(head -1 "$WORK/bare.addr")/v1/bench/products"
say "bare stack proxy on $BARE_URL (pid $BPID)"
fi

# ------------------------------------------------------------------ cluster
# Node 1 of a two-node cluster demo: PostgreSQL store, Redis hot state (both
# started by the demo under its --dir, on free loopback ports). Only node 1's
# threads are pinned to the proxy's CPU (taskset -a on its pid once it runs):
# node 2 (idle), PostgreSQL and Redis stay on the other CPUs, as they would
# be on other machines. Same A1 API to the same upstream as menshen-a1.
if want cluster; then
  MENSHEN_LOG=warn TOKIO_WORKER_THREADS=$MENSHEN_THREADS \
    "$BIN" demo --cluster --nodes 2 --dir "$WORK/demo-cluster" --gateway-port 0 --admin-port 0 \
    --token-profile zjrcb > "$WORK/demo-cluster.log" 2>&1 &
  CPID=$!
  PIDS+=("$CPID")
  CJ="$WORK/demo-cluster/demo.json"
  wait_file "$CJ" 180 "$CPID" || die "cluster demo did not write demo.json: $(tail -20 "$WORK/demo-cluster.log")"
  if [ "$PIN" = 1 ]; then
    taskset -a -p -c "$PROXY_CPUS" "$CPID" > /dev/null || die "cannot pin the cluster node (pid $CPID)"
  fi
  jqc() { python3 -c 'import json,sys;d=json.load(open(sys.argv[1]));print(eval(sys.argv[2]))' "$CJ" "$1"; }
  CGW=$(jqc "d['gateway_url']")
  CCA=$(jqc "d['ca_cert']")
  CAPP=$(jqc "d['apps'][0]['app_id']")
  CSECRET=$(jqc "d['apps'][0]['secret_file']")
  REDIS_URL=$(jqc "d['redis_url']")
  CADMIN=(env MENSHEN_ADMIN_URL="$(jqc "d['admin_url']")" MENSHEN_ADMIN_TOKEN_FILE="$(jqc "d['admin_token_file']")")
  "${CADMIN[@]}" "$BIN" api create --api-id bench-products --method GET --path /v1/bench/products \
    --upstream "http://$UP" --level A1 --category 3 >> "$WORK/api.log" 2>&1 \
    || die "cluster api create failed: $(tail -5 "$WORK/api.log")"
  "${CADMIN[@]}" "$BIN" grant add "$CAPP" bench-products >> "$WORK/api.log" 2>&1 || die "cluster grant failed"
  deadline=$((SECONDS + 20))
  until "$BIN" call --app-id "$CAPP" --secret-file "$CSECRET" --ca "$CCA" GET "$CGW/v1/bench/products" \
      > "$WORK/call-cluster.log" 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "signed call to the cluster node never answered 2xx: $(head -20 "$WORK/call-cluster.log")"
    sleep 0.2
  done
  say "cluster node 1 $CGW (pid $CPID; $(jqc "len(d['nodes'])") nodes, PostgreSQL + Redis): signed A1 call answers $(head -1 "$WORK/call-cluster.log")"
fi

# ----------------------------------------------------------- openresty-hmac
# Started by the peer's own start.sh on the proxy's CPU (taskset, as nginx
# above), with Menshen's certificate, the demo A1 app's App_ID and secret file
# and the same upstream; every request is signed by the loadgen as for
# menshen-a1.
if [ "$PEER" = 1 ]; then
  UPHOST=${UP%:*} UPPORT=${UP##*:}
  [ "$UPHOST" = 127.0.0.1 ] || die "the peer proxies to 127.0.0.1 only; upstream is $UP"
  PEERPORT=$(free_port)
  PEER_OUT=$(PEER_CPUS=$PROXY_CPUS "$PEER_DIR/start.sh" "$WORK/peer" "$UPPORT" "$PEERPORT" \
    "$WORK/demo/tls/server.pem" "$WORK/demo/tls/server.key" "$APP" "$SECRET" 2> "$WORK/peer-start.log") \
    || die "openresty-hmac did not start: $(tail -5 "$WORK/peer-start.log")"
  PEERMASTER=$(cat "$WORK/peer/nginx.pid")
  PEERWORKER=$(cat "$WORK/peer/worker.pid")
  PEER_URL="https://127.0.0.1:$PEERPORT/v1/bench/products"
  "$BIN" call --app-id "$APP" --secret-file "$SECRET" --ca "$CA" GET "$PEER_URL" > "$WORK/peer-call.log" 2>&1 \
    || die "openresty-hmac does not answer a signed call with 2xx: $(head -20 "$WORK/peer-call.log")"
  say "openresty-hmac on https://127.0.0.1:$PEERPORT (master $PEERMASTER, worker $PEERWORKER; $PEER_DIR): signed call answers $(head -1 "$WORK/peer-call.log")"
elif want openresty-hmac; then
  say "skipping openresty-hmac: no start.sh/stop.sh in $PEER_DIR (set BENCH_PEER_DIR to the peer's directory)"
fi

# --------------------------------------------------------------------- load
RES="$WORK/results.jsonl"
run() { # target url [extra loadgen args...]
  local target=$1 url=$2
  shift 2
  timeout -k 5 $((WARMUP + DUR + 60)) "${ON_CLIENT[@]}" "$LG" load --target "$target" --url "$url" \
    --connections "${RUN_CONNS:-$CONNS}" --duration "$DUR" --warmup "$WARMUP" "$@" >> "$RES" \
    || die "loadgen failed on $target"
  python3 - "$RES" >&2 <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).readlines()[-1])
print(f"    {r['target']:<14} {r['rps']:>8} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  errors {r['errors']}  non-2xx {r['non_2xx']}")
PY
}
say "load: $ROUNDS rounds x (${TARGETS:-direct, nginx, bare$([ "$PEER" = 1 ] && echo ", openresty-hmac"), menshen-a1, cluster}$([ "$A2" = 1 ] && echo ", menshen-a2")$([ "$A3" = 1 ] && echo ", menshen-a3, menshen-a3-envelope")), ${WARMUP}s warm-up + ${DUR}s each, $CONNS connections"
run_a1() {
  want menshen-a1 || return 0
  run menshen-a1 "$GW/v1/bench/products" --ca "$CA" --sign-app-id "$APP" --sign-secret-file "$SECRET" \
    --cpu-pid "proxy=$MPID" --cpu-pid "upstream=$UPID"
}
run_cluster() {
  want cluster || return 0
  run cluster "$CGW/v1/bench/products" --ca "$CCA" --sign-app-id "$CAPP" --sign-secret-file "$CSECRET" \
    --cpu-pid "proxy=$CPID" --cpu-pid "upstream=$UPID"
}
for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS"
  if want direct; then run direct "http://$UP/v1/bench/products" --cpu-pid "upstream=$UPID"; fi
  if want nginx; then run nginx "$NGINX_URL" --ca "$CA" --cpu-pid "proxy=$NGWORKER" --cpu-pid "upstream=$UPID"; fi
  if want bare; then run bare "$BARE_URL" --ca "$CA" --cpu-pid "proxy=$BPID" --cpu-pid "upstream=$UPID"; fi
  if [ "$PEER" = 1 ]; then
    run openresty-hmac "$PEER_URL" --ca "$CA" --sign-app-id "$APP" --sign-secret-file "$SECRET" \
      --cpu-pid "proxy=$PEERWORKER" --cpu-pid "upstream=$UPID"
  fi
  if [ "$A2" = 1 ]; then
    # The paced pair first: direct and nginx leave no Menshen background work
    # (index catch-up, segment compression) behind, the full-load runs do.
    A2_PACE=(--rate "$A2_RATE")
    # The pair alternates its order between rounds.
    paced_durable() {
      RUN_CONNS=$A2_PACED_CONNS run a2-durable-paced "$GW_D/v1/bench/accounts/6222020200112233445" --ca "$CA_D" --sign-app-id "$A2_APP_D" \
        --sign-key "$A2_KEY_D" --cpu-pid "proxy=$MPID_D" --cpu-pid "upstream=$UPID" "${A2_PACE[@]}"
    }
    paced_async() {
      RUN_CONNS=$A2_PACED_CONNS run a2-async-paced "$GW2/v1/bench/accounts/6222020200112233445" --ca "$CA2" --sign-app-id "$A2_APP2" \
        --sign-key "$A2_KEY2" --cpu-pid "proxy=$MPID2" --cpu-pid "upstream=$UPID" "${A2_PACE[@]}"
    }
    if [ $((r % 2)) = 1 ]; then paced_durable; paced_async; else paced_async; paced_durable; fi
  fi
  # The embedded and the cluster node side by side, their order alternating.
  if [ $((r % 2)) = 1 ]; then run_a1; run_cluster; else run_cluster; run_a1; fi
  if want_a3 menshen-a3 || want_a3 menshen-a3-envelope; then
    A3_PACE=()
    [ "$A3_RATE" != 0 ] && A3_PACE=(--rate "$A3_RATE")
    a3_plain() {
      want_a3 menshen-a3 || return 0
      RUN_CONNS=$A3_CONNS run menshen-a3 "$GW/v1/bench/transfers/plain" --ca "$CA" --sign-app-id "$A3_APP" \
        --sign-key "$A3_KEY" --body-file "$WORK/transfer.json" --cpu-pid "proxy=$MPID" --cpu-pid "upstream=$UPID" "${A3_PACE[@]}"
    }
    a3_env() {
      want_a3 menshen-a3-envelope || return 0
      RUN_CONNS=$A3_CONNS run menshen-a3-envelope "$GW/v1/bench/transfers/envelope" --ca "$CA" --sign-app-id "$A3_APP" \
        --sign-key "$A3_KEY" --body-file "$WORK/transfer.json" --bank-keys "$WORK/keys.json" "${A3_ENC[@]}" \
        --cpu-pid "proxy=$MPID" --cpu-pid "upstream=$UPID" "${A3_PACE[@]}"
    }
    if [ $((r % 2)) = 1 ]; then a3_plain; a3_env; else a3_env; a3_plain; fi
  fi
  if [ "$A2" = 1 ]; then
    run menshen-a2 "$GW/v1/bench/accounts/6222020200112233445" --ca "$CA" --sign-app-id "$A2_APP" \
      --sign-key "$A2_KEY" --cpu-pid "proxy=$MPID" --cpu-pid "upstream=$UPID"
    run menshen-a2-token "$GW/v1/bench/accounts/$BOB_ACCT/balance" --ca "$CA" --sign-app-id "$A2_APP" \
      --sign-key "$A2_KEY" --bearer-file "$WORK/token" --cpu-pid "proxy=$MPID" --cpu-pid "upstream=$UPID"
  fi
done
say "client signing cost (one thread$([ "$PIN" = 1 ] && echo ", CPU $CLIENT_CPUS"))"
SIGN_CPU=()
[ "$PIN" = 1 ] && SIGN_CPU=(taskset -c "${CLIENT_CPUS%%-*}")
"${SIGN_CPU[@]}" "$LG" sign --seconds 3 >> "$RES"
if [ "$A2" = 1 ]; then
  "${SIGN_CPU[@]}" "$LG" sign --seconds 3 --key "$A2_KEY" >> "$RES"
  say "SM2 crypto bound (one thread, on the proxy's CPU)"
  "${ON_PROXY[@]}" "$LG" sm2-bound --seconds 3 >> "$RES"
fi
if want cluster; then
  # Redis round trips per cluster call, during a separate run with no
  # warm-up, over the requests answered: the commands clients sent (MONITOR
  # lines not run by a script: INFO commandstats also counts the commands a
  # script runs inside one EVALSHA), minus what the two idle nodes send by
  # themselves in as long (commandstats, measured just before). Also every
  # command Redis executed per call (commandstats). redis-cli's own
  # INFO/AUTH/HELLO are left out.
  say "Redis round trips per cluster call"
  # (redis-cli 7.0's -u sends the URL's empty user name with AUTH: host,
  # port and password are passed apart.)
  read -r RHOST RPORT RPASS < <(python3 -c 'import sys,urllib.parse as u;x=u.urlsplit(sys.argv[1]);print(x.hostname,x.port,u.unquote(x.password or ""))' "$REDIS_URL")
  rcli() { REDISCLI_AUTH=$RPASS redis-cli -h "$RHOST" -p "$RPORT" "$@"; }
  rstats() {
    rcli INFO commandstats > "$1" 2> "$WORK/redis-cli.err" \
      && grep -q '^cmdstat_' "$1" || die "redis-cli INFO commandstats failed: $(cat "$WORK/redis-cli.err")"
  }
  rstats "$WORK/redis.idle0"
  sleep "$DUR"
  rstats "$WORK/redis.idle1"
  rstats "$WORK/redis.load0"
  rcli MONITOR > "$WORK/redis.monitor" 2>> "$WORK/redis-cli.err" &
  MONPID=$!
  PIDS+=("$MONPID")
  wait_file "$WORK/redis.monitor" 10 "$MONPID" || die "redis-cli MONITOR did not start: $(cat "$WORK/redis-cli.err")"
  timeout -k 5 $((DUR + 60)) "${ON_CLIENT[@]}" "$LG" load --target cluster-redis-run --url "$CGW/v1/bench/products" \
    --connections "$CONNS" --duration "$DUR" --warmup 0 --ca "$CCA" --sign-app-id "$CAPP" \
    --sign-secret-file "$CSECRET" > "$WORK/redis-run.json" || die "loadgen failed on the Redis count run"
  rstats "$WORK/redis.load1"
  kill "$MONPID" 2> /dev/null || true
  wait "$MONPID" 2> /dev/null || true
  python3 - "$WORK" "$CONNS" >> "$RES" <<'PY'
import json, sys
w, conns = sys.argv[1], int(sys.argv[2])
def calls(f):
    out = {}
    for line in open(f"{w}/{f}"):
        if line.startswith("cmdstat_"):
            name, rest = line.strip()[8:].split(":", 1)
            kv = dict(x.split("=", 1) for x in rest.split(","))
            out[name] = int(kv["calls"])
    return out
def delta(a, b):
    a, b = calls(a), calls(b)
    return {k: b[k] - a.get(k, 0) for k in b if k not in ("info", "auth", "hello", "monitor") and b[k] - a.get(k, 0)}
idle, load = delta("redis.idle0", "redis.idle1"), delta("redis.load0", "redis.load1")
r = json.loads(open(f"{w}/redis-run.json").read().strip().splitlines()[-1])
n = r["requests"] + r["errors"]
net = {k: v - idle.get(k, 0) for k, v in load.items()}
sent = {}
for line in open(f"{w}/redis.monitor", errors="replace"):
    if "] \"" not in line or " lua]" in line:
        continue
    cmd = line.split('] "', 1)[1].split('"', 1)[0].lower()
    if cmd not in ("info", "auth", "hello"):
        sent[cmd] = sent.get(cmd, 0) + 1
sent_net = sum(sent.values()) - sum(idle.values())
print(json.dumps({"target": "redis-round-trips", "requests": n, "in_flight_at_end_max": conns,
                  "sent": sent, "executed": load, "idle_commands": idle,
                  "per_call": round(sent_net / n, 3) if n else None,
                  "sent_per_call_by_command": {k: round(v / n, 3) for k, v in sorted(sent.items()) if n},
                  "executed_per_call": round(sum(net.values()) / n, 3) if n else None,
                  "executed_per_call_by_command": {k: round(v / n, 3) for k, v in sorted(net.items()) if n}}))
PY
fi
if [ "${BENCH_AUDIT:-0}" = 1 ]; then
  say "audit writer alone (menshen-loadgen audit)"
  "$LG" audit >> "$RES"
fi

# -------------------------------------------------------------------- report
NGINX_VERSION=$({ [ -n "$NGINX" ] && "$NGINX" -v 2>&1 | sed 's/.*: //'; } || echo "not installed")
if [ "$PEER" = 1 ]; then
  sleep 1.2   # the peer's access log is flushed every second
  BENCH_PEER_INFO="libnginx-mod-http-lua $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null || echo '?'), LuaJIT $(dpkg-query -W -f='${Version}' libluajit2-5.1-2 2>/dev/null || echo '?'), OpenSSL $(openssl version 2>/dev/null | cut -d' ' -f2 || echo '?'); peer $PEER_DIR; after the load: $(wc -l < "$WORK/peer/logs/access.log") access-log lines, $(grep -c '\[\(error\|crit\|alert\|emerg\)\]' "$WORK/peer/logs/error.log" || true) error-log lines at error level or above"
else
  BENCH_PEER_INFO=""
fi
export BENCH_PEER_INFO
python3 - "$RES" "$NCPU" "$PLACEMENT" "$MENSHEN_THREADS" "$CLIENT_THREADS" "$NGINX_VERSION" "$(date -u +%Y-%m-%dT%H:%MZ)" "$ROUNDS" <<'PY'
import json, os, sys, statistics as st
res, ncpu, placement, mthreads, cthreads, ngv, date, rounds = sys.argv[1:9]
rows = [json.loads(l) for l in open(res) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["target"], []).append(r)
order = [t for t in ["direct", "nginx", "bare", "openresty-hmac", "menshen-a1", "cluster", "menshen-a2", "menshen-a2-token", "a2-durable-paced", "a2-async-paced", "menshen-a3", "menshen-a3-envelope"] if t in by]
# The target column is 12 wide, wider only when a longer name is in the table.
W = max([12] + [len(t) + 1 for t in order])
med = {}
def cpu(rs, who, k):
    v = [r["cpu"][who][k] for r in rs if who in r.get("cpu", {})]
    return st.median(v) if v else None
for t in order:
    rs = by[t]
    med[t] = {k: st.median([r[k] for r in rs]) for k in ["rps", "p50_ms", "p99_ms"]}
    med[t]["errors"] = sum(r["errors"] for r in rs)
    med[t]["non_2xx"] = sum(r["non_2xx"] for r in rs)
    med[t]["runs"] = len(rs)
    for who in ["proxy", "upstream", "loadgen"]:
        med[t][who + "_pct"] = cpu(rs, who, "cpu_pct")
        med[t][who + "_us"] = cpu(rs, who, "cpu_us_per_req")
f = lambda v, fmt: "-" if v is None else format(v, fmt)
print()
print(f"Results {date} (median of {rounds} rounds; each round runs every target once, interleaved)")
print(f"{'target':<{W}}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'non-2xx':>9}   {'proxy CPU':>10}{'proxy us/req':>13}{'loadgen CPU':>12}{'upstream CPU':>13}")
for t in order:
    m = med[t]
    print(f"{t:<{W}}{m['rps']:>9.0f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{m['errors']:>8}{m['non_2xx']:>9}   "
          f"{f(m['proxy_pct'], '.0f') + '%' if m['proxy_pct'] is not None else '-':>10}{f(m['proxy_us'], '.0f'):>13}"
          f"{f(m['loadgen_pct'], '.0f') + '%':>12}{f(m['upstream_pct'], '.0f') + '%':>13}")
print("(CPU % = share of one core during the measured window, from /proc/PID/stat; us/req = CPU time per answered request)")
print()
print("Per round: req/s (proxy CPU us/req)")
for t in order:
    print(f"  {t:<{W}}" + "  ".join(f"{r['rps']:>7}" + (f" ({r['cpu']['proxy']['cpu_us_per_req']:.0f})" if "proxy" in r.get("cpu", {}) else "") for r in by[t]))
def ratio(a, b):
    return med[a]["rps"] / med[b]["rps"] if a in med and b in med and med[b]["rps"] else float("nan")
print()
if "menshen-a1" in med and "nginx" in med:
    r_mn = ratio("menshen-a1", "nginx")
    print(f"menshen-a1 / nginx  = {r_mn:.2f}   target >= 0.80: {'MET' if r_mn >= 0.8 else 'NOT MET'}")
if "nginx" in med and "direct" in med:
    print(f"nginx / direct      = {ratio('nginx', 'direct'):.2f}")
if "bare" in med:
    print(f"bare / nginx        = {ratio('bare', 'nginx'):.2f}   (Menshen's stack with no checks and no audit: the floor of hyper + rustls here)")
    print(f"menshen-a1 / bare   = {ratio('menshen-a1', 'bare'):.2f}   (what Menshen's own work per call costs on top of its stack)")
if "menshen-a1" in med and "direct" in med:
    print(f"menshen-a1 / direct = {ratio('menshen-a1', 'direct'):.2f}")
if "cluster" in med and "menshen-a1" in med:
    uc, ue = med["cluster"]["proxy_us"], med["menshen-a1"]["proxy_us"]
    print(f"cluster / menshen-a1 = {ratio('cluster', 'menshen-a1'):.2f} req/s ({med['cluster']['rps']:.0f} / {med['menshen-a1']['rps']:.0f})"
          + (f"; proxy CPU per call {uc:.0f} / {ue:.0f} us = {uc / ue:.2f}x   target <= 1.25x: {'MET' if uc / ue <= 1.25 else 'NOT MET'}" if uc and ue else ""))
for r in by.get("redis-round-trips", []):
    sent = ", ".join(f"{k} {v}" for k, v in r["sent_per_call_by_command"].items())
    ex = ", ".join(f"{k} {v}" for k, v in r["executed_per_call_by_command"].items())
    print(f"Redis round trips per cluster call: {r['per_call']} (commands sent per call: {sent}; {r['requests']} calls answered in the count run, "
          f"up to {r['in_flight_at_end_max']} more in flight at its end; the idle nodes' own commands subtracted: {r['idle_commands']})")
    print(f"  commands Redis executed per call, scripts' inner calls included: {r['executed_per_call']} ({ex})")
if "menshen-a2" in med:
    print(f"menshen-a2 / a1     = {ratio('menshen-a2', 'menshen-a1'):.2f}")
if "menshen-a2-token" in med and "menshen-a2" in med:
    ut, u2 = med["menshen-a2-token"]["proxy_us"], med["menshen-a2"]["proxy_us"]
    if ut and u2:
        add = ut / u2 - 1
        print(f"token + consent + ownership check on an A2 call: proxy CPU {ut:.0f} / {u2:.0f} us/req = {add * 100:+.1f}%   "
              f"target <= +10%: {'MET' if add <= 0.10 else 'NOT MET'}")
if "menshen-a3" in med and "menshen-a3-envelope" in med:
    up, ue = med["menshen-a3"]["proxy_us"], med["menshen-a3-envelope"]["proxy_us"]
    if up and ue:
        add = ue / up - 1
        print(f"field envelopes on an A3 call (2 request fields, 1 response field): proxy CPU {ue:.0f} / {up:.0f} us/req = {add * 100:+.1f}% "
              f"({ue - up:+.0f} us)   target <= +15%: {'MET' if add <= 0.15 else 'NOT MET'}")
        print("  (per round, proxy CPU us/req envelope / plain: " + ", ".join(
            f"{x['cpu']['proxy']['cpu_us_per_req']:.0f} / {y['cpu']['proxy']['cpu_us_per_req']:.0f}"
            for x, y in zip(by["menshen-a3-envelope"], by["menshen-a3"]) if "proxy" in x.get("cpu", {}) and "proxy" in y.get("cpu", {})) + ")")
for b in by.get("sm2-bound", []):
    cores = 1 if placement.startswith("pinned") else int(ncpu)
    bound = b["bound_per_core"] * cores
    a2 = med.get("menshen-a2", {}).get("rps")
    print(f"SM2 crypto bound: sm2 crate sign {b['crate_sign_us']} us + verify {b['crate_verify_us']} us = "
          f"{b['bound_per_core']:.0f} A2 calls/s per core x {cores} core(s) = {bound:.0f}/s "
          f"(Menshen's own SM2 verify, per-key table: {b['menshen_verify_us']} us)")
    if a2:
        r = a2 / bound
        print(f"menshen-a2 / crypto bound = {r:.2f}   target >= 0.80: {'MET' if r >= 0.8 else 'NOT MET'}")
if "a2-durable-paced" in med and "a2-async-paced" in med:
    d, a = med["a2-durable-paced"], med["a2-async-paced"]
    add99 = d["p99_ms"] - a["p99_ms"]
    print(f"durable audit adds to an A2 call at {d['rps']:.0f} req/s: p50 {d['p50_ms'] - a['p50_ms']:+.2f} ms, "
          f"p99 {add99:+.2f} ms   target p99 <= +2 ms: {'MET' if add99 <= 2.0 else 'NOT MET'}")
    print("  (per round, p99 durable / async ms: " + ", ".join(
        f"{x['p99_ms']:.2f} / {y['p99_ms']:.2f}" for x, y in zip(by["a2-durable-paced"], by["a2-async-paced"])) + ")")
for r in by.get("audit", []):
    print(f"audit writer alone: {r['records_per_s']:,.0f} records/s ({r['records']} records, {r['writers']} writers); "
          f"durable record p50 {r['durable_p50_ms']:.2f} ms, p99 {r['durable_p99_ms']:.2f} ms")
for r in by.get("client-signing", []):
    print(f"client signing cost ({r['alg']}): {r['signatures_per_s']:,} signatures/s on one core = {r['us_per_signature']} us each")
# The three targets, each from the medians of this run.
def verdict(ok):
    return "MET" if ok else "NOT MET"
def us(t):
    return med.get(t, {}).get("proxy_us")
print()
print("Targets (medians of this run):")
if "openresty-hmac" in med and "menshen-a1" in med:
    r = ratio("menshen-a1", "openresty-hmac")
    print(f"  menshen-a1 / openresty-hmac = {r:.2f} (req/s: {med['menshen-a1']['rps']:.0f} / {med['openresty-hmac']['rps']:.0f})   "
          f"target >= 1.2: {verdict(r >= 1.2)}"
          + (f"   (proxy CPU us/req: {us('menshen-a1'):.0f} / {us('openresty-hmac'):.0f})" if us("menshen-a1") and us("openresty-hmac") else ""))
else:
    print("  menshen-a1 / openresty-hmac = n/a (openresty-hmac not measured: peer directory absent)")
if us("menshen-a1") is not None and us("bare") is not None:
    own = us("menshen-a1") - us("bare")
    print(f"  menshen own work = proxy CPU us/req of menshen-a1 minus bare = {us('menshen-a1'):.1f} - {us('bare'):.1f} = {own:.1f} us   "
          f"target <= 12 us: {verdict(own <= 12)}")
else:
    print("  menshen own work = n/a (no proxy CPU figures for menshen-a1 or bare)")
if "bare" in med and "nginx" in med:
    r = ratio("bare", "nginx")
    print(f"  bare / nginx = {r:.2f} (req/s: {med['bare']['rps']:.0f} / {med['nginx']['rps']:.0f})   target >= 0.85: {verdict(r >= 0.85)}")
ex = by.get("menshen-a1", [{}])[0]
errs = [(t, r.get("first_error")) for t in order for r in by[t] if r.get("first_error")]
nons = {t: {} for t in order}
for t in order:
    for r in by[t]:
        for k, v in r.get("non_2xx_by_status", {}).items():
            nons[t][k] = nons[t].get(k, 0) + v
print()
print("Method:")
print(f"  tool: menshen-loadgen load (Rust; tokio + hyper 1.x client + rustls/aws-lc-rs), one process per run, the same for all targets;")
print(f"        closed loop, {ex.get('connections', '?')} keep-alive HTTP/1.1 connections, one hyper client connection per worker (exact count),")
print(f"        {ex.get('duration_s', '?')} s measured after warm-up, latency from an HDR histogram (2xx only, includes building + signing the request)")
print(f"  rounds: {rounds}, targets interleaved in each round; table = median of rounds; errors and non-2xx = totals over rounds")
print(f"  machine: {ncpu} CPUs (shared, noisy); placement {placement}")
print(f"  loadgen: {cthreads} tokio worker thread(s); upstream: menshen-loadgen upstream (hyper 1.x HTTP/1.1, 200-byte JSON)"
      + (", on the loadgen's CPU(s)" if placement.startswith("pinned") else ""))
print(f"  bare: menshen-loadgen bare-proxy, the same hyper-util auto server (header read timeout on), rustls/aws-lc-rs config, certificate and")
print(f"        hyper-util pooled client as Menshen, {mthreads} tokio worker thread, forwarding every request unchanged (no checks, no audit)")
print(f"  nginx: {ngv}, worker_processes 1, TLS 1.2+1.3 with Menshen's ECDSA P-256 certificate, keep-alive (HTTP/1.1) upstream pool, access_log off")
if "openresty-hmac" in by:
    print(f"  openresty-hmac: the same nginx + lua-nginx-module, started by the peer's start.sh pinned like nginx (master and its one worker),")
    print(f"        same certificate, TLS versions and upstream pool; access_by_lua verifies the RFC 9421 HMAC-SM3 signature of the demo A1 app")
    print(f"        (EVP_MAC via LuaJIT FFI), created window, nonce in ngx.shared; one JSON access-log line per request (buffer=64k flush=1s)")
    print(f"        {os.environ.get('BENCH_PEER_INFO', '')}")
print(f"  Menshen: release build, `menshen demo` node, {mthreads} tokio worker thread (TOKIO_WORKER_THREADS) + its audit writer/index threads;")
print(f"        A1 route `bench-products` -> the same upstream; every check on (IP lists, HMAC-SM3 signature, created window, nonce replay cache,")
print(f"        grant), access record appended to the SM3-chained audit log and indexed in SQLite, MENSHEN_LOG=warn")
if "cluster" in by:
    print(f"  cluster: node 1 of `menshen demo --cluster --nodes 2` (its threads pinned like menshen-a1; node 2 idle, PostgreSQL and Redis")
    print(f"        unpinned), the same A1 route and checks; nonce + flow control in one Redis script per call (EVALSHA), the catalog from")
    print(f"        PostgreSQL (snapshot), the audit index in PostgreSQL; no flow-control rule configured (the nonce is the Redis work)")
print(f"  signing: menshen-a1{', cluster' if 'cluster' in by else ''}{' and openresty-hmac' if 'openresty-hmac' in by else ''} requests are each signed by the loadgen (HMAC-SM3, created=now, fresh nonce): that client cost is part of")
print(f"        their figures (see the signing cost above); direct, nginx and bare requests are unsigned")
if "a2-durable-paced" in by:
    pr = by["a2-durable-paced"][0]
    print(f"  A2: menshen-a2 = SM2-signed requests (loadgen signs on its CPU), SM2 verify + SM2-signed response, durable audit record;")
    print(f"        a2-durable-paced / a2-async-paced: the same call at a paced {pr.get('method', '').split('at most ')[-1].split(')')[0] or '?'}, "
          f"{pr.get('connections', '?')} connections, against two fresh nodes used for nothing else, one durable and one started with --unsafe-async-audit"
          + (", both pinned like the proxy" if os.environ.get("BENCH_A2_PACED_PIN", "0") == "1" else ", both free to use every CPU (1 tokio worker thread each)"))
if "menshen-a3" in by or "menshen-a3-envelope" in by:
    pr = (by.get("menshen-a3") or by["menshen-a3-envelope"])[0]
    print(f"  A3: menshen-a3 = the demo SM2 app POSTing a transfer (SM2-signed by the loadgen, verified by Menshen, SM2-signed answer,")
    print(f"        durable record) to A3 API bench-xfer-plain; menshen-a3-envelope = the same body to bench-xfer-env: /payee/account and")
    print(f"        /payee/name sealed by the loadgen per request (fresh SM4 key wrapped with SM2 for the bank's encryption key), opened by")
    print(f"        Menshen before forwarding, /payee/account of the answer sealed by Menshen for the app's encryption key; both at "
          + (f"a paced {pr.get('method', '').split('at most ')[-1].split(')')[0]}" if "at most" in pr.get("method", "") else "full load")
          + f", {pr.get('connections', '?')} connections (the loadgen's SM2 work would otherwise make the envelope target slower for the client's sake)")
tls = {t: by[t][0].get("tls") for t in order if by[t][0].get("tls")}
for t, v in tls.items():
    print(f"  TLS negotiated with {t}: {v}")
for t in order:
    if nons[t]:
        print(f"  non-2xx statuses for {t}: {nons[t]}")
for t, e in errs[:5]:
    print(f"  first error seen on {t}: {e}")
PY
