"""How a model's session runs a batch: plainly, or with the speedups measured to pay.

`SessionRunner.run(names, batch)` returns what `session.run(names, {input: batch})` returns:
the same values, bit for bit, or to float rounding where a kernel's summation order follows
the batch size. With speedups on (the default) it uses the speedups measured in
docs/performance.md:
- ONNX Runtime computes every node whatever outputs are asked for, so an output set asked
  for PRUNE_AFTER_IMAGES images in all gets a session of its own pruned to the nodes it
  needs (_subgraph.py; built once, in about as long as a few images take), where that leaves
  out at least PRUNE_MIN_SHARE of the nodes; at most MAX_PRUNED sets do;
- on the CPU, the whole rounds of a batch (one image per core) run as one-thread runs, one
  per core at once, on a one-thread twin of the session (_parallel.py), writing into reused
  output memory (_output_arena.py); single images never build the twin;
- on the CPU, while other work wants the cores (_cpu_load.py), the runs that use the thread
  pool go to a twin whose pool threads sleep instead of spinning while they wait, made on
  the first such run.
With speedups off (`load_model(..., speedups=False)`, or SEMDICT_ONNX_SPEEDUPS=0 in the
environment) every batch is one plain run of the model's own session: for debugging, and to
compare against. `threads` caps the cores used (ONNX Runtime's intra-op threads, and the
one-thread runs at once), as for a Ray actor given one core of a machine shared with others.
Thread-safe: the only state, the pruned and twin sessions, is made under a lock (the load
probe has its own), and ONNX Runtime sessions may be run from several threads at once.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import _parallel
from ._cpu_load import LoadProbe
from ._providers import CPU, LOAD_ERRORS, session_like
from .errors import OptionError

SPEEDUPS_ENV = "SEMDICT_ONNX_SPEEDUPS"
_ENV_VALUES = {"1": True, "on": True, "true": True, "0": False, "off": False, "false": False}
PRUNE_AFTER_IMAGES = 32
PRUNE_MIN_SHARE = 0.1
MAX_PRUNED = 4


def speedups_wanted(speedups: bool | None) -> bool:
    """`speedups` if given, else what SEMDICT_ONNX_SPEEDUPS says (default: on)."""
    if speedups is not None:
        return bool(speedups)
    value = os.environ.get(SPEEDUPS_ENV, "1")
    if value.strip().lower() not in _ENV_VALUES:
        raise OptionError(
            f"{SPEEDUPS_ENV}={value!r} is neither on nor off: set it to 1 (speedups on, the "
            "default) or 0 (every batch one plain run of the model's session)"
        )
    return _ENV_VALUES[value.strip().lower()]


class SessionRunner:
    """Runs output sets of a model's session on batches, with or without the speedups."""

    def __init__(
        self,
        session: ort.InferenceSession,
        source: Path | bytes,
        input_name: str,
        *,
        speedups: bool,
        threads: int | None = None,
    ) -> None:
        self.session = session
        self.speedups = speedups
        self.threads = threads
        self._source = source
        self._input_name = input_name
        self._lock = threading.Lock()
        self._images_asked: collections.Counter[tuple[str, ...]] = collections.Counter()
        # Pruned sessions by sorted output names (None: pruning would not pay); one-thread twins
        # and twins whose threads do not spin, by the id of the session they copy (None: could
        # not be made).
        self.pruned: dict[tuple[str, ...], ort.InferenceSession | None] = {}
        self.twins: dict[int, ort.InferenceSession | None] = {}
        self.yielding: dict[int, ort.InferenceSession | None] = {}
        on_cpu = session.get_providers()[0] == CPU
        self._parallel = _parallel.ParallelRunner(threads) if speedups and on_cpu else None
        self.load = LoadProbe() if speedups and on_cpu else None

    def run(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        """The outputs `names` computed on `batch`, in that order."""
        if not self.speedups:
            return self.session.run(names, {self._input_name: batch})
        session = self._session_for(names, len(batch))
        pooled = session  # what runs on the thread pool: single images, a batch's rest
        if self.load is not None and self.load.contended():
            pooled = (
                self._variant(
                    self.yielding,
                    session,
                    names,
                    intra_op_threads=self.threads or 0,
                    spinning=False,
                )
                or session
            )
        parallel = self._parallel is not None and self._parallel.images_in_parallel(len(batch))
        twin = self._variant(self.twins, session, names, intra_op_threads=1) if parallel else None
        if twin is None:
            return pooled.run(names, {self._input_name: batch})
        return self._parallel.run(twin, pooled, names, self._input_name, batch)

    def _session_for(self, names: list[str], images: int) -> ort.InferenceSession:
        """The session to run `names` on: a pruned one once they have been asked for often."""
        key = tuple(sorted(names))
        with self._lock:
            if key not in self.pruned:
                self._images_asked[key] += images
                if self._images_asked[key] < PRUNE_AFTER_IMAGES or len(self.pruned) >= MAX_PRUNED:
                    return self.session
                self.pruned[key] = self._session_on(names, self.threads or 0)
            return self.pruned[key] or self.session

    def _variant(
        self,
        store: dict[int, ort.InferenceSession | None],
        session: ort.InferenceSession,
        names: list[str],
        **options: int | bool,
    ) -> ort.InferenceSession | None:
        """A session computing what `session` computes with other `options`, made once."""
        with self._lock:
            if id(session) not in store:
                pruned = None if session is self.session else names
                store[id(session)] = self._session_on(pruned, **options)
            return store[id(session)]

    def _pruned_model(self, names: Sequence[str]) -> bytes | None:
        """The model cut down to `names`, or None where that would leave out few nodes."""
        import onnx

        from ._subgraph import prune

        source = self._source
        model = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
        pruned = prune(model, names)
        if len(pruned.graph.node) > (1 - PRUNE_MIN_SHARE) * len(model.graph.node):
            return None
        return pruned.SerializeToString()

    def _session_on(
        self, names: Sequence[str] | None, intra_op_threads: int = 0, spinning: bool = True
    ) -> ort.InferenceSession | None:
        """A session like the model's computing `names` only (None: all), else None.

        None where pruning would leave out few nodes, or the file changed since it was loaded.
        A model prepared in memory (load_model of a raw file with options) has no file of its
        own: its sessions are made from the prepared bytes the runner keeps.
        `intra_op_threads` and `spinning` as in _providers.session_like.
        """
        from google.protobuf.message import DecodeError

        try:
            model = self._source if names is None else self._pruned_model(names)
            if model is None:
                return None
            return session_like(model, self.session, intra_op_threads, spinning=spinning)
        except (OSError, ValueError, DecodeError, *LOAD_ERRORS):
            return None
