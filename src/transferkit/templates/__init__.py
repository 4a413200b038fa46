"""HTML templates shipped as package data, filled by name: `__NAME__` placeholders replaced by `render_template`."""

from __future__ import annotations

import re
from importlib import resources


def render_template(name: str, **values: str) -> str:
    """The template file `name` with every `__KEY__` replaced by `values["KEY"]` (already escaped by the caller).

    Raises:
        KeyError: a placeholder of the template has no value (a programming error, caught by the tests).

    Example:
    >>> "<title>" in render_template("explore.html", TITLE="t", DATA="{}")
    True
    """
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    missing = sorted(set(re.findall(r"__([A-Z][A-Z0-9_]*)__", text)) - set(values))
    if missing:
        raise KeyError(f"template {name} needs values for {missing}")
    # one pass, so a value that contains a placeholder-like text is never replaced again
    return re.sub(r"__([A-Z][A-Z0-9_]*)__", lambda m: values[m.group(1)], text)
