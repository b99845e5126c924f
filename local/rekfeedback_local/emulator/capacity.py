"""Inference units of a running model: auto-scaling between MinInferenceUnits and MaxInferenceUnits.

Rekognition Custom Labels adds inference units, up to MaxInferenceUnits, while the calls asked of a
model exceed what its units serve, and removes them again when the load would fit in fewer
(rm-run-model, "Managing throughput with inference units"); without MaxInferenceUnits it never
scales. AWS takes minutes to add a unit; the emulator takes `scale_up_seconds` (a knob) so tests and
the benchmark see it happen. Demand is what reaches the capacity check: calls served plus calls
refused for capacity (calls throttled at random by the `throttle_rate` knob say nothing about load).

Pure: every method takes `now`, so tests drive it with any clock.
"""

from __future__ import annotations

import threading


class AutoScaler:
    def __init__(self, min_units: int, max_units: int | None, *, per_unit: float, scale_up_seconds: float,
                 scale_down_seconds: float, overload_share: float = 0.05, now: float = 0.0):
        self.min_units = max(1, int(min_units or 1))
        self.max_units = max(self.min_units, int(max_units or self.min_units))
        self.units = self.min_units
        self.per_unit = per_unit
        self.scale_up_seconds, self.scale_down_seconds = scale_up_seconds, scale_down_seconds
        self.overload_share = overload_share
        self._lock = threading.Lock()
        self._second = int(now)
        self._asked = self._refused = 0
        self._over_since: float | None = None
        self._under_since: float | None = None
        self.history: list[tuple[float, int]] = [(now, self.units)]  # (when, units) at each change

    def capacity(self, now: float) -> float:
        """Calls per second the model serves now."""
        with self._lock:
            self._roll(now)
            return self.per_unit * self.units

    def record(self, now: float, served: bool) -> None:
        """One call reached the capacity check: served, or refused for capacity."""
        with self._lock:
            self._roll(now)
            self._asked += 1
            self._refused += 0 if served else 1

    def _roll(self, now: float) -> None:
        # Judged per whole second, as the capacity itself is per second.
        second = int(now)
        if second == self._second:
            return
        idle = second > self._second + 1  # no call at all in the seconds between
        self._judge(float(self._second + 1), self._asked, self._refused)
        if idle:
            self._judge(float(second), 0, 0)
        self._second, self._asked, self._refused = second, 0, 0

    def _judge(self, at: float, asked: int, refused: int) -> None:
        if asked and refused >= self.overload_share * asked:
            self._under_since = None
            self._over_since = at - 1.0 if self._over_since is None else self._over_since
            if at - self._over_since >= self.scale_up_seconds and self.units < self.max_units:
                self.units += 1
                self._over_since = None  # the next unit only after another stretch of overload
                self.history.append((at, self.units))
            return
        self._over_since = None
        fits_in_fewer = asked <= 0.8 * self.per_unit * (self.units - 1)
        if self.units > self.min_units and fits_in_fewer:
            self._under_since = at - 1.0 if self._under_since is None else self._under_since
            if at - self._under_since >= self.scale_down_seconds:
                self.units -= 1
                self._under_since = None
                self.history.append((at, self.units))
        else:
            self._under_since = None
