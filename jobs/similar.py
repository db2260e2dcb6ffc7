"""spark-submit entry point: spark-submit jobs/similar.py [--conf FILE] [--set KEY=VALUE ...] --image ID|FILE [--k 20] [--images URL] [--embeddings URL] [--search auto|index|exact] [--output PNG]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["similar", *sys.argv[1:]] if "similar" not in sys.argv[1:] else sys.argv[1:]))
