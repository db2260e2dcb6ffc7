"""Run the benchmarks: every ``bench/bench_*.py`` module's ``main()``, or only those named."""
import importlib
import sys
from pathlib import Path

names = sys.argv[1:] or sorted(p.stem[len("bench_"):] for p in Path(__file__).parent.glob("bench_*.py"))
for name in names:
    print(f"== bench {name}", flush=True)
    importlib.import_module(f"bench.bench_{name}").main()
