"""Pictures: image grids, factor variations, (later) reconstructions and traversals."""

from .grids import factor_variations, grid, save_labelled_grid, save_png, to_hwc_uint8

__all__ = ["factor_variations", "grid", "save_labelled_grid", "save_png", "to_hwc_uint8"]
