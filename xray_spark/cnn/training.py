"""Training the CNN with Horovod on Spark, fed from the `images` table (the `train_cnn` job).

The driver freezes a train/validation split by run (``data.split_by_run``) and starts
``horovod.spark.run``: one Horovod rank per Spark task, ``horovod.num_proc`` of them, talking over
``horovod.nics``. Each rank reads its own Petastorm shard; gradients are averaged by Horovod's
DistributedOptimizer; rank 0's initial weights are broadcast; the learning rate is the one-rank
rate times the number of ranks, reached by a linear warm-up and then decayed (``schedule.py``);
epoch metrics are averaged over ranks, and rank 0 scores the validation runs after every epoch.

Why ``horovod.spark.run`` and not Horovod's KerasEstimator: the estimator copies the DataFrame
into its own intermediate Parquet store, serialises the model its own way and owns checkpoints,
so it could not read our `images` table directly, write our model-directory manifest, or resume
from our checkpoints. ``run`` only starts the ranks; the training loop stays ours and narrow
(data in, model directory out), so moving to another distributor is a local change.

Rank 0 alone writes: a checkpoint per epoch (model, optimizer state and epoch number, via
``tf.train.CheckpointManager``), TensorBoard logs, and at the end the model directory
(``weights.h5`` + ``manifest.json``, see ``xray_spark.modeldir``) with per-tag thresholds chosen on
the validation runs. A killed training rerun with the same configuration restores the last
checkpoint and trains only the remaining epochs; ``fresh=True`` starts over.

Model directory layout: ``manifest.json``, ``weights.h5``, ``checkpoints/`` (with ``epochs.jsonl``,
one line per finished epoch), ``tensorboard/``, ``data/`` (the frozen split and ``plan.json``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from xray_spark import metrics, modeldir
from xray_spark import tags as tagmod
from xray_spark.cnn import data, schedule
from xray_spark.cnn.augment import Augmentation
from xray_spark.cnn.model import WEIGHTS, Architecture, architecture, build_model, weighted_binary_crossentropy
from xray_spark.config import to_dict
from xray_spark.spark import stage

log = logging.getLogger(__name__)


def augmentation(config) -> Augmentation | None:
    """The training-time image changes of ``cnn.augment*`` (None when ``cnn.augment`` is off)."""
    c = config.cnn
    if not c.augment:
        return None
    return Augmentation(config.preprocess.full_scale_counts, max_scale=c.augment_max_scale,
                        max_background=c.augment_max_background, max_blocks=c.augment_max_blocks,
                        rotate=c.augment_rotate)


def weights_digest(model) -> str:
    """SHA-256 of all weights' bytes: equal on every rank after synchronous training."""
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(w.numpy()).tobytes())
    return digest.hexdigest()


def _epoch_log(path: Path, below: int) -> list[dict]:
    """Finished-epoch records of ``epochs.jsonl`` with epoch < ``below`` (a later line belongs to
    an epoch whose checkpoint was never completed)."""
    if not path.is_file():
        return []
    complete = path.read_text().split("\n")[:-1]  # the last piece is empty or a line being written
    lines = [json.loads(line) for line in complete if line.strip()]
    return [r for r in lines if r["epoch"] < below]


