"""Params the bag-of-features stages share that ``pyspark.ml.param.shared`` has no mixin for.

Written like pyspark's shared mixins (a class-level ``Param``, a getter); the defaults are set by
each stage's ``__init__``, so that a stage's every default is in one place. Columns default to the
names of the images and features tables (``schema``); a stage reads every column it uses from one
of its Params, so it runs on tables whose columns are named otherwise.
"""
from __future__ import annotations

from pyspark.ml.param import Param, Params, TypeConverters


def param(name: str, doc: str, converter) -> Param:
    """A Param declared on a class (``Params._dummy()`` parent, as pyspark's own)."""
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class HasImageIdCol(Params):
    imageIdCol = param("imageIdCol", "column of the image ids (they key rows and seed the per-image random streams)",
                       TypeConverters.toString)

    def getImageIdCol(self) -> str:
        return self.getOrDefault(self.imageIdCol)


class HasSkipReasonCol(Params):
    skipReasonCol = param("skipReasonCol", "column of why an image yields no patch (null when it yields some)",
                          TypeConverters.toString)

    def getSkipReasonCol(self) -> str:
        return self.getOrDefault(self.skipReasonCol)


class HasPatchCountCol(Params):
    patchCountCol = param("patchCountCol", "column of the number of patches of an image",
                          TypeConverters.toString)

    def getPatchCountCol(self) -> str:
        return self.getOrDefault(self.patchCountCol)


class HasCentresCol(Params):
    centresCol = param("centresCol", "column of the patch centres (raw little-endian float32 (row, column) "
                       "fractions)", TypeConverters.toString)

    def getCentresCol(self) -> str:
        return self.getOrDefault(self.centresCol)


class HasProgressInterval(Params):
    progressInterval = param("progressInterval", "seconds between progress lines of the stage's Spark jobs",
                             TypeConverters.toFloat)

    def getProgressInterval(self) -> float:
        return self.getOrDefault(self.progressInterval)
