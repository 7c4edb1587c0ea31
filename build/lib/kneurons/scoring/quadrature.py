"""Quadrature rules on the integrated-gradients path and the completeness tolerance.

`quadrature_rule`: the nodes alpha in [0, 1] and the weights of a rule
(`kneurons.vocab.QUADRATURES`, placed as captum places them), which the IG engine
(`kneurons.scoring.integrals`) maps onto each panel of the path. `completeness_tolerance`, with
the default accuracy policy `RTOL`, `ATOL`: the largest |completeness gap| an (example, module)
may keep; the pairs above it are refined (`kneurons.scoring.adaptive`) or flagged.
`AccuracyPolicy`: those settings as one object, read from a config block by the score files and
the residue maps alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kneurons.vocab import QUADRATURES


def quadrature_rule(quadrature: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The nodes alpha in [0, 1] and weights of the rule `quadrature` (`QUADRATURES`) with
    `steps` nodes, for integral_0^1 f(alpha) d alpha (as captum places them)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if quadrature == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (x + 1.0), 0.5 * w
    if quadrature == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    weights = np.full(steps, 1.0 / steps)
    if quadrature == "riemann_left":
        return np.linspace(0.0, 1.0 - 1.0 / steps, steps), weights
    if quadrature == "riemann_right":
        return np.linspace(1.0 / steps, 1.0, steps), weights
    if quadrature == "riemann_middle":
        return np.linspace(0.5 / steps, 1.0 - 0.5 / steps, steps), weights
    choices = ", ".join(QUADRATURES)
    raise ValueError(f"unknown quadrature {quadrature!r}; choose one of {choices}")


def completeness_tolerance(delta, rtol: float, atol: float):
    """The largest |completeness gap| accepted for an (example, module) whose F(1) - F(0) is
    `delta`: atol + rtol * |delta| (numpy's isclose rule; works on arrays)."""
    return atol + rtol * np.abs(delta)


# Default accuracy policy of IG (README, "Integrated gradients: accuracy policy"): every
# (example, module) ends with |gap| <= ATOL + RTOL * |F(1) - F(0)|, or is counted and reported.
RTOL = 0.01
ATOL = 1e-4


@dataclass(frozen=True)
class AccuracyPolicy:
    """How exact every IG integral is, for the scores (`scoring.integrated_gradients`) and the
    residue maps (`residues`) alike: `steps` nodes of `quadrature` per panel; `adaptive`:
    an integral whose |gap| exceeds `completeness_tolerance(delta, rtol, atol)` is refined up
    to `max_steps` nodes (None: 16 x steps); not adaptive: one pass, still judged."""

    steps: int = 16
    quadrature: str = "gausslegendre"
    adaptive: bool = True
    rtol: float = RTOL
    atol: float = ATOL
    max_steps: int | None = 256

    FIELDS = ("steps", "quadrature", "adaptive", "rtol", "atol", "max_steps")

    @classmethod
    def from_config(cls, block: Mapping) -> AccuracyPolicy:
        """The policy of a config block (`scoring.integrated_gradients`, `residues`): the keys
        it sets, the defaults for the others; other keys of the block are ignored."""
        return cls(**{key: block[key] for key in cls.FIELDS if key in block})

    @property
    def node_limit(self) -> int:
        """The most nodes an integral may use: `max_steps` when adaptive, else `steps`."""
        if not self.adaptive:
            return self.steps
        return self.max_steps if self.max_steps is not None else 16 * self.steps
