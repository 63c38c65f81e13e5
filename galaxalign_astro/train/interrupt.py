"""Graceful stop on SIGINT / SIGTERM: finish the optimizer step, save, leave.

While a :class:`StopGuard` is active, the first SIGINT (Ctrl-C) or SIGTERM (a
batch scheduler or ``torchrun`` stopping the job) only sets a flag; the trainer
checks it after each optimizer step, writes a resumable checkpoint and raises
:class:`TrainingInterrupted`. A second SIGINT aborts at once with
``KeyboardInterrupt`` (no checkpoint beyond the last one written).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from ..errors import GalaxAlignError

__all__ = ["StopGuard", "TrainingInterrupted"]

log = logging.getLogger(__name__)


class TrainingInterrupted(GalaxAlignError):
    """Training stopped early; a checkpoint to ``--resume`` from was written (when possible).

    Attributes
    ----------
    checkpoint : pathlib.Path or None
    signum : int or None
        The signal that stopped the run (None: stopped by the program).
    """

    def __init__(self, message: str, *, checkpoint=None, signum: int | None = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """128 + signal number, the shell's convention (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + (self.signum or signal.SIGINT)


class StopGuard:
    """Context manager turning SIGINT/SIGTERM into a stop request (main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def request(self, signum: int | None = None) -> None:
        self.requested = True
        self.signum = signum if signum is not None else self.signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning(
            "%s received: finishing this step and saving a checkpoint (Ctrl-C again to abort)",
            signal.Signals(signum).name,
        )
        self.request(signum)

    def __enter__(self) -> StopGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
