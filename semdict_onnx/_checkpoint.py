"""Checkpoints of a dataset scan: its merged state, saved now and then, read back to resume.

A checkpoint is one file, CHECKPOINT_FILE, in the folder given: a local path, or a storage
URI (s3://..., _storage.py). It holds the `DatasetState` merged so far (_dataset_state.py),
written atomically, so a stopped job finds either the previous checkpoint or the new one,
whole. A scan saves it at most every CHECKPOINT_INTERVAL_S seconds, when it is interrupted,
and at the end; a scan given the same folder again starts from it and skips every image it
covers. A checkpoint of a different scan (another layer, basis, model or sample setting) is
refused rather than merged.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ._dataset_state import DatasetState, StateKind
from ._storage import exists, is_storage_uri
from .errors import CheckpointError, ExamplesError

CHECKPOINT_FILE = "dataset-state.npz"
CHECKPOINT_INTERVAL_S = 60.0


class Checkpoint:
    """The checkpoint file of one scan, in the folder `location` (a path or a storage URI)."""

    def __init__(self, location: str | os.PathLike[str], kind: StateKind) -> None:
        self.kind = kind
        if is_storage_uri(location):
            self.name = str(location).rstrip("/") + "/" + CHECKPOINT_FILE
        else:
            self.name = str(Path(location).expanduser() / CHECKPOINT_FILE)
        self._last_save = time.monotonic()

    def load(self) -> DatasetState | None:
        """The saved state, or None when there is none yet; a CheckpointError if it is of
        another scan or unreadable."""
        try:
            saved = exists(self.name) if is_storage_uri(self.name) else Path(self.name).is_file()
            state = DatasetState.load(self.name) if saved else None
        except (OSError, ExamplesError) as exc:
            raise CheckpointError(f"{exc}; delete the checkpoint to start over") from exc
        if state is None:
            return None
        differences = self.kind.differences(state.kind)
        if differences:
            raise CheckpointError(
                f"the checkpoint {self.name} is of another scan ({'; '.join(differences)}); "
                "give this scan another checkpoint folder, or delete that one to start over"
            )
        return state

    def due(self) -> bool:
        """Whether CHECKPOINT_INTERVAL_S has passed since the last save."""
        return time.monotonic() - self._last_save >= CHECKPOINT_INTERVAL_S

    def save(self, state: DatasetState) -> None:
        """Write `state` atomically over the previous checkpoint."""
        state.save(self.name)
        self._last_save = time.monotonic()
