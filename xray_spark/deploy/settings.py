"""The `deploy` section of the configuration: images, schedule, retries, volumes and the jobs the
recipes run (rendered into deploy/ by ``xray-spark deploy render``)."""
from __future__ import annotations

from dataclasses import dataclass

from xray_spark.config_types import option


@dataclass
class DeployConfig:
    """What `xray-spark deploy render` needs beyond the rest of the file (xray_spark/deploy/)."""
    image: str = option("xray-spark:0.1.0", "CPU image of the Kubernetes jobs (deploy/docker/Dockerfile), as pushed to your registry")
    gpu_image: str = option("xray-spark-gpu:0.1.0", "GPU image of training (deploy/docker/Dockerfile.gpu)")
    spark_image: str = option("apache/spark:3.5.9-scala2.12-java17-ubuntu",
                            "official Spark image the images take Spark and its Kubernetes entrypoint from")
    env_archive: str = option("hdfs:///apps/xray_spark/xray_spark-env.tar.gz",
                            "the packed environment (make dist) as spark-submit finds it; shipped with --archives")
    schedule: str = option("0 2 * * *", "cron schedule (UTC) of the nightly reprocessing")
    retries: int = option(2, "retries of a failed run before it is reported failed", min=0)
    retry_delay_min: int = option(10, "minutes between retries", min=0)
    executor_instances: int = option(4, "executors of a job on Kubernetes and YARN", min=1)
    namespace: str = option("xray", "Kubernetes namespace of the Spark applications")
    service_account: str = option("spark", "Kubernetes service account of the Spark driver")
    archive_claim: str = option("beamtime-archive", "PersistentVolumeClaim of the beamtime archive, mounted read-only at ingest.archive")
    tables_claim: str = option("xray-tables", "PersistentVolumeClaim of the tables and models, mounted at paths.root")
    oneoff_job: str = option("generate", "job of the one-off SparkApplication")
    oneoff_args: list[str] = option(["--n", "100000"], "arguments of the one-off job")
    nightly_job: str = option("nightly", "job of the nightly reprocessing")
    nightly_args: list[str] = option(["--night", "{night}"],
                                   "arguments of the nightly job; {night} is the date the run starts (UTC, YYYY-MM-DD)")
    training_job: str = option("train_cnn", "job of the GPU training run")
    training_args: list[str] = option(["--set", "cnn.preset=paper", "--set", "cnn.mixed_precision=true"],
                                    "arguments of the training job")
    stream_job: str = option("stream", "job of the long-running stream (labels frames while the beamtime runs)")
    stream_args: list[str] = option([], "arguments of the stream job")
    stream_restart_s: int = option(30, "seconds before a failed stream is started again from its checkpoint "
                                   "(Kubernetes); YARN restarts it at once, up to `retries` times an hour", min=0)
    landing_claim: str = option("", "PersistentVolumeClaim of the landing directory (stream.landing), mounted "
                                "read-only there; empty: the landing is inside ingest.archive (archive_claim)")
    live_page_image: str = option("nginx:1.27-alpine", "static web server of the live pages on Kubernetes "
                                  "(serves <page_dir> of the tables claim read-only)")
    databricks_spark_version: str = option("15.4.x-scala2.12", "Databricks runtime of the nightly job (Python 3.11)")
    databricks_gpu_spark_version: str = option("15.4.x-gpu-ml-scala2.12", "Databricks ML GPU runtime of training")
    databricks_node_type: str = option("i3.xlarge", "Databricks worker node type of the nightly job")
    databricks_gpu_node_type: str = option("g4dn.xlarge", "Databricks GPU node type of training (one GPU each)")
    databricks_workers: int = option(4, "Databricks workers per job cluster", min=1)
