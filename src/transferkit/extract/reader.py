"""The reader: decodes images in parallel threads, ahead of the model, and yields ordered uint8 batches."""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..data.decode import DecodeError
from ..data.folder import ImageIndex
from ..data.input_config import InputConfig


@dataclass
class Batch:
    """Decoded images of consecutive index positions; files that failed are in `errors`, not in `images`."""

    positions: np.ndarray  # index positions of the rows in `images`
    images: np.ndarray  # (n, size, size, 3) uint8
    errors: list[tuple[int, str]]  # (index position, reason)


def _lower_priority() -> None:
    """Run decoding below the model's threads: the model's parallel ops stall when one of their threads is
    descheduled, so decoding should only fill idle time (Linux per-thread nice; elsewhere a no-op)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError, PermissionError):
        pass


def default_workers() -> int:
    """Decoding threads: one per core (PIL releases the GIL while decoding and resizing)."""
    return max(1, min(8, os.cpu_count() or 1))


class ImageReader:
    """Decode `index` rows `[start, stop)` into batches, with up to `prefetch` batches decoding ahead.

    Args:
        index: the images.
        input_config: how a file becomes the model's input (size, crop, resampling).
        batch_size: images per batch (a batch holds fewer when files fail).
        workers: decoding threads.
        prefetch: batches decoded ahead of the consumer.

    Example:
    >>> for batch in ImageReader(index, InputConfig(224), batch_size=32).iter_range(0, len(index)):  # doctest: +SKIP
    ...     features = model(batch.images)
    """

    def __init__(self, index: ImageIndex, input_config: InputConfig, *, batch_size: int = 32,
                 workers: int | None = None, prefetch: int = 2):
        self.index = index
        self.input_config = input_config
        self.size = input_config.size
        self.batch_size = batch_size
        self.workers = workers or default_workers()
        self.prefetch = max(1, prefetch)

    def _decode(self, i: int):
        try:
            self.index.check(i)
            return self.input_config.load(self.index.absolute(i))
        except DecodeError as exc:
            return exc

    def iter_range(self, start: int, stop: int) -> Iterator[Batch]:
        """Yield the batches of positions `[start, stop)`, in order."""
        window = self.batch_size * (self.prefetch + 1)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="transferkit-decode",
                                initializer=_lower_priority) as pool:
            pending: deque = deque()
            nxt = start
            while nxt < stop or pending:
                while nxt < stop and len(pending) < window:
                    pending.append((nxt, pool.submit(self._decode, nxt)))
                    nxt += 1
                take = min(self.batch_size, len(pending))
                positions, images, errors = [], [], []
                for _ in range(take):
                    pos, fut = pending.popleft()
                    result = fut.result()
                    if isinstance(result, DecodeError):
                        errors.append((pos, result.reason))
                    else:
                        positions.append(pos)
                        images.append(result)
                arr = np.stack(images) if images else np.zeros((0, self.size, self.size, 3), np.uint8)
                yield Batch(np.asarray(positions, dtype=np.int64), arr, errors)
