"""spark-submit entry point: spark-submit jobs/gallery.py [--conf FILE] [--set KEY=VALUE ...] [--input URL] [--tags T] [--output PNG]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["gallery", *sys.argv[1:]] if "gallery" not in sys.argv[1:] else sys.argv[1:]))
