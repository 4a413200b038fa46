"""Benchmark: search over many feature vectors — exact, faiss IVF (what transferkit uses) and usearch HNSW.

    python bench/search.py [--rows 1000000] [--dim 512] [--hnsw-rows 200000] [--queries 1000]
    python bench/search.py --growing [--rows 1000000] [--dim 512] [--duplicates-rows 100000]

Random-but-clustered unit vectors (2,000 clusters, like images of many near-identical scenes). For each
engine: build time, query latency p50/p99 for k = 10 (one query at a time, as `transferkit similar` serves a
user), recall@10 against exact search, and the process's peak memory. Then `duplicates` over 100,000 vectors.
Every engine runs in this one process on the same vectors; usearch (HNSW, not a transferkit dependency) on
`--hnsw-rows` rows because its build takes far longer on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np


def clustered(n: int, dim: int, clusters: int = 2000, seed: int = 0, noise: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    x = np.empty((n, dim), np.float32)
    for a in range(0, n, 100_000):  # in blocks: memory stays at one copy of the result
        b = min(n, a + 100_000)
        x[a:b] = centres[rng.integers(0, clusters, b - a)] + noise * rng.normal(size=(b - a, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency(search, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    rows, times = [], []
    for q in queries:
        t = time.perf_counter()
        rows.append(search(q[None]))
        times.append(time.perf_counter() - t)
    return np.concatenate(rows), 1e3 * float(np.percentile(times, 50)), 1e3 * float(np.percentile(times, 99))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def run(rows: int, dim: int, queries: int, hnsw_rows: int) -> list[tuple]:
    from transferkit.search.index import SearchIndex

    x = clustered(rows, dim)
    rng = np.random.default_rng(1)
    q = x[rng.choice(rows, queries, replace=False)] + 0.05 * rng.normal(size=(queries, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = SearchIndex(x, [str(i) for i in range(rows)], None, [], "", "bench", "exact")
    timed = min(200, queries)  # exact search of every query one by one would take long at 1M rows
    truth, p50, p99 = latency(lambda v: exact.search(v, 10)[1], q[:timed])
    truth = np.concatenate([truth, exact.search(q[timed:], 10)[1]])
    results = [(f"exact {rows:,}x{dim}", 0.0, p50, p99, 1.0, peak_mib())]
    import faiss

    nlist = int(4 * np.sqrt(rows))
    t = time.perf_counter()
    ann = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ann.train(x[np.random.default_rng(0).permutation(rows)[: max(nlist * 40, 10_000)]])
    ann.add(x)
    build = time.perf_counter() - t
    for nprobe in (16, 32, 64):
        ann.nprobe = nprobe
        found, p50, p99 = latency(lambda v: ann.search(v, 10)[1], q)
        results.append((f"faiss IVF{nlist} nprobe {nprobe}", build, p50, p99, recall(found, truth), peak_mib()))
    if hnsw_rows:
        from usearch.index import Index

        sub = x[:hnsw_rows]
        sub_truth = SearchIndex(sub, [""] * hnsw_rows, None, [], "", "b", "exact").search(q, 10)[1]
        t = time.perf_counter()
        hnsw = Index(ndim=dim, metric="ip", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)
        hnsw.add(np.arange(hnsw_rows), sub)
        build = time.perf_counter() - t
        found, p50, p99 = latency(lambda v: np.asarray(hnsw.search(v, 10).keys).reshape(1, -1), q)
        results.append((f"usearch HNSW {hnsw_rows:,}x{dim}", build, p50, p99, recall(found, sub_truth), peak_mib()))
        sub_ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, int(4 * np.sqrt(hnsw_rows)), faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        sub_ivf.train(sub[: max(int(4 * np.sqrt(hnsw_rows)) * 40, 10_000)])
        sub_ivf.add(sub)
        build = time.perf_counter() - t
        sub_ivf.nprobe = 32
        found, p50, p99 = latency(lambda v: sub_ivf.search(v, 10)[1], q)
        results.append((f"faiss IVF {hnsw_rows:,}x{dim} nprobe 32", build, p50, p99, recall(found, sub_truth),
                        peak_mib()))
    return results


def duplicates_time(n: int = 100_000, dim: int = 512) -> float:
    from transferkit.search.api import duplicates
    from transferkit.search.index import SearchIndex

    x = clustered(n, dim, clusters=n // 2, noise=0.1)  # pairs of near-copies (cosine ~0.99)
    index = SearchIndex(x, [str(i) for i in range(n)], None, [], "", "bench", "exact")
    t = time.perf_counter()
    groups = duplicates(index, threshold=0.95)
    print(f"duplicates over {n:,} x {dim} (exact, all pairs in blocks): {time.perf_counter() - t:.1f} s, "
          f"{len(groups.groups):,} groups")
    return time.perf_counter() - t


def planted(n: int, dim: int, pairs: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered unit vectors with `pairs` planted near-duplicate pairs (cosine 0.95): (vectors, first, second)."""
    x = clustered(n, dim)
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, 2 * pairs, replace=False)
    first, second = rows[:pairs], rows[pairs:]
    noise = rng.normal(size=(pairs, dim)).astype(np.float32)
    noise -= (noise * x[first]).sum(axis=1, keepdims=True) * x[first]
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    x[second] = 0.95 * x[first] + np.sqrt(1 - 0.95 ** 2) * noise
    return x, first, second


