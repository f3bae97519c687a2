"""Checkpoints with Orbax: the TrainState's arrays plus a JSON record of the run so far.

Orbax writes each checkpoint to a temporary directory and renames it when
complete, so an interrupted save never replaces a good checkpoint; the
manager keeps the newest ``keep``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import flax.serialization
import jax

from jaxdl.train.state import TrainState

logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO


class Checkpoints:
    """Numbered checkpoints (by epoch) under ``directory``."""

    def __init__(self, directory: str | Path, keep: int = 3):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False),
        )

    def save(self, epoch: int, state: TrainState, record: dict[str, Any]) -> None:
        ocp = self._ocp
        arrays = flax.serialization.to_state_dict(state)
        self._manager.save(
            epoch,
            args=ocp.args.Composite(state=ocp.args.StandardSave(arrays), record=ocp.args.JsonSave(record)),
        )
        self._manager.wait_until_finished()

    def latest(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, epoch: int, like: TrainState) -> tuple[TrainState, dict[str, Any]]:
        """The state saved at ``epoch`` (shaped like ``like``) and its JSON record."""
        ocp = self._ocp
        target = flax.serialization.to_state_dict(like)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        restored = self._manager.restore(
            epoch,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()),
        )
        return flax.serialization.from_state_dict(like, restored["state"]), restored["record"]

    def close(self) -> None:
        self._manager.close()
