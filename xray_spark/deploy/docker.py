"""deploy/docker/: the CPU image (Spark + Python 3.11 + the pinned environment, built by the
project's own Makefile) and the GPU variant (CUDA TensorFlow, Horovod with NCCL), rendered from
the configuration and the pins of constraints.txt, so image, cluster and laptop run the same
versions.
"""
from __future__ import annotations

import re

from xray_spark.config import Config, ConfigError
from xray_spark.deploy.recipes import ROOT
from xray_spark.deploy.targets import IMAGE_HOME, header


def pins() -> dict[str, str]:
    """``{distribution: version}`` of constraints.txt."""
    text = (ROOT / "constraints.txt").read_text()
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)}


def _spark_stage(config: Config) -> str:
    image = config.deploy.spark_image
    spark = pins()["pyspark"]
    if ":" not in image or not image.split(":", 1)[1].startswith(spark + "-"):
        raise ConfigError(f"deploy.spark_image = {image!r}: its Spark version must be the pinned pyspark "
                          f"{spark} (e.g. apache/spark:{spark}-scala2.12-java17-ubuntu)")
    return image


COMMON_TAIL = f"""
# Spark itself (and the Kubernetes entrypoint of spark-operator pods) from the official image.
COPY --from=spark /opt/spark /opt/spark
COPY --from=spark /opt/entrypoint.sh /opt/decom.sh /opt/
RUN groupadd --system --gid 185 spark && useradd --system --uid 185 --gid 185 --home-dir /opt/spark spark \\
 && mkdir -p /opt/spark/work-dir && chown spark:spark /opt/spark/work-dir
ENV SPARK_HOME=/opt/spark \\
    PATH={IMAGE_HOME}/.venv/bin:/opt/spark/bin:$PATH \\
    PYSPARK_PYTHON={IMAGE_HOME}/.venv/bin/python \\
    PYSPARK_DRIVER_PYTHON={IMAGE_HOME}/.venv/bin/python
WORKDIR /opt/spark/work-dir
USER 185
ENTRYPOINT ["/opt/entrypoint.sh"]
"""


def render_docker(config: Config, conf_file: str) -> dict[str, str]:
    p = pins()
    spark = _spark_stage(config)
    cpu = header(conf_file, "docker") + f"""# CPU image: Spark {p['pyspark']} + Python 3.11 + the pinned environment (constraints.txt), built by
# the same `make venv` as on a laptop. Build from the project root (see deploy/docker/README.md):
#   docker build -f deploy/docker/Dockerfile -t {config.deploy.image} .
FROM {spark} AS spark

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \\
      openjdk-17-jre-headless tini procps make g++ \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR {IMAGE_HOME}
COPY Makefile constraints.txt pyproject.toml README.md ./
COPY xray_spark ./xray_spark
COPY jobs ./jobs
COPY conf ./conf
# tensorflow-cpu {p['tensorflow-cpu']}, horovod {p['horovod']} built with TensorFlow + Gloo, pyspark {p['pyspark']}
RUN make venv PYTHON=python3.11 HVD_WHEELHOUSE=/tmp/wheelhouse && rm -rf /tmp/wheelhouse /root/.cache
{COMMON_TAIL}"""
    tf = p["tensorflow-cpu"]
    gpu = header(conf_file, "docker") + f"""# GPU image: CUDA 12.2 + cuDNN 8.9 (what TensorFlow {tf} is built against), TensorFlow {tf} with
# CUDA, Horovod {p['horovod']} with NCCL for GPU allreduce (Gloo for the rest), Spark {p['pyspark']}.
# Build from the project root (see deploy/docker/README.md):
#   docker build -f deploy/docker/Dockerfile.gpu -t {config.deploy.gpu_image} .
FROM {spark} AS spark

FROM nvidia/cuda:12.2.2-cudnn8-devel-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends software-properties-common \\
 && add-apt-repository -y ppa:deadsnakes/ppa && apt-get update \\
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \\
      openjdk-17-jre-headless tini procps g++ libnccl2 libnccl-dev \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR {IMAGE_HOME}
COPY constraints.txt pyproject.toml README.md ./
COPY xray_spark ./xray_spark
COPY jobs ./jobs
COPY conf ./conf
# The pins of constraints.txt with TensorFlow's CUDA build in place of tensorflow-cpu; the
# package itself without dependencies (its metadata names tensorflow-cpu).
RUN python3.11 -m venv .venv \\
 && sed 's/^tensorflow-cpu==/tensorflow[and-cuda]==/; /^horovod==/d' constraints.txt > /tmp/requirements-gpu.txt \\
 && .venv/bin/pip install --no-cache-dir -c constraints.txt setuptools wheel packaging cmake \\
 && .venv/bin/pip install --no-cache-dir -r /tmp/requirements-gpu.txt \\
 && PATH={IMAGE_HOME}/.venv/bin:$PATH HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 \\
    HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \\
    .venv/bin/pip install --no-cache-dir --no-build-isolation 'horovod[spark]=={p['horovod']}' \\
 && .venv/bin/pip install --no-cache-dir --no-deps . \\
 && .venv/bin/python -c "import horovod.tensorflow as hvd; assert hvd.nccl_built(), 'Horovod built without NCCL'"
{COMMON_TAIL}"""
    readme = header(conf_file, "docker", comment="<!--").replace("\n<!--", " -->\n<!--") + " -->\n" + f"""
# Images

Both images hold Spark {p['pyspark']} (from `{spark}`), Python 3.11, the project
(`jobs/`, `conf/`, the package) under `{IMAGE_HOME}` and its environment in `{IMAGE_HOME}/.venv`,
with the versions of `constraints.txt`. Spark-operator pods start them through Spark's own
`/opt/entrypoint.sh`; `PYSPARK_PYTHON` points at the environment.

| image | Dockerfile | TensorFlow | Horovod |
|---|---|---|---|
| `{config.deploy.image}` | `deploy/docker/Dockerfile` | tensorflow-cpu {tf} | {p['horovod']}, Gloo |
| `{config.deploy.gpu_image}` | `deploy/docker/Dockerfile.gpu` | tensorflow {tf}, CUDA 12.2 | {p['horovod']}, NCCL + Gloo |

Build from the project root (the build context is the checkout), then push to your registry and
set `deploy.image` / `deploy.gpu_image` in `{conf_file}` to the pushed names:

```bash
docker build -f deploy/docker/Dockerfile -t {config.deploy.image} .
docker build -f deploy/docker/Dockerfile.gpu -t {config.deploy.gpu_image} .
docker run --rm {config.deploy.image} {IMAGE_HOME}/.venv/bin/xray-spark doctor
```

The CPU build compiles Horovod against TensorFlow (about 4 minutes on 2 cores); the GPU build
also needs a machine with the CUDA toolkit in the base image (no GPU is needed to build).
"""
    return {"docker/Dockerfile": cpu, "docker/Dockerfile.gpu": gpu, "docker/README.md": readme}
