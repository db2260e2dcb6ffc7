"""spark-submit entry point: spark-submit jobs/ingest.py [--conf FILE] [--set KEY=VALUE ...] [--archive DIR]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]] if "ingest" not in sys.argv[1:] else sys.argv[1:]))
