"""Small labelled images for the bag-of-features tests, made on executors (mapInArrow).

Each image is noise plus, independently with probability 1/2, an isotropic ring ("Ring:
Isotropic"), a horizontal band ("Horizon") and isolated peaks ("Peaks: Isolated"), so a working
bag of features separates the tags well above chance. Runs group consecutive images.
"""
import numpy as np

from xray_spark import schema

FEATURES = ("Ring: Isotropic", "Horizon", "Peaks: Isolated")


def toy_image(i: int, size: int = 64, seed: int = 0):
    rng = np.random.default_rng([seed, i])
    present = rng.random(3) < 0.5
    rows, cols = np.mgrid[0:size, 0:size] / size
    image = 0.1 + 0.05 * rng.random((size, size))
    if present[0]:
        radius = np.hypot(rows - 0.5, cols - 0.5)
        image += 0.6 * np.exp(-((radius - rng.uniform(0.25, 0.35)) / 0.03) ** 2)
    if present[1]:
        image += 0.5 * np.exp(-((rows - rng.uniform(0.3, 0.7)) / 0.04) ** 2)
    if present[2]:
        for r, c in rng.uniform(0.1, 0.9, size=(4, 2)):
            image += 0.8 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 0.0008)
    mask = np.zeros((size, size), bool)
    mask[: size // 8, : size // 8] = True                     # a corner of bad pixels
    image[mask] = 0.0
    return image.astype(np.float32), mask, [t for t, p in zip(FEATURES, present) if p]


def toy_images(batches, size: int = 64, seed: int = 0, runs: int = 8):
    for batch in batches:
        records = []
        for i in batch.column("id").to_pylist():
            image, mask, names = toy_image(i, size, seed)
            records.append(schema.image_record(
                image_id=f"toy-{seed}-{i:05d}", source="synthetic", beamtime="toy", run_id=f"run{i % runs}",
                frame=i, image=image, mask=mask, tag_names=names, provenance={"i": i}))
        yield schema.records_to_arrow(records)


def toy_frame(spark, n: int, seed: int = 0, partitions: int = 2, size: int = 64):
    return spark.range(0, n, numPartitions=partitions).mapInArrow(
        lambda b: toy_images(b, size, seed), schema.spark_schema())
