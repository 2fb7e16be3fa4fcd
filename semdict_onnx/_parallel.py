"""Large CPU batches as concurrent one-thread runs, one per core.

ONNX Runtime parallelizes a run operator by operator over its thread pool, and its threads
meet at the end of every operator. For a batch of several images it is faster to give each
core whole images: a twin session of the same model with one intra-op thread, called from
one Python thread per core (ONNX Runtime releases the GIL while it runs), each run writing
its images straight into the batch's output arrays through IO binding; those come from an
OutputArena (_output_arena.py), so memory the caller let go of is reused. Values are bit for
bit those of one run of the whole batch on the machines measured. On GoogLeNet, 2 cores,
batch 16: see docs/performance.md. It costs a second copy of the weights in memory, made on
the first batch that uses it; single images never do.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

from ._cpu_load import usable_cores
from ._output_arena import OutputArena

# Images per one-thread run: 1, 2 and 4 measured the same; 1 lets any batch of at least one
# image per core run this way.
IMAGES_PER_RUN = 1


class ParallelRunner:
    """Runs the leading whole rounds of a batch as one-thread runs on every core at once.

    `workers` defaults to the cores this process may run on.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = usable_cores() if workers is None else workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # Per session, output names and image shape: each output's shape for one image.
        self._image_shapes: dict[tuple, list[tuple[int, ...]]] = {}
        self._arena = OutputArena()

    def images_in_parallel(self, count: int) -> int:
        """How many of `count` images run in parallel (whole rounds, one run per core)."""
        round_size = self.workers * IMAGES_PER_RUN
        return 0 if self.workers < 2 else count // round_size * round_size

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="semdict-run")
            return self._pool

    def run(
        self,
        twin: ort.InferenceSession,
        session: ort.InferenceSession,
        names: Sequence[str],
        input_name: str,
        batch: np.ndarray,
    ) -> list[np.ndarray]:
        """`names` on `batch`: whole rounds in parallel on `twin`, the rest on `session`."""
        parallel = self.images_in_parallel(len(batch))
        key = (id(twin), tuple(names), batch.shape[1:])
        done = 0
        first: list[np.ndarray] = []
        if key not in self._image_shapes:  # learn the output shapes from a first run
            first = twin.run(list(names), {input_name: batch[:IMAGES_PER_RUN]})
            self._image_shapes[key] = [value.shape[1:] for value in first]
            done = IMAGES_PER_RUN
        outputs = self._arena.arrays([(len(batch), *shape) for shape in self._image_shapes[key]])
        if first:
            for output, value in zip(outputs, first, strict=True):
                output[:done] = value

        def run_into(start: int) -> None:
            stop = start + IMAGES_PER_RUN
            binding = twin.io_binding()
            binding.bind_cpu_input(input_name, batch[start:stop])
            for name, output in zip(names, outputs, strict=True):
                part = output[start:stop]
                binding.bind_output(name, "cpu", 0, np.float32, part.shape, part.ctypes.data)
            twin.run_with_iobinding(binding)

        list(self._executor().map(run_into, range(done, parallel, IMAGES_PER_RUN)))
        if parallel < len(batch):
            rest = session.run(list(names), {input_name: batch[parallel:]})
            for output, value in zip(outputs, rest, strict=True):
                output[parallel:] = value
        return outputs
