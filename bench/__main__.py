"""Run the benchmarks: every ``bench/bench_*.py`` module's ``main()``, or the one named first (its
options follow it: ``python -m bench stream --sustained``); ``-h`` lists them."""
import importlib
import sys
from pathlib import Path

available = sorted(p.stem[len("bench_"):] for p in Path(__file__).parent.glob("bench_*.py"))
named = [a for a in sys.argv[1:] if not a.startswith("-")][:1]
if not named and {"-h", "--help"} & set(sys.argv[1:]):
    print("usage: python -m bench [NAME [OPTIONS]]\n\nwithout NAME every benchmark runs (make bench), each writing its "
          "JSON into bench/results/;\n`python -m bench NAME --help` shows a benchmark's options where it has any.\n\n"
          "benchmarks: " + ", ".join(available))
    sys.exit(0)
if named and named[0] not in available:
    sys.exit(f"python -m bench: no benchmark {named[0]!r}; available: {', '.join(available)}")
for name in named or available:
    print(f"== bench {name}", flush=True)
    importlib.import_module(f"bench.bench_{name}").main()
