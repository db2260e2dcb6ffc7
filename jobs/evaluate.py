"""spark-submit entry point: spark-submit jobs/evaluate.py [--conf FILE] [--set KEY=VALUE ...] [job options]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]] if "evaluate" not in sys.argv[1:] else sys.argv[1:]))
