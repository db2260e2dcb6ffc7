"""spark-submit entry point: spark-submit jobs/embed.py [--conf FILE] [--set KEY=VALUE ...] [--model NAME|DIR] [--images URL] [--output URL] [--index-only]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["embed", *sys.argv[1:]] if "embed" not in sys.argv[1:] else sys.argv[1:]))
