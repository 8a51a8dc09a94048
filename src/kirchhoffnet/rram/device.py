"""Settings of the resistive-memory (RRAM) devices that store the weights.

One pydantic model holds every non-ideality, so a YAML config, the CLI and the library use the same
names. Defaults describe an ideal device (no noise, continuous levels), so that "no field set" means
"the digital network, exactly".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NoiseKind = Literal["gaussian", "lognormal"]


class RRAMDevice(BaseModel):
    """Conductance range, programming and read behaviour of one RRAM cell.

    A signed weight w is stored as a differential pair: the cell on the sign's side is programmed to
    G_min + |w| (G_max − G_min) / w_max and its partner stays at G_min, so w ∝ G⁺ − G⁻.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    g_min_s: float = Field(
        default=1e-6, gt=0, description="Lowest programmable conductance, siemens (high-resistance state)."
    )
    g_max_s: float = Field(
        default=1e-4, gt=0, description="Highest programmable conductance, siemens (low-resistance state)."
    )
    levels: int | None = Field(
        default=None,
        ge=2,
        description="Distinct programmable conductances evenly spaced in [g_min_s, g_max_s]; null = continuous.",
    )
    prog_noise: float = Field(
        default=0.0,
        ge=0,
        description="Relative standard deviation of the programming (write) error, frozen once programmed.",
    )
    prog_noise_kind: NoiseKind = Field(
        default="gaussian", description="gaussian: G (1 + σ z); lognormal: G exp(σ z − σ²/2) (mean-preserving)."
    )
    verify_tolerance: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Write-verify: a cell is rewritten until its read-back conductance lies within ± this fraction "
            "of its target (null = one open-loop write)."
        ),
    )
    verify_max_writes: int = Field(
        default=20, ge=1, description="Write-verify: most writes per cell; a cell still outside keeps its last write."
    )
    read_noise: float = Field(
        default=0.0, ge=0, description="Relative standard deviation of each read's conductance fluctuation."
    )
    read_noise_kind: NoiseKind = Field(
        default="gaussian",
        description="Distribution of the read fluctuation; it enters each output current through its variance.",
    )
    drift_nu: float = Field(
        default=0.0, ge=0, description="Mean power-law drift exponent ν: G(t) = G(t0) (t / t0)^(−ν) (0 = no drift)."
    )
    drift_nu_std: float = Field(default=0.0, ge=0, description="Device-to-device standard deviation of ν.")
    drift_time_s: float = Field(
        default=1.0, gt=0, description="Time since programming at which the chip is read, seconds."
    )
    drift_t0_s: float = Field(
        default=1.0, gt=0, description="Reference time of the drift law (when G was verified), seconds."
    )
    stuck_off_fraction: float = Field(default=0.0, ge=0, le=1, description="Fraction of cells stuck at g_min_s.")
    stuck_on_fraction: float = Field(default=0.0, ge=0, le=1, description="Fraction of cells stuck at g_max_s.")

    @property
    def programs_randomly(self) -> bool:
        """Whether programming draws anything random (else every chip seed programs the same chip)."""
        return bool(self.prog_noise or self.stuck_off_fraction or self.stuck_on_fraction or self.drift_nu_std)

    @model_validator(mode="after")
    def _check_ranges(self) -> RRAMDevice:
        if self.g_max_s <= self.g_min_s:
            raise ValueError(f"g_max_s ({self.g_max_s}) must exceed g_min_s ({self.g_min_s})")
        if self.stuck_off_fraction + self.stuck_on_fraction > 1:
            raise ValueError("stuck_off_fraction + stuck_on_fraction must not exceed 1")
        return self
