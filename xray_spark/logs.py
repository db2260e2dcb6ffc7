"""One logging set-up for driver code, and the summary line every job ends with."""
from __future__ import annotations

import logging
import os
import warnings

from xray_spark.config import Config

log = logging.getLogger("xray_spark")


def setup_logging(config: Config) -> None:
    """Our loggers at ``config.logging.level``; other libraries at WARNING so the log reads as ours.

    Petastorm on pyarrow 10 raises a FutureWarning on every dataset it opens; they are silenced,
    as are TensorFlow's C++ start-up notices.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format=config.logging.format, force=True)
    log.setLevel(config.logging.level)
    warnings.filterwarnings("ignore", category=FutureWarning, module="petastorm")
    warnings.filterwarnings("ignore", category=UserWarning, module="petastorm")


def summary(job: str, seconds: float, unit: str = "images", detail: str = "", **counts: int) -> str:
    """Log and return the one closing line of a job: counts, elapsed time, rate and ``detail``.

    The rate is of ``written`` when counted, else of ``read``.
    """
    done = counts.get("written", counts.get("read", 0))
    rate = done / seconds if seconds > 0 else 0.0
    parts = ", ".join(f"{k} {v}" for k, v in counts.items())
    line = f"{job} done: {parts}; {seconds:.1f} s, {rate:.2f} {unit}/s" + (f"; {detail}" if detail else "")
    log.info(line)
    return line
