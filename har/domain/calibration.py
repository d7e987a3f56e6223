"""Temperature scaling: confidence that means what it says.

A softmax network is usually over-confident: of the windows it answers with 0.9, fewer
than 90 % are right. Temperature scaling (Guo et al., 2017) divides the logits by one
number ``T`` fitted on labelled held-out windows to minimise their negative
log-likelihood: ``p_T = softmax(z / T)``. Our models output probabilities, so the logits
are their logarithms (``z = log p``, defined up to a constant that the softmax cancels);
``T > 1`` softens, ``T < 1`` sharpens, and every window keeps its predicted class (the
argmax of ``z / T`` is the argmax of ``z``).

The fit is honest about what it measured: the windows are split into two disjoint parts
(whole recordings or subjects on each side when the data names them, so that overlapping
windows of one recording never sit on both sides), ``T`` is fitted on one part and the
expected calibration error (ECE) and negative log-likelihood (NLL) before and after are
measured on the other, which the fit did not see. The temperature is *applied* only when it
lowered both there; otherwise the card keeps the evidence and the service serves the raw
probabilities (a model that is already calibrated is not made worse by a noisy fit).
:class:`Calibration` is what the card stores (``ModelCard.calibration``); the service
applies an applied temperature to every answer (har/core/scorer.py) unless
``HAR_CALIBRATION=0``.

Pure numpy: no model, no framework. The model runs in har/runtime/calibrate.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: Equal-width confidence bins of the ECE and of the reliability diagram.
ECE_BINS = 15
#: Temperatures searched (log-uniform, then refined): far beyond any useful value.
T_RANGE = (0.05, 20.0)
#: Probabilities are clipped here before the logarithm (a softmax can underflow to 0).
EPS = 1e-12


class ReliabilityBin(BaseModel):
    """One confidence bin of a reliability diagram: its windows' mean confidence and accuracy."""

    model_config = ConfigDict(extra="forbid")

    lower: float
    upper: float
    count: int
    confidence: float | None = Field(None, description="Mean confidence (None: empty bin).")
    accuracy: float | None = Field(None, description="Share predicted right (None: empty).")


