"""The error of a detector file (or one frame of it) that cannot become an image."""
from __future__ import annotations


class UnreadableFile(Exception):
    """A file (or one frame of it) that cannot become an image; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
