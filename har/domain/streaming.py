"""Windows from a live sensor stream, cut as :class:`~har.domain.preprocessing.Preprocessor` cuts a recording.

:class:`StreamWindower` takes raw samples in chunks of any size (one sample, a
few, thousands) and returns each window as soon as it is complete. It calls the
same functions as the offline path (:func:`~har.domain.preprocessing.split_at_gaps`,
:func:`~har.domain.preprocessing.resample_segment`, :func:`~har.domain.preprocessing.make_windows`),
on a buffer that holds only what the next windows need, so a stream of any length
runs in bounded memory.

How the buffer keeps the offline result:

- Grid. Offline, each gap-free segment is resampled onto ``t0 + i / rate`` where ``t0``
  is the segment's first sample. The buffer is resampled from a point ``g`` of that
  grid; when ``g`` falls between two raw samples, a sample interpolated at ``g`` is put
  in front. It lies on the straight line between its neighbours, so the piecewise
  linear interpolation that the resampler starts with is unchanged. Times are taken
  relative to ``t0`` first, so that Unix-time stamps (float64 resolves them to
  ~2.4e-7 s) cannot make a rounded ``g`` lose a grid sample.
- Anti-aliasing. Input faster than the model's rate (a factor ``k >= 2``) is low-pass
  filtered by ``scipy.signal.resample_poly``, whose default FIR reaches
  :data:`FILTER_REACH` output samples to either side. A window is therefore emitted
  only when the stream extends that far past its end, and the buffer keeps that many
  samples before the next window's start: the window's samples then see only real
  data, as offline. Only where offline itself sees a segment edge (the first
  :data:`FILTER_REACH` samples after a stream start or gap, the last ones before a gap
  or the end of the stream) can the values differ, because the filter's edge
  extension follows a line through the segment's first and last samples, which a
  stream cannot know in advance.
- Gaps. A step longer than ``max_fill + 1.5`` nominal periods (median spacing of the
  buffer, at most the model's period) ends the segment, as in :func:`~har.domain.preprocessing.split_at_gaps`; the
  windows the old segment still owed are emitted with its true end, and a new grid
  starts at the first sample after the gap.
"""

from __future__ import annotations

import math

import numpy as np

from har.domain.card import CANONICAL_UNITS, ModelCard, Units
from har.domain.errors import InputError
from har.domain.preprocessing import (
    Segment,
    Windows,
    make_windows,
    nominal_period,
    resample_segment,
    split_at_gaps,
    unit_factors,
)

#: Output samples that ``scipy.signal.resample_poly``'s default low-pass filter reaches
#: on either side (its half length is ``10 * k`` input samples for decimation by ``k``).
FILTER_REACH = 10