class Calibration(BaseModel):
    """A model's fitted temperature and the evidence for it (the card's ``calibration``).

    ``ece_*`` and ``nll_*`` are measured on the ``windows_eval`` windows, disjoint from the
    ``windows_fit`` the temperature was fitted on; ``reliability_*`` are the diagrams
    (``ECE_BINS`` bins) of the same windows before and after.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["temperature"] = "temperature"
    temperature: float = Field(
        gt=0, description="Divides the log-probabilities: softmax(log p / T)."
    )
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    accuracy: float = Field(description="Share of the evaluation windows predicted right.")
    windows_fit: int
    windows_eval: int
    split: str = Field(description="How the fitting and evaluation windows were kept apart.")
    bins: int = ECE_BINS
    data: list[str] = Field(default_factory=list, description="Where the windows came from.")
    applied: bool = Field(
        description="Whether the service applies the temperature: only when it lowered both the "
        "ECE and the NLL of the evaluation windows."
    )
    reason: str = Field("", description="Why the temperature is not applied (empty: applied).")
    reliability_before: list[ReliabilityBin] = Field(default_factory=list)
    reliability_after: list[ReliabilityBin] = Field(default_factory=list)

    @property
    def served_temperature(self) -> float | None:
        """The temperature the service applies (``None``: raw probabilities are served)."""
        return self.temperature if self.applied else None


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row by row.

    Args:
        probs: ``(N, n_classes)`` probabilities (rows sum to 1).
        temperature: ``T > 0``; 1 returns the probabilities unchanged (as float32).

    Returns:
        ``(N, n_classes)`` float32; each row's argmax is the input row's.
    """
    p = np.asarray(probs, np.float32)
    if temperature == 1.0 or p.size == 0:
        return p
    z = np.log(np.clip(p.astype(np.float64), EPS, None)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of the true classes ``labels`` (``(N,)`` ids)."""
    p = np.asarray(probs, np.float64)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.clip(p, EPS, None)).mean())


def reliability(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """The reliability diagram: ``bins`` equal-width bins of the top-class confidence, with the
    mean confidence and the accuracy of the windows in each (the first bin includes 0)."""
    p = np.asarray(probs, np.float64)
    conf = p.max(axis=1)
    right = p.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        n = int(m.sum())
        out.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=n,
                confidence=float(conf[m].mean()) if n else None,
                accuracy=float(right[m].mean()) if n else None,
            )
        )
    return out


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: ``sum_b n_b / N * |accuracy_b - confidence_b|`` over
    ``bins`` equal-width confidence bins (0: confidence matches accuracy in every bin)."""
    rel = reliability(probs, labels, bins)
    n = sum(b.count for b in rel)
    return float(
        sum(b.count / n * abs((b.accuracy or 0.0) - (b.confidence or 0.0)) for b in rel if b.count)
    )


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The ``T`` in :data:`T_RANGE` minimising the NLL of ``apply_temperature(probs, T)``:
    a log-uniform grid, then golden-section search around its best point (the NLL is
    convex in ``1/T``, so the grid's best point brackets the minimum)."""
    z = np.log(np.clip(np.asarray(probs, np.float64), EPS, None))
    y = np.asarray(labels)

    def loss(log_t: float) -> float:
        s = z / np.exp(log_t)
        s -= s.max(axis=1, keepdims=True)
        return float((np.log(np.exp(s).sum(axis=1)) - s[np.arange(len(y)), y]).mean())

    grid = np.linspace(np.log(T_RANGE[0]), np.log(T_RANGE[1]), 121)
    k = int(np.argmin([loss(g) for g in grid]))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if loss(c) < loss(d):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def split_indices(n: int, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(fit, eval, description)``: two disjoint index sets of ``n`` windows.

    With ``groups`` (a recording or subject id per window), whole groups go alternately to
    each side in order of first appearance, so overlapping windows of one recording are
    never on both sides. Without, the first half fits and the second half evaluates
    (contiguous: consecutive overlapping windows meet only at the boundary).
    """
    if groups is not None and len(np.unique(groups)) >= 2:
        g = np.asarray(groups)
        _, first = np.unique(g, return_index=True)
        order = g[np.sort(first)]
        fit_groups = set(order[0::2].tolist())
        is_fit = np.array([x in fit_groups for x in g.tolist()])
        return (
            np.flatnonzero(is_fit),
            np.flatnonzero(~is_fit),
            f"by group: {len(order[0::2])} groups fitted, {len(order[1::2])} others evaluated",
        )
    half = n // 2
    return np.arange(half), np.arange(half, n), "first half fitted, second half evaluated"


def calibrate(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    group_name: str = "group",
    data: Sequence[str] = (),
    bins: int = ECE_BINS,
) -> Calibration:
    """Fit a temperature on one part of labelled windows and measure it on the other.

    Args:
        probs: ``(N, n_classes)`` the model's probabilities for the windows (scaled input).
        labels: ``(N,)`` true class ids.
        groups: optional ``(N,)`` recording or subject ids (see :func:`split_indices`).
        group_name: what ``groups`` are, for the ``split`` description.
        data: where the windows came from (files), for the card.

    Raises:
        ValueError: fewer than 4 windows, or a part without windows.
    """
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels, np.int64)
    if len(p) < 4 or len(p) != len(y):
        raise ValueError(f"calibration needs at least 4 labelled windows, got {len(p)}")
    fit_i, eval_i, how = split_indices(len(p), groups)
    if len(fit_i) == 0 or len(eval_i) == 0:
        raise ValueError("calibration: one part of the split has no windows")
    t = round(fit_temperature(p[fit_i], y[fit_i]), 6)
    before, after = p[eval_i], apply_temperature(p[eval_i], t)
    e0, e1 = ece(before, y[eval_i], bins), ece(after, y[eval_i], bins)
    n0, n1 = nll(before, y[eval_i]), nll(after, y[eval_i])
    applied = e1 < e0 and n1 < n0
    return Calibration(
        temperature=t,
        ece_before=e0,
        ece_after=e1,
        nll_before=n0,
        nll_after=n1,
        applied=applied,
        reason=""
        if applied
        else (
            f"T={t:.3g} fitted on {len(fit_i)} windows did not lower both the ECE "
            f"({e0:.4f} -> {e1:.4f}) and the NLL ({n0:.4f} -> {n1:.4f}) of the {len(eval_i)} "
            "others: the raw probabilities are served"
        ),
        accuracy=float((before.argmax(1) == y[eval_i]).mean()),
        windows_fit=len(fit_i),
        windows_eval=len(eval_i),
        split=how.replace("group", group_name),
        bins=bins,
        data=list(data),
        reliability_before=reliability(before, y[eval_i], bins),
        reliability_after=reliability(after, y[eval_i], bins),
    )
