"""A small terminal progress bar with a rate and time left, shared by builds and training."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
    """Prints `label [####....] n/total  rate unit/s  eta` at most every `interval` seconds.

    Writes to stderr with carriage returns on a terminal, and one line per update otherwise (so
    logs stay readable). `enabled=False` makes every call a no-op.
    """

    def __init__(self, label: str, total: Optional[int] = None, unit: str = "glyphs",
                 interval: float = 0.5, stream: Optional[TextIO] = None, enabled: bool = True,
                 start: int = 0, rate: bool = True):
        self.label, self.total, self.unit = label, total, unit
        self.show_rate = rate  # False: steps of unequal length (phases): elapsed time instead
        self.interval = interval
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.count = start
        self._start_count = start
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        if not self._tty:
            self.interval = max(interval, 10.0)
        self.extra = ""

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return (self.count - self._start_count) / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1, extra: str = "", force: bool = False) -> None:
        self.count += n
        if extra:
            self.extra = extra
        now = time.perf_counter()
        if self.enabled and (force or now - self._last >= self.interval):
            self._last = now
            self._print()

    def _print(self, end: str = "") -> None:
        rate = self.rate
        if not self.show_rate:
            elapsed = format_seconds(time.perf_counter() - self._t0)
            text = f"{self.label} {self.count}/{self.total or '?'} {self.unit} elapsed {elapsed}"
            end = "\n"  # each phase keeps its line: a nested bar (judge training) follows it
        elif self.total:
            frac = min(1.0, self.count / self.total)
            bar = "#" * int(frac * 20) + "." * (20 - int(frac * 20))
            left = (self.total - self.count) / rate if rate > 0 else float("nan")
            eta = format_seconds(left) if left == left else "?"
            text = f"{self.label} [{bar}] {self.count}/{self.total} {rate:,.0f} {self.unit}/s left {eta}"
        else:
            text = f"{self.label} {self.count} {rate:,.0f} {self.unit}/s"
        if self.extra:
            text += f" {self.extra}"
        if self._tty:
            self.stream.write("\r" + text.ljust(100)[:160] + end)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._print(end="\n" if self._tty else "")
