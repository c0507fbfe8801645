#!/usr/bin/env bash
# Crypto micro-benchmarks: Menshen's implementations (`cargo bench`, criterion)
# beside `openssl speed` for the same operations, on the same machine, and the
# A2 crypto bound: 1 / (SM2 verify + SM2 sign) per core.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECONDS:-3}
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
echo "==> cargo bench -p menshen-crypto (criterion: 1 s warm-up, 3 s measurement, 30 samples; median ns/op)"
cargo bench -q -p menshen-crypto --bench crypto -- --output-format bencher 2>/dev/null | grep '^test ' > "$OUT/menshen.txt"
echo "==> openssl speed ($(openssl version | cut -d' ' -f1-2)), ${SECS} s per operation"
openssl speed -seconds "$SECS" sm2 ecdsap256 ed25519 rsa2048 > "$OUT/ossl-asym.txt" 2>/dev/null || true
openssl speed -seconds "$SECS" -bytes 1024 -evp sm3 > "$OUT/ossl-sm3.txt" 2>/dev/null || true
openssl speed -seconds "$SECS" -bytes 1024 -hmac sm3 > "$OUT/ossl-hmac.txt" 2>/dev/null || true
openssl speed -seconds "$SECS" -bytes 1024 -evp sm4-cbc > "$OUT/ossl-sm4.txt" 2>/dev/null || true
python3 - "$OUT" <<'PY'
import re, sys, os
d = sys.argv[1]
men = {}
for l in open(os.path.join(d, "menshen.txt")):
    m = re.match(r"test (.+?) \.\.\. bench:\s+([\d,]+) ns/iter", l)
    if m: men[m.group(1)] = 1e9 / float(m.group(2).replace(",", ""))
def read(n):
    p = os.path.join(d, n)
    return open(p).read() if os.path.exists(p) else ""
asym = read("ossl-asym.txt")
oss = {}
def grab(pat, text, idx):
    m = re.search(pat, text, re.M)
    return float(m.group(idx)) if m else None
# Lines like: " 256 bits SM2 (CurveSM2)   0.0001s   0.0003s   9893.2   3921.1"  (sign/s, verify/s)
oss["sm2 sign"] = grab(r"SM2 \(CurveSM2\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", asym, 1)
oss["sm2-sm3 verify"] = grab(r"SM2 \(CurveSM2\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", asym, 2)
oss["ecdsa-p256-sha256 verify"] = grab(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", asym, 2)
oss["ed25519 verify"] = grab(r"253 bits EdDSA \(Ed25519\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", asym, 2)
oss["rsa-v1_5-sha256 verify"] = grab(r"rsa 2048 bits\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", asym, 2)
def sym(text):  # last column is 1024-byte blocks, in kB/s ("1234.56k")
    m = re.search(r"^\S+.*\s([\d.]+)k\s*$", text, re.M)
    return float(m.group(1)) * 1000 / 1024 if m else None
oss["sm3 1KiB"] = sym(read("ossl-sm3.txt"))
oss["hmac-sm3 1KiB"] = sym(read("ossl-hmac.txt"))
oss["sm4-gcm encrypt 1KiB"] = sym(read("ossl-sm4.txt"))
print(f"\n{'operation':<28}{'Menshen ops/s':>15}{'OpenSSL ops/s':>15}{'ratio':>8}")
for k in ["sm2 sign", "sm2-sm3 verify", "ecdsa-p256-sha256 verify", "ed25519 verify", "rsa-v1_5-sha256 verify", "sm3 1KiB", "hmac-sm3 1KiB", "sm4-gcm encrypt 1KiB"]:
    a, b = men.get(k), oss.get(k)
    r = f"{a/b:.2f}" if a and b else "-"
    print(f"{k:<28}{(f'{a:,.0f}' if a else '-'):>15}{(f'{b:,.0f}' if b else '-'):>15}{r:>8}")
print("(OpenSSL has no SM4-GCM in `speed`: its column for that row is SM4-CBC.)")
if "sm2 sign" in men and "sm2-sm3 verify" in men:
    bound = 1 / (1 / men["sm2 sign"] + 1 / men["sm2-sm3 verify"])
    print(f"\nA2 crypto bound: 1 / (SM2 verify + SM2 sign) = {bound:,.0f} calls/s per core")
PY
