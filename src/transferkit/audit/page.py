"""`audit.html`: one offline page, a section per kind of finding — thumbnails with file names, pairs side by side."""

from __future__ import annotations

from pathlib import Path

from ..data.thumbnails import thumbnail
from ..files import write_text_atomic
from ..templates import render_template
from .findings import ISSUES, AuditFindings

SHOWN = 200  # findings drawn per kind; issues.csv has them all
PAIRED = ("leak", "duplicate")


def _card(root: Path, f) -> dict:
    """What the page shows of one finding: its fields, its thumbnail and, for a pair, the other's."""
    paired = f.issue in PAIRED
    return {**vars(f), "paired": paired, "thumb": thumbnail(root / f.path) if f.issue != "imbalance" else "",
            "other_thumb": thumbnail(root / f.other) if paired and f.other else ""}


def write_page(findings: AuditFindings, index, out: Path, *, title: str) -> Path:
    """Write the page; each kind's findings surest first, at most `SHOWN` of them."""
    root = Path(index.root)
    sections = [{"kind": kind, "why": why, "total": len(rows), "cards": [_card(root, f) for f in rows[:SHOWN]]}
                for kind, why in ISSUES.items() if (rows := findings.of(kind))]
    s = findings.summary
    facts = (f"{s.get('images', len(index))} images, {len(index.class_names)} classes; {s.get('model', '')} features; "
             f"a logistic regression on them reaches {s.get('out_of_fold_accuracy_mean', 0):.1%} ± "
             f"{s.get('out_of_fold_accuracy_std', 0):.1%} out of fold ({s.get('folds', '')} folds)")
    page = render_template("audit.html", title=title, facts=facts, issues=ISSUES, counts=findings.counts(),
                           sections=sections)
    write_text_atomic(out, page)
    return out
