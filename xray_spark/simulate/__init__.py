"""Physics of scattering images: geometry, features, grazing incidence, detector, scenes, labels.

``generate_images(spark, config, n_images, seed, partitions)`` is the entry point: a lazy
DataFrame of the `images` table rendered on executors. See docs/simulate.md for the physics and
the table of tags the generator produces, each with its visibility rule.
"""
from xray_spark.simulate.synthetic_images import generate_images, make_image, tag_prevalence

__all__ = ["generate_images", "make_image", "tag_prevalence"]
