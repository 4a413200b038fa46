"""Execution engines for extraction: local threads (in `extract.runner`) and Ray Data (`ray_engine`)."""
