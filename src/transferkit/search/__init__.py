"""Search over extracted features: similar images, near-duplicate groups, outliers and an HTML explorer."""

from .api import DEFAULT_THRESHOLD, DuplicateGroups, Match, duplicates, outliers, similar
from .explore import explore
from .index import EXACT_LIMIT, SearchIndex, build_index, load_index
from .project import project_2d

__all__ = ["DEFAULT_THRESHOLD", "DuplicateGroups", "EXACT_LIMIT", "Match", "SearchIndex", "build_index",
           "duplicates", "explore", "load_index", "outliers", "project_2d", "similar"]
