"""Run every benchmark module (benchmarks/bench_*.py) in turn, or the ones named.

Usage: python -m benchmarks.run [bench_validate bench_latency ...]
Each module exposes ``main() -> None`` and prints its own figures.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(names: list[str]) -> int:
    """Import and run the named benchmark modules (all of them when none is named)."""
    available = sorted(
        module.name
        for module in pkgutil.iter_modules(benchmarks.__path__)
        if module.name.startswith("bench_")
    )
    chosen = names or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"unknown benchmarks: {unknown}; available: {available}", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
