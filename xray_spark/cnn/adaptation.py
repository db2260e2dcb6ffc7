"""Adapting a trained CNN to an unlabelled archive: batch-norm statistics of the target frames (AdaBN).

A network trained on generated images normalises each convolution's output with the mean and
variance it saw in training (the batch-norm layers' moving statistics). Real frames of another
detector, count scale or background give other statistics, so every layer sees inputs shifted
from what it learnt. AdaBN (Li et al., "Revisiting batch normalization for practical domain
adaptation", 2016) replaces those moving statistics by the target frames' own, layer after layer,
and leaves every learnt weight as it is. No label is used.

On Spark: one pass over the target images per batch-norm layer, in network order (a layer's
statistics depend on the layers before it, already adapted). Each pass runs the network up to the
layer's input on the executors (the model loaded once per Python worker) and returns per partition
only the per-channel count, sum and sum of squares; the driver adds those few numbers up. The
adapted model is a new model directory whose manifest records the source model and the images.
Written by hand because it is the project's own step: Keras offers no distributed statistics pass.
"""
from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from xray_spark import modeldir, schema
from xray_spark.cnn.model import WEIGHTS
from xray_spark.spark import stage
from xray_spark.worker import freeze_imports

log = logging.getLogger(__name__)

MOMENTS = pa.schema([pa.field("count", pa.float64()), pa.field("sum", pa.list_(pa.float64())),
                     pa.field("sum_sq", pa.list_(pa.float64()))])


class AdaptationError(ValueError):
    """A model that cannot be adapted (not a CNN, no batch normalisation) or no images to adapt to."""


@functools.lru_cache(maxsize=1)
def _network(directory: str, model_id: str):
    """The Keras model of ``directory``, loaded once per Python worker."""
    return modeldir.load(directory).model


