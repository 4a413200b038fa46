"""HTML templates shipped as package data, filled by name: `__NAME__` placeholders replaced by `render_template`."""

from __future__ import annotations

import re
from importlib import resources


def script_json(value) -> str:
    r"""`value` as JSON that is safe inside an HTML `<script>` block: `<`, `>`, `&` and the line separators are
    escaped, so a string such as `</script>` or `<!--<script>` (class names come from folder names) cannot end
    or change the block (what Jinja2's `tojson` filter does).

    Example:
    >>> script_json({"classes": ["<!--<script>"]})
    '{"classes":["\\u003c!--\\u003cscript\\u003e"]}'
    """
    import json

    text = json.dumps(value, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def static_file(name: str) -> str:
    """The text of a static file shipped beside the templates (the upload page's script)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


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
