"""Progress of a long ingest, wherever its output goes.

On a terminal: a rich bar.  Anywhere else (a Kubernetes Job, CI, ``nohup``, a pipe): one
plain line on stderr at least every ``interval`` seconds and at every ``step`` of the
work, with files, passages embedded / to embed, rate and ETA, so a 20-minute run is never
silent.  stdout is never written, so ``qa ingest --json`` stays machine-readable.

Lines look like::

    ingest: embedding 1200/5422 passages (22%), 593 files, 9.8 passages/s, ETA 7m11s
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Counts of the two long phases (reading files, embedding passages); subclasses show them."""

    def __init__(self) -> None:
        self.phase = "scanning"
        self.files = 0
        self.files_total = 0
        self.embedded = 0
        self.to_embed = 0
        self._t_embed: float | None = None

    # -- what ingest calls ----------------------------------------------------------------
    def start_files(self, total: int) -> None:
        self.phase, self.files_total = "reading", total

    def file_done(self) -> None:
        self.files += 1
        self.changed()

    def start_embedding(self, total: int) -> None:
        self.phase, self.to_embed, self.embedded = "embedding", total, 0
        self._t_embed = time.perf_counter()
        self.changed()

    def embedded_batch(self, n: int) -> None:
        self.embedded += n
        self.changed()

    def message(self, text: str) -> None:
        """A one-off step worth a line (loading the model takes seconds)."""

    def close(self) -> None:
        """Called once at the end (or on failure): stop timers, final line."""

    def changed(self) -> None:
        """A count moved."""

    # -- what is shown ------------------------------------------------------------------------
    def rate(self) -> float:
        if self._t_embed is None or not self.embedded:
            return 0.0
        return self.embedded / max(1e-9, time.perf_counter() - self._t_embed)

    def fraction(self) -> float:
        if self.phase == "embedding":
            return self.embedded / self.to_embed if self.to_embed else 1.0
        return self.files / self.files_total if self.files_total else 0.0

    def line(self) -> str:
        if self.phase == "embedding":
            rate = self.rate()
            eta = f", ETA {_duration((self.to_embed - self.embedded) / rate)}" if rate else ""
            return (
                f"ingest: embedding {self.embedded}/{self.to_embed} passages ({self.fraction():.0%}), "
                f"{self.files} files, {rate:.1f} passages/s{eta}"
            )
        return f"ingest: {self.phase} files {self.files}/{self.files_total} ({self.fraction():.0%})"


class LineProgress(Progress):
    """Plain lines for a non-terminal: every ``interval`` seconds (a timer thread, so even one
    slow batch cannot make the run silent) and whenever the work crosses another ``step``."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0, step: float = 0.05) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.interval, self.step = interval, step
        self._last_mark = -1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_print = 0.0
        self._thread = threading.Thread(target=self._tick, name="ingest-progress", daemon=True)
        self._thread.start()

    def _print(self) -> None:
        with self._lock:
            try:
                print(self.line(), file=self.stream, flush=True)
            except (OSError, ValueError):  # a closed pipe must not fail the ingest
                pass
            self._last_print = time.monotonic()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if time.monotonic() - self._last_print >= self.interval:
                self._print()

    def changed(self) -> None:
        mark = int(self.fraction() / self.step) if self.step > 0 else 0
        key = (self.phase == "embedding") * 1000 + mark
        if key != self._last_mark:
            self._last_mark = key
            self._print()

    def start_embedding(self, total: int) -> None:
        self._last_mark = -1
        super().start_embedding(total)

    def message(self, text: str) -> None:
        with self._lock:
            try:
                print(f"ingest: {text}", file=self.stream, flush=True)
            except (OSError, ValueError):
                pass
            self._last_print = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        if self.phase == "embedding" and self.embedded and self.embedded != self.to_embed:
            self._print()


class BarProgress(Progress):
    """The rich bar on a terminal (stderr)."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self._bar.start()
        self._files = self._bar.add_task("reading files", total=None, rate="")
        self._embed = None

    def start_files(self, total: int) -> None:
        super().start_files(total)
        self._bar.update(self._files, total=total)

    def changed(self) -> None:
        self._bar.update(self._files, completed=self.files)
        if self.phase == "embedding":
            if self._embed is None:
                self._embed = self._bar.add_task("embedding passages", total=self.to_embed, rate="")
            self._bar.update(self._embed, completed=self.embedded, rate=f"{self.rate():.1f}/s")

    def message(self, text: str) -> None:
        self._bar.console.print(text)

    def close(self) -> None:
        self._bar.stop()


def make_progress(mode: bool | str | Progress | None) -> Progress | None:
    """``True``/"auto": a bar on a terminal, lines otherwise; "bar" or "lines" to choose;
    ``False``/``None``: nothing; a ``Progress`` is used as is."""
    if isinstance(mode, Progress):
        return mode
    if not mode:
        return None
    if mode == "auto" or mode is True:
        mode = "bar" if sys.stderr.isatty() else "lines"
    return BarProgress() if mode == "bar" else LineProgress()
