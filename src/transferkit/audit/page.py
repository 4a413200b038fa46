"""`audit.html`: one offline page, a section per kind of finding — thumbnails with file names, pairs side by side."""

from __future__ import annotations

import html
from pathlib import Path

from ..files import write_text_atomic
from ..search.explore import thumbnail
from ..templates import render_template
from .findings import ISSUES, AuditFindings

SHOWN = 200  # findings drawn per kind; issues.csv has them all
PAIRED = ("leak", "duplicate")


def _figure(root: Path, path: str, caption: str) -> str:
    src = thumbnail(root / path) if path else ""
    img = f'<img src="{src}" alt="{html.escape(path)}">' if src else '<div class="none">no preview</div>'
    return f"<figure>{img}<figcaption>{caption}</figcaption></figure>"


def _card(root: Path, f) -> str:
    esc = html.escape
    name = f"<b>{esc(f.path)}</b>" + (f" ({esc(f.split)})" if f.split else "")
    facts = {"label": f"given <b>{esc(f.given)}</b> → suggested <b>{esc(f.suggested)}</b>",
             "leak": f"similarity {f.score:.3f} to the train image", "duplicate": f"similarity {f.score:.3f}",
             "outlier": f"class {esc(f.given)}", "imbalance": esc(f.other)}.get(f.issue, esc(f.other))
    score = f"score {f.score:.3f}" if f.issue not in PAIRED else ""
    own = _figure(root, f.path if f.issue != "imbalance" else "", f"{name}<br>{facts}<br>{score}")
    if f.issue in PAIRED:
        return f'<div class="pair">{own}{_figure(root, f.other, "<b>" + esc(f.other) + "</b>")}</div>'
    return own


def write_page(findings: AuditFindings, index, out: Path, *, title: str) -> Path:
    """Write the page; each kind's findings surest first, at most `SHOWN` of them."""
    esc = html.escape
    root = Path(index.root)
    counts = findings.counts()
    summary = "".join(f'<tr><th><a href="#{k}">{k}</a></th><td class=num>{counts[k]}</td><td>{esc(why)}</td></tr>'
                      for k, why in ISSUES.items())
    sections = []
    for kind, why in ISSUES.items():
        rows = findings.of(kind)
        if not rows:
            continue
        more = f"<p>… and {len(rows) - SHOWN} more in issues.csv.</p>" if len(rows) > SHOWN else ""
        cards = "".join(_card(root, f) for f in rows[:SHOWN])
        sections.append(f'<h2 id="{kind}">{kind} ({len(rows)})</h2><p>{esc(why)}</p><div class="cards">{cards}</div>'
                        f"{more}")
    s = findings.summary
    facts = (f"{s.get('images', len(index))} images, {len(index.class_names)} classes; {s.get('model', '')} features; "
             f"a logistic regression on them reaches {s.get('out_of_fold_accuracy_mean', 0):.1%} ± "
             f"{s.get('out_of_fold_accuracy_std', 0):.1%} out of fold ({s.get('folds', '')} folds)")
    page = render_template("audit.html", TITLE=esc(title), FACTS=esc(facts), SUMMARY=summary,
                           SECTIONS="".join(sections) or "<p>No findings.</p>")
    write_text_atomic(out, page)
    return out
