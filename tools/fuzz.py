#!/usr/bin/env python3
"""Fuzz the .tng and .tngv decoders with mutated streams and structured attacks (huge size
claims, header fields of the wrong type, model names with path separators, playlists whose
segments carry protocol prefixes or lead out of their folder through links); report crashes,
hangs, memory blow-ups, half-written outputs, playlists that escaped and connections to a local
listener (any of them makes the exit code 1).

    (ulimit -v 8000000; python tools/fuzz.py --cases 10000 --out results/fuzz.json)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from tngvideo.analysis.records import device_description
from tngvideo.cli import main as cli_main
from tngvideo.fileio import atomic_write_bytes
from tngvideo.fuzzing import cases, make_seeds, run


def _address_space_limit() -> str:
    """`ulimit -v` as the run had it."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return "unlimited" if soft == resource.RLIM_INFINITY else f"{soft / 2**30:.2f} GiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per case")
    ap.add_argument("--memory-mb", type=float, default=4096, help="peak memory budget per worker")
    ap.add_argument("--out", default="results/fuzz.json")
    ap.add_argument("--no-attacks", action="store_true", help="random mutations only (as before issue 34)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seeds, donors = make_seeds(Path(tmp))
        with tqdm(total=args.cases, desc="fuzz", unit="case", file=sys.stderr) as bar:
            rep = run(cases(args.cases, seeds, donors, seed=args.seed, attacks=not args.no_attacks), main=cli_main, timeout=args.timeout,
                      memory_mb=args.memory_mb, progress=bar.update)
    out = {"seed": args.seed, "timeout_s": args.timeout, "memory_mb": args.memory_mb, "attacks": not args.no_attacks,
           "address_space_limit": _address_space_limit(), "device": device_description(),
           **rep.to_json()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, (json.dumps(out, indent=2) + "\n").encode())
    print(json.dumps({k: out[k] for k in ("cases", "outcomes", "bad", "seconds")}))
    for f in rep.failures[:20]:
        print(f"{f['outcome']:>12} {f['kind']}:{f['mutation']}: {f['message']}")
    return 1 if rep.bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
