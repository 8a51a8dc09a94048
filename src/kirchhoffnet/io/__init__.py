"""Reading and writing checkpoints and result files, always atomically."""

from kirchhoffnet.io.atomic import (
    atomic_write,
    save_npy_atomic,
    save_npy_batches_atomic,
    write_json_atomic,
    write_text_atomic,
)
from kirchhoffnet.io.checkpoint import build, check_kind, load, load_exact, read, save
from kirchhoffnet.io.locate import RUN_MODEL, load_model

__all__ = [
    "RUN_MODEL",
    "atomic_write",
    "build",
    "check_kind",
    "load",
    "load_exact",
    "load_model",
    "read",
    "save",
    "save_npy_atomic",
    "save_npy_batches_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
