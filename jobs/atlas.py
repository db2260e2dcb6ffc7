"""spark-submit entry point: spark-submit jobs/atlas.py [--conf FILE] [--set KEY=VALUE ...] --beamtime NAME [--embeddings URL] [--images URL] [--model MODEL_ID] [--k K] [--output DIR]"""
import sys

from xray_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["atlas", *sys.argv[1:]] if "atlas" not in sys.argv[1:] else sys.argv[1:]))
