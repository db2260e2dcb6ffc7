"""Typed, versioned configuration: dataclass defaults, a YAML file from conf/, --set overrides.

Load order: the dataclass defaults below, then the YAML file (``conf/local.yaml`` when it exists,
or the file given with ``--conf``), then every ``--set section.key=value`` in order. String values
in a file may name environment variables (``${SPARK_MASTER}``, ``${SPARK_MASTER:-local[*]}``).

Every file carries ``version``; an older file is migrated one version at a time by ``MIGRATIONS``,
so a beamtime's configuration written today still loads years later; a file newer than this code
fails clearly. An unknown key, a wrong type or a value out of range fails at start with the key,
the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from xray_spark.config_types import ConfigError, build, expand_env, merge, migrated, option, parse_override, to_dict
from xray_spark.deploy.settings import DeployConfig
from xray_spark.paths import PathsConfig
from xray_spark.report.live_page import LiveConfig

__all__ = ["CONFIG_VERSION", "Config", "ConfigError", "load_config", "migrate", "parse_override", "to_dict"]

CONFIG_VERSION = 2
DEFAULT_CONF = Path("conf/local.yaml")


@dataclass
class SparkConfig:
    master: str = option("local[*]", "Spark master URL: local[*], local-cluster[2,1,1024], spark://..., yarn, k8s://...")
    app_name: str = option("xray_spark", "prefix of every job's application name")
    log_level: str = option("WARN", "Spark's own log level", choices=["ALL", "DEBUG", "INFO", "WARN", "ERROR", "OFF"])
    local_ip: str = option("127.0.0.1", "SPARK_LOCAL_IP for local masters (never another interface locally)")
    driver_memory: str = option("4g", "spark.driver.memory")
    executor_memory: str = option("2g", "spark.executor.memory")
    executor_cores: int = option(1, "spark.executor.cores", min=1)
    shuffle_partitions: int = option(8, "spark.sql.shuffle.partitions", min=1)
    arrow_batch_rows: int = option(64, "rows per Arrow batch for pandas UDFs (images are large rows)", min=1)
    ui: bool = option(True, "serve the Spark UI")
    java_options: str = option("-XX:TieredStopAtLevel=1", "extra JVM flags of the driver and executors")
    options: dict[str, str] = option({}, "any further spark.* settings, passed through unchanged")


@dataclass
class LoggingConfig:
    level: str = option("INFO", "level of the driver's log", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    format: str = option("%(asctime)s %(levelname)s %(name)s: %(message)s", "logging format of the driver")


@dataclass
class ProgressConfig:
    interval_s: float = option(30.0, "seconds between progress lines (done/total tasks, rate, ETA)", min=0.1)
    console: str = option("auto", "Spark's console bar: auto (terminal or notebook only), always, never",
                        choices=["auto", "always", "never"])


@dataclass
class TablesConfig:
    row_group_size_mb: int = option(32, "Parquet row-group size; bounded so readers shard row groups", min=1, max=1024)
    image_size: int = option(256, "side of the stored (preprocessed) square image, pixels", min=32, max=2048)


@dataclass
class PreprocessConfig:
    full_scale_counts: float = option(1048575.0, "counts mapped to 1.0 by the log scale (20-bit Pilatus/Eiger saturation)", min=1.0)
    mask_threshold: float = option(0.5, "a stored pixel is bad when more than this fraction of its area is bad", min=0.0, max=1.0)
    letterbox: bool = option(False, "keep the frame's aspect ratio in the stored square (margins bad), else stretch it")


@dataclass
class HorovodConfig:
    num_proc: int = option(2, "Horovod ranks (one Spark task each)", min=1)
    nics: list[str] = option(["lo"], "network interfaces Horovod may use; ['lo'] locally")
    start_timeout_s: int = option(180, "seconds Horovod waits for all ranks' Spark tasks to start", min=1)


@dataclass
class CnnConfig:
    preset: str = option("cpu", "network size: paper (227 px input, ~72M parameters, GPU) or cpu (128 px, trains on 2 cores)",
                       choices=["paper", "cpu"])
    input_size: int | None = option(None, "model input side in pixels; null = the preset's (paper 227, cpu 128)", min=16)
    width: float | None = option(None, "multiplier of the conv filters (96, 256, 384, 384, 256); null = the preset's", min=0.01)
    dense_units: int | None = option(None, "units of the two dense layers; null = the preset's (paper 4096, cpu 256)", min=1)
    tag_set: str = option("top17", "tags the network outputs: topN, a group G1..G7, or all")
    model_name: str = option("cnn", "model directory name under paths.models")
    epochs: int = option(30, "training epochs (each sees every training image once)", min=1)
    batch_size: int = option(32, "images per step and rank", min=1)
    learning_rate: float = option(0.01, "SGD learning rate of one rank; multiplied by the number of ranks", min=0.0)
    momentum: float = option(0.9, "SGD momentum", min=0.0, max=1.0)
    warmup_epochs: int = option(2, "epochs of linear learning-rate warm-up from the one-rank rate", min=0)
    lr_schedule: str = option("cosine", "learning rate after the warm-up: constant, or cosine decay to lr_final_fraction",
                              choices=["constant", "cosine"])
    lr_final_fraction: float = option(0.0, "learning rate at the last step as a fraction of the scaled rate (cosine)",
                                      min=0.0, max=1.0)
    positive_weights: str = option("none", "per-tag weight of positives in the loss: none, or balanced (negatives/positives)",
                                 choices=["none", "balanced"])
    max_positive_weight: float = option(10.0, "upper bound of a balanced positive weight", min=1.0)
    validation_fraction: float = option(0.1, "fraction of the runs held out (whole runs) for thresholds and validation",
                                      min=0.01, max=0.9)
    shuffle_buffer: int = option(512, "tf.data shuffle buffer per rank, images", min=1)
    reader_workers: int = option(2, "Petastorm reader threads per rank", min=1)
    threads_per_rank: int = option(1, "TensorFlow intra-op threads per rank (the cores of one Spark task)", min=1)
    mixed_precision: bool = option(False, "float16 compute on GPUs (mixed_float16 policy); output stays float32")
    keep_checkpoints: int = option(2, "checkpoints kept (one per epoch, written by rank 0)", min=1)
    seed: int = option(0, "seed of weight initialisation, shuffling and the run split", min=0)
    inference_batch: int = option(64, "images per forward pass in predict", min=1)
    augment: bool = option(False, "change training images as real frames vary: count scale, background, masked blocks, mirror")
    augment_max_scale: float = option(10.0, "counts multiplied by a log-uniform factor in [1/max, max]", min=1.0)
    augment_max_background: float = option(30.0, "flat background added to half the images, 1 .. this many counts (log-uniform)", min=0.0)
    augment_max_blocks: int = option(3, "up to this many masked rectangles per image (each drawn with p=0.3)", min=0)
    augment_rotate: bool = option(False, "also turn training images by quarter turns (frames are stored rotated)")
    gap_fill: int = option(0, "input: masked pixels near valid ones filled over this window first (0: off)", choices=[0, 3, 5, 7, 9, 11, 13])
    contrast_only: bool = option(False, "input: only the image at its own contrast, not also at the fixed log scale")
    pedestal_percentile: float = option(1.0, "input: a frame's floor (this percentile of its counts, less 3x its noise) taken off first (0: off)", min=0.0, max=50.0)


@dataclass
class SimulateConfig:
    n_images: int = option(1000, "images `xray-spark generate` makes (--n overrides)", min=1)
    seed: int = option(0, "global seed: image i of seed s is the same bytes on any cluster (--seed overrides)", min=0)
    images_per_task: int = option(256, "images per Spark task when --partitions is not given; bounds each output file", min=1)
    render_size: int = option(256, "side of the square grid the detector frame is rendered on; = tables.image_size is fastest",
                            min=32, max=2048)
    beamtime: str = option("synthetic", "beamtime column of generated rows")
    images_per_run: int = option(100, "consecutive images sharing a run_id (runs are the unit of train/validation splits)", min=1)
    geometries: dict[str, float] = option({"TSAXS": 0.2, "TWAXS": 0.2, "GISAXS": 0.3, "GIWAXS": 0.3, "GTSAXS": 0.05},
                                        "weights of the experiment geometries (tags)")
    detectors: dict[str, float] = option({"Pilatus1M": 0.25, "Pilatus300k": 0.15, "Eiger1M": 0.15,
                                        "Photonics CCD": 0.25, "MarCCD": 0.2},
                                       "weights of the detector models (pyFAI names, Photonics CCD, MarCCD)")
    materials: dict[str, float] = option({"AgBH": 0.5, "PS-PMMA": 1.5, "Superlattice": 0.8, "Grating": 0.6,
                                        "Nanoporous": 0.4, "MWCNT": 0.5, "LaB6": 0.5, "Silicon": 0.6, "SiO2": 0.6,
                                        "PDMS": 0.4, "PCBM": 0.5, "P3HT": 2.2, "Rubrene": 0.8, "Empty cell": 0.15,
                                        "Polycrystalline": 1.0},
                                       "weights of the sample materials (tags); each is drawn among those its geometry allows")
    beamstops: dict[str, float] = option({"Linear beamstop": 0.6, "Circular beamstop": 0.25, "none": 0.15},
                                       "weights of the beamstop kinds (tags, or none)")
    beam_off_image_saxs: float = option(0.1, "probability the direct beam lies outside the frame in SAXS/GISAXS", min=0.0, max=1.0)
    beam_off_image_waxs: float = option(0.6, "probability the direct beam lies outside the frame in WAXS/GIWAXS", min=0.0, max=1.0)
    saxs_distance_m: list[float] = option([1.0, 6.0], "[min, max] sample-detector distance in SAXS, metres")
    waxs_distance_m: list[float] = option([0.08, 0.3], "[min, max] sample-detector distance in WAXS, metres")
    wavelength_m: list[float] = option([0.8e-10, 1.6e-10], "[min, max] X-ray wavelength, metres (log-uniform)")
    incidence_deg: list[float] = option([0.08, 0.3], "[min, max] grazing incidence angle, degrees")
    critical_deg: list[float] = option([0.07, 0.16], "[min, max] critical angle of the film, degrees")
    exposure_counts: list[float] = option([5.0, 5.0e4], "[min, max] counts per raw pixel of unit scattering (log-uniform)")
    background_counts: list[float] = option([0.1, 60.0], "[min, max] background counts per raw pixel (log-uniform)")
    artifacts: dict[str, float] = option({"2D detector obstruction": 0.08, "Object obstruction": 0.05,
                                        "Point detector obstruction": 0.03, "Beam streaking": 0.05, "Parasitic slit scattering": 0.02,
                                        "Asymmetric (left/right)": 0.08, "Blocked": 0.02, "Bad beam shape": 0.1,
                                        "Smearred horizon": 0.08, "Theta sweep": 0.05},
                                       "probability of each artifact (tags) per image")
    substrate_halo: float = option(0.5, "probability a GIWAXS film shows its substrate's amorphous SiO2 halo", min=0.0, max=1.0)
    substrate_peak: float = option(0.3, "probability a GIWAXS film shows its Si(001) substrate's (111) Bragg peak", min=0.0, max=1.0)
    dead_fraction: float = option(2e-4, "fraction of rendered pixels that are dead (masked)", min=0.0, max=0.1)
    shadow_transmission: float = option(1e-9, "fraction of the direct beam and scattering that a beamstop or "
                                         "obstruction lets through (tungsten, lead: essentially none)", min=0.0, max=1.0)
    snr_min: float = option(5.0, "a feature is visible when its signal to noise over its visible support reaches this", min=0.0)
    contrast_min: float = option(0.15, "... and its signal over the local background reaches this fraction", min=0.0)
    support_fraction: float = option(0.5, "a feature's support: pixels at >= this fraction of its own maximum", min=0.01, max=1.0)
    min_pixels: int = option(4, "fewest rendered pixels of a beamstop shadow, or visible pixels above the horizon, to tag them",
                           min=1)
    eye_pixels: int = option(25, "stored pixels over which the eye integrates a feature's signal (SNR rule)", min=1)
    many_rings: int = option(5, "visible rings from which an image is tagged Many rings", min=2)
    many_peaks: int = option(10, "visible peaks from which an image is tagged Peaks: Many/field (else Isolated)", min=2)
    weak_counts: float = option(5.0, "Weak scattering: 99th percentile of the sample's counts per raw pixel below this", min=0.0)
    strong_counts: float = option(2.0e4, "Strong scattering: 99th percentile of the sample's counts at or above this", min=0.0)
    high_background_counts: float = option(20.0, "High background: median background at or above this and above the sample's",
                                         min=0.0)


@dataclass
class IngestConfig:
    archive: str = option("archive", "archive root: <beamtime>/<run>/<files>; symlinks and paths outside it are refused")
    labels: str = option("", "expert labels CSV (path or image_id, tags separated by ';'); empty: none")
    sidecar: str = option("run.yaml", "per-run geometry sidecar file name, in each run directory")
    ignore: list[str] = option(["*.yaml", "*.yml", "*.json", "*.csv", "*.txt", "*.log", "*.md", ".*"],
                             "glob patterns of archive files that are not detector images (sidecars, notes)")
    hdf5_datasets: list[str] = option(["/entry/data/data", "/entry/data/data_*", "/entry/instrument/detector/data"],
                                    "HDF5/NeXus dataset paths holding frames, first that exists wins (* = all matching)")
    detector: str = option("", "pyFAI detector name when neither header nor sidecar names one; empty: none")
    distance_m: float = option(1.0, "default sample-detector distance, metres", min=0.0)
    wavelength_m: float = option(1.0e-10, "default X-ray wavelength, metres (1 A = 12.4 keV)", min=0.0)
    pixel_size_m: float = option(172e-6, "default pixel size (both axes), metres", min=0.0)
    beam_center_margin: float = option(0.5, "a beam centre further outside the frame than this fraction of its size is flagged", min=0.0)
    max_bad_fraction: float = option(0.95, "frames with a larger fraction of bad pixels (mask, NaN, negative) are quarantined", min=0.0, max=1.0)
    min_side: int = option(16, "frames smaller than this on either side are quarantined as unexpected shape", min=2)
    tasks_per_core: int = option(4, "read tasks per executor core (files are spread over them)", min=1)
    file_size_mb: int = option(256, "largest images file a read task writes: it holds that much of its rows in memory "
                               "to sort them by image_id", min=1)
    settle_s: float = option(0.0, "files modified less than this many seconds ago (or growing while listed) are "
                             "left for the next run: a frame still being written is not read half-written", min=0.0)
    file_timeout_s: float = option(300.0, "seconds one file may take to read; longer: quarantined as timeout (0: no limit)", min=0.0)
    max_decompressed_mb: int = option(4096, "largest content a .gz/.bz2/.xz detector file may decompress to", min=1)
    isolate_reads: bool = option(True, "read each file in a forked child process: a reader that crashes or hangs costs "
                                 "that file (quarantined: reader_crashed, timeout), not the task")


@dataclass
class BofConfig:
    preset: str = option("demo", "sizes: demo (small, the listed keys) or paper (1000 patches, 2000 words, 1M-descriptor "
                       "k-means sample, whatever patches_per_image, words and sample_size say)",
                       choices=["demo", "paper"])
    patches_per_image: int = option(300, "random patches per image, shared between the scales", min=1)
    scales: list[int] = option([8, 16, 32], "patch sides in pixels, multiples of descriptor_size")
    descriptor_size: int = option(8, "side of the area-averaged patch; descriptor length = size^2 + 2", min=1)
    words: int = option(200, "visual words (k-means k)", min=2)
    sample_size: int = option(200000, "descriptors sampled for the k-means dictionary", min=1)
    init_sample_size: int = option(20000, "descriptors of the driver-side k-means++ initialisation sample", min=1)
    kmeans: str = option("lloyd", "k-means: lloyd (BLAS-3 Lloyd on Spark, k-means++ init) or mllib (MLlib KMeans, "
                       "k-means|| init; slower at large k, see bench/results/kmeans_spark_vs_mllib.json)", choices=["lloyd", "mllib"])
    kmeans_max_iter: int = option(20, "maximum k-means iterations", min=1)
    kmeans_tol: float = option(1e-4, "stop k-means when the inertia improves by less than this (relative)", min=0.0)
    assign_chunk_rows: int = option(2048, "descriptors per GEMM when assigning words", min=1)
    pyramid_levels: int = option(3, "spatial-pyramid levels: 3 = 1x1, 2x2, 4x4 cells", min=1, max=5)
    label_set: str = option("attributes20", "labels the SVMs score: attributes20 (paper's synthetic protocol), "
                          "top17, all, G1..G7, or tag names separated by |")
    svm_c: list[float] = option([0.1, 1.0, 10.0, 100.0], "SVM C values tried by cross-validation")
    svm_gamma_scales: list[float] = option([0.5, 1.0, 2.0], "kernel gammas tried, in units of 1 / mean chi-square "
                                         "distance")
    cv_folds: int = option(3, "cross-validation folds on the training split (grouped by run)", min=2)
    kernel_blocks: int = option(4, "row blocks of the distributed training chi-square distance matrix", min=1)
    test_fraction: float = option(0.25, "fraction of the runs held out for testing (split by run)", min=0.01, max=0.99)
    seed: int = option(0, "seed of patch positions, dictionary sampling, k-means++ and the run split")

    def effective(self) -> "BofConfig":
        """This section with its preset applied."""
        if self.preset == "paper":
            return dataclasses.replace(self, patches_per_image=1000, words=2000, sample_size=1_000_000,
                                       init_sample_size=50_000)
        return self


@dataclass
class AdaptConfig:
    positive_score: float = option(0.9, "self-training: a tag scored at least this is a pseudo-positive", min=0.0, max=1.0)
    negative_score: float = option(0.1, "self-training: a tag scored at most this is a pseudo-negative", min=0.0, max=1.0)
    target_share: float = option(0.25, "self-training, tagged: share of the target frames in the training mix", gt=0.0, max=0.9)
    epochs: int = option(2, "self-training, tagged: epochs of fine-tuning on the mix", min=1)
    learning_rate: float = option(0.002, "self-training, tagged: SGD learning rate of one rank (a fifth of training's)", min=0.0)


@dataclass
class NightlyConfig:
    models: list[str] = option(["cnn-top17"], "model directories (names under paths.models, or paths; cnn-top17 = the "
                               "pretrained CNN shipped with the package) that label each night; [] = ingest and report only")
    review_count: int = option(16, "least confident images listed for review per model in the nightly summary", min=0)


@dataclass
class ExploreConfig:
    """Exploring a beamtime (xray_spark/explore/): embeddings, similar-image search."""
    model: str = option("cnn-top17", "CNN model directory whose penultimate layer embeds the images (a name under "
                        "paths.models, a path, or cnn-top17, the shipped CNN)")
    q_min_nm: float = option(0.03, "lowest q of the I(q) and anisotropy grid, nm^-1 (bins log-spaced)", gt=0.0)
    q_max_nm: float = option(40.0, "highest q of the grid, nm^-1 (SAXS to WAXS)", gt=0.0)
    profile_bins: int = option(48, "bins of the profile and anisotropy grids (log q, or log radius)", min=2)
    radius_min_px: float = option(2.0, "geometry unknown: smallest radius of the log-radius grid, stored pixels", gt=0.0)
    radius_max_px: float = option(362.0, "geometry unknown: largest radius, stored pixels (362: a 256 image's diagonal "
                                  "from a corner beam)", gt=0.0)
    azimuth_sectors: int = option(16, "azimuthal sectors of the anisotropy (spread of I over azimuth per bin)", min=2)
    # the weights: chosen on a validation seed by `python -m bench retrieval` (bench/results/retrieval_precision10.json)
    weight_cnn: float = option(1.0, "weight of the CNN's penultimate layer in the combined embedding", min=0.0)
    weight_profile: float = option(0.25, "weight of the I(q) profile in the combined embedding", min=0.0)
    weight_anisotropy: float = option(0.25, "weight of the anisotropy in the combined embedding", min=0.0)
    weight_scores: float = option(0.5, "weight of the CNN's tag scores (its sigmoid outputs) in the combined embedding",
                                  min=0.0)
    k: int = option(20, "neighbours `xray-spark similar` returns (--k overrides)", min=1)
    index: str = option("ivf", "index written beside the embeddings table for interactive search: ivf (faiss "
                        "IVF-Flat, approximate), flat (faiss exact scan), none", choices=["ivf", "flat", "none"])
    index_probe: int = option(32, "ivf: lists searched per query (more: higher recall, slower)", min=1)
    # clusters, change points and the atlas (xray-spark atlas; explore/clusters.py, explore/run_events.py)
    clusters_k: int = option(0, "clusters per beamtime; 0 = the k of clusters_k_range with the highest silhouette", min=0)
    clusters_k_range: list[int] = option([2, 12], "[min, max] k tried when clusters_k is 0")
    clusters_sample: int = option(5000, "frames sampled (by image_id hash) for the k-means++ start, the silhouette and "
                                  "the atlas' 2-D map", min=2)
    clusters_max_iter: int = option(30, "maximum k-means (Lloyd) iterations", min=1)
    clusters_tol: float = option(1e-4, "stop k-means when the inertia improves by less than this (relative)", min=0.0)
    clusters_seed: int = option(0, "seed of the sample and the k-means++ start", min=0)
    clusters_medoids: int = option(4, "frames nearest each cluster's centre shown and stored", min=1)
    change_window: int = option(8, "frames on each side of a candidate change point (window method; tag events)", min=2)
    change_penalty: float = option(10.0, "an embedding change point must lower the squared error by this many times the "
                                   "run's frame-to-frame noise", gt=0.0)
    atlas_timeline_bins: int = option(300, "frame bins of a run's timeline in the atlas (longer runs are binned)", min=10)
    atlas_waterfall_curves: int = option(24, "profiles per run in the atlas' I(q) waterfall (means over frame bins)", min=2)
    atlas_map_tags: int = option(6, "most frequent tags given a panel of the atlas' 2-D map", min=1)


@dataclass
class StreamConfig:
    """`xray-spark stream`: label frames while the beamtime runs (xray_spark/labelling/streaming.py, docs/streaming.md)."""
    landing: str = option("", "landing directory the detectors write into (<beamtime>/<run>/<files>, the archive "
                          "layout); empty: ingest.archive")
    checkpoint: str = option("", "the stream's own directory: Spark's offsets and commits, the landing notices and "
                             "the labelled batches; one per stream; empty: <paths.root>/checkpoints/stream")
    trigger_s: float = option(1.0, "seconds between micro-batch starts (a longer batch is followed at once)", min=0.1)
    list_interval_s: float = option(0.5, "seconds between listings of the landing directory", min=0.05)
    max_files_per_batch: int = option(64, "most detector files one micro-batch takes; the rest wait for the next "
                                      "(bounds a batch's time after a backlog)", min=1)
    tasks_per_core: int = option(1, "read tasks per core in a micro-batch (ingest.tasks_per_core of the stream: "
                                 "one task per core keeps a small batch's fixed cost low)", min=1)
    models: list[str] | None = option(None, "models that label each batch (names under paths.models, paths, or "
                                      "cnn-top17); null = nightly.models; the live page shows the first")
    live_page: bool = option(True, "publish the live page (report/live_page.py) after every batch")
    page_dir: str = option("", "directory of the live pages, one <beamtime>/index.html each; empty: "
                           "<paths.reports>/live")
    embed_interval_s: float | None = option(60.0, "the label tasks embed each frame (explore.model; for similar-image "
                                            "search and the atlas); every this many seconds, and when the stream "
                                            "stops, a driver thread whose Spark jobs yield the cores to the batches' "
                                            "merges the vectors into the embeddings table; null: the stream embeds "
                                            "nothing (nightly does)", gt=0.0)


@dataclass
class DemoConfig:
    root: str = option("data/demo", "working directory of `xray-spark demo` (wiped at start; only a demo's own)")
    train_images: int = option(1800, "synthetic training images (enough for the CNN to score, not to excel)", min=10)
    archive_files: int = option(24, "detector files in the demo archive (EDF, CBF, TIFF, Eiger in turn)", min=4)
    archive_runs: int = option(4, "runs the demo archive's files are spread over", min=1)
    seed: int = option(1, "seed of the demo archive's images (the training set uses simulate.seed)", min=0)
    bag_of_features: bool = option(True, "also train and evaluate the bag of features (build_dictionary .. evaluate)")
    overrides: list[str] = option(["cnn.epochs=6"], "--set overrides applied to every demo step (small sizes)")


@dataclass
class Config:
    version: int = option(CONFIG_VERSION, "configuration schema version")
    spark: SparkConfig = field(default_factory=SparkConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    progress: ProgressConfig = field(default_factory=ProgressConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    horovod: HorovodConfig = field(default_factory=HorovodConfig)
    cnn: CnnConfig = field(default_factory=CnnConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    bof: BofConfig = field(default_factory=BofConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    nightly: NightlyConfig = field(default_factory=NightlyConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)


# ---------------------------------------------------------------- migrations

def _v1_to_v2(data: dict) -> dict:
    """v1 kept the data root as a top-level ``data_root``; v2 groups every location under ``paths``."""
    data = dict(data)
    if "data_root" in data:
        data.setdefault("paths", {})
        data["paths"] = {**data["paths"], "root": data.pop("data_root")}
    return data


MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2}


def migrate(data: dict, source: str = "configuration") -> dict:
    """Bring a raw configuration mapping of any known version up to ``CONFIG_VERSION``."""
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(f"{source}: 'version' = {version!r}: every configuration needs an integer "
                          f"schema version (current: {CONFIG_VERSION})")
    if version > CONFIG_VERSION:
        raise ConfigError(f"{source}: 'version' = {version}: this xray_spark reads versions "
                          f"1..{CONFIG_VERSION}; upgrade xray_spark to read it")
    return migrated(data, version, CONFIG_VERSION, MIGRATIONS, source)


def load_config(path: str | os.PathLike | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """The effective configuration: defaults, then ``path`` (default conf/local.yaml if present), then overrides."""
    data: dict = {}
    if path is None and DEFAULT_CONF.exists():
        path = DEFAULT_CONF
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"configuration file {str(path)!r} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got {type(loaded).__name__}")
        data = expand_env(migrate(loaded, str(path)), str(path))
    for text in overrides:
        data = merge(data, parse_override(text))
    data.setdefault("version", CONFIG_VERSION)
    if data["version"] != CONFIG_VERSION:
        raise ConfigError(f"'version' = {data['version']!r}: --set cannot change the schema version")
    return build(Config, data)
