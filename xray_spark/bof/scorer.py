"""The bag of features as a model directory (``xray_spark.modeldir``, kind ``bof``).

``write_model_dir`` turns a fitted bag-of-features Pipeline (descriptors, dictionary, pyramid,
SVMs over vocabulary tags) into ``manifest.json`` + ``weights.npz`` (plain arrays, no pickle), so
``predict`` and ``nightly`` score images with it exactly as with a CNN. ``BofScorer.score`` runs
the same NumPy functions as the Spark stages, image by image: same descriptors for the same
image id and seed, same words, same pyramid, same SVM scores. An image that yields no patch
(empty, too small, all masked) gets the scores of an empty histogram, as in the Spark stages
(where its features are null and ``skip_reason`` says why). A tag's threshold is 0, the SVM's
decision boundary.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from xray_spark import modeldir
from xray_spark.bof import descriptors as desc
from xray_spark.bof.pyramid import assign_words, pyramid_length, spatial_pyramid
from xray_spark.bof.svm import svm_scores

WEIGHTS = "weights.npz"
ARRAYS = ("centres", "support_features", "dual", "intercepts", "gammas")


def write_model_dir(directory: str | Path, pipeline_model, *, model_id: str, image_size: int, preprocessing: dict,
                    training: dict, metrics: dict | None = None) -> Path:
    """Write the fitted Pipeline (PatchDescriptors, VisualDictionaryModel, SpatialPyramid,
    ChiSquareSVMModel over tag names) as a model directory; returns the manifest path."""
    descriptors, dictionary, pyramid, svms = pipeline_model.stages
    names = svms.getOrDefault(svms.labelNames)
    directory = modeldir.local_path(str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {"centres": dictionary.centres, **{k: svms.arrays()[k] for k in ARRAYS[1:]}}
    with open(directory / WEIGHTS, "wb") as out:
        np.savez(out, **arrays)
    return modeldir.write_manifest(directory, {
        "kind": "bof", "model_id": model_id, "tags": names, "thresholds": [0.0] * len(names),
        "input": {"height": image_size, "width": image_size}, "preprocessing": preprocessing,
        "training": training, "metrics": metrics or {},
        "bof": {"patches_per_image": descriptors.getOrDefault("patchesPerImage"),
                "scales": descriptors.getOrDefault("scales"),
                "descriptor_size": descriptors.getOrDefault("descriptorSize"),
                "seed": descriptors.getOrDefault("seed"), "levels": pyramid.getOrDefault("levels"),
                "words": int(len(dictionary.centres))}})


class BofScorer:
    """Scores (n, height, width) images with the bag of features of a model directory."""

    def __init__(self, manifest: dict, arrays: dict):
        self.manifest, self.tags = manifest, list(manifest["tags"])
        self.thresholds = np.asarray(manifest["thresholds"], dtype=np.float64)
        self.params = manifest["bof"]
        self.arrays = arrays

    def features(self, image: np.ndarray, mask: np.ndarray, image_id: str) -> np.ndarray:
        """The spatial-pyramid histogram of one image (zeros when it yields no patch)."""
        p = self.params
        if desc.skip_reason(image, mask, p["scales"]) is not None:
            return np.zeros(pyramid_length(p["words"], p["levels"]), np.float32)
        d, centres = desc.patch_descriptors(image, mask, n_patches=p["patches_per_image"], scales=p["scales"],
                                            size=p["descriptor_size"], seed=desc.image_seed(p["seed"], image_id))
        return spatial_pyramid(assign_words(d, self.arrays["centres"])[0], centres, p["words"], p["levels"])

    def score(self, images: np.ndarray, masks: np.ndarray, image_ids=None) -> np.ndarray:
        """(n, n_tags) float32 SVM scores. ``image_ids`` seed the patch positions as in the Spark
        stages; without them an image's own bytes do (the same image scores the same in any batch)."""
        ids = ([hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images]
               if image_ids is None else list(image_ids))
        x = np.stack([self.features(np.asarray(im, np.float32), np.asarray(m, bool), i)
                      for im, m, i in zip(images, masks, ids)])
        return svm_scores(x, self.arrays)


def load_scorer(directory: Path, manifest: dict) -> BofScorer:
    """The ``bof`` loader of ``modeldir.LOADERS``: arrays read without pickle."""
    with np.load(Path(directory) / WEIGHTS, allow_pickle=False) as weights:
        missing = [k for k in ARRAYS if k not in weights]
        if missing:
            raise modeldir.ModelDirError(f"{directory}/{WEIGHTS}: missing array(s) {', '.join(missing)}")
        return BofScorer(manifest, {k: weights[k] for k in ARRAYS})
