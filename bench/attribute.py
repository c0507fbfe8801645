#!/usr/bin/env python3
"""Attribute `perf script -F comm,ip,sym` samples of one process to Menshen's
components, in CPU microseconds per request (issue 9's ablation).

Usage: attribute.py SCRIPT_TXT FREQ_HZ SECONDS REQUESTS_PER_SECOND [LABEL]

Each sample is one stack. A sample of the audit writer's threads (comm
`menshen-audit*`) is the audit writer's; any other is classified by the
outermost frame matching a component below (so a component's figure
includes what it calls: authentication includes HMAC-SM3), else it is the
stack's (hyper, rustls, tokio, the kernel's TCP, allocations of the glue).
µs/req = samples / (FREQ_HZ * SECONDS * REQUESTS_PER_SECOND) * 1e6.
"""

import collections
import sys

# (component, substring of a frame), first match from the stack's root wins.
COMPONENTS = [
    ("audit: zstd of closed segments", "compress_segment"),
    ("audit: index (SQLite/PostgreSQL)", "sqlite3"),
    ("audit: index (SQLite/PostgreSQL)", "rusqlite"),
    ("audit: index (SQLite/PostgreSQL)", "tokio_postgres"),
    ("audit: index task", "index_sink"),
    ("alerts + learned baselines", "node::alerts"),
    ("authentication (signature, HMAC-SM3)", "stages::authenticate"),
    ("replay (nonce)", "stages::replay"),
    ("flow control (limits)", "stages::limits"),
    ("upstream headers (allowlists, ids)", "request_headers"),
    ("upstream headers (allowlists, ids)", "HeaderAllow"),
    ("audit: record built and sent", "record::build"),
    ("audit: record built and sent", "serialize"),
    ("audit: record built and sent", "send_bytes"),
    ("audit: record built and sent", "into_keys"),
    ("metrics", "menshen_gateway::metrics"),
    ("routing", "stages::route"),
    ("other stages", "menshen_gateway::stages::"),
]

WRITER = "audit: writer thread (SM3 chain, lines, pwrite, seal)"


def main():
    path, hz, secs, rps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    label = sys.argv[5] if len(sys.argv) > 5 else path
    per = 1e6 / (hz * secs * rps)
    samples = []
    cur = None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            if not line.startswith((" ", "\t")):
                cur = {"comm": line.split()[0], "frames": []}
                samples.append(cur)
            elif cur is not None:
                parts = line.strip().split(None, 1)
                cur["frames"].append(parts[1].split("+0x")[0] if len(parts) > 1 else "?")
    totals = collections.Counter()
    for s in samples:
        frames = list(reversed(s["frames"]))  # root first
        if s["comm"].startswith("menshen-audit"):
            name = WRITER
            for comp, pat in COMPONENTS[:5]:
                if any(pat in fr for fr in frames):
                    name = comp
                    break
        else:
            name = "stack (hyper, rustls, tokio, kernel TCP, glue)"
            for comp, pat in COMPONENTS:
                if any(pat in fr for fr in frames):
                    name = comp
                    break
        totals[name] += 1
    print(f"{label}: {len(samples)} samples at {hz:.0f} Hz over {secs:.0f} s, {rps:.0f} req/s")
    for name, n in sorted(totals.items(), key=lambda x: -x[1]):
        print(f"  {n * per:6.2f} us/req  {name}")
    print(f"  {len(samples) * per:6.2f} us/req  total")


if __name__ == "__main__":
    main()