def batch_norm_layers(model) -> list[str]:
    """Names of the model's batch-normalisation layers, in network order."""
    from tensorflow import keras

    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def set_statistics(model, statistics: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Set the moving mean and variance of the named batch-norm layers."""
    for name, (mean, variance) in statistics.items():
        layer = model.get_layer(name)
        gamma, beta, _, _ = layer.get_weights()
        layer.set_weights([gamma, beta, mean.astype(np.float32), variance.astype(np.float32)])


def layer_moments(model, layer: str, images: np.ndarray, batch: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(count, per-channel sum, per-channel sum of squares) of the input of ``layer`` over ``images``."""
    from tensorflow import keras

    probe = keras.Model(model.input, model.get_layer(layer).input)
    count, total, total_sq = 0.0, 0.0, 0.0
    for i in range(0, len(images), batch):
        x = probe(images[i:i + batch, ..., None], training=False).numpy().astype(np.float64)
        x = x.reshape(-1, x.shape[-1])
        count, total, total_sq = count + len(x), total + x.sum(0), total_sq + (x * x).sum(0)
    return count, np.asarray(total, np.float64), np.asarray(total_sq, np.float64)


def moments_batches(batches, directory: str, model_id: str, layer: str, adapted: dict, batch: int):
    """mapInArrow function: the moments of ``layer``'s input over the partition's images, one row."""
    freeze_imports()
    model = _network(directory, model_id)
    set_statistics(model, adapted)
    count, total, total_sq = 0.0, 0.0, 0.0
    for table in batches:
        rows = table.to_pydict()
        for h, w in sorted(set(zip(rows["height"], rows["width"]))):  # one forward pass per stored size
            members = [i for i, shape in enumerate(zip(rows["height"], rows["width"])) if shape == (h, w)]
            images = schema.decode_images([rows["image"][i] for i in members], h, w)
            n, s, s2 = layer_moments(model, layer, images, batch)
            count, total, total_sq = count + n, total + s, total_sq + s2
    if count:
        yield pa.RecordBatch.from_pydict({"count": [count], "sum": [list(total)], "sum_sq": [list(total_sq)]},
                                         schema=MOMENTS)


def adapt(spark, directory: str | Path, images_url: str, output_dir: str | Path, *, name: str,
          interval_s: float = 30.0) -> dict:
    """Write ``output_dir``: the model of ``directory`` with every batch-norm layer's statistics
    re-estimated on the images of ``images_url`` (labels, if any, unused). Returns the manifest."""
    from xray_spark.cnn.training import weights_digest

    directory, output_dir = Path(directory), Path(output_dir)
    manifest = modeldir.read_manifest(directory)
    if manifest["kind"] == "ensemble":
        return _adapt_members(spark, directory, manifest, images_url, output_dir, name=name, interval_s=interval_s)
    if manifest["kind"] != "cnn":
        raise AdaptationError(f"{directory}: a {manifest['kind']} model; adaptation re-estimates the "
                              "batch-norm statistics of a CNN (kind cnn, or an ensemble of CNNs)")
    model = modeldir.load(directory).model
    layers = batch_norm_layers(model)
    if not layers:
        raise AdaptationError(f"{directory}: the network has no batch normalisation (preset "
                              "'paper'?); AdaBN needs batch-norm layers (the 'cpu' preset has them)")
    images = spark.read.parquet(images_url).select("height", "width", "image")
    adapted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    n_images = images.count()
    if not n_images:
        raise AdaptationError(f"{images_url}: no images to adapt to")
    for layer in layers:
        fn = functools.partial(moments_batches, directory=str(directory), model_id=manifest["model_id"],
                               layer=layer, adapted=dict(adapted), batch=int(manifest.get("inference_batch", 64)))
        with stage(spark, f"adapt: statistics of {layer} over {n_images} images", interval_s):
            parts = images.mapInArrow(fn, schema.spark_schema(MOMENTS)).collect()  # one small row per partition
        count = sum(p["count"] for p in parts)
        mean = np.sum([p["sum"] for p in parts], axis=0) / count
        variance = np.maximum(np.sum([p["sum_sq"] for p in parts], axis=0) / count - mean * mean, 0.0)
        adapted[layer] = (mean, variance)
    set_statistics(model, adapted)
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / f".{WEIGHTS}.tmp"
    model.save_weights(str(tmp), save_format="h5")
    tmp.replace(output_dir / WEIGHTS)
    if (directory / "README.md").is_file():
        shutil.copyfile(directory / "README.md", output_dir / "README.md")
    digest = weights_digest(model)
    adapted_manifest = {
        **{k: v for k, v in manifest.items() if k not in ("created", "versions", "format", "metrics")},
        "model_id": f"{name}-{digest[:12]}",
        "metrics": {},  # the source's validation figures were measured before adaptation
        "adaptation": {"method": "AdaBN: batch-norm moving statistics re-estimated on unlabelled target images",
                       "source_model_id": manifest["model_id"], "source_metrics": manifest.get("metrics", {}),
                       "images_url": images_url, "images": n_images, "layers": layers},
    }
    modeldir.write_manifest(output_dir, adapted_manifest)
    log.info("adapted %s to %d images of %s: %s", manifest["model_id"], n_images, images_url, output_dir)
    return modeldir.read_manifest(output_dir)


def _adapt_members(spark, directory: Path, manifest: dict, images_url: str, output_dir: Path, *, name: str,
                   interval_s: float) -> dict:
    """An ensemble (``xray_spark.ensemble``) adapted member by member into ``output_dir``; its
    thresholds stay the source's, as an adapted CNN's do."""
    from xray_spark.ensemble import member_dirs, model_id

    adapted = [adapt(spark, source, images_url, output_dir / relative, name=f"{name}-{i}", interval_s=interval_s)
               for i, (source, relative) in enumerate(zip(member_dirs(directory, manifest), manifest["members"]))]
    modeldir.write_manifest(output_dir, {
        **{k: v for k, v in manifest.items() if k not in ("created", "versions", "format", "metrics")},
        "model_id": model_id(name, adapted), "metrics": {},
        "adaptation": {"method": "AdaBN of every member", "source_model_id": manifest["model_id"],
                       "images_url": images_url, "images": adapted[0]["adaptation"]["images"],
                       "members": [m["model_id"] for m in adapted]}})
    return modeldir.read_manifest(output_dir)
