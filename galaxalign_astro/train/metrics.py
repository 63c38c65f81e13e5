"""The metrics log of a training run: ``metrics.jsonl``, ``metrics.csv``, optional TensorBoard.

``metrics.jsonl`` holds one JSON object per line: ``"kind": "step"`` records
every ``log_every`` optimizer steps (loss, learning rate, temperature,
throughput) and ``"kind": "epoch"`` records after each epoch (mean losses and
validation accuracies). ``metrics.csv`` holds the epoch records with fixed
columns, for a spreadsheet. A resumed run drops records written after its
checkpoint, so the log reads as if the run had never stopped.
"""

from __future__ import annotations

import csv
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from ..errors import GalaxAlignWarning

__all__ = ["CSV_COLUMNS", "MetricsLog", "epoch_summary"]

log = logging.getLogger(__name__)

#: columns of ``metrics.csv`` (one row per epoch)
CSV_COLUMNS = (
    "stage",
    "epoch",
    "global_step",
    "loss",
    "loss_image_text",
    "loss_symbol_text",
    "loss_image_symbol",
    "lr",
    "logit_scale",
    "images_per_s",
    "val_acc_text",
    "val_acc_symbol",
    "val_acc_mix",
    "alpha",
    "best",
)


def epoch_summary(record: dict[str, Any], *, epochs: int | None = None) -> str:
    """One readable line of an epoch record: losses, validation, speed."""
    of = f"/{epochs}" if epochs else ""
    parts = [f"{record['stage']} epoch {record['epoch']}{of}: loss {record['loss']:.3f}"]
    terms = [
        f"{key[5:]} {value:.3f}"
        for key, value in record.items()
        if key.startswith("loss_") and isinstance(value, float)
    ]
    if terms:
        parts[0] += f" ({', '.join(terms)})"
    if "val_acc_mix" in record:
        alpha = record.get("alpha")
        mix = f"validation mix {record['val_acc_mix']:.3f}"
        mix += f" (alpha {alpha:.1f})" if alpha is not None else ""
        mix += f", text {record['val_acc_text']:.3f}, symbol {record['val_acc_symbol']:.3f}"
        parts.append(mix + (" best so far" if record.get("best") else ""))
    parts.append(f"{record['images_per_s']:.0f} images/s")
    return "; ".join(parts)


class MetricsLog:
    """Appends records to the log files of ``directory`` (nothing is written when None)."""

    def __init__(
        self,
        directory: str | Path | None,
        *,
        tensorboard: bool = False,
        resume_step: int | None = None,
        epochs: list[dict[str, Any]] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.writer = None
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.directory / "metrics.jsonl"
        self.csv = self.directory / "metrics.csv"
        if resume_step is None:
            self.jsonl.write_text("")
            self._write_csv([])
        else:
            self._truncate(resume_step, epochs or [])
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn(
                    "tensorboard is not installed: no TensorBoard events are written",
                    GalaxAlignWarning,
                    stacklevel=2,
                )
            else:
                self.writer = SummaryWriter(str(self.directory / "tensorboard"))

    def _truncate(self, step: int, epochs: list[dict[str, Any]]) -> None:
        kept = []
        if self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("kind") == "step" and record.get("global_step", 0) <= step:
                    kept.append(line)
        kept += [json.dumps({"kind": "epoch", **e}) for e in epochs]
        self.jsonl.write_text("".join(line + "\n" for line in kept))
        self._write_csv(epochs)

    def _write_csv(self, epochs: list[dict[str, Any]]) -> None:
        with self.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(epochs)

    def step(self, record: dict[str, Any]) -> None:
        self._append({"kind": "step", **record})
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, float):
                    self.writer.add_scalar(f"train/{key}", value, record["global_step"])

    def epoch(self, record: dict[str, Any]) -> None:
        self._append({"kind": "epoch", **record})
        if self.directory is not None:
            with self.csv.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore").writerow(record)
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, float):
                    self.writer.add_scalar(f"epoch/{key}", value, record["global_step"])

    def _append(self, record: dict[str, Any]) -> None:
        if self.directory is None:
            return
        with self.jsonl.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
