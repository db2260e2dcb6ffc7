"""spark-submit entry point: spark-submit jobs/train_svm.py [--conf FILE] [--set KEY=VALUE ...] [job options]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train_svm", *sys.argv[1:]] if "train_svm" not in sys.argv[1:] else sys.argv[1:]))
