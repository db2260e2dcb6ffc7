"""spark-submit entry point: spark-submit jobs/doctor.py [--conf FILE] [--set KEY=VALUE ...]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["doctor", *sys.argv[1:]] if "doctor" not in sys.argv[1:] else sys.argv[1:]))
