"""Pictures: training curves, filters, feature maps, Grad-CAM and embeddings (matplotlib, lazy and headless)."""

from .explain import default_map_layers, gradcam, plot_embedding, plot_gradcam, project_2d
from .plots import plot_confusion, plot_feature_maps, plot_filters, plot_history, plot_top_losses

__all__ = ["default_map_layers", "gradcam", "plot_confusion", "plot_embedding", "plot_feature_maps", "plot_filters",
           "plot_gradcam", "plot_history", "plot_top_losses", "project_2d"]
