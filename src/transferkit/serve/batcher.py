"""Micro-batching: concurrent requests grouped into one model call, off the event loop, with a bounded queue."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor


class QueueFull(Exception):
    """More requests are waiting than the queue holds: answer 503 with Retry-After."""


class MicroBatcher:
    """Group items submitted concurrently into batches of at most `max_batch`, waiting at most `max_wait_ms`
    after the first item of a batch (as LitServe's `max_batch_size`/`batch_timeout`); `fn(list of items)` runs
    in one worker thread and returns one result per item.

    Example:
    >>> batcher = MicroBatcher(lambda xs: [x * 2 for x in xs], max_batch=8)  # doctest: +SKIP
    >>> await batcher.submit(3)  # doctest: +SKIP
    6
    """

    def __init__(self, fn, *, max_batch: int = 32, max_wait_ms: float = 5.0, max_queue: int = 256):
        self.fn, self.max_batch, self.max_wait = fn, max_batch, max_wait_ms / 1000
        self.max_queue = max_queue
        self.queue: asyncio.Queue | None = None
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="transferkit-serve")
        self.task = None
        self.batches = 0  # how many model calls (for the tests and /health)

    async def start(self) -> None:
        self.queue = asyncio.Queue(self.max_queue)
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop (SIGTERM drains in-flight requests)."""
        if self.queue is not None:
            await self.queue.join()
        if self.task is not None:
            self.task.cancel()
        self.worker.shutdown(wait=True)

    async def submit(self, item):
        if self.queue is None:
            raise RuntimeError("the batcher is not started")
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((item, future))
        except asyncio.QueueFull:
            raise QueueFull() from None
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            try:
                results = await loop.run_in_executor(self.worker, self.fn, [item for item, _ in batch])
                self.batches += 1
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
            except Exception as exc:  # the model failed: every request of the batch hears why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            finally:
                for _ in batch:
                    self.queue.task_done()
