"""Run the benchmarks: every ``bench/bench_*.py`` module's ``main()``, or the one named first (its
arguments follow it: ``python -m bench stream --sustained``, ``python -m bench real MODEL_DIR``);
``-h`` lists them."""
import importlib
import inspect
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
    main = importlib.import_module(f"bench.bench_{name}").main
    given = sys.argv[sys.argv.index(name) + 1:] if named else []     # what follows its name is its own
    parameters = inspect.signature(main).parameters
    if "argv" in parameters:                           # an argparse benchmark: options and values
        main(given)
    elif len(given) > len(parameters) or any(a.startswith("-") for a in given):
        sys.exit(f"python -m bench {name}: takes {len(parameters)} positional argument(s) "
                 f"({', '.join(parameters) or 'none'}), got {given}")
    else:                                              # e.g. real MODEL_DIR, retrieval VAL_URL TEST_URL
        main(*given)
