"""The package's front door: what ``import kirchhoffnet`` loads and what its names are."""

from __future__ import annotations

import subprocess
import sys


def test_kn_train_is_the_typed_trainer_loaded_on_first_use():
    """``import kirchhoffnet`` stays light (the trainer pulls in tasks, data and plotting); ``kn.train`` is
    the training function itself, with its real signature, not an untyped wrapper."""
    code = (
        "import sys, kirchhoffnet as kn; assert 'kirchhoffnet.training' not in sys.modules; "
        "from kirchhoffnet.training import train; assert kn.train is train; "
        "import inspect; print(inspect.signature(kn.train).return_annotation)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "RunResult"
