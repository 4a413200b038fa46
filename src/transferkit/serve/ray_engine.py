"""The model as a Ray Serve deployment: N replicas, each batching the requests that reach it (`@serve.batch`);
the HTTP app stays the same and awaits the deployment instead of its in-process batcher."""

from __future__ import annotations

from ..errors import TransferkitError, install_hint


class RayRunner:
    """`submit(image)` → the replicas' answer; the same interface as `MicroBatcher`.

    Example:
    >>> runner = RayRunner("runs/lite0-features", replicas=2, max_batch=32, max_wait_ms=5)  # doctest: +SKIP
    """

    def __init__(self, run, *, replicas: int = 2, max_batch: int = 32, max_wait_ms: float = 5.0,
                 address: str | None = None):
        self.run, self.replicas, self.max_batch, self.max_wait = str(run), replicas, max_batch, max_wait_ms / 1000
        self.address = address
        self.handle = None
        self.batches = 0
        self._started_ray = False

    async def start(self) -> None:
        try:
            import ray
            from ray import serve
        except ImportError:
            raise TransferkitError(f"--engine ray needs Ray Serve: {install_hint('ray')}.") from None
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            self._started_ray = True
        max_batch, wait = self.max_batch, self.max_wait

        @serve.deployment(num_replicas=self.replicas, max_ongoing_requests=4 * max_batch)
        class TransferkitModel:
            def __init__(self, run: str):
                from transferkit.serve.models import Classifier

                self.classifier = Classifier(run, batch_size=max_batch)

            @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait)
            async def __call__(self, images):
                return self.classifier(list(images))

        self.handle = serve.run(TransferkitModel.bind(self.run), name="transferkit", route_prefix=None)

    async def submit(self, image):
        self.batches += 1
        return await self.handle.remote(image)

    async def stop(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        if self._started_ray:
            ray.shutdown()
