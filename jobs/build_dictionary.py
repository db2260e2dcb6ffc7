"""spark-submit entry point: spark-submit jobs/build_dictionary.py [--conf FILE] [--set KEY=VALUE ...] [job options]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["build_dictionary", *sys.argv[1:]] if "build_dictionary" not in sys.argv[1:] else sys.argv[1:]))
