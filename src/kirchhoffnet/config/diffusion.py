"""The diffusion task's config: a score model trained by denoising score matching with the shared
trainer, then sampled by digital, circuit or simulated analog RRAM solvers.

``model`` is a union keyed on ``model.kind``: ``crossbar`` (the RRAM paper's ReLU score network) or
``kirchhoffnet`` (a score circuit whose node dynamics are the probability-flow velocity). Each kind
takes only its own settings, so a setting of the other kind is an unknown key, not a silent no-op.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from kirchhoffnet.config.circuit import SEED_MAX, Section, one_of
from kirchhoffnet.config.tasks import RunConfig
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.data.points import POINT_SETS
from kirchhoffnet.errors import DataError
from kirchhoffnet.rram.device import RRAMDevice
from kirchhoffnet.rram.loop import LoopSettings

MAX_INTEGRATED_BETA = math.log(float(np.finfo(np.float32).max))
"""Largest ∫₀¹β (with the samplers' β scale) whose exp() float32 still represents (≈ 88.7): the
marginals use exp(−∫β) and the samplers its inverse, so beyond it every sampler overflows."""
DIFFUSION_DATA = (*POINT_SETS, "latent")
SCORE_KINDS = ("crossbar", "kirchhoffnet")


class SDEConfig(Section):
    """The variance-preserving SDE dx = −½β(s) x ds + √β(s) dW, β linear in s ∈ [0, 1]."""

    beta_min: float = Field(default=0.01, gt=0, description="β at diffusion time s = 0.")
    beta_max: float = Field(
        default=8.0, gt=0, description="β at s = 1; ∫β ≈ β_max / 2 should reach ≳ 3 so x_1 ≈ N(0, I)."
    )
    s_min: float = Field(
        default=1e-3, gt=0, lt=1, description="Smallest diffusion time (training and end of sampling)."
    )

    @model_validator(mode="after")
    def _representable(self) -> SDEConfig:
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max: must not be below beta_min ({self.beta_min:g}), got {self.beta_max:g}")
        total = 0.5 * (self.beta_min + self.beta_max)
        if total > MAX_INTEGRATED_BETA:
            raise ValueError(
                f"beta_max: ∫β = (beta_min + beta_max)/2 = {total:.3g} overflows the samplers: exp(∫β) must stay "
                f"below float32's largest value, i.e. ∫β <= {MAX_INTEGRATED_BETA:.1f} (∫β ≈ 4 already makes "
                "x_1 ≈ N(0, I))"
            )
        return self


class CrossbarScoreConfig(Section):
    """The RRAM paper's score network dim → width → width → dim on crossbars."""

    kind: Literal["crossbar"] = Field(default="crossbar", description="The RRAM crossbar score network.")
    width: int = Field(
        default=14, ge=2, description="Hidden width (14 in the paper: 7 embedding frequencies, sin and cos)."
    )
    amplitude: float = Field(default=5.0, gt=0, description="Fixed output gain of the network (5 in the paper).")
    parametrization: Literal["score", "noise"] = Field(
        default="noise", description="score: the output is the score (the paper); noise: it predicts the added noise."
    )
    noise_floor: float = Field(
        default=0.04, ge=0, le=1e3, description="Noise parametrization: score = −output / √(σ² + floor²)."
    )
    bias: bool = Field(default=True, description="Layers with biases (one extra crossbar row each).")
    frequency_scale: float = Field(
        default=1.0, gt=0, description="Standard deviation of the time-embedding frequencies."
    )


class CircuitScoreConfig(Section):
    """The KirchhoffNet score circuit (see `kirchhoffnet.diffusion.score_circuit`)."""

    kind: Literal["kirchhoffnet"] = Field(description="A KirchhoffNet score circuit.")
    hidden: int = Field(default=32, ge=1, description="Hidden nodes (capacitors with a leak to ground).")
    time_nodes: int = Field(
        default=8, ge=2, description="Driven time nodes: voltage sources carrying sin/cos of the diffusion time."
    )
    repeat: int = Field(default=2, ge=1, description="Parallel devices per data–hidden node pair.")
    device: str = Field(default="ShiftTanh2", description="Device family of the learnable edges.")
    leak: float = Field(default=1.0, gt=0, description="Leak conductance g of every hidden node (normalised).")
    settle_steps: int = Field(
        default=5,
        ge=1,
        description="Relaxation steps h ← I_h/g from h = 0 that settle the hidden nodes (passive: at most, Newton).",
    )
    frequency_scale: float = Field(default=1.0, gt=0, description="Std of the time-embedding frequencies.")
    init_scale: float = Field(default=1.0, gt=0, description="Initial device parameters ~ N(0, init_scale²).")
    contraction: float | None = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Bound ρ on the hidden nodes' loop gain (unique equilibrium, settle error ≤ ρⁿ); null = none.",
    )
    passive: bool = Field(
        default=False,
        description=(
            "Hidden terminals as loads (gain ≤ 0): unique equilibrium at any gain, solved by Newton in at most "
            "settle_steps steps; needs contraction: null."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> CircuitScoreConfig:
        if self.time_nodes % 2:
            raise ValueError(f"time_nodes: must be even (sin and cos per frequency), got {self.time_nodes}")
        if self.passive and self.contraction is not None:
            raise ValueError("contraction: passive hidden terminals replace the contraction bound; set it to null")
        return self

    def arguments(self) -> dict[str, object]:
        """The keyword arguments of `ScoreCircuit`."""
        return self.model_dump(exclude={"kind"})


ScoreModelConfig = Annotated[CrossbarScoreConfig | CircuitScoreConfig, Field(discriminator="kind")]


class NoiseAwareConfig(Section):
    """Multiplicative weight noise during training (the RRAM paper's noise-aware training)."""

    std: float = Field(
        default=0.1, gt=0, description="Std of the multiplicative weight noise during training (paper: 0.1)."
    )
    limit: float = Field(default=0.2, gt=0, description="The noise is clipped to ± this (paper: 0.2).")
    draws: int = Field(
        default=1, ge=1, description="Independent noise draws per step, each on its own share of the batch."
    )


class SaturationConfig(Section):
    """The RRAM authors' training penalty on hidden amplifier outputs beyond the saturation level."""

    level_v: float = Field(gt=0, description="Saturation level, volts: outputs beyond ± this are penalised.")
    weight: float = Field(default=1.0, gt=0, description="Penalty weight per squared volt of excess.")


class ScoreMatchingConfig(Section):
    """The denoising score-matching loss: which diffusion times, labels and weight noise a step sees."""

    time_power: float = Field(default=1.0, gt=0, description="Training times s = s_min + (1 − s_min) u^p, u ~ U(0, 1).")
    label_dropout: float = Field(
        default=0.1, ge=0, lt=1, description="Conditional task: probability of dropping a label (CFG)."
    )
    noise_aware: NoiseAwareConfig | None = Field(
        default=None, description="Multiplicative weight noise during training (crossbar only); null = plain."
    )
    saturation: SaturationConfig | None = Field(
        default=None,
        description="Penalise hidden activations beyond ± level_v volts (analog.voltage_per_unit_v per unit; "
        "crossbar only); null = none.",
    )
    val_size: int = Field(default=4096, ge=1, description="2-D tasks: held-out points of the validation loss.")
    init_from: str | None = Field(
        default=None,
        description="2-D tasks: a run directory whose score model starts the training (fine-tuning); null = fresh.",
    )


class SampleConfig(Section):
    """How the trained model is sampled."""

    steps: int = Field(default=10_000, ge=1, description="Euler steps of the digital samplers (10,000 in the paper).")
    ode_beta_scale: float = Field(
        default=1.0,
        gt=0,
        description="Probability-flow solvers sample with β × this (paper: 2 uncond., 1.5 cond.); 1 = exact.",
    )
    sde_score_gain: float = Field(
        default=1.0, gt=0, description="Reverse-SDE solvers sample with the score × this (sharper for > 1); 1 = exact."
    )
    guidance: float = Field(default=0.0, description="Classifier-free guidance strength w used by `sample`.")


class EvaluateConfig(Section):
    """What the final evaluation and `kirchhoffnet diffusion evaluate` measure."""

    num_samples: int = Field(default=10_000, ge=1, description="Samples per KL estimate.")
    reference_seed: int = Field(
        default=12345, ge=0, le=SEED_MAX, description="Seed of the reference data the samples are compared with."
    )
    prog_noise_levels: list[float] = Field(
        default=[0.0, 0.05, 0.1, 0.2], description="Programming-noise σ of the robustness curve."
    )
    chips: int = Field(default=3, ge=1, description="Chips (seeds) averaged per noise level.")
    robustness_solver: Literal["euler", "pf-ode", "analog", "analog-ode"] = Field(
        default="analog", description="Solver of the KL-vs-programming-noise curve."
    )
    robustness_steps: int = Field(default=2_000, ge=1, description="Solver steps of the robustness curve's runs.")
    verify_tolerance: float | None = Field(
        default=None,
        gt=0,
        description="Also draw the curve with write-verified programming at this relative tolerance; null = skip.",
    )
    guidance_sweep: list[float] = Field(
        default=[0.0, 0.5, 1.0, 2.0, 4.0], description="Conditional task: guidance strengths."
    )


class LatentConfig(Section):
    """The conditional latent task: class images, their VAE and the judging classifier."""

    dataset: Literal["fashion_mnist", "mnist", "emnist", "emnist_byclass"] = Field(
        default="fashion_mnist",
        description="Image set (emnist: the letters split, upper and lower case merged; emnist_byclass: 62 classes).",
    )
    data_dir: str | None = Field(
        default=None, description="Directory of the IDX files; null = the data set's default place."
    )
    classes: list[int | str] | None = Field(
        default=None,
        description="Classes to generate (≥ 2), as labels or names (emnist_byclass: [H, K, U]); null = the data "
        "set's default three. Names are resolved to labels.",
    )
    image_size: int = Field(default=12, ge=4, le=28, description="Pixels per side after the centre crop.")
    pooled_size: int | None = Field(
        default=None,
        ge=4,
        le=28,
        description="Pixels per side the images are area-averaged to before the crop (the paper: 14); "
        "null = image_size + 2·round(image_size / 6) (16 for 12).",
    )
    latent_scale: float = Field(
        default=0.125, gt=0, description="Latents are multiplied by this before diffusion (paper: 1/8)."
    )
    prior_radius: float = Field(
        default=4.0, gt=0, description="Class prior centres lie on a circle of this radius (paper: 4)."
    )
    vae_epochs: int = Field(default=20, ge=1, description="Epochs of VAE training.")
    vae_kl_weight: float = Field(
        default=3.0, gt=0, description="Weight of the KL term towards the class prior (paper: 3)."
    )
    classifier_epochs: int = Field(default=5, ge=1, description="Epochs of the judging classifier's training.")
    max_train_images: int | None = Field(
        default=None, ge=1, description="Use at most this many training images (speed)."
    )


class DiffusionConfig(RunConfig):
    """Score-based diffusion: a score model trained by denoising score matching, sampled by the
    digital, circuit or simulated RRAM solvers."""

    task: Literal["diffusion"] = Field(description="Score-based diffusion.")
    data: Annotated[str, one_of(DIFFUSION_DATA)] = Field(
        description=f"ring, a 2-D flow data set ({', '.join(POINT_SETS[1:])}): unconditional on its points; "
        "latent: class images (settings in 'latent')."
    )
    sde: SDEConfig = Field(default_factory=lambda: SDEConfig(), description="The forward SDE.")
    model: ScoreModelConfig = Field(
        default_factory=lambda: CrossbarScoreConfig(), description="The score model; its kind picks the settings."
    )
    score_matching: ScoreMatchingConfig = Field(
        default_factory=lambda: ScoreMatchingConfig(), description="The training loss."
    )
    sample: SampleConfig = Field(default_factory=lambda: SampleConfig(), description="Sampling.")
    evaluate: EvaluateConfig = Field(default_factory=lambda: EvaluateConfig(), description="Evaluation.")
    rram: RRAMDevice = Field(default_factory=lambda: RRAMDevice(), description="The RRAM cell (crossbar chips).")
    analog: LoopSettings = Field(default_factory=lambda: LoopSettings(), description="The analog RRAM loop.")
    latent: LatentConfig | None = Field(None, description="data: latent: the images, VAE and judge.")

    @property
    def unconditional(self) -> bool:
        """A 2-D point task (the ring or a flow data set) rather than the conditional latent task."""
        return self.data != "latent"

    @property
    def num_classes(self) -> int:
        """Classes of the conditional model (0 for the unconditional tasks)."""
        return len(self.latent.classes) if self.latent is not None and self.latent.classes else 0

    @model_validator(mode="after")
    def _model_settings(self) -> DiffusionConfig:
        if self.hardware_aware is not None:
            raise ValueError(
                "hardware_aware: the score models have no KirchhoffNet dies to vary; use score_matching.noise_aware"
            )
        if self.model.kind == "kirchhoffnet":
            if self.score_matching.noise_aware is not None:
                raise ValueError(
                    "score_matching.noise_aware: it perturbs crossbar weights; remove it for model.kind: kirchhoffnet"
                )
            if self.score_matching.saturation is not None:
                raise ValueError(
                    "score_matching.saturation: it penalises the crossbar network's hidden amplifiers; remove it for "
                    "model.kind: kirchhoffnet"
                )
            if self.sample.sde_score_gain != 1.0:
                raise ValueError("sample.sde_score_gain: must be 1 for model.kind: kirchhoffnet (use ode_beta_scale)")
        noise = self.score_matching.noise_aware
        if noise is not None and self.train.batch_size % noise.draws:
            raise ValueError(
                f"score_matching.noise_aware.draws: {noise.draws} must divide train.batch_size "
                f"({self.train.batch_size}); pick a divisor such as 1, 2, 4 or 8"
            )
        if self.train.steps_per_epoch is None and self.unconditional:
            raise ValueError("train.steps_per_epoch: the 2-D tasks draw fresh points every step; give the steps")
        return self

    @model_validator(mode="after")
    def _sampling_beta(self) -> DiffusionConfig:
        total = 0.5 * (self.sde.beta_min + self.sde.beta_max) * self.sample.ode_beta_scale
        if total > MAX_INTEGRATED_BETA:
            raise ValueError(
                f"sample.ode_beta_scale: {self.sample.ode_beta_scale:g} × ∫β = {total:.3g} overflows the "
                f"probability-flow samplers (the limit is {MAX_INTEGRATED_BETA:.1f}); lower it or sde.beta_max"
            )
        return self

    @model_validator(mode="after")
    def _latent_settings(self) -> DiffusionConfig:
        if self.unconditional:
            if self.latent is not None:
                raise ValueError(f"latent: the {self.data} data take no 'latent' section")
            return self
        if self.score_matching.init_from is not None:
            raise ValueError(
                "score_matching.init_from: only the 2-D tasks fine-tune (the latent task trains a new VAE)"
            )
        latent = self.latent if self.latent is not None else LatentConfig()
        images = IMAGE_SETS[latent.dataset]
        if latent.pooled_size is not None and latent.pooled_size < latent.image_size:
            raise ValueError(
                f"latent.pooled_size: {latent.pooled_size} pixels cannot be cropped to image_size {latent.image_size}"
            )
        try:
            labels = [images.label_of(c) if isinstance(c, str) else c for c in latent.classes or images.default_classes]
        except DataError as exc:
            raise ValueError(f"latent.classes: {exc}") from None
        if len(set(labels)) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"latent.classes: needs at least 2 distinct classes, got {latent.classes}")
        self.latent = latent.model_copy(update={"classes": labels})
        return self
