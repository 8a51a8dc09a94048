"""Files, written atomically and read validated: the bottom layer, which knows no model.

Result files and tensor files (`tensorfile`), the run lock, output paths
and figures; building a model from a saved file is [`kirchhoffnet.checkpoint`][kirchhoffnet.checkpoint]'s, one layer up.
"""

from kirchhoffnet.io._atomic import (
    atomic_write,
    save_npy_atomic,
    save_npy_batches_atomic,
    write_json_atomic,
    write_text_atomic,
)
from kirchhoffnet.io.tensorfile import (
    FORMAT,
    check_names_and_shapes,
    differing_buffer,
    load_exact,
    read_tensors,
    write_tensors,
)

__all__ = [
    "FORMAT",
    "atomic_write",
    "check_names_and_shapes",
    "differing_buffer",
    "load_exact",
    "read_tensors",
    "save_npy_atomic",
    "save_npy_batches_atomic",
    "write_json_atomic",
    "write_tensors",
    "write_text_atomic",
]
