"""Serving: a trained classifier and a feature set behind an HTTP API with an upload page (FastAPI, uvicorn)."""

from .app import Limits, create_app, serve

__all__ = ["Limits", "create_app", "serve"]