def duplicates_at_scale(n: int, dim: int, pairs: int, workdir: Path) -> None:
    """`duplicates` on an imported set of n vectors (approximate above the exact limit): time, planted pairs
    grouped."""
    import transferkit as tk

    x, first, second = planted(n, dim, pairs)
    folder = workdir / f"dup-{n}"
    tk.save_features(folder, x, [f"{i}.jpg" for i in range(n)], overwrite=True)
    del x
    t = time.perf_counter()
    index = tk.search.build_index(folder)
    build = time.perf_counter() - t
    t = time.perf_counter()
    groups = tk.search.duplicates(folder, threshold=0.9)
    seconds = time.perf_counter() - t
    group_of = {p: k for k, g in enumerate(groups.groups) for p, _ in g}
    hit = sum(group_of.get(f"{a}.jpg", -1) == group_of.get(f"{b}.jpg", -2) for a, b in zip(first, second))
    print(f"duplicates over {n:,} x {dim} ({index.kind} index, threshold 0.9): index {build:.1f} s + duplicates "
          f"{seconds:.1f} s = {build + seconds:.1f} s; planted pairs grouped {hit:,}/{pairs:,} "
          f"({hit / pairs:.1%}); peak {peak_mib():,.0f} MiB", flush=True)


def duplicates_recall(n: int, dim: int) -> None:
    """Near-duplicate pairs (>= 0.9, then the whole rule) from the approximate neighbour lists against all pairs
    (exact), same vectors."""
    from transferkit.search.index import SearchIndex, _build_ann, row_ids
    from transferkit.search.near_duplicates import candidate_pairs, standing_out

    x, _, _ = planted(n, dim, n // 50)
    paths = [str(i) for i in range(n)]
    exact = SearchIndex(x, paths, None, [], "", "bench", "exact")
    t = time.perf_counter()
    candidates, _ = candidate_pairs(exact, 0.9)
    confirmed = standing_out(exact, candidates, 0.9)
    t_exact = time.perf_counter() - t
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ids = row_ids(paths)
        ann = _build_ann(x, "ivf", None, Path(tmp), {}, ids)
    approx = SearchIndex(x, paths, None, [], "", "bench", "ivf", ann=ann, ids=ids)
    t = time.perf_counter()
    found_candidates, neighbours = candidate_pairs(approx, 0.9)
    found_confirmed = standing_out(approx, found_candidates, 0.9, neighbours)
    t_approx = time.perf_counter() - t
    as_set = lambda p: set(zip(p.a.tolist(), p.b.tolist()))  # noqa: E731
    for what, truth, found in (("pairs >= 0.9", as_set(candidates), as_set(found_candidates)),
                               ("near-duplicates (the whole rule)", as_set(confirmed), as_set(found_confirmed))):
        print(f"{what} over {n:,} x {dim}: exact {len(truth):,}, approximate {len(found & truth):,} of them "
              f"({len(found & truth) / max(1, len(truth)):.1%}) and {len(found - truth):,} others", flush=True)
    print(f"exact {t_exact:.1f} s, approximate {t_approx:.1f} s", flush=True)


def update_vs_rebuild(n: int, dim: int, fraction: float, workdir: Path) -> None:
    """The approximate index after `fraction` of the rows changed (half replaced, half new, as many removed):
    updated in place (remove_ids/add_with_ids) against built again (trained and filled)."""
    import shutil

    import transferkit as tk
    from transferkit.search.index import build_index, index_dir, load_index

    x = clustered(n, dim)
    paths = [f"{i}.jpg" for i in range(n)]
    old, new = workdir / f"upd-{n}-old", workdir / f"upd-{n}-new"
    tk.save_features(old, x, paths, overwrite=True)
    t = time.perf_counter()
    build_index(old)
    built = time.perf_counter() - t
    k = int(n * fraction / 2)
    rng = np.random.default_rng(2)
    y = np.concatenate([x[k:], clustered(k, dim, seed=3)])  # k removed from the front, k new at the end
    y[rng.choice(n - k, k, replace=False)] = clustered(k, dim, seed=4)  # k changed
    tk.save_features(new, y, paths[k:] + [f"new{i}.jpg" for i in range(k)], overwrite=True)
    shutil.copytree(index_dir(old, "embedding"), index_dir(new, "embedding"))
    t = time.perf_counter()
    load_index(new)  # the features changed: the index is updated, not trained again
    updated = time.perf_counter() - t
    t = time.perf_counter()
    build_index(new)
    rebuilt = time.perf_counter() - t
    print(f"index after {fraction:.0%} of {n:,} x {dim} changed: updated in {updated:.1f} s, built again in "
          f"{rebuilt:.1f} s ({rebuilt / updated:.1f}x; first build {built:.1f} s)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--hnsw-rows", type=int, default=200_000)
    ap.add_argument("--duplicates-rows", type=int, default=100_000)
    ap.add_argument("--growing", action="store_true",
                    help="only the growing-collection numbers: duplicates at --rows (and their recall against "
                         "exact at --duplicates-rows), and the index after 1 %% of --rows changed")
    ap.add_argument("--parts", default="recall,update,duplicates",
                    help="with --growing: which of recall, update, duplicates (comma-separated)")
    ap.add_argument("--workdir", type=Path, default=Path("bench-search"))
    args = ap.parse_args()
    if args.growing:
        args.workdir.mkdir(parents=True, exist_ok=True)
        parts = args.parts.split(",")
        if "recall" in parts:
            duplicates_recall(args.duplicates_rows, args.dim)
        if "update" in parts:
            update_vs_rebuild(args.rows, args.dim, 0.01, args.workdir)
        if "duplicates" in parts:
            duplicates_at_scale(args.rows, args.dim, 2000, args.workdir)
        return
    print(f"{'engine':<38}{'build s':>9}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}{'peak MiB':>10}")
    for name, build, p50, p99, rec, mem in run(args.rows, args.dim, args.queries, args.hnsw_rows):
        print(f"{name:<38}{build:>9.1f}{p50:>9.2f}{p99:>9.2f}{rec:>11.3f}{mem:>10.0f}", flush=True)
    if args.duplicates_rows:
        duplicates_time(args.duplicates_rows, args.dim)


if __name__ == "__main__":
    main()
