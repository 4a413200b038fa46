"""`explore.html`: one self-contained page to browse a feature set — gallery, neighbours, duplicates, outliers, map."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from .api import DEFAULT_THRESHOLD, duplicates, outliers
from .index import SearchIndex, load_index
from .project import project_2d

THUMB = 96  # pixels on the longer side; ~2–4 kB each as JPEG


def _thumbnail(path: Path) -> str:
    """A small JPEG of the image as a data URL ('' when it can no longer be read)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.thumbnail((THUMB, THUMB))
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGBA")
                back = Image.new("RGB", im.size, "white")
                back.paste(im, mask=im.getchannel("A"))
                im = back
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "JPEG", quality=75)
    except (OSError, ValueError, Image.DecompressionBombError):
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def explore(features, out, *, k: int = 8, threshold: float = DEFAULT_THRESHOLD, layer: str | None = None,
            title: str | None = None) -> Path:
    """Write one HTML file (no server, no network) to browse a feature set.

    The page has a paged thumbnail gallery; for the selected image its `k` nearest neighbours; the
    near-duplicate groups (similarity >= `threshold`); the outliers; and a 2-D PCA map coloured by class.

    Example:
    >>> explore("features/", "explore.html")  # doctest: +SKIP
    """
    index = features if isinstance(features, SearchIndex) else load_index(features, layer=layer)
    out = Path(out)
    if out.exists() and out.is_dir():
        raise TransferkitError(f"{str(out)!r} is a folder; pass the HTML file to write, e.g. {out / 'explore.html'}.")
    if not out.parent.exists():
        raise TransferkitError(f"The folder {str(out.parent)!r} does not exist; create it or choose another -o.")
    n = len(index)
    sims, rows = index.neighbours(k)
    groups = duplicates(index, threshold=threshold)
    odd = outliers(index, k=min(5, max(1, n - 1)), top=min(50, n)) if n > 1 else []
    row = {p: i for i, p in enumerate(index.paths)}
    xy = project_2d(index.vectors) if n >= 2 else np.zeros((n, 2))
    span = np.ptp(xy, axis=0)
    xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1)
    root = Path(index.root)
    data = {
        "title": title or f"{index.manifest.get('settings', {}).get('model', '')} {index.layer} — {root}",
        "paths": index.paths,
        "labels": index.labels.tolist() if index.labels is not None else None,
        "classes": index.class_names,
        "thumbs": [_thumbnail(root / p) for p in index.paths],
        "neighbours": rows.tolist(),
        "similarities": np.round(sims, 4).tolist(),
        "groups": [[[row[p], round(s, 4)] for p, s in g] for g in groups.groups],
        "outliers": [[row[p], round(s, 4)] for p, s in odd],
        "xy": np.round(xy, 4).tolist(),
        "threshold": threshold,
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = _PAGE.replace("__TITLE__", html.escape(data["title"])).replace("__DATA__", payload)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TransferkitError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    return out


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:10px 16px;background:#263238;color:#fff}
header h1{font-size:17px;margin:0}
nav button{margin:8px 4px 0 0;padding:4px 10px;border:0;border-radius:3px;background:#455a64;color:#fff;cursor:pointer}
nav button.on{background:#ff9800}
main{display:flex;gap:16px;padding:12px 16px}
#left{flex:3;min-width:0}#right{flex:2;min-width:280px}
.grid{display:flex;flex-wrap:wrap;gap:6px}
.cell{width:104px;font-size:11px;text-align:center;cursor:pointer;border:2px solid transparent;background:#fff}
.cell.sel{border-color:#ff9800}.cell img{width:96px;height:96px;object-fit:contain;display:block;margin:2px auto}
.cell span{display:block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;padding:0 2px}
.group{margin:0 0 10px;padding:6px;background:#fff;border:1px solid #ddd}
#pager{margin:8px 0}#pager button{margin-right:6px}
canvas{background:#fff;border:1px solid #ddd;width:100%;cursor:crosshair}
.legend span{display:inline-block;margin-right:10px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
h2{font-size:15px;margin:6px 0}
</style></head><body>
<header><h1>__TITLE__</h1><div id="stats"></div>
<nav><button data-view="gallery" class="on">Gallery</button><button data-view="duplicates">Duplicates</button>
<button data-view="outliers">Outliers</button></nav></header>
<main><section id="left"><div id="pager"></div><div id="view" class="grid"></div></section>
<section id="right"><h2 id="selname">Select an image</h2><div id="neighbours" class="grid"></div>
<h2>Map (PCA of the features)</h2><canvas id="map" width="600" height="440"></canvas><div class="legend" id="legend"></div>
</section></main>
<div id="errors" style="display:none"></div>
<script>
"use strict";
window.addEventListener("error", e => { const d = document.getElementById("errors"); d.style.display = "block";
  d.textContent += "script error: " + e.message + "\\n"; });
const D = __DATA__;
const PAGE = 120, COLORS = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
let view = "gallery", page = 0, selected = 0;
const $ = id => document.getElementById(id);
function label(i) { return D.labels ? D.classes[D.labels[i]] : ""; }
function colour(i) { return D.labels ? COLORS[D.labels[i] % COLORS.length] : "#1f77b4"; }
function cell(i, note) {
  const c = document.createElement("div"); c.className = "cell" + (i === selected ? " sel" : ""); c.dataset.row = i;
  const img = document.createElement("img"); img.loading = "lazy"; img.alt = D.paths[i]; img.title = D.paths[i];
  if (D.thumbs[i]) img.src = D.thumbs[i];
  const s = document.createElement("span"); s.textContent = note !== undefined ? note : D.paths[i];
  c.append(img, s); c.onclick = () => select(i); return c;
}
function render() {
  const v = $("view"); v.replaceChildren(); $("pager").replaceChildren();
  if (view === "gallery") {
    const pages = Math.max(1, Math.ceil(D.paths.length / PAGE));
    for (let i = page * PAGE; i < Math.min(D.paths.length, (page + 1) * PAGE); i++) v.append(cell(i));
    const prev = document.createElement("button"), next = document.createElement("button");
    prev.textContent = "< previous"; next.textContent = "next >"; prev.disabled = page === 0; next.disabled = page >= pages - 1;
    prev.onclick = () => { page--; render(); }; next.onclick = () => { page++; render(); };
    const info = document.createElement("span"); info.textContent = `page ${page + 1} of ${pages}`;
    $("pager").append(prev, next, info);
  } else if (view === "duplicates") {
    v.className = "";
    if (!D.groups.length) v.textContent = `No near-duplicates at similarity >= ${D.threshold}.`;
    D.groups.forEach((g, n) => { const box = document.createElement("div"); box.className = "group grid";
      const h = document.createElement("h2"); h.style.width = "100%"; h.textContent = `group ${n + 1} (${g.length} images)`;
      box.append(h); g.forEach(([i, s]) => box.append(cell(i, s.toFixed(3)))); v.append(box); });
  } else {
    D.outliers.forEach(([i, s]) => v.append(cell(i, "mean sim " + s.toFixed(3))));
  }
  if (view !== "duplicates") v.className = "grid";
}
function select(i) {
  selected = i; $("selname").textContent = "Nearest to " + D.paths[i] + (label(i) ? " (" + label(i) + ")" : "");
  const nb = $("neighbours"); nb.replaceChildren(cell(i, "selected"));
  D.neighbours[i].forEach((j, r) => nb.append(cell(j, `#${r + 1} ${D.similarities[i][r].toFixed(3)}`)));
  document.querySelectorAll(".cell").forEach(c => c.classList.toggle("sel", +c.dataset.row === i));
  draw();
}
function draw() {
  const cv = $("map"), ctx = cv.getContext("2d"), w = cv.width, h = cv.height, pad = 12;
  ctx.clearRect(0, 0, w, h);
  D.xy.forEach(([x, y], i) => { ctx.fillStyle = colour(i); ctx.globalAlpha = 0.75; ctx.beginPath();
    ctx.arc(pad + x * (w - 2 * pad), pad + (1 - y) * (h - 2 * pad), 3.5, 0, 7); ctx.fill(); });
  ctx.globalAlpha = 1; const [sx, sy] = D.xy[selected] || [0, 0];
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.beginPath();
  ctx.arc(pad + sx * (w - 2 * pad), pad + (1 - sy) * (h - 2 * pad), 8, 0, 7); ctx.stroke();
  cv.dataset.points = D.xy.length;
}
$("map").onclick = e => { const cv = $("map"), r = cv.getBoundingClientRect(), pad = 12;
  const x = (e.clientX - r.left) * cv.width / r.width, y = (e.clientY - r.top) * cv.height / r.height;
  let best = -1, dist = 1e9;
  D.xy.forEach(([px, py], i) => { const dx = pad + px * (cv.width - 2 * pad) - x, dy = pad + (1 - py) * (cv.height - 2 * pad) - y;
    if (dx * dx + dy * dy < dist) { dist = dx * dx + dy * dy; best = i; } });
  if (best >= 0) { page = Math.floor(best / PAGE); if (view === "gallery") render(); select(best); } };
document.querySelectorAll("nav button").forEach(b => b.onclick = () => {
  document.querySelectorAll("nav button").forEach(o => o.classList.toggle("on", o === b)); view = b.dataset.view; render(); });
$("stats").textContent = `${D.paths.length} images · ${D.groups.length} near-duplicate groups (similarity >= ${D.threshold}) · ` +
  `${D.outliers.length} outliers listed`;
if (D.labels) $("legend").replaceChildren(...D.classes.map((c, k) => { const s = document.createElement("span");
  s.innerHTML = `<i style="background:${COLORS[k % COLORS.length]}"></i>`; s.append(c); return s; }));
render(); if (D.paths.length) select(0);
document.body.dataset.ready = "1";
</script></body></html>
"""
