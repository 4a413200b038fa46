"""Transfer learning: classifier heads and training them with `model.fit`."""

from .heads import build_head, fit_head

__all__ = ["build_head", "fit_head"]
