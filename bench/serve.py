"""Benchmark: `transferkit serve` under 1, 8 and 32 concurrent clients against `transferkit predict`'s batch
throughput on the same images, same run, in this one process.

    python bench/serve.py [--images 256] [--model efficientnet_lite0] [--out bench-serve]

Trains a `features` run of the model on generated two-class images (a few epochs: the model's speed, not its
accuracy, is measured), then: `predict` over the images (one call, batches of 32); the server on a free loopback
port, each client posting one image per request (multipart), as many requests as images per level. Prints
requests per second, p50/p99 latency and the ratio to the batch throughput, with the CPU flags.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from machine import cpu_flags  # bench/machine.py (scripts run as python bench/NAME.py)


def make_data(root: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 40), ("validation", n // 2)):
        for c in range(2):
            for i in range(count):
                field = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
                field[..., c] = 255
                path = root / split / f"c{c}" / f"{i:05d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(field).resize((320, 240), Image.BICUBIC).save(path, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--out", type=Path, default=Path("bench-serve"))
    args = ap.parse_args()
    import httpx
    import uvicorn

    import transferkit as tk
    from transferkit.serve import create_app

    shutil.rmtree(args.out, ignore_errors=True)
    make_data(args.out / "data", args.images)
    run = tk.train(args.out / "data", model=args.model, epochs=3, runs_root=args.out / "runs", name="r").run_dir
    images = sorted((args.out / "data" / "validation").rglob("*.jpg"))
    tk.predict(run, images[:32])  # warm
    t = time.perf_counter()
    tk.predict(run, images)
    batch_rate = len(images) / (time.perf_counter() - t)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(run), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    payloads = [(p.name, p.read_bytes()) for p in images]
    print(f"transferkit {tk.__version__}, {args.model}, CPU flags: {cpu_flags()}")
    print(f"predict (batch): {batch_rate:.1f} images/s over {len(images)} images")
    try:
        for clients in (1, 8, 32):
            local = threading.local()

            def call(item):
                if not hasattr(local, "client"):
                    local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
                t0 = time.perf_counter()
                r = local.client.post("/predict", files={"file": (item[0], item[1], "image/jpeg")})
                assert r.status_code == 200, r.text
                return time.perf_counter() - t0

            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(call, payloads[:clients]))  # connections up
                t = time.perf_counter()
                latencies = list(pool.map(call, payloads))
                rate = len(payloads) / (time.perf_counter() - t)
            print(f"serve, {clients:>2} clients: {rate:.1f} requests/s ({rate / batch_rate:.0%} of batch), p50 "
                  f"{1e3 * np.percentile(latencies, 50):.0f} ms, p99 {1e3 * np.percentile(latencies, 99):.0f} ms",
                  flush=True)
    finally:
        server.should_exit = True
        thread.join(30)


if __name__ == "__main__":
    main()
