"""Pictures: training curves, conv-filter grids and feature-map grids (matplotlib, imported lazily, headless)."""

from .plots import plot_feature_maps, plot_filters, plot_history

__all__ = ["plot_feature_maps", "plot_filters", "plot_history"]
