"""Flax modules for the tutorials' networks."""

from jaxdl.models.blobs import BlobClassifier, tutorial_log, tutorial_params

__all__ = ["BlobClassifier", "tutorial_log", "tutorial_params"]