class StreamWindower:
    """Cuts windows from one sensor stream, incrementally.

    Args:
        card: the served model's card (window, hop and sample rate).
        max_fill: gaps of at most this many missing samples are interpolated, longer
            ones split the stream (same meaning as in :class:`~har.domain.preprocessing.Preprocessor`).
        units: units of the values pushed; they are converted to canonical units.
        min_history: raw samples kept at least, so that the nominal period (which
            decides what is a gap) is a median over many steps, not one or two.
        max_chunk_windows: a chunk may span at most this many hops of time; it bounds
            the memory one chunk can make the resampler allocate (timestamps sent in
            milliseconds instead of seconds would otherwise span 1000 times more).

    Windows come out in canonical units with start times in seconds from the stream's
    first sample, as ``Preprocessor(card).windows(time, values)`` would cut them from
    the whole recording: the same windows at the same starts, the same values (see the
    module docstring for the exception at segment edges when the input rate is at
    least twice the model's rate). With input
    faster than the model's rate, a window comes out :data:`FILTER_REACH` samples
    (0.2 s at 50 Hz) after its last sample arrives; :meth:`flush` emits those still
    held back when the stream ends.
    """

    def __init__(
        self,
        card: ModelCard,
        max_fill: int = 2,
        *,
        units: Units = CANONICAL_UNITS,
        min_history: int = 64,
        max_chunk_windows: int = 4096,
    ) -> None:
        self.card = card
        self.max_fill = max_fill
        self.units = units
        self._factors = None if units.is_canonical else unit_factors(units)
        self.min_history = max(2, min_history)
        self.max_chunk_windows = max_chunk_windows
        self.rate = float(card.sample_rate_hz)
        self.window = int(card.window)
        self.hop = int(card.hop)
        self._origin: float | None = None  # time of the stream's first sample (s)
        self._last_t = -math.inf
        self._t = np.empty(0, np.float64)  # raw buffer: times (s), the current segment only
        self._v = np.empty((0, 6), np.float64)  # raw buffer: canonical values
        self._seg_t0 = 0.0  # first sample of the current segment (the grid's origin)
        self._seg_index = 0  # running number of gap-free segments
        self._next = 0  # index in the current segment of the next window to emit
        # what the last full pass learnt, so that most small chunks need no pass at all
        self._judged = 0  # buffer steps before this index were checked for gaps
        self._period: float | None = None  # nominal sample period of the buffer (s)
        self._due = -math.inf  # before this time no window can complete
        self._empty = Windows(
            np.empty((0, self.window, 6), np.float32), np.empty(0), np.empty(0, np.int64), self.rate
        )

    @property
    def buffered(self) -> int:
        """Raw samples held (bounded by a few windows' worth plus the last chunk)."""
        return int(self._t.size)

    def push(self, timestamps: np.ndarray, values: np.ndarray) -> Windows:
        """Add samples; return the windows they complete.

        Args:
            timestamps: ``(n,)`` seconds, any origin, strictly increasing within the chunk
                and after every earlier chunk. ``n`` may be 0.
            values: ``(n, 6)`` finite samples in the windower's ``units``.

        Returns:
            The new complete windows: values ``(N, window, 6)`` float32 canonical,
            ``start_s`` in seconds from the stream's first sample, ``segment`` the running
            number of the gap-free stretch each came from.

        Raises:
            InputError: wrong shapes, NaN/infinity, timestamps that do not increase, or a
                chunk spanning more than ``max_chunk_windows`` hops. The windower's state
                is unchanged then, so the caller may go on.
        """
        t = np.asarray(timestamps, np.float64)
        v = np.asarray(values, np.float64)
        if t.ndim != 1 or v.shape != (t.size, 6):
            raise InputError(
                f"a chunk needs n timestamps and n x 6 values, got timestamps {t.shape} "
                f"and values {v.shape}"
            )
        if t.size == 0:
            return self._empty
        if not np.isfinite(t).all():
            raise InputError(f"timestamp {int(np.argmin(np.isfinite(t)))} is NaN or infinite")
        if not np.isfinite(v).all():
            i, c = np.argwhere(~np.isfinite(v))[0]
            raise InputError(
                f"sample {int(i)} has NaN or infinity in channel {self.card.channels[int(c)]}"
            )
        if self._factors is not None:
            v = v * self._factors
        steps = np.diff(np.concatenate([[self._last_t], t]))
        if not (steps > 0).all():
            i = int(np.argmin(steps > 0))
            prev = self._last_t if i == 0 else t[i - 1]
            raise InputError(
                f"timestamps must increase: sample {i} of this chunk is at {float(t[i])!r} s, "
                f"not after the previous sample at {float(prev)!r} s"
            )
        hops = (t[-1] - t[0]) * self.rate / self.hop
        if hops > self.max_chunk_windows:
            raise InputError(
                f"this chunk spans {t[-1] - t[0]:.6g} s, about {hops:.0f} windows' worth; at "
                f"most {self.max_chunk_windows} are accepted per chunk: send smaller chunks "
                "(and timestamps in seconds)"
            )
        if self._origin is None:
            self._origin = float(t[0])
            self._seg_t0 = float(t[0])
        first_chunk = self._t.size == 0
        self._last_t = float(t[-1])
        self._t = np.concatenate([self._t, t])
        self._v = np.concatenate([self._v, v])
        if self._t.size < 2:
            return self._empty
        new_steps = steps[1:] if first_chunk else steps
        if (
            self._period is not None
            and self._last_t < self._due
            and (new_steps.size == 0 or new_steps.max() <= 2.0 * self._period)
        ):
            # No window can be complete yet: skip the pass. Deferring the gap check is
            # safe (the next pass judges every step since the last one); a suspiciously
            # long step runs it now so that a closed segment's last windows come sooner.
            return self._empty

        # Breaks among the steps added since the last pass; earlier ones were judged then.
        starts = [sl.start for sl in split_at_gaps(self._t, self.max_fill, 1.0 / self.rate)[1:]]
        breaks = [b for b in starts if b >= max(self._judged, 1)]
        out = []
        cut = 0  # samples of this buffer already moved out with a closed segment
        for b in breaks:
            # the current segment ends before b: emit what it still owes, start a new one
            t_old, v_old = self._t[: b - cut], self._v[: b - cut]
            reach = self._reach(t_old)[1] if t_old.size >= 2 else 0  # one sample: no window
            out.append(self._emit(t_old, v_old, final=True, reach=reach))
            self._t, self._v = self._t[b - cut :], self._v[b - cut :]
            cut = b
            self._seg_t0 = float(self._t[0])
            self._seg_index += 1
            self._next = 0
        self._due = -math.inf
        if self._t.size >= 2:
            self._period, reach = self._reach(self._t)
            out.append(self._emit(self._t, self._v, final=False, reach=reach))
            if breaks or any(len(w) for w in out):
                self._trim(reach)
            # the next window needs grid sample next*hop + window - 1 + reach (half a
            # sample early, to be safe against rounding: an early pass only costs time)
            need = self._next * self.hop + self.window - 1 + reach - 0.5
            self._due = self._seg_t0 + need / self.rate
        self._judged = self._t.size
        return self._concat(out)

    def flush(self) -> Windows:
        """The stream has ended: emit the windows held back for the filter's look-ahead."""
        if self._t.size < 2:
            return self._empty
        reach = self._reach(self._t)[1]
        w = self._emit(self._t, self._v, final=True, reach=reach)
        self._trim(reach)
        self._judged = self._t.size
        return w

    # internals

    def _reach(self, t: np.ndarray) -> tuple[float, int]:
        """Nominal period of ``t`` (s) and the grid samples the resampler's filter needs
        beyond a window: :data:`FILTER_REACH` when :func:`resample_segment` low-pass
        filters (input at least twice the model's rate, decimation ``k >= 2``), else 0.
        """
        period = nominal_period(t)
        k = int(round(1.0 / period / self.rate))
        return period, (FILTER_REACH if k >= 2 else 0)

    def _emit(self, t: np.ndarray, v: np.ndarray, *, final: bool, reach: int) -> Windows:
        """Windows ``self._next, ...`` of the current segment that ``t``/``v`` complete.

        ``t``/``v`` hold the current segment's samples from (at most) the grid point
        :meth:`_trim` kept. With ``final`` the segment ends at ``t[-1]`` (a gap follows or
        the stream ended), so no look-ahead is needed. ``reach`` is :meth:`_reach` of ``t``.
        """
        if t.size < 2:
            return self._empty
        # grid samples of the segment up to t[-1], as resample_segment counts them
        n_grid = int(math.floor((t[-1] - self._seg_t0) * self.rate + 1e-3)) + 1
        usable = n_grid if final else n_grid - reach
        last = (usable - self.window) // self.hop  # index of the last complete window
        if last < self._next:
            return self._empty
        first = self._next
        m = max(0, first * self.hop - reach)  # grid index the resampled buffer starts at
        # Seconds from the segment's start: at Unix-time magnitudes a grid time rounds
        # to 2.4e-7 s, enough to lose a grid sample when counting from a rounded start.
        rel = t - self._seg_t0
        g = m / self.rate
        after = rel > g
        bt, bv = rel[after], v[after]
        if m == 0:  # t[0] is the segment's first sample (_trim keeps it while m == 0)
            bt, bv = np.concatenate([[0.0], bt]), np.concatenate([v[:1], bv])
        else:
            ig = np.interp(g, rel, np.arange(t.size, dtype=np.float64))
            lo = int(math.floor(ig))
            frac = ig - lo
            hi = min(lo + 1, t.size - 1)
            vg = v[lo] + (v[hi] - v[lo]) * frac  # on the line between the two neighbours
            bt, bv = np.concatenate([[g], bt]), np.concatenate([vg[None, :], bv])
        grid = resample_segment(bt, bv, self.rate)  # grid[i] is segment sample m + i
        last = min(last, (m + grid.shape[0] - self.window) // self.hop)
        if last < first:
            return self._empty
        stretch = grid[first * self.hop - m : last * self.hop + self.window - m]
        cut = make_windows([Segment(0.0, stretch)], self.window, self.hop, self.rate)
        offs = np.arange(first, last + 1) * self.hop
        assert self._origin is not None
        start = float(self._seg_t0 - self._origin) + offs / self.rate
        self._next = last + 1
        return Windows(cut.values, start, np.full(len(offs), self._seg_index, np.int64), self.rate)

    def _trim(self, reach: int) -> None:
        """Drop raw samples the next window cannot need (keeping ``min_history``)."""
        if self._t.size < 2:
            return
        m = max(0, self._next * self.hop - reach)
        # keep the last raw sample at or before grid sample m: it brackets the
        # interpolation there (computed as in _emit, so both agree on which it is)
        rel = self._t - self._seg_t0
        keep_from = max(0, int(np.searchsorted(rel, m / self.rate, side="right")) - 1)
        keep_from = min(keep_from, max(0, self._t.size - self.min_history))
        if keep_from > 0:
            self._t = self._t[keep_from:].copy()
            self._v = self._v[keep_from:].copy()

    def _concat(self, parts: list[Windows]) -> Windows:
        parts = [p for p in parts if len(p)]
        if not parts:
            return self._empty
        if len(parts) == 1:
            return parts[0]
        return Windows(
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.start_s for p in parts]),
            np.concatenate([p.segment for p in parts]),
            self.rate,
        )
