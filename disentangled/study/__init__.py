"""Studies: specs and sweeps, executors (inline, local, Ray), the study directory, collection."""

from .spec import StudySpec, load_spec, presets
from .sweep import SpecError, expand

__all__ = ["SpecError", "StudySpec", "expand", "load_spec", "presets"]
