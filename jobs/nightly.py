"""spark-submit entry point: spark-submit jobs/nightly.py [--conf FILE] [--set KEY=VALUE ...] [--night YYYY-MM-DD]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["nightly", *sys.argv[1:]] if "nightly" not in sys.argv[1:] else sys.argv[1:]))
