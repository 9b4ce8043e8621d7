"""python -m benchmarks [name ...]: run the named benchmarks (all by default), print and save results."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCHMARKS = (
    "ingest",
    "training",
    "quality",
    "detection",
    "prediction",
    "transfer",
    "proposals",
    "portal",
    "exports",
    "doctor",
    "scale",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), choices=BENCHMARKS)
    parser.add_argument("--out", default=str(ROOT / ".benchdata" / "results.json"))
    args = parser.parse_args()
    results = {}
    for name in args.names:
        module = importlib.import_module(f"benchmarks.{name}")
        results[name] = module.run()
        print(module.report(results[name]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **results}, indent=2))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
