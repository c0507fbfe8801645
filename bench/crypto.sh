#!/usr/bin/env bash
# Crypto micro-benchmarks: Menshen's implementations (`cargo bench`, criterion)
# beside `openssl speed` for the same operations, on the same machine, and the
# A2 crypto bound: 1 / (SM2 verify + SM2 sign) per core.
#
#   bench/crypto.sh                    # ~2 minutes after the build
#   BENCH_SECONDS=1 bench/crypto.sh    # shorter OpenSSL runs
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECONDS:-3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

TARGET=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
touch "$OUT/start"

echo "==> cargo bench -p menshen-crypto --bench crypto (criterion: 1 s warm-up, 3 s measurement, 30 samples)"
cargo bench -p menshen-crypto --bench crypto

OSSL="$(openssl version | cut -d' ' -f1-2)"
echo "==> openssl speed -elapsed -seconds $SECS ($OSSL)"
ossl() { # ossl FILE ARGS...: run `openssl speed`, keep its output, fail loudly
    local f=$1; shift
    if ! openssl speed -seconds "$SECS" -elapsed "$@" >"$OUT/$f" 2>"$OUT/$f.err"; then
        echo "openssl speed $* failed:" >&2
        cat "$OUT/$f.err" >&2
        return 1
    fi
}
ossl asym.txt sm2 ecdsap256 ed25519 rsa2048
ossl sm3.txt -bytes 1024 -evp sm3
ossl hmac.txt -bytes 1024 -hmac sm3 || echo "(this OpenSSL has no -hmac sm3)"
ossl sm4.txt -bytes 1024 -evp sm4-cbc

python3 - "$OUT" "$TARGET/criterion" "$SECS" "$OSSL" <<'PY'
import glob, json, os, re, sys

out, crit, secs, ossl = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
start = os.path.getmtime(os.path.join(out, "start"))

# Menshen: criterion's median time per iteration (ns), from this run only.
men = {}
for bj in glob.glob(os.path.join(crit, "*", "new", "benchmark.json")):
    est = os.path.join(os.path.dirname(bj), "estimates.json")
    if not os.path.exists(est) or os.path.getmtime(est) < start:
        continue
    name = json.load(open(bj))["full_id"]
    men[name] = 1e9 / json.load(open(est))["median"]["point_estimate"]

def read(n):
    p = os.path.join(out, n)
    return open(p).read() if os.path.exists(p) else ""

asym = read("asym.txt")
def pki(label, col):  # e.g. " 256 bits SM2 (CurveSM2)   0.0006s   0.0005s   1570.0   2187.0"
    m = re.search(re.escape(label) + r"\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", asym)
    return float(m.group(col)) if m else None
def sym(n):  # "sm3   125919.23k": 1000s of bytes/s over 1024-byte blocks -> ops/s
    m = re.search(r"^\S.*?\s([\d.]+)k\s*$", read(n), re.M)
    return float(m.group(1)) * 1000 / 1024 if m else None

rows = [  # (label, criterion id, OpenSSL ops/s, OpenSSL operation)
    ("SM2 sign", "sm2 sign", pki("SM2 (CurveSM2)", 1), "sm2 sign"),
    ("SM2-SM3 verify", "sm2-sm3 verify", pki("SM2 (CurveSM2)", 2), "sm2 verify"),
    ("ECDSA P-256 verify", "ecdsa-p256-sha256 verify", pki("ecdsa (nistp256)", 2), "ecdsap256 verify"),
    ("Ed25519 verify", "ed25519 verify", pki("EdDSA (Ed25519)", 2), "ed25519 verify"),
    ("RSA-2048 v1.5 verify", "rsa-v1_5-sha256 verify", pki("rsa 2048 bits", 2), "rsa2048 verify"),
    ("SM3 1 KiB", "sm3 1KiB", sym("sm3.txt"), "-evp sm3"),
    ("HMAC-SM3 1 KiB", "hmac-sm3 1KiB", sym("hmac.txt"), "-hmac sm3"),
    ("SM4-GCM encrypt 1 KiB", "sm4-gcm encrypt 1KiB", sym("sm4.txt"), "-evp sm4-cbc (*)"),
]
f = lambda v: f"{v:,.0f}" if v else "-"
print()
print(f"| operation | Menshen ops/s | OpenSSL ops/s | ratio | OpenSSL measured |")
print(f"|---|---:|---:|---:|---|")
for label, cid, o, what in rows:
    m = men.get(cid)
    r = f"{m / o:.2f}" if m and o else "-"
    print(f"| {label} | {f(m)} | {f(o)} | {r} | `{what}` |")
print()
print("ratio = Menshen / OpenSSL (above 1: Menshen faster).")
print("(*) OpenSSL 3.0 has no SM4-GCM in `speed` (`-evp sm4-gcm` is refused); its figure is SM4-CBC.")
print("`openssl speed sm2` signs and verifies with OpenSSL's own SM2 (EVP_DigestSign/Verify with SM3")
print("over a 20-byte input, ID hash Z included); Menshen's sign/verify digest the 391-byte base.")
print("Menshen's SM2 is RustCrypto `sm2`; its P-256, Ed25519 and RSA are aws-lc-rs.")

if "sm2 sign" in men and "sm2-sm3 verify" in men:
    t = 1 / men["sm2 sign"] + 1 / men["sm2-sm3 verify"]
    print()
    print(f"A2 crypto bound: 1 / (SM2 verify {1e6 / men['sm2-sm3 verify']:.0f} us"
          f" + SM2 sign {1e6 / men['sm2 sign']:.0f} us) = {1 / t:,.0f} A2 calls/s per core"
          f" ({2 / t:,.0f} on 2 cores)")
else:
    sys.exit("criterion results missing for SM2 sign/verify")
print()
print(f"Method: Menshen = `cargo bench -p menshen-crypto --bench crypto` (criterion 0.5, 1 s warm-up,")
print(f"3 s measurement, 30 samples, median time per op, one thread); signatures over a 391-byte")
print(f"RFC 9421 signature base. OpenSSL = {ossl} `openssl speed -elapsed -seconds {secs}` (wall clock,")
print(f"one process). Same machine, one after the other: a shared, noisy 2-core box, so figures move")
print(f"by 10-30% from run to run.")
missing = [c for _, c, _, _ in rows if c not in men]
if missing:
    sys.exit(f"criterion results missing: {missing}")
PY
