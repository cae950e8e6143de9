"""`make bench`: every benchmark module's figures, printed (never asserted).

Each ``benchmarks/bench_*.py`` exposes ``run() -> list[(label, figure)]``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import benchmarks


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    only = sys.argv[1:]
    failed = 0
    for name in names:
        if only and not any(o in name for o in only):
            continue
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        try:
            rows = importlib.import_module(f"benchmarks.{name}").run()
        except Exception:  # noqa: BLE001 - report and go on with the other benchmarks
            traceback.print_exc()
            failed += 1
            continue
        width = max((len(label) for label, _ in rows), default=10)
        for label, figure in rows:
            print(f"  {label:<{width}}  {figure}", flush=True)
        print(f"  ({time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
