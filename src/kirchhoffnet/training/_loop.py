"""The training loop: AdamW, a stepped LR schedule, clipping, validation with early stopping,
a NaN policy, atomic checkpoints and exact resume.

Determinism is by construction: the shuffling of epoch e is a pure function of (seed, e) (a
``DistributedSampler`` with ``set_epoch``), and the randomness inside step s comes from a
generator seeded by (seed, rank, s). A run resumed from any checkpoint therefore replays the
same batches and draws as an uninterrupted one; the global RNG states are restored as well.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from kirchhoffnet._finite import require_finite
from kirchhoffnet._progress import bar
from kirchhoffnet.checkpoint import RUN_MODEL
from kirchhoffnet.config import Config, reference_solver
from kirchhoffnet.data.supplied import Pair
from kirchhoffnet.errors import CheckpointError, KirchhoffError, SolverError, TrainingError
from kirchhoffnet.hardware.analysis import Model
from kirchhoffnet.hardware.aware import HardwareAwareTraining
from kirchhoffnet.hardware.variation import trial_seed
from kirchhoffnet.io import check_names_and_shapes, differing_buffer, load_exact, read_tensors, write_json_atomic
from kirchhoffnet.tasks import make_task
from kirchhoffnet.tasks.base import solve_nfe
from kirchhoffnet.training._average import WeightAverage
from kirchhoffnet.training._distributed import Cluster, any_rank, epoch_batches, unwrapped, wrap
from kirchhoffnet.training._history import History, json_safe
from kirchhoffnet.training._log import RunLog, plain_sessions, postfix, session
from kirchhoffnet.training._objective import Objective, make_scheduler
from kirchhoffnet.training._state import (
    CHECKPOINT,
    check_optimizer_state,
    finite_state,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    step_generator,
)
from kirchhoffnet.training.rundir import METRICS

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class RunResult:
    """What [`train`][kirchhoffnet.training.train] returns: where the run lives, the trained model, its metrics."""

    run_dir: Path
    model: nn.Module
    metrics: dict[str, Any]


def _to_host(loss: Tensor | None, norm: Tensor | None) -> tuple[float, float]:
    """The step's loss and gradient norm as floats (NaN where absent), in one device-to-host copy: the NaN policy
    decides on them before the optimiser steps, so a step needs them, but a GPU then waits once, not twice."""
    present = [x.detach().reshape(()).double() for x in (loss, norm) if x is not None]
    values = iter(torch.stack(present).tolist() if present else [])
    return (math.nan if loss is None else next(values)), (math.nan if norm is None else next(values))


class Trainer:
    """One training run in one process (of possibly several under DDP)."""

    def __init__(
        self,
        config: Config,
        cluster: Cluster,
        run_dir: Path,
        progress: bool = True,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        tensorboard: bool | None = None,
        supplied: dict[str, Pair] | None = None,
        resume: bool = False,
    ) -> None:
        self.config, self.cluster, self.run_dir = config, cluster, run_dir
        self.train_cfg = config.train
        self.progress, self.on_step, self.on_epoch, self.tensorboard = progress, on_step, on_epoch, tensorboard
        self.sessions = [session()]  # this process's; a resumed run's earlier ones come from its checkpoint
        self.log: RunLog | None = None
        seed_everything(config.seed)
        self.task = make_task(
            config, cluster.device, DTYPES[config.dtype], run_dir, progress and cluster.leader, supplied
        )
        self.task.prepare()
        self.model = self.task.build_model().to(device=cluster.device, dtype=DTYPES[config.dtype])
        if self.train_cfg.init_from is not None and not resume:  # a resume restores its own parameters
            self._start_from(Path(self.train_cfg.init_from))
        self.objective = wrap(Objective(self.task, self.model, self.train_cfg.rails), cluster)
        self.reference = None if self.train_cfg.reference_solver is None else reference_solver(config).build()
        self.aware = self._hardware_aware()
        decay = self.train_cfg.ema_decay
        self.average = None if decay is None else WeightAverage(self.model, decay)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.train_cfg.lr, weight_decay=self.train_cfg.weight_decay
        )
        self.steps_per_epoch = self._steps_per_epoch()
        self.scheduler = make_scheduler(self.optimizer, self.train_cfg, self.steps_per_epoch)
        self.epoch = self.batch_in_epoch = self.step = 0
        self.history = History()
        self.best: dict[str, Any] = {"loss": math.inf, "epoch": None, "bad_validations": 0}
        self.best_model: dict[str, Tensor] | None = None
        self.consecutive_nan = 0
        self.elapsed = self.cpu_time = 0.0  # wall-clock and this process's CPU seconds of training
        self.status = "running"

    def _start_from(self, path: Path) -> None:
        """The fresh parameters replaced by a trained model's (``train.init_from``), before the optimiser and the
        weight average see them. Its tensors must be those this config builds, topology and capacitances equal."""
        file = path / RUN_MODEL if path.is_dir() else path
        named, against = f"train.init_from {file}", "the model this config builds"
        if getattr(self.config, "baseline", None) is not None:  # a baseline's file holds settings, checked on load
            tensors = self.task.load_model(file).state_dict()
        else:
            tensors = read_tensors(file)[1]
        expected = self.model.state_dict()
        check_names_and_shapes(expected, tensors, named, against)
        different = differing_buffer(self.model, tensors)
        if different is not None:
            raise CheckpointError(f"{named}: its {different} differs from this config's (another topology?)")
        moved = {k: v.to(device=expected[k].device, dtype=expected[k].dtype) for k, v in tensors.items()}
        load_exact(self.model, moved, named, against)

    def _hardware_aware(self) -> HardwareAwareTraining | None:
        """The die injector of ``hardware_aware`` training. Its seed derives from (seed, rank), so the
        dies of training are not those a Monte-Carlo with the run's seed later measures on."""
        settings = self.config.hardware_aware
        if settings is None:
            return None
        return HardwareAwareTraining(
            cast(Model, self.model), settings, seed=trial_seed(self.config.seed, self.cluster.rank)
        )

    def _die(self) -> AbstractContextManager[object]:
        """The model as step ``self.step``'s random die (a pure function of the step), or as it is."""
        return nullcontext() if self.aware is None else self.aware.step(self.step)

    def _steps_per_epoch(self) -> int:
        if self.train_cfg.steps_per_epoch is not None:
            return self.train_cfg.steps_per_epoch
        size = self.task.train_size
        if size is None:
            raise TrainingError("train.steps_per_epoch is required for a task without a training set")
        per_rank = math.ceil(size / self.cluster.world_size)
        return math.ceil(per_rank / self.train_cfg.batch_size)

    # ---- checkpoints ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "history": self.history.columns,
            "partial": self.history.partial,
            "best": self.best,
            "best_model": self.best_model,
            "average": None if self.average is None else self.average.state(),
            "consecutive_nan": self.consecutive_nan,
            "elapsed_s": self.elapsed,
            "cpu_time_s": self.cpu_time,
            "status": self.status,
            "sessions": self.sessions,
            "rng": rng_state(),
        }

    def restore(self, state: dict[str, Any], source: str = "the training state") -> None:
        """Continue from ``state`` (checked by `load_checkpoint`). Everything is checked before the
        model changes: the optimiser state against the parameters, the best model's tensors on a copy
        (now, not when training ends), the model's by the model they enter."""
        try:
            check_optimizer_state(state["optimizer"], list(self.model.parameters()))
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
        if state["best_model"] is not None:
            load_exact(copy.deepcopy(self.model), state["best_model"], f"{source} (best model)", "the run's model")
        if self.average is not None:
            self.average.load(state.get("average") or {}, source)
        load_exact(self.model, state["model"], source, "the run's model")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch_in_epoch, self.step = state["epoch"], state["batch_in_epoch"], state["step"]
        self.history.columns, self.history.partial, self.best = state["history"], state["partial"], state["best"]
        self.best_model, self.consecutive_nan = state["best_model"], state["consecutive_nan"]
        self.elapsed, self.cpu_time, self.status = state["elapsed_s"], state["cpu_time_s"], state["status"]
        set_rng_state(state["rng"])
        self.sessions = [*plain_sessions(state.get("sessions")), *self.sessions[-1:]]

    def resume(self) -> None:
        path = self.run_dir / CHECKPOINT
        try:
            self.restore(load_checkpoint(path), str(path))
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:  # another model's or a hand-edited state
            if isinstance(exc, KirchhoffError):
                raise
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise CheckpointError(f"{path} does not match the run's model: {detail[:300]}") from None

    def checkpoint(self) -> None:
        if self.cluster.leader:
            save_checkpoint(self.run_dir / CHECKPOINT, self.state())
            write_json_atomic(self.run_dir / METRICS, self.metrics(None))

    # ---- the loop -------------------------------------------------------------------------------

    def _train_step(self, indices: Tensor | None) -> tuple[float, float, bool]:
        """One optimiser step; returns (loss, gradient norm, skipped)."""
        generator = step_generator(self.config.seed, self.cluster.rank, self.step)
        batch = self.task.batch(None if indices is None else indices.to(self.cluster.device), generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss: Tensor | None
        try:
            with self._die():  # forward and backward see the same die
                loss = self.objective(batch, generator)
                loss.backward()
        except (SolverError, AssertionError):  # the backward (adjoint) solve blew up; torchdiffeq's asserts
            loss = None
        clip = self.train_cfg.grad_clip or math.inf
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, clip) if params else None
        value, norm_value = _to_host(loss, norm)
        bad = any_rank(not (math.isfinite(value) and math.isfinite(norm_value)), self.cluster)
        if bad:
            self._non_finite(value)
        else:
            self.consecutive_nan = 0
            self.optimizer.step()
            if self.average is not None:
                self.average.update()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        return value, norm_value, bad

    def _non_finite(self, value: float) -> None:
        self.consecutive_nan += 1
        where = f"step {self.step} (epoch {self.epoch + 1}): loss {value}"
        if self.train_cfg.on_nan == "stop":
            self._stop(f"non-finite loss or gradient at {where}; train.on_nan is stop")
        if self.consecutive_nan > self.train_cfg.max_nan_skips:
            self._stop(
                f"{self.consecutive_nan} consecutive steps had non-finite losses or gradients (last at {where}); "
                "lower train.lr, set train.grad_clip, or loosen the solver tolerances"
            )

    def _stop(self, message: str) -> None:
        self.status = "stopped: " + message
        if self.cluster.leader:
            write_json_atomic(self.run_dir / METRICS, self.metrics(None))
        raise TrainingError(f"training stopped: {message}. The last checkpoint in {self.run_dir} is intact")

    def _end_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        row = self.history.close_epoch(self.epoch, self.optimizer.param_groups[0]["lr"], self.elapsed, self.cluster)
        last = self.epoch == self.train_cfg.epochs
        if self.epoch % self.train_cfg.validate_every == 0 or last:
            with self._averaged():  # validation, and the best model, are of what would be saved
                try:
                    row["validation"] = self._validate()
                except SolverError as exc:  # the parameters blew up the circuit: nothing sound to checkpoint
                    self._stop(f"validation after epoch {self.epoch} failed: {exc}")
                row["val_loss"] = row["validation"]["loss"]
                if not math.isfinite(row["val_loss"]):  # outputs overflow: no later step can be finite either
                    self._stop(
                        f"the validation loss after epoch {self.epoch} is {row['val_loss']}: the circuit's outputs "
                        "are not finite; check circuit.capacitance, circuit.times and the solver's step or tolerances"
                    )
                self._track_best(row["val_loss"])
        self._record(row)

    def _validate(self) -> dict[str, Any]:
        """The task's validation figures; with ``train.reference_solver`` also under that solve, as ``reference_*``:
        a network trained on a fixed step can learn to use its error, which only another solve shows."""
        validation = self.task.validate(self.model)
        if self.reference is None:
            return validation
        model = cast(Any, self.model)  # the config admits a reference solver only for a model with a Solver
        trained, model.solver = model.solver, self.reference
        try:
            reference = self.task.validate(model)
        except SolverError as exc:
            raise SolverError(f"under train.reference_solver: {exc}") from None
        finally:
            model.solver = trained
        return {**validation, **{f"reference_{key}": value for key, value in reference.items()}}

    def _record(self, row: dict[str, Any]) -> None:
        """Add an epoch's row to the history and the logs; call ``on_epoch`` for a trained epoch."""
        self.history.append(row)
        if self.log is not None:
            self.log.write(row)
        if self.on_epoch is not None and row["epoch"] > 0:
            self.on_epoch(json_safe(self.history.last()))

    def _averaged(self) -> AbstractContextManager[object]:
        """The model with the parameter average in place (``train.ema_decay``), or as it is."""
        return nullcontext() if self.average is None else self.average.applied()

    def _track_best(self, value: float) -> None:
        stopping = self.train_cfg.early_stopping
        delta = stopping.min_delta if stopping else 0.0
        if math.isfinite(value) and value < self.best["loss"] - delta:
            self.best.update(loss=value, epoch=self.epoch, bad_validations=0)
            if stopping and stopping.restore_best:
                self.best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.best["bad_validations"] += 1
            if stopping and self.best["bad_validations"] >= stopping.patience:
                self.status = "stopped early"

    def fit(self) -> None:
        """Train until the last epoch or early stopping, checkpointing on the way."""
        cfg = self.train_cfg
        steps = bar(
            total=cfg.epochs * self.steps_per_epoch,
            initial=self.step,
            desc=self.config.label,
            unit="step",
            enabled=self.progress and self.cluster.leader,
        )
        started = time.perf_counter() - self.elapsed
        cpu_started = time.process_time() - self.cpu_time

        def clock() -> None:
            self.elapsed = time.perf_counter() - started
            self.cpu_time = time.process_time() - cpu_started

        if self.cluster.leader:
            self.log = RunLog(self.run_dir, self.history.rows(), self.tensorboard)
        if not self.history.columns["epoch"]:  # the untrained model's validation: where the curves start
            validation = self._validate()
            if not math.isfinite(validation["loss"]):
                raise TrainingError(
                    f"the untrained model's validation loss is {validation['loss']}: the circuit's outputs are not "
                    "finite before any step; check circuit.capacitance, circuit.times and the solver's step"
                )
            self._record(
                {"epoch": 0, "val_loss": validation["loss"], "validation": validation, "lr": cfg.lr, "skipped": 0}
            )
        try:
            while self.epoch < cfg.epochs and self.status == "running":
                batches = epoch_batches(
                    self.task.train_size, self.train_cfg.batch_size, self.config.seed, self.epoch, self.cluster
                )
                for position in range(self.batch_in_epoch, self.steps_per_epoch):
                    loss, norm, skipped = self._train_step(batches[position % len(batches)])
                    nfe = solve_nfe(self.model)
                    self.history.add_step(loss, norm, skipped, nfe)
                    self.batch_in_epoch = position + 1
                    clock()
                    steps.update(1)
                    steps.set_postfix(postfix(self.epoch, loss, nfe, self.history), refresh=False)
                    if self.on_step is not None:
                        self.on_step({"epoch": self.epoch, "step": self.step, "loss": loss})
                    every = cfg.checkpoint_every_steps
                    if every and self.step % every == 0 and position + 1 < self.steps_per_epoch:
                        self.checkpoint()
                self._end_epoch()
                clock()
                if self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs or self.status != "running":
                    self.checkpoint()
        finally:
            steps.close()
            if self.log is not None:
                self.log.close()
        columns = self.history.columns  # each epoch's mean training loss, None when every step was skipped
        trained = [loss for epoch, loss in zip(columns["epoch"], columns["train_loss"], strict=True) if epoch > 0]
        if trained and all(loss is None for loss in trained):
            self._stop(
                f"every one of the {self.step} steps had a non-finite loss or gradient, so the model was never "
                "trained; lower train.lr, set train.grad_clip, or check circuit.capacitance and the solver"
            )
        if self.status == "running":
            self.status = "finished"

    # ---- results --------------------------------------------------------------------------------

    def finish(self) -> dict[str, Any]:
        """Keep the best parameters if asked, save the model, evaluate and write metrics and plots."""
        if self.best_model is not None:
            self.model.load_state_dict(self.best_model)
        elif self.average is not None:
            self.average.copy_to_model()
        if not finite_state(self.model.state_dict()):
            raise TrainingError(f"the trained model holds NaN or infinite parameters; {RUN_MODEL} was not written")
        if not self.cluster.leader:
            return {}
        meta = {"task": self.config.task, "name": self.config.label, "epochs": self.epoch, "steps": self.step}
        self.task.save_model(self.model, self.run_dir / RUN_MODEL, meta)
        start = time.perf_counter()
        self.model.eval()
        test = self.task.evaluate(self.model, self.run_dir, self.progress)
        require_finite(
            f"the test {self.task.primary} of {self.run_dir / RUN_MODEL}",
            test.get(self.task.primary, 0.0),
            "the trained circuit's outputs overflow; check circuit.capacitance and the solver",
            TrainingError,
        )
        metrics = self.metrics({**test, "eval_wall_time_s": time.perf_counter() - start})
        self.history.plot(self.run_dir / "loss.png", f"{self.config.label}: loss per epoch")
        write_json_atomic(self.run_dir / METRICS, metrics)
        return metrics

    def close(self) -> None:
        """Drop the DDP wrapper (and its hold on the process group) before the group is destroyed."""
        self.objective = unwrapped(self.objective)

    def metrics(self, test: dict[str, Any] | None) -> dict[str, Any]:
        last = self.history.last()
        return json_safe(
            {
                "task": self.config.task,
                "name": self.config.label,
                "status": self.status,
                "primary_metric": self.task.primary,
                "test": test,
                "num_params": sum(p.numel() for p in self.model.parameters()),
                "epochs_completed": self.epoch,
                "steps": self.step,
                "train_wall_time_s": self.elapsed,
                "train_cpu_time_s": self.cpu_time,  # on a shared machine, nearer the unloaded wall time
                "final_train_loss": last["train_loss"],
                "best_val_loss": self.best["loss"],
                "best_epoch": self.best["epoch"],
                "nfe_forward_per_step": last["nfe_forward"],
                "nfe_backward_per_step": last["nfe_backward"],
                "skipped_steps": sum(self.history.columns["skipped"]),
                "seed": self.config.seed,
                **self.cluster.environment(),
                "sessions": self.sessions,  # versions, git commit, command line, start: one per train() call
                "history": self.history.columns,
            }
        )
