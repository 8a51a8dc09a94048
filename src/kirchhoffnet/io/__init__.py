"""Reading and writing checkpoints and result files, always atomically."""

from kirchhoffnet.io.atomic import atomic_write, write_json_atomic, write_text_atomic
from kirchhoffnet.io.checkpoint import build, load, read, save

__all__ = ["atomic_write", "build", "load", "read", "save", "write_json_atomic", "write_text_atomic"]
