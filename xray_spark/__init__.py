"""xray_spark: label synchrotron X-ray scattering images on Spark."""
__version__ = "0.1.0"

from xray_spark import worker as _worker

if _worker.in_pyspark_worker():
    _worker.keep_zip_directories()
