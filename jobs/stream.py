"""spark-submit entry point: spark-submit jobs/stream.py [--conf FILE] [--set KEY=VALUE ...] [--landing DIR] [--available-now]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]] if "stream" not in sys.argv[1:] else sys.argv[1:]))
