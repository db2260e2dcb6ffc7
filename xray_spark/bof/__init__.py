"""Bag-of-features baseline of Wang et al.: dense random multi-scale patch descriptors, a k-means
dictionary, spatial-pyramid histograms and one exponential chi-square SVM per tag, as pyspark.ml
stages that compose in one Pipeline (``pipeline.bof_pipeline``)."""
