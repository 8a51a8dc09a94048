"""The run directory: one training run's files, guarded by a lock against a second writer.

Layout: ``config.yaml`` (the resolved config), ``checkpoint.pt`` (resumable state),
``model.safetensors`` (the trained model), ``metrics.json`` (curves, final metrics and the sessions that
trained it), ``metrics.csv`` (a row per epoch, as it trains), ``tensorboard/`` (with the extra) and the plots.
``.lock`` is held while a process trains (`kirchhoffnet.io._lock`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kirchhoffnet._textfile import read_json_mapping
from kirchhoffnet.checkpoint import RUN_MODEL
from kirchhoffnet.config import Config, to_yaml
from kirchhoffnet.diffusion.conditional import CLASSIFIER_FILE, LATENTS_FILE, VAE_FILE
from kirchhoffnet.errors import TrainingError
from kirchhoffnet.io import write_json_atomic, write_text_atomic
from kirchhoffnet.io._lock import LOCK as LOCK
from kirchhoffnet.io._lock import DirectoryLock, refuse_previous_run
from kirchhoffnet.runs import RUN_CONFIG as CONFIG
from kirchhoffnet.runs import RUN_METRICS as METRICS
from kirchhoffnet.runs import read_run_config
from kirchhoffnet.training._log import METRICS_CSV
from kirchhoffnet.training._state import CHECKPOINT

DATA_RECORD = "data.json"
"""The fingerprint of a run's own data (a file or kn.train's arrays): what a resume must be given again."""

RUN_OUTPUTS = (
    CONFIG,
    CHECKPOINT,
    RUN_MODEL,
    METRICS,
    METRICS_CSV,
    DATA_RECORD,
    "loss.png",
    "samples.npy",
    "samples.png",
    "density.png",
    "confusion_matrix.png",
    "predicted_vs_true.png",
    VAE_FILE,  # the latent diffusion task's prepared models and data, and its final figures
    CLASSIFIER_FILE,
    LATENTS_FILE,
    "images.png",
    "latents.png",
    "guidance.png",
)
"""Every file a run writes into its directory: the only targets whose torn temporary files are removed."""
# Settings that may differ when a run is resumed: where and how fast it runs, not what it computes.
RESUMABLE_CHANGES = ("device", "threads")


class RunLock(DirectoryLock):
    """The lock of a training run: removes the torn temporary files of `RUN_OUTPUTS` only."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, RUN_OUTPUTS)


def prepare(run_dir: Path, config: Config, resume: bool) -> None:
    """Check that ``run_dir`` may start (or, with ``resume``, continue) this run. Nothing is written
    until the data have loaded (`record_run`): a run that fails on its data leaves no file that
    would refuse the corrected retry."""
    has_run = (run_dir / CHECKPOINT).is_file()
    if resume:
        if not has_run:
            raise TrainingError(f"nothing to resume in {run_dir}: it holds no {CHECKPOINT}")
        saved = read_run_config(run_dir)
        changed = _differences(saved.model_dump(mode="json"), config.model_dump(mode="json"))
        changed = [k for k in changed if k not in RESUMABLE_CHANGES]
        if changed:
            raise TrainingError(
                f"cannot resume {run_dir} with a different config: {', '.join(changed[:6])} changed; "
                "resume with the same settings or start a new run in another --out"
            )
    elif has_run:
        raise TrainingError(
            f"run directory {run_dir} already holds a run ({CHECKPOINT}); pass --resume to continue it "
            "or choose another --out"
        )
    else:
        refuse_previous_run(run_dir, RUN_OUTPUTS, "choose another --out, or delete those files to start again")


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def record_run(run_dir: Path, config: Config, fingerprint: dict[str, Any] | None, resume: bool) -> None:
    """Write the run's config and the fingerprint of its own data (``data.json``), once its data have
    loaded; a resume first checks that it is given the very data the run started with (same shapes,
    dtypes and SHA-256 of every array)."""
    if fingerprint is not None:
        _record_data(run_dir, fingerprint, resume)
    write_text_atomic(run_dir / CONFIG, to_yaml(config))


def _record_data(run_dir: Path, fingerprint: dict[str, Any], resume: bool) -> None:
    path = run_dir / DATA_RECORD
    if resume and path.is_file():
        saved = read_json_mapping(path, error=TrainingError, label="data record", types={"arrays": dict})["arrays"]
        for name in sorted(set(saved) | set(fingerprint["arrays"])):
            was, now = saved.get(name), fingerprint["arrays"].get(name)
            if was != now:
                raise TrainingError(
                    f"cannot resume {run_dir} with different data: {name} was {_describe(was)}, now {_describe(now)}; "
                    "resume with the data the run started with or start a new run in another --out"
                )
    write_json_atomic(path, fingerprint)


def _describe(array: Any) -> str:
    if not isinstance(array, dict):
        return "absent"
    return f"{array.get('dtype')} {tuple(array.get('shape', ()))} sha256 {str(array.get('sha256'))[:12]}"
