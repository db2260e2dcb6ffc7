"""xray_spark: label synchrotron X-ray scattering images on Spark."""
__version__ = "0.1.0"
