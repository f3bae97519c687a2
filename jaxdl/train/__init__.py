"""Training loops and the timing that goes with them."""

from jaxdl.train.full_batch import full_batch_scan
from jaxdl.train.timing import compile_ahead, median_seconds, timed_call

__all__ = ["compile_ahead", "full_batch_scan", "median_seconds", "timed_call"]
