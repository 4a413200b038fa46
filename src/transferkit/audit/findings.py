"""The audit's findings: one row per finding (`path,split,issue,score,given,suggested,other`), as a table."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ..files import write_text_atomic

COLUMNS = ("path", "split", "issue", "score", "given", "suggested", "other")
# the kinds, in the order the summary and the page show them, with what to do about each
ISSUES = {
    "unreadable": "cannot be decoded: replace or remove the file",
    "tiny": "smaller than the minimum side: the model sees mostly blur",
    "constant": "one colour (blank, black or white): likely a broken export",
    "leak": "a validation image that is a near-duplicate of a train image (other): remove it from one split",
    "label": "the label disagrees with the images' features (suggested): check it, fix it or drop it",
    "duplicate": "a near-duplicate of another image of its split (other): keep one",
    "outlier": "unlike every other image (below Tukey's fence of the neighbour similarity): check it belongs",
    "imbalance": "a class with under a third of the largest class's images: add images or pass "
                 "--class-weight balanced",
}


@dataclass(frozen=True)
class Finding:
    """One finding. `score` orders findings of a kind: higher is surer (1 − the given label's out-of-fold
    probability; the cosine similarity of a leak or duplicate pair; 1 − the mean similarity to the nearest
    neighbours of an outlier; 1 for an unreadable or constant image)."""

    path: str
    split: str
    issue: str
    score: float
    given: str = ""
    suggested: str = ""
    other: str = ""


class AuditFindings:
    """The findings of an audit, sorted by kind then score (highest first); iterate for `Finding`s.

    Example:
    >>> findings = audit("data/", "audit/")  # doctest: +SKIP
    >>> findings.counts()["label"], findings.of("leak")[0].other  # doctest: +SKIP
    (12, 'train/cats/cat.101.jpg')
    """

    def __init__(self, rows: list[Finding], *, summary: dict | None = None, folder: Path | None = None):
        order = {kind: i for i, kind in enumerate(ISSUES)}
        self.rows = sorted(rows, key=lambda f: (order.get(f.issue, len(order)), -f.score, f.path))
        self.summary = summary or {}
        self.folder = folder

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i) -> Finding:
        return self.rows[i]

    def of(self, issue: str) -> list[Finding]:
        """The findings of one kind, surest first."""
        return [f for f in self.rows if f.issue == issue]

    def counts(self) -> dict[str, int]:
        """How many findings of each kind (every kind present, 0 where none)."""
        found = Counter(f.issue for f in self.rows)
        return {kind: found.get(kind, 0) for kind in ISSUES}

    def flagged(self) -> set[str]:
        """The paths with at least one finding (class-level findings have no path)."""
        return {f.path for f in self.rows if f.path and f.issue != "imbalance"}

    def to_records(self) -> list[dict]:
        return [asdict(f) for f in self.rows]

    def to_pandas(self):
        """The findings as a pandas DataFrame (pandas needed)."""
        import pandas as pd

        return pd.DataFrame(self.to_records(), columns=list(COLUMNS))

    def to_csv(self, path) -> Path:
        """Write the findings as CSV (columns `COLUMNS`), atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for f in self.rows:
            writer.writerow([f.path, f.split, f.issue, f"{f.score:.4f}", f.given, f.suggested, f.other])
        write_text_atomic(path, buf.getvalue())
        return Path(path)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.counts().items() if v)
        return f"AuditFindings({len(self)} rows: {counts or 'none'})"

    def _repr_html_(self, shown: int = 8) -> str:
        """What a notebook cell shows: the count of each kind and the surest label issues as thumbnails."""
        from ..data.thumbnails import gallery
        from ..templates import render_template

        data = self.summary.get("data")
        root = data if data and Path(data).is_dir() else None
        worst = gallery([(f.path, [f"{f.given} → {f.suggested}", f"{f.score:.2f}"]) for f in self.of("label")[:shown]],
                        root=root)
        return render_template("nb_audit.html", total=len(self), counts=list(self.counts().items()), worst=worst)