def train_rank(config, plan: dict, stop_after_epochs: int | None = None) -> dict:
    """One Horovod rank (runs in a process started by ``horovod.spark.run`` on an executor)."""
    import horovod.tensorflow as hvd_tf
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    c = config.cnn
    hvd.init()
    tf.config.threading.set_intra_op_parallelism_threads(c.threads_per_rank)
    tf.config.threading.set_inter_op_parallelism_threads(c.threads_per_rank)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:  # one GPU per rank: the one of its local rank on this node
        tf.config.experimental.set_memory_growth(gpus[hvd.local_rank()], True)
        tf.config.set_visible_devices(gpus[hvd.local_rank()], "GPU")
    if c.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    tf.keras.utils.set_random_seed(c.seed)

    rank, ranks = hvd.rank(), hvd.size()
    model_dir = Path(plan["model_dir"])
    ckpt_dir = model_dir / "checkpoints"
    steps = data.steps_per_epoch(plan["train_rows"], c.batch_size, ranks)
    model = build_model(Architecture(**plan["architecture"]), len(plan["tags"]))
    optimizer = hvd.DistributedOptimizer(tf.keras.optimizers.legacy.SGD(c.learning_rate, momentum=c.momentum))
    weights = np.asarray(plan["positive_weights"], np.float32) if plan["positive_weights"] else None
    model.compile(optimizer, weighted_binary_crossentropy(weights, plan.get("partial_labels", False)))

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=c.keep_checkpoints)
    latest = hvd_tf.broadcast_object(manager.latest_checkpoint, root_rank=0)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
    elif plan.get("init_weights"):   # fine-tuning: start from a trained model's weights (rank 0's are broadcast)
        model.load_weights(plan["init_weights"])
    initial_epoch = int(epoch.numpy())

    history, validation_scores = [], {}

    class AverageStatistics(tf.keras.callbacks.Callback):
        """Averages non-trainable state (batch-norm moving statistics) over ranks after each epoch:
        gradients keep trainable weights equal, these drift apart with each rank's own data."""

        def on_epoch_end(self, e, logs=None):
            for w in self.model.non_trainable_weights:
                w.assign(hvd_tf.allreduce(w, op=hvd_tf.Average, name=f"avg_{w.name}"))

    class EpochEnd(tf.keras.callbacks.Callback):
        """Times each epoch; rank 0 adds the validation mAP, logs the epoch and checkpoints;
        stops after ``stop_after_epochs``."""

        def on_epoch_begin(self, e, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, e, logs=None):
            seconds = time.perf_counter() - self.started
            record = {"epoch": e, "seconds": seconds, "images_per_s": steps * c.batch_size * ranks / seconds,
                      **{k: float(v) for k, v in (logs or {}).items()}}
            history.append(record)
            if rank == 0:
                labels, scores = data.score_table(self.model, plan["validation_url"], plan["tags"], c.inference_batch)
                validation_scores["last_epoch"] = labels, scores
                record["val_mAP"] = logs["val_mAP"] = metrics.evaluate(scores, labels, plan["tags"], method="cnn",
                                                                      label_set=c.tag_set).mean_ap
                with open(ckpt_dir / "epochs.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                epoch.assign(e + 1)
                manager.save(checkpoint_number=e + 1)
            if stop_after_epochs is not None and len(history) >= stop_after_epochs:
                self.model.stop_training = True

    callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback(),
                 schedule.callback(c, ranks, steps)]
    callbacks += [AverageStatistics(), EpochEnd()]  # EpochEnd last: averaged logs and weights
    if rank == 0:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        callbacks.append(tf.keras.callbacks.TensorBoard(str(model_dir / "tensorboard"), profile_batch=0))

    if initial_epoch < c.epochs:
        with data.training_batches(plan["train_url"], plan["tags"], rank=rank, ranks=ranks,
                                   batch_size=c.batch_size, shuffle_buffer=c.shuffle_buffer,
                                   seed=c.seed + 1000 * initial_epoch, workers=c.reader_workers,
                                   augmentation=augmentation(config)) as batches:
            model.fit(batches, steps_per_epoch=steps, epochs=c.epochs, initial_epoch=initial_epoch,
                      callbacks=callbacks, verbose=0)
    finished = initial_epoch + len(history) >= c.epochs
    result = {"rank": rank, "ranks": ranks, "initial_epoch": initial_epoch, "history": history,
              "steps_per_epoch": steps, "iterations": int(optimizer.iterations.numpy()),
              "weights_digest": weights_digest(model), "finished": finished}
    if rank == 0 and finished:
        result["manifest"] = _write_model(model, config, plan, ranks, steps,
                                          _epoch_log(ckpt_dir / "epochs.jsonl", c.epochs), result["weights_digest"],
                                          validation_scores.get("last_epoch"))
    return result


def _write_model(model, config, plan, ranks, steps, epochs, digest, scored=None) -> dict:
    """Rank 0: thresholds and AP on the validation runs, then weights.h5 and manifest.json.

    ``scored``: (labels, scores) of the validation runs by these weights, when the last epoch's
    callback has them already (a training resumed after its last epoch scores them here)."""
    c = config.cnn
    labels, scores = scored or data.score_table(model, plan["validation_url"], plan["tags"], c.inference_batch)
    thresholds = modeldir.choose_thresholds(labels, scores)
    validation = metrics.evaluate(scores, labels, plan["tags"], method="cnn", label_set=c.tag_set,
                                   n_train_images=plan["train_rows"])
    model_dir = Path(plan["model_dir"])
    tmp = model_dir / f".{WEIGHTS}.tmp"
    model.save_weights(str(tmp), save_format="h5")
    tmp.replace(model_dir / WEIGHTS)
    manifest = {
        "kind": "cnn", "model_id": f"{c.model_name}-{digest[:12]}", "tags": plan["tags"],
        "thresholds": [float(t) for t in thresholds],
        "input": {"height": plan["stored_size"][0], "width": plan["stored_size"][1]},
        "preprocessing": {**to_dict(config)["preprocess"], "stored_size": plan["stored_size"],
                          "model_resize": "area, first layer of the model"},
        "architecture": plan["architecture"], "inference_batch": c.inference_batch,
        "training": {"images_url": plan["images_url"], "train_rows": plan["train_rows"],
                     "validation_rows": plan["validation_rows"], "validation_runs": plan["validation_runs"],
                     "train_positives": plan["train_positives"], "positive_weights": plan["positive_weights"],
                     "ranks": ranks, "steps_per_epoch": steps, "cnn": to_dict(config)["cnn"], "epochs": epochs,
                     "wall_time_s": sum(e["seconds"] for e in epochs)},
        "metrics": {"validation": validation.validation_record()},
    }
    modeldir.write_manifest(model_dir, manifest)
    return json.loads((model_dir / modeldir.MANIFEST).read_text())


