"""Run the benchmarks: every ``bench/bench_*.py`` module's ``main()``, or the one named first (its
options follow it: ``python -m bench stream --sustained``)."""
import importlib
import sys
from pathlib import Path

named = [a for a in sys.argv[1:] if not a.startswith("-")][:1]
names = named or sorted(p.stem[len("bench_"):] for p in Path(__file__).parent.glob("bench_*.py"))
for name in names:
    print(f"== bench {name}", flush=True)
    importlib.import_module(f"bench.bench_{name}").main()
