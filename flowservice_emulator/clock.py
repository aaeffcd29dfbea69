"""The emulator's clock for everything that happens over time (runs on their schedules, how long a
run takes, ad-hoc export guardrails), which tests and benchmarks speed up or step forward through the
admin API (``/_emulator/clock``) so that a day of runs takes seconds.

Emulated time is a piecewise-linear function of real time: each change of speed or step forward
starts a segment. So the emulated moment of any real instant since the start is known (a flow
created before a step forward was created before it in emulated time too). Resource timestamps
(``createdAt``, ``updatedAt``) stay on real time, as etags and the request history do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class _Segment:
    real_start_ms: float
    emulated_start_ms: float
    speed: float


class EmulatorClock:
    def __init__(self) -> None:
        self._segments: list[_Segment] = []
        self.reset()

    def reset(self) -> None:
        now = _real_ms()
        self._segments = [_Segment(now, now, 1.0)]

    @property
    def speed(self) -> float:
        return self._segments[-1].speed

    def now_ms(self) -> int:
        return self.at_ms(_real_ms())

    def at_ms(self, real_ms: float) -> int:
        """The emulated moment of a real instant (one before the clock started is taken as it is)."""
        for segment in reversed(self._segments):
            if real_ms >= segment.real_start_ms:
                return int(segment.emulated_start_ms + (real_ms - segment.real_start_ms) * segment.speed)
        return int(real_ms)

    def change(self, *, speed: float | None = None, advance_seconds: float = 0.0) -> None:
        """Step forward (never back) and/or run at another speed from now on."""
        real = _real_ms()
        emulated = self.at_ms(real) + advance_seconds * 1000.0
        self._segments.append(_Segment(real, emulated, self.speed if speed is None else speed))

    def view(self) -> JsonObject:
        now = datetime.fromtimestamp(self.now_ms() / 1000, UTC)
        return {"now": now.isoformat().replace("+00:00", "Z"), "nowMs": self.now_ms(), "speed": self.speed}


def _real_ms() -> float:
    return time.time() * 1000.0