def epoch_progress(epochs: list[dict], total: int) -> str:
    """The training's progress line from its finished-epoch records: epochs, rate, validation, ETA."""
    if not epochs:
        return f"0/{total} epochs done (first epoch running)"
    last = epochs[-1]
    eta = (total - len(epochs)) * last["seconds"]
    return (f"{len(epochs)}/{total} epochs done, {last['images_per_s']:.0f} images/s, loss {last['loss']:.4f}, "
            f"validation mAP {last.get('val_mAP', float('nan')):.4f}, ETA {eta:.0f} s")


def prepare(spark, config, images_url: str, fresh: bool = False, init_model: Path | None = None) -> dict:
    """The training plan: a new split by run, or the saved one when resuming from a checkpoint.
    ``init_model``: a CNN model directory of the same architecture and tags whose weights the
    training starts from (fine-tuning) instead of a random initialisation."""
    c = config.cnn
    model_dir = config.paths.local("models", config.cnn.model_name)
    if fresh:
        for name in ("checkpoints", "tensorboard", "data", WEIGHTS, modeldir.MANIFEST):
            path = model_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    tag_set = tagmod.resolve(c.tag_set)
    arch = dataclasses.asdict(architecture(config))
    init_weights = None
    if init_model is not None:
        source = modeldir.read_manifest(init_model)
        if dataclasses.asdict(Architecture(**source["architecture"])) != arch or source.get("tags") != tag_set:
            raise ValueError(f"{init_model}: its architecture or tags differ from this training's (cnn.preset, "
                             "cnn.input_size, cnn.width, cnn.dense_units, cnn.tag_set); set them as the model's")
        init_weights = str(Path(init_model) / WEIGHTS)
    plan_path = model_dir / "data" / "plan.json"
    if plan_path.is_file() and (model_dir / "checkpoints" / "checkpoint").is_file():
        plan = json.loads(plan_path.read_text())
        changed = [k for k, v in (("images_url", images_url), ("tags", tag_set), ("architecture", arch))
                   if plan[k] != v]
        if changed:
            raise ValueError(f"{model_dir} holds a checkpoint of a training with other {', '.join(changed)}; "
                             "rerun with --fresh to start over, or set cnn.model_name to train another model")
        log.info("resuming %s from its last checkpoint", model_dir)
        return plan
    split = data.split_by_run(spark, images_url, (model_dir / "data").resolve().as_uri(), tag_set,
                              fraction=c.validation_fraction, seed=c.seed, ranks=config.horovod.num_proc,
                              row_group_size_mb=config.tables.row_group_size_mb)
    sizes = (spark.read.parquet(split["train_url"]).groupBy("height", "width").count()
             .orderBy("count", ascending=False).first())
    plan = {**split, "model_dir": str(model_dir), "tags": tag_set, "architecture": arch, "init_weights": init_weights,
            "stored_size": [int(sizes["height"]), int(sizes["width"])],
            "positive_weights": None if c.positive_weights == "none" else
            data.positive_weights(split["train_positives"], split["train_rows"], c.max_positive_weight).tolist()}
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(json.dumps(plan, indent=2) + "\n")
    return plan


def probe_horovod_builds() -> None:
    """Have Horovod probe its builds (MPI, Gloo) now, with nothing for a forked child to collect.

    Horovod probes them once per process in a forked child (``horovod.common.util``), and a fork of
    a driver that holds TensorFlow objects (a notebook's or a test's model) crashed there when the
    child's garbage collector freed one of them. Collecting first and freezing what survives leaves
    the child nothing to free; the answers are cached for the ``horovod.spark.run`` that follows."""
    import gc

    from horovod.common.util import gloo_built, mpi_built

    gc.collect()
    gc.freeze()
    try:
        mpi_built()
        gloo_built()
    finally:
        gc.unfreeze()


def train(spark, config, images_url: str, *, stop_after_epochs: int | None = None, fresh: bool = False,
          init_model: Path | None = None) -> list[dict]:
    """Plan, then train on ``horovod.num_proc`` ranks; returns each rank's result (rank order).
    ``init_model``: start from that model directory's weights (``prepare``)."""
    import horovod.spark

    probe_horovod_builds()
    with stage(spark, "train_cnn: split by run", config.progress.interval_s):
        plan = prepare(spark, config, images_url, fresh, init_model)
    n = config.horovod.num_proc
    epochs_file = Path(plan["model_dir"]) / "checkpoints" / "epochs.jsonl"
    with stage(spark, f"train_cnn: Horovod training on {n} ranks", config.progress.interval_s,
               progress=lambda: epoch_progress(_epoch_log(epochs_file, config.cnn.epochs), config.cnn.epochs)):
        results = horovod.spark.run(train_rank, args=(config, plan, stop_after_epochs), num_proc=n,
                                    nics=set(config.horovod.nics), start_timeout=config.horovod.start_timeout_s,
                                    verbose=0)
    return sorted(results, key=lambda r: r["rank"])
