"""spark-submit entry point: spark-submit jobs/spm_features.py [--conf FILE] [--set KEY=VALUE ...] [job options]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["spm_features", *sys.argv[1:]] if "spm_features" not in sys.argv[1:] else sys.argv[1:]))
