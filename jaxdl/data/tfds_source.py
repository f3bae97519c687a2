"""TFDS as a source: the default for MNIST, Fashion-MNIST and CIFAR-10 where it can download.

TFDS's reader needs TensorFlow (``pip install -e '.[tfds]'``). Batches are
iterated and concatenated: ``batch_size=-1`` aborted the process with
tensorflow-cpu 2.21 in a trial here, iterating did not. Offline, TFDS retries
its downloads for minutes before failing, so a data set that is not yet
prepared is only asked for when its download host answers.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket

import numpy as np

from jaxdl.errors import JaxdlError

LOCAL_COPY_HINT = (
    "point at a local copy with {data} (an image-folder .tar.gz or folder, or an IDX folder) "
    "or set JAXDL_DATA_DIR to a folder holding one"
)
DOWNLOAD_HOST = "storage.googleapis.com"  # where TFDS fetches MNIST and CIFAR-10


def network_reachable(host: str = DOWNLOAD_HOST, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host``:443 opens within ``timeout`` seconds.

    Args:
      host: the host name, by default where TFDS downloads MNIST and CIFAR-10 from.
      timeout: seconds to wait.

    Returns:
      True if the connection opened.
    """
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet():
    """Silences TFDS's and TensorFlow's console chatter; errors still raise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        absl.setLevel(level)


def read_tfds(
    tfds_name: str, split: str, data_dir: str | None = None, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, H, W, C) and int32 labels (N,) of a TFDS split, downloading if needed.

    Args:
      tfds_name: the TFDS builder ("mnist", "fashion_mnist", "cifar10").
      split: the TFDS split ("train", "test").
      data_dir: TFDS's data directory; None for its default.
      batch_size: examples per batch read from TFDS before concatenating.

    Returns:
      ``(images, labels)``.

    Raises:
      JaxdlError: in one line that points to local copies, when TFDS or TensorFlow is missing, the
        data set is not prepared and the download host is unreachable, or TFDS fails otherwise.
    """
    try:
        with _quiet():
            import tensorflow_datasets as tfds

            builder = tfds.builder(tfds_name, data_dir=data_dir)
            if not builder.is_prepared() and not network_reachable():
                raise JaxdlError(
                    f"{tfds_name} is not in TFDS's data directory and {DOWNLOAD_HOST} cannot be "
                    f"reached to download it; {LOCAL_COPY_HINT}"
                )
            ds = tfds.load(tfds_name, split=split, data_dir=data_dir, shuffle_files=False)
            images, labels = [], []
            for batch in tfds.as_numpy(ds.batch(batch_size)):
                images.append(batch["image"])
                labels.append(batch["label"])
    except JaxdlError:
        raise
    except Exception as e:  # TFDS fails in many ways (no TensorFlow, no network, bad split)
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise JaxdlError(
            f"TFDS could not load {tfds_name!r} split {split!r} ({type(e).__name__}: {detail}); {LOCAL_COPY_HINT}"
        ) from None
    if not images:
        raise JaxdlError(f"TFDS returned no examples for {tfds_name!r} split {split!r}")
    return np.concatenate(images).astype(np.uint8), np.concatenate(labels).astype(np.int32)
