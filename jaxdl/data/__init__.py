"""Data sets as in-memory arrays."""

from jaxdl.data.embedded import make_blobs_dataset

__all__ = ["make_blobs_dataset"]
