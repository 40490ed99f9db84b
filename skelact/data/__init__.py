"""Data layer: safe annotation I/O, converters, sampling, transforms and the packed dataset."""

from skelact.data.io import AnnotationError, load_annotations, save_annotations, validate_annotations

__all__ = ["AnnotationError", "load_annotations", "save_annotations", "validate_annotations"]
