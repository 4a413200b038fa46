"""Auditing a labelled image folder before training: label issues, leaks, near-duplicates, outliers, bad files."""

from .findings import COLUMNS, ISSUES, AuditFindings, Finding
from .run import audit, write_clean_csv

__all__ = ["COLUMNS", "ISSUES", "AuditFindings", "Finding", "audit", "write_clean_csv"]
