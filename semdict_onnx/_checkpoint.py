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

from ._atomic import write_bytes_atomic
from ._dataset_state import DatasetState, StateKind
from ._storage import exists, is_storage_uri, read_bytes
from ._storage import write_bytes_atomic as write_uri_atomic
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
        self.saves = 0
        self._last_save = time.monotonic()

    def load(self) -> DatasetState | None:
        """The saved state, or None when there is none yet; a CheckpointError if it is of
        another scan or unreadable."""
        try:
            if is_storage_uri(self.name):
                data = read_bytes(self.name) if exists(self.name) else None
            else:
                path = Path(self.name)
                data = path.read_bytes() if path.is_file() else None
        except OSError as exc:
            raise CheckpointError(f"cannot read the checkpoint {self.name} ({exc})") from exc
        if data is None:
            return None
        try:
            state = DatasetState.from_bytes(data, where=f"checkpoint {self.name}")
        except ExamplesError as exc:
            raise CheckpointError(f"{exc}; delete it to start over") from exc
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
        data = state.to_bytes()
        if is_storage_uri(self.name):
            write_uri_atomic(self.name, data)
        else:
            write_bytes_atomic(self.name, data)
        self.saves += 1
        self._last_save = time.monotonic()
