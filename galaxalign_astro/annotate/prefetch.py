"""Reading catalog chunks in a background thread while the model works.

When cutouts are fetched, a background thread reads and downloads the next chunk
while the model works on the current one (ours: at most two chunks ahead), so a slow
service and the model overlap instead of taking turns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["PREFETCH_CHUNKS", "Chunk", "in_background", "resolved_chunks"]

#: chunks a background fetch may run ahead of the model
PREFETCH_CHUNKS = 2


class _Stop(Exception):
    pass


def in_background(items: Iterable[Any], *, depth: int, cancel: threading.Event) -> Iterator[Any]:
    """Yield ``items``, produced by a daemon thread at most ``depth`` items ahead."""
    done = object()
    box: queue.Queue[Any] = queue.Queue(maxsize=depth)

    def put(item: Any) -> None:
        while not cancel.is_set():
            try:
                box.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def produce() -> None:
        try:
            for item in items:
                put(item)
            put(done)
        except _Stop:
            pass
        except BaseException as exc:  # handed to the consumer, which raises it
            try:
                put(exc)
            except _Stop:
                pass

    thread = threading.Thread(target=produce, name="galaxalign-annotate-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()
        thread.join(timeout=10)


@dataclass
class Chunk:
    """One chunk of catalog rows with its cutout paths (None: failed) and errors."""

    index: int
    table: Any
    paths: list[str | None]
    errors: list[str]


def resolved_chunks(reader: Any, source: Any, chunk_size: int, skip: set[int]) -> Iterator[Chunk]:
    """The chunks of ``reader`` not in ``skip``, with their cutouts found by ``source``."""
    for k, table in reader.chunks(chunk_size, skip=skip):
        paths, errors = source.resolve(table, k * chunk_size)
        yield Chunk(k, table, paths, errors)
