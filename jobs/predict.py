"""spark-submit entry point: spark-submit jobs/predict.py [--conf FILE] [--set KEY=VALUE ...] --model NAME|DIR [--images URL] [--output URL] [--evaluation FILE]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]] if "predict" not in sys.argv[1:] else sys.argv[1:]))
