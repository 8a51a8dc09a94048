"""Compatibility with the original KirchhoffNet code's configs and checkpoints."""

from kirchhoffnet.compat.original import is_original_result, load_original, read_config

__all__ = ["is_original_result", "load_original", "read_config"]
