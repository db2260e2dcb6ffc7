"""Tiny labelled `images` tables with a learnable signal, for the CNN tests (runs on executors).

Image ``i`` (32x32, noise) has a bright isotropic ring when ``i % 2`` ("Ring: Isotropic") and a
bright horizontal line when ``i % 3 == 0`` ("Horizon"); run ``run{i % 8}``.
"""
import numpy as np

from xray_spark import schema
from xray_spark.io import tables

SIZE = 32
TAGS = ["Ring: Isotropic", "Horizon"]


def ring_image(i: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(np.random.SeedSequence([7, i]))
    image = rng.random((SIZE, SIZE), dtype=np.float32) * 0.3
    names = []
    if i % 2:
        r = np.hypot(*np.mgrid[:SIZE, :SIZE] - SIZE / 2)
        image[np.abs(r - 9) < 1.5] += 0.6
        names.append("Ring: Isotropic")
    if i % 3 == 0:
        image[SIZE // 2 + 6:SIZE // 2 + 8, :] += 0.6
        names.append("Horizon")
    return np.clip(image, 0, 1), names


def ring_images(batches):
    for batch in batches:
        records = []
        for i in batch.column("id").to_pylist():
            image, names = ring_image(i)
            records.append(schema.image_record(
                image_id=f"ring-{i:05d}", source="synthetic", beamtime="test", run_id=f"run{i % 8}", frame=i,
                image=image, mask=np.zeros((SIZE, SIZE), bool), tag_names=names, provenance={"i": i}))
        yield schema.records_to_arrow(records)


def write_ring_table(spark, url: str, n: int, start: int = 0) -> str:
    df = spark.range(start, start + n, numPartitions=4).mapInArrow(ring_images, schema.spark_schema())
    return tables.write_table(df, url, row_group_size_mb=1)
