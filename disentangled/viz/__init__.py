"""Pictures: image grids, factor variations, and a trained model's reconstructions and traversals."""

from .grids import captioned_grid, factor_variations, grid, labelled_grid, save_gif, save_labelled_grid, save_png, to_hwc_uint8
from .pairs import pair_pictures


def visualize(run_dir, output_dir=None, **options):
    """A finished run's pictures (see :func:`disentangled.viz.model.visualize`; imports torch)."""
    from .model import visualize as _visualize

    return _visualize(run_dir, output_dir, **options)


__all__ = [
    "captioned_grid",
    "factor_variations",
    "grid",
    "labelled_grid",
    "pair_pictures",
    "save_gif",
    "save_labelled_grid",
    "save_png",
    "to_hwc_uint8",
    "visualize",
]
