"""spark-submit entry point: spark-submit jobs/train_cnn.py [--conf FILE] [--set KEY=VALUE ...] [--images URL] [--stop-after-epochs N] [--fresh]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train_cnn", *sys.argv[1:]] if "train_cnn" not in sys.argv[1:] else sys.argv[1:]))
