"""spark-submit entry point: spark-submit jobs/ensemble.py [--conf FILE] [--set KEY=VALUE ...] --members NAME|DIR NAME|DIR [...] --images URL --output NAME"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ensemble", *sys.argv[1:]] if "ensemble" not in sys.argv[1:] else sys.argv[1:]))
