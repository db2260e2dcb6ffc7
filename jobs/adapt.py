"""spark-submit entry point: spark-submit jobs/adapt.py [--conf FILE] [--set KEY=VALUE ...] [--model NAME|DIR] [--images URL] [--output NAME]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["adapt", *sys.argv[1:]] if "adapt" not in sys.argv[1:] else sys.argv[1:]))
