"""HTML templates shipped as package data, rendered by Jinja2 with autoescape: every value is escaped unless a
template says otherwise, so a file or class name cannot change a page."""

from __future__ import annotations

import functools
from importlib import resources


def png_data_url(path) -> str:
    """A PNG file as a data URL, for a page or a notebook cell ('' when the file is missing)."""
    import base64
    from pathlib import Path

    path = Path(path)
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() if path.is_file() else ""


def static_file(name: str) -> str:
    """The text of a static file shipped beside the templates (the upload page's script)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@functools.cache
def _environment():
    import json

    import jinja2

    def load(name: str):
        path = resources.files(__package__).joinpath(name)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    env = jinja2.Environment(loader=jinja2.FunctionLoader(load), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.policies["json.dumps_kwargs"] = {"separators": (",", ":"), "sort_keys": False}
    env.filters["json"] = lambda v: json.dumps(v, ensure_ascii=False)  # shown as text: escaped like any value
    env.filters["percent"] = lambda v, digits=1: f"{float(v):.{digits}%}"
    env.filters["fixed"] = lambda v, digits=3: f"{float(v):.{digits}f}"
    return env


def render_template(name: str, **values) -> str:
    """The template file `name` rendered with `values`; every value is HTML-escaped where it is put (autoescape),
    and `|tojson` makes a value safe inside `<script>`.

    Raises:
        jinja2.UndefinedError: the template uses a value that was not given (a programming error, caught by the
            tests).

    Example:
    >>> page = render_template("explore.html", title="<b>cats</b>", data={})
    >>> "<title>&lt;b&gt;cats&lt;/b&gt;</title>" in page
    True
    """
    return _environment().get_template(name).render(**values)
