"""Exploring a beamtime: embeddings of every image, similar-image search, clusters and change points."""
