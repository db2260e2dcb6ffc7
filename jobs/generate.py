"""spark-submit entry point: spark-submit jobs/generate.py [--conf FILE] [--set KEY=VALUE ...] [--n N] [--seed S] [--output URL]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]] if "generate" not in sys.argv[1:] else sys.argv[1:]))
