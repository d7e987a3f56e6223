"""Smoothing of window labels before the timeline's segments are drawn (:mod:`har.domain.timeline`).

Pure NumPy; no model, no I/O, no settings read. ``geometry`` below is the timeline's
per-window tuple ``(start_s, end_s, first, last, tail)``: window bounds (seconds),
whether the window opens / closes its gap-free stretch, and where the stretch's last
segment ends.

Methods:

``"none"``
    each window's label is its argmax (the raw timeline).
``"viterbi"`` (default)
    the most likely label sequence of a hidden Markov model decoded per stretch:
    emission log-likelihood ``log(max(p, PROB_FLOOR))`` of the window's softmax
    output, a uniform start, and a transition that stays with probability ``q`` and
    switches to each other class with ``(1 - q) / (K - 1)``, written as a switching
    penalty ``s = log(q (K - 1) / (1 - q))`` nats (``HAR_SWITCH_PENALTY``; ``s = 0`` is
    the raw argmax). A label change survives only when the windows favour it by more
    than ``s`` nats in total (a one-window flip needs ``2 s``: it switches away and
    back). Then segments shorter than ``min_segment_s`` (``HAR_MIN_SEGMENT_S``; 0 turns
    it off) are merged, shortest first, into the neighbour (same stretch) whose
    activity the segment's windows give the higher mean probability; a stretch
    shorter than that keeps its one segment.
"""

from __future__ import annotations

import numpy as np

from har.domain.errors import InputError

SMOOTHING_METHODS: tuple[str, ...] = ("viterbi", "none")
#: Probabilities are floored here before the log: a window the model is sure about
#: (softmax ~1e-12 for every other class) cannot outvote its neighbours without bound.
PROB_FLOOR = 1e-4


def check_smoothing(method: str) -> str:
    """``method`` if one of :data:`SMOOTHING_METHODS`, else InputError naming them."""
    if method not in SMOOTHING_METHODS:
        allowed = ", ".join(repr(m) for m in SMOOTHING_METHODS)
        raise InputError(f"unknown smoothing {method!r}; use one of {allowed}")
    return method


def viterbi(probs: np.ndarray, first: np.ndarray, penalty: float) -> np.ndarray:
    """Most likely labels ``(N,)`` under the switching-penalty HMM, reset where ``first``.

    Args:
        probs: ``(N, K)`` probabilities; emissions are ``log(max(p, PROB_FLOOR))``.
        first: ``(N,)`` bool, True at the first window of each stretch (decoded apart).
        penalty: nats a label change costs (>= 0). Ties keep the current label.
    """
    log_e = np.log(np.clip(probs, PROB_FLOOR, None))
    n, k = log_e.shape
    # forward pass: best score of a path ending in each state (minus a constant per step)
    score = np.empty((n, k), np.float64)
    delta = log_e[0].copy()
    score[0] = delta
    for t, reset in enumerate(np.asarray(first).tolist()[1:], start=1):
        if reset:
            delta = log_e[t].copy()
        else:
            m = delta.max()
            delta = np.maximum(delta, m - penalty)  # stay, or switch from the best state
            delta += log_e[t] - m  # minus m keeps the numbers small; argmax is unchanged
        score[t] = delta
    # back pointers, all at once: switch from the best state only where strictly better
    prev = score[:-1]
    move = prev < prev.max(axis=1, keepdims=True) - penalty
    back = np.where(move, prev.argmax(axis=1)[:, None], np.arange(k)[None, :])
    labels = np.empty(n, np.int64)
    ends = np.concatenate([np.asarray(first[1:], bool), [True]]).tolist()
    state = 0
    for t in range(n - 1, -1, -1):
        state = int(score[t].argmax()) if ends[t] else int(back[t, state])
        labels[t] = state
    return labels


def label_runs(labels: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first and last window of every run of equal labels within a stretch."""
    new = first.copy()
    new[1:] |= labels[1:] != labels[:-1]
    a = np.flatnonzero(new)
    b = np.concatenate([a[1:] - 1, [labels.shape[0] - 1]])
    return a, b


def run_bounds(
    a: np.ndarray, b: np.ndarray, geometry: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (s) of the runs ``a..b``: overlap middles inside a stretch, edges at its ends."""
    start, end, first, last, tail = geometry
    prev = np.maximum(a - 1, 0)
    nxt = np.minimum(b + 1, start.shape[0] - 1)
    s = np.where(first[a], start[a], (end[prev] + start[a]) / 2)
    e = np.where(last[b], tail[b], (end[b] + start[nxt]) / 2)
    return s, np.maximum(e, s)


def merge_short(
    labels: np.ndarray, probs: np.ndarray, geometry: tuple[np.ndarray, ...], min_s: float
) -> np.ndarray:
    """Relabel runs shorter than ``min_s`` seconds, shortest first, as a neighbour in the stretch.

    The neighbour chosen is the one whose activity the run's windows give the higher
    mean probability. A run that is a whole stretch is kept. Returns new labels ``(N,)``.
    """
    labels = labels.copy()
    first, last = geometry[2], geometry[3]
    while True:
        a, b = label_runs(labels, first)
        s, e = run_bounds(a, b, geometry)
        short = (e - s < min_s) & ~(first[a] & last[b])
        if not short.any():
            return labels
        k = int(np.flatnonzero(short)[np.argmin((e - s)[short])])
        options = []
        if not first[a[k]]:
            options.append(labels[a[k] - 1])
        if not last[b[k]]:
            options.append(labels[b[k] + 1])
        mean = probs[a[k] : b[k] + 1].mean(axis=0)
        labels[a[k] : b[k] + 1] = max(options, key=lambda c: mean[c])
