#!/usr/bin/env bash
# Where Menshen's CPU per A1 call goes (issue 9's ablation), by attributing
# perf samples rather than by build switches: the demo node pinned to one
# CPU serves the same signed A1 call as bench/run.sh's menshen-a1 target
# (HMAC-SM3, fresh nonce per request, 64 keep-alive connections, loadgen and
# upstream on the other CPUs); `perf record --call-graph dwarf` samples the
# node for ABLATE_SECONDS, and bench/attribute.py files every sample under
# a component (authentication, the audit writer, the index, alerts, ...) or
# the stack, in CPU microseconds per request. With ABLATE_BARE=1 the bare
# stack proxy (`menshen-loadgen bare-proxy`: the same hyper + rustls, no
# checks, no audit) is profiled the same way, for the stack's own share.
#
# The figures are perf's: sampling adds a few per cent, and the request rate
# is lower than bench/run.sh's while perf runs. Compare components within one
# run; quote bench/run.sh for throughput.
#
# Env (optional): ABLATE_SECONDS (10), ABLATE_FREQ (997 Hz),
# ABLATE_CONNECTIONS (64), ABLATE_BARE (0), CARGO_TARGET_DIR (honoured).
# Needs `perf` (Debian: linux-perf) allowed to profile (perf_event_paranoid
# <= 1, or root). Binds 127.0.0.1 only; every run is time-limited.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${ABLATE_SECONDS:-10}
FREQ=${ABLATE_FREQ:-997}
CONNS=${ABLATE_CONNECTIONS:-64}
BARE=${ABLATE_BARE:-0}

command -v perf >/dev/null || { echo "error: perf not found (Debian: apt-get install linux-perf)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 2; }
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || { echo "error: needs 2 CPUs or more (the node on one, the load on the others)" >&2; exit 2; }
PROXY_CPU=$((NCPU - 1))
CLIENT_CPUS="0-$((NCPU - 2))"

cargo build --release -q -p menshen -p menshen-loadgen
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
B=$TARGET_DIR/release
W=$(mktemp -d /tmp/menshen-ablate.XXXXXX)
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT

wait_file() { # file seconds
  local i=0
  until [ -s "$1" ]; do
    sleep 0.1; i=$((i + 1))
    [ "$i" -lt $(($2 * 10)) ] || { echo "error: $1 did not appear within $2 s" >&2; exit 1; }
  done
}

# Profile pid $1 under the load of "${LOAD[@]}" and attribute it as $2.
profile() {
  local pid=$1 label=$2
  taskset -c "$CLIENT_CPUS" "$B/menshen-loadgen" load "${LOAD[@]}" --connections "$CONNS" \
    --duration $((SECS + 4)) --warmup 2 --cpu-pid "proxy=$pid" > "$W/$label.json" &
  local lp=$!
  sleep 3
  taskset -c "$CLIENT_CPUS" perf record -q --call-graph dwarf,32768 -F "$FREQ" -p "$pid" \
    -o "$W/$label.data" -- sleep "$SECS" 2> "$W/$label.perf.log" \
    || { cat "$W/$label.perf.log" >&2; exit 1; }
  wait "$lp"
  perf script -i "$W/$label.data" -F comm,ip,sym --no-inline 2>/dev/null > "$W/$label.txt"
  local rps
  rps=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rps"])' "$W/$label.json")
  [ "${rps%.*}" -gt 0 ] || { echo "error: no request answered: $(head -c 600 "$W/$label.json")" >&2; exit 1; }
  python3 "$ROOT/bench/attribute.py" "$W/$label.txt" "$FREQ" "$SECS" "$rps" "$label"
}

taskset -c "$CLIENT_CPUS" "$B/menshen-loadgen" upstream --port 0 > "$W/up.addr" 2> "$W/up.log" &
PIDS+=($!)
wait_file "$W/up.addr" 10
UP=$(head -1 "$W/up.addr")

MENSHEN_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c "$PROXY_CPU" "$B/menshen" demo --dir "$W/demo" \
  --gateway-port 0 --admin-port 0 > "$W/demo.log" 2>&1 &
MPID=$!
PIDS+=($MPID)
wait_file "$W/demo/demo.json" 60
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$W/demo/demo.json" "$1"; }
GW=$(field "d['gateway_url']")
CA=$(field "d['ca_cert']")
APP=$(field "d['apps'][0]['app_id']")
SECRET=$(field "d['apps'][0]['secret_file']")
export MENSHEN_ADMIN_URL MENSHEN_ADMIN_TOKEN_FILE
MENSHEN_ADMIN_URL=$(field "d['admin_url']")
MENSHEN_ADMIN_TOKEN_FILE=$(field "d['admin_token_file']")
"$B/menshen" api create --api-id bench-products --method GET --path /v1/bench/products \
  --upstream "http://$UP" --level A1 --category 3 > /dev/null
"$B/menshen" grant add "$APP" bench-products > /dev/null
for _ in $(seq 50); do
  "$B/menshen" call --app-id "$APP" --secret-file "$SECRET" --ca "$CA" GET "$GW/v1/bench/products" \
    > /dev/null 2>&1 && break
  sleep 0.2
done

echo "method: perf record --call-graph dwarf -F $FREQ for ${SECS}s of the node pinned to CPU $PROXY_CPU (1 tokio worker),"
echo "        $CONNS connections from menshen-loadgen on CPUs $CLIENT_CPUS, each request signed fresh (HMAC-SM3);"
echo "        samples attributed by bench/attribute.py (outermost matching frame; the audit writer's threads apart)"
LOAD=(--target menshen-a1 --url "$GW/v1/bench/products" --ca "$CA" --sign-app-id "$APP" --sign-secret-file "$SECRET")
profile "$MPID" menshen-a1

if [ "$BARE" = 1 ]; then
  taskset -c "$PROXY_CPU" env TOKIO_WORKER_THREADS=1 "$B/menshen-loadgen" bare-proxy --upstream "http://$UP" \
    --cert "$W/demo/tls/server.pem" --key "$W/demo/tls/server.key" > "$W/bare.addr" 2> "$W/bare.log" &
  BPID=$!
  PIDS+=($BPID)
  wait_file "$W/bare.addr" 10
  LOAD=(--target bare --url "https://$(head -1 "$W/bare.addr")/v1/bench/products" --ca "$CA")
  profile "$BPID" bare
fi
