"""The image tower as an exported ONNX graph run by ONNX Runtime (CPU inference engine).

On CPU, ONNX Runtime runs the bundled gxa-tiny image tower 1.8x faster than torch
eager at one thread, in float32, embeddings equal to about 1e-6
(benchmarks/classify_throughput.py). ``Predictor`` uses it for CPU inference when
``engine`` is ``"auto"`` (the default) or ``"onnx"``; training and the text and
symbol towers stay in torch.

The graph is exported once per model weights and torch version into the user's
cache (``$GALAXALIGN_ASTRO_CACHE``, else ``$XDG_CACHE_HOME/galaxalign-astro``, else
``~/.cache/galaxalign-astro``), under ``onnx/``. A cache that cannot be written is
not an error: the graph is then kept in memory for the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["OnnxImageEncoder", "cache_dir", "onnx_available"]

log = logging.getLogger(__name__)

#: ONNX operator set of the exported graphs
OPSET = 17


def onnx_available() -> bool:
    """Whether ONNX Runtime and the exporter's ``onnx`` package can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except (ImportError, OSError):  # not installed, or its shared libraries do not load
        return False
    return True


def cache_dir() -> Path:
    """Where exported graphs are kept (see the module docstring)."""
    explicit = os.environ.get("GALAXALIGN_ASTRO_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "galaxalign-astro"


class _ImageTower(torch.nn.Module):
    """``model.encode_image`` (input normalisation, tower, L2 norm) as one module."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images)


class OnnxImageEncoder:
    """Embeds prepared images (n, 3, S, S) float32 like ``model.encode_image``.

    Parameters
    ----------
    loaded : LoadedModel
        The model whose image tower is exported (on CPU, float32).
    """

    def __init__(self, loaded: Any) -> None:
        self.image_size = int(loaded.model.image_size)
        key = f"{loaded.weights_sha256[:24]}-torch{torch.__version__}-opset{OPSET}"
        self.path = cache_dir() / "onnx" / f"{key.replace('+', '_')}.onnx"
        self._sessions: dict[int, Any] = {}
        self._graph = self._cached_graph(loaded)

    def _cached_graph(self, loaded: Any) -> bytes:
        if self.path.is_file():
            graph = self.path.read_bytes()
            try:
                self._sessions[1] = _session(graph, 1)
                return graph
            except Exception:  # a truncated or foreign file: export again
                log.warning("%s: unreadable cached graph; exporting the model again", self.path)
        graph = _export(loaded, self.image_size)
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".export-", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(graph)
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            log.info("cannot cache the exported graph in %s (%s); kept in memory", self.path, exc)
        finally:
            if tmp is not None:  # a cache that filled up: no half-written file left behind
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return graph

    def session(self, threads: int):
        """An ONNX Runtime session running on ``threads`` threads (one per count)."""
        if threads not in self._sessions:
            self._sessions[threads] = _session(self._graph, threads)
        return self._sessions[threads]

    def __call__(self, images: np.ndarray, *, threads: int = 1) -> np.ndarray:
        """Unit-norm embeddings (n, dim) float32 of ``images`` (n, 3, S, S) in [0, 1]."""
        feed = np.ascontiguousarray(images, dtype=np.float32)
        return self.session(threads).run(None, {"images": feed})[0]


def _export(loaded: Any, size: int) -> bytes:
    import warnings

    tower = _ImageTower(loaded.model).eval()
    example = torch.zeros((2, 3, size, size))
    # traced with autograd on: without it torch's attention takes its fused inference
    # kernel, which has no ONNX form
    with (
        tempfile.TemporaryDirectory(prefix="galaxalign-export-") as folder,
        warnings.catch_warnings(),
        torch.inference_mode(False),
        torch.enable_grad(),
    ):
        warnings.simplefilter("ignore")  # tracer notes on open_clip's shape checks
        path = os.path.join(folder, "tower.onnx")
        torch.onnx.export(
            tower,
            (example,),
            path,
            input_names=["images"],
            output_names=["embedding"],
            dynamic_axes={"images": {0: "n"}, "embedding": {0: "n"}},
            opset_version=OPSET,
            dynamo=False,
        )
        return Path(path).read_bytes()


def _session(graph: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle threads sleep instead of spinning against the loader processes
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
