"""What the management commands share: a progress display and the ``--json`` result line.

No Django import. On a terminal the progress is a tqdm bar; when the stream is not a
TTY (CI logs, ``nohup``, a pipe) it is a plain line at most every ``every_s`` seconds
and one at the end, never carriage returns.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm


class Progress:
    """Progress of a job whose position the caller reports (``update(done, total)``).

    Use as a context manager; ``status`` is a short free text shown after the counts.
    """

    def __init__(
        self,
        desc: str,
        *,
        total: int | None = None,
        unit: str = "",
        stream: TextIO | io.TextIOBase | None = None,
        every_s: float = 10.0,
        tty: bool | None = None,
    ) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        stream = stream if stream is not None else sys.stderr
        # A command's self.stderr (Django's OutputWrapper) appends a newline to every
        # write, which would break tqdm's in-place redraw: write to what it wraps.
        self.stream = getattr(stream, "_out", stream)
        self.every_s = every_s
        self.done = 0
        self.status = ""
        self._last_line = ""
        self._last_at = float("-inf")
        self._updated = False
        is_tty = self.stream.isatty() if tty is None and hasattr(self.stream, "isatty") else bool(tty)
        self._bar = (
            tqdm(
                total=total,
                desc=desc,
                unit=f" {unit}" if unit else "it",
                file=self.stream,
                dynamic_ncols=True,
                disable=False,  # decided above; settings set TQDM_DISABLE for library bars off a terminal
            )
            if is_tty
            else None
        )

    def update(self, done: int, total: int | None = None, status: str = "") -> None:
        self.done, self._updated = done, True
        if total is not None:
            self.total = total
        self.status = status
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            self._bar.n = done
            self._bar.set_postfix_str(status, refresh=False)
            self._bar.refresh()
            return
        now = time.monotonic()
        finished = self.total is not None and done >= self.total
        if now - self._last_at >= self.every_s or finished:
            self._write_line(now)

    def line(self) -> str:
        counts = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        text = f"{self.desc}: {counts}" + (f" {self.unit}" if self.unit else "")
        return text + (f", {self.status}" if self.status else "")

    def _write_line(self, now: float) -> None:
        text = self.line()
        if text != self._last_line:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_line = text
        self._last_at = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._updated:
            self._write_line(time.monotonic())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_json_flag(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def write_json(command: Any, options: dict, result: dict) -> None:
    """With ``--json``: the command's result as one JSON object, its last line of stdout."""
    if options.get("json"):
        command.stdout.write(json.dumps(result, default=str, sort_keys=True))
