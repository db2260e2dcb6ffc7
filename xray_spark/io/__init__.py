"""Detector files and beamtime archives: readers, geometry and masks, discovery, manifest, quarantine, labels."""
