#!/usr/bin/env bash
# Menshen benchmark: one run, same machine, same load tool, same TLS settings.
#   (a) the upstream directly (plain HTTP)
#   (b) nginx as a TLS reverse proxy in front of it
#   (c) Menshen, signed A1 calls (HMAC-SM3, fresh nonce per request)
#   (d) Menshen, signed A2 calls (SM2 request verify + SM2 response signature,
#       durable audit record before the answer)
# plus audit-log throughput and the client's signing cost.
# Everything binds 127.0.0.1; every load run is time-limited.
# Env: BENCH_DURATION (s, default 8), BENCH_CONNECTIONS (default 32), BENCH_ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${BENCH_DURATION:-8}
CONNS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-3}

if ! command -v nginx >/dev/null 2>&1; then
  echo "==> installing nginx-light"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
echo "==> building (release)"
cargo build --release -q -p menshen -p menshen-loadgen
BIN=target/release/menshen
LG=target/release/menshen-loadgen

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Upstream.
$LG upstream --port 0 > "$WORK/upstream.addr" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/upstream.addr" ] && break; sleep 0.05; done
UP=$(head -1 "$WORK/upstream.addr")

# Menshen demo node (release build), for its keys, apps and certificates.
MENSHEN_LOG=warn $BIN demo --dir "$WORK/demo" --gateway-port 0 --admin-port 0 > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 600); do [ -f "$WORK/demo/demo.json" ] && break; sleep 0.05; done
J="$WORK/demo/demo.json"
jq_() { python3 -c "import json,sys;d=json.load(open('$J'));print(eval(sys.argv[1]))" "$1"; }
GW=$(jq_ "d['gateway_url']")
export MENSHEN_ADMIN_URL=$(jq_ "d['admin_url']") MENSHEN_ADMIN_TOKEN_FILE=$(jq_ "d['admin_token_file']")
CA=$(jq_ "d['ca_cert']")
A1_APP=$(jq_ "d['apps'][0]['app_id']"); A1_SECRET=$(jq_ "d['apps'][0]['secret_file']")
A2_APP=$(jq_ "d['apps'][1]['app_id']"); A2_KEY=$(jq_ "d['apps'][1]['private_key']")
$BIN api create --api-id bench-a1 --method GET --path /v1/bench/products --upstream "http://$UP" --level A1 --category 3 >/dev/null
$BIN api create --api-id bench-a2 --method GET --path /v1/bench/accounts/{id} --upstream "http://$UP" --level A2 --category 1 >/dev/null
$BIN grant add "$A1_APP" bench-a1 >/dev/null
$BIN grant add "$A2_APP" bench-a2 >/dev/null

# nginx: same certificate and key (ECDSA P-256), TLS 1.2/1.3, keep-alive upstream.
mkdir -p "$WORK/nginx/logs"
NGPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$WORK/nginx/nginx.conf" <<NG
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server $UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NGPORT ssl;
    ssl_certificate $WORK/demo/tls/server.pem;
    ssl_certificate_key $WORK/demo/tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NG
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"

run() { # target url [signing args...]
  local target=$1 url=$2; shift 2
  $LG load --target "$target" --url "$url" --ca "$CA" --connections "$CONNS" --duration "$DUR" --warmup 2 "$@"
}
# Wait until both Menshen routes answer.
for _ in $(seq 100); do
  $BIN call --app-id "$A1_APP" --secret-file "$A1_SECRET" --ca "$CA" GET "$GW/v1/bench/products" >/dev/null 2>&1 && break; sleep 0.1
done

echo "==> method: $ROUNDS rounds x 4 targets, ${DUR}s each after 2s warm-up, $CONNS keep-alive connections,"
echo "    closed loop; one loadgen process (tokio, $(nproc) threads) on the same $(nproc)-core machine;"
echo "    nginx: 2 workers; Menshen: tokio multi-thread runtime (2 threads); upstream: 1 hyper process."
RES="$WORK/results.jsonl"
for r in $(seq "$ROUNDS"); do
  run direct "http://$UP/v1/bench/products" >> "$RES"
  run nginx "https://127.0.0.1:$NGPORT/v1/bench/products" >> "$RES"
  run menshen-a1 "$GW/v1/bench/products" --app-id "$A1_APP" --secret-file "$A1_SECRET" >> "$RES"
  run menshen-a2 "$GW/v1/bench/accounts/6222020200112233445" --app-id "$A2_APP" --key "$A2_KEY" >> "$RES"
  echo "    round $r done"
done
$LG audit >> "$RES"
$LG sign >> "$RES"
$LG sign --key "$A2_KEY" >> "$RES"

python3 - "$RES" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["target"], []).append(r)
print()
print(f"{'target':<12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'non-2xx':>8}   method")
med = {}
for t in ["direct", "nginx", "menshen-a1", "menshen-a2"]:
    rs = by.get(t, [])
    if not rs: continue
    m = {k: st.median([r[k] for r in rs]) for k in ["rps", "p50_ms", "p99_ms"]}
    med[t] = m
    print(f"{t:<12}{m['rps']:>10.0f}{m['p50_ms']:>9.2f}{m['p99_ms']:>9.2f}{sum(r['errors'] for r in rs):>8}{sum(r['non_2xx'] for r in rs):>8}   {rs[0]['method']} (median of {len(rs)})")
def ratio(a, b):
    return med[a]["rps"] / med[b]["rps"] if a in med and b in med and med[b]["rps"] else float("nan")
print()
print(f"menshen-a1 / nginx  = {ratio('menshen-a1','nginx'):.2f}   (target >= 0.80)")
print(f"nginx / direct      = {ratio('nginx','direct'):.2f}")
print(f"menshen-a1 / direct = {ratio('menshen-a1','direct'):.2f}")
print(f"menshen-a2 / a1     = {ratio('menshen-a2','menshen-a1'):.2f}")
for r in by.get("audit", []):
    print(f"audit: {r['records_per_s']:.0f} records/s ({r['records']} records, {r['writers']} writers, {r['method']}); "
          f"durable record latency p50 {r['durable_p50_ms']:.2f} ms, p99 {r['durable_p99_ms']:.2f} ms")
for r in by.get("client-signing", []):
    print(f"client signing cost ({r['alg']}): {r['signatures_per_s']:.0f} signatures/s on one core")
PY
