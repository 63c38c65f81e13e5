"""Classification of cutouts: streaming batches from disk to a catalog.

A DataLoader's worker processes read and prepare cutouts while the main process
runs the model; every batch is written to the output as soon as it is classified,
so memory does not grow with the number of inputs.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ModelLoadError
from ..io.cutouts import expand_inputs

__all__ = [
    "ClassifySummary",
    "Predictor",
    "add_morphology_columns",
    "classify",
    "classify_to_file",
    "default_workers",
    "iter_classify",
    "model_threads",
]

log = logging.getLogger(__name__)


@dataclass
class ClassifySummary:
    """Outcome of :func:`classify_to_file`."""

    output: str
    n_total: int
    n_ok: int
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return len(self.failures)


class Predictor:
    """A loaded model plus its class prototypes, ready to classify prepared images.

    ``classes``: None for the model's own classes, or zero-shot classes as a class
    file path, a `~galaxalign_astro.inference.zeroshot.ClassSet` or a
    `~galaxalign_astro.inference.zeroshot.ClassHead`.

    ``engine`` runs the image tower: ``"torch"``, ``"onnx"`` (ONNX Runtime on an
    exported graph, CPU only, same embeddings to about 1e-6;
    :mod:`galaxalign_astro.models.export`) or ``"auto"``: ONNX Runtime on CPU when it
    is installed, else torch. The graph is exported (or taken from the cache) on
    the first batch, so predictors that classify nothing export nothing.
    """

    def __init__(
        self,
        model: Any = "default",
        *,
        device: str = "cpu",
        classes: Any = None,
        engine: str = "auto",
    ) -> None:
        import torch

        from ..models.checkpoint import LoadedModel, load_model

        if engine not in ENGINES:
            msg = f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}"
            raise ValueError(msg)
        self.loaded: LoadedModel = (
            model if isinstance(model, LoadedModel) else load_model(model, device=device)
        )
        self.device = torch.device(device)
        self.loaded.model.to(self.device).eval()
        self.engine = _resolve_engine(engine, self.device)
        self._engine_asked = engine
        self._onnx: Any = None
        self._set_classes(classes)

    def _set_classes(self, classes: Any) -> None:
        import torch

        from .zeroshot import class_head

        self.head = class_head(self.loaded, classes)
        self.class_names = list(self.head.names)
        self.prototypes = torch.from_numpy(self.head.prototypes.copy()).to(self.device)

    def with_classes(self, classes: Any) -> Predictor:
        """A predictor sharing this one's loaded model, classifying into ``classes``
        (as for the constructor)."""
        other = copy.copy(self)
        other._set_classes(classes)
        return other

    @property
    def config(self):
        return self.loaded.spec.preprocess

    @property
    def embed_dim(self) -> int:
        return self.loaded.model.embed_dim

    def predict(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (n, n_classes) and embeddings (n, dim) of prepared images."""
        import torch

        from ..models.prototypes import class_probabilities

        encoder = self._onnx_encoder() if self.engine == "onnx" else None
        with torch.inference_mode():
            if encoder is not None:
                emb = torch.from_numpy(encoder(images.numpy(), threads=torch.get_num_threads()))
            else:
                emb = self.loaded.model.encode_image(images.to(self.device))
            probs = class_probabilities(emb, self.prototypes, self.loaded.model.logit_scale)
        return probs.cpu().numpy(), emb.cpu().numpy()

    def ready(self) -> str:
        """Prepare the image-tower engine now (export or load the ONNX graph); return it.

        Catalog provenance is written before the first batch, so it asks here which
        engine will run (``auto`` falls back to torch when the export fails).
        """
        if self.engine == "onnx":
            self._onnx_encoder()
        return self.engine

    def _onnx_encoder(self):
        """The ONNX image encoder, exported on first use; None when ``auto`` fell back to torch."""
        if self._onnx is None:
            from ..models.export import OnnxImageEncoder

            try:
                self._onnx = OnnxImageEncoder(self.loaded)
            except Exception as exc:  # an architecture or runtime ONNX cannot take
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if self._engine_asked == "onnx":
                    msg = f"{self.loaded.spec.name}: cannot run on ONNX Runtime ({reason})"
                    raise ModelLoadError(msg) from exc
                log.warning(
                    "%s: ONNX export failed (%s); the image tower runs in torch",
                    self.loaded.spec.name,
                    reason,
                )
                self.engine = "torch"
                return None
        return self._onnx

    def provenance(self) -> dict[str, Any]:
        meta = self.loaded.provenance()
        meta["engine"] = self.engine
        meta["date"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        meta["class_names"] = self.class_names
        if self.head.zero_shot:
            meta["zero_shot_classes"] = self.head.source
            meta["zero_shot_classes_sha256"] = self.head.sha256
        return meta


#: image-tower engines of :class:`Predictor`
ENGINES = ("auto", "torch", "onnx")


def _resolve_engine(engine: str, device) -> str:
    if device.type != "cpu":
        if engine == "onnx":
            msg = f"engine 'onnx' runs on the CPU only, not on {device}"
            raise ValueError(msg)
        return "torch"
    if engine == "torch":
        return "torch"
    from ..models.export import onnx_available

    if onnx_available():
        return "onnx"
    if engine == "onnx":
        msg = "engine 'onnx' needs onnxruntime and onnx (pip install onnxruntime onnx)"
        raise ValueError(msg)
    return "torch"


def model_threads(n_workers: int) -> int:
    """torch threads for the model while ``n_workers`` loader processes decode (ours).

    The cores left over by the loader workers, at least one: oversubscribing the
    cores makes OpenMP threads spin against the decoding processes, which on a
    2-core machine cost more than the second model thread gains
    (benchmarks/classify_throughput.py).
    """
    cores = os.cpu_count() or 1
    return max(1, cores - n_workers) if n_workers else cores


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(min(n, before) if before else n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_workers(
    n_items: int, batch_size: int, *, device: str = "cpu", engine: str = "onnx"
) -> int:
    """Loader processes for ``n_items`` cutouts (ours; benchmarks/classify_throughput.py).

    None for runs of under two batches (starting processes costs more than it
    saves). A torch model on the CPU costs about what decoding costs per cutout, so
    the cores are shared half and half; the ONNX engine needs half of that, and a
    GPU model none, so every core gets a worker (the model thread then shares a core
    with one, which the engine's non-spinning threads allow). At most 4.
    """
    if n_items < 2 * batch_size:
        return 0
    cores = os.cpu_count() or 1
    share = cores // 2 if str(device).startswith("cpu") and engine == "torch" else cores
    return max(1, min(4, share))


def iter_classify(
    dataset,
    predictor: Predictor,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    embeddings: bool = True,
    progress: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield one dict of column arrays per batch, in input order.

    Keys: ``index`` (dataset item), ``ra``, ``dec``, ``class_id``, ``class_name``,
    ``class_prob``, ``probs``, ``status``, ``message``, ``embedding`` (when
    ``embeddings``) and ``measurements`` (when the dataset was made with
    ``measurements=True``: the flat vectors of
    :func:`~galaxalign_astro.inference.dataset.measurement_vector`).
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .columns import fit_message
    from .dataset import Batches, preload_readers, worker_init

    if workers is None:
        n_workers = default_workers(
            len(dataset), batch_size, device=str(predictor.device), engine=predictor.engine
        )
    else:
        n_workers = workers
    if n_workers:
        preload_readers(dataset.config)
    loader = DataLoader(
        Batches(dataset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=n_workers,
        collate_fn=Batches.collate,
        worker_init_fn=worker_init if n_workers else None,
        prefetch_factor=4 if n_workers else None,
    )
    names = np.array(predictor.class_names)
    n_classes = len(names)
    with (
        _torch_threads(model_threads(n_workers)),
        tqdm(
            total=len(dataset), unit="cutout", disable=not progress, file=sys.stderr, smoothing=0.1
        ) as bar,
    ):
        for batch in loader:
            ok = batch["ok"].numpy().astype(bool)
            n = len(ok)
            probs = np.full((n, n_classes), np.nan, dtype=np.float32)
            emb = np.full((n, predictor.embed_dim), np.nan, dtype=np.float32)
            if ok.any():
                p, e = predictor.predict(batch["image"][ok])
                probs[ok], emb[ok] = p, e
            best = np.where(ok, np.nan_to_num(probs, nan=-1).argmax(axis=1), -1)
            chunk = {
                "index": batch["index"].numpy(),
                "ra": batch["ra"].numpy().astype(np.float64),
                "dec": batch["dec"].numpy().astype(np.float64),
                "class_id": best.astype(np.int16),
                "class_name": np.where(ok, names[np.maximum(best, 0)], ""),
                "class_prob": np.where(ok, probs.max(axis=1, initial=-1), np.nan).astype(
                    np.float32
                ),
                "probs": probs,
                "status": np.where(ok, "ok", "error"),
                "message": np.array([fit_message(m) for m in batch["error"]], dtype=str),
            }
            if embeddings:
                chunk["embedding"] = emb
            if "measurements" in batch:  # datasets made with measurements=True
                chunk["measurements"] = batch["measurements"].numpy()
            bar.update(n)
            yield chunk


def _file_dataset(files: Sequence[str], predictor: Predictor):
    from .dataset import CutoutFiles

    return CutoutFiles(list(files), predictor.config)


def classify(
    paths: Sequence[str | os.PathLike[str]],
    *,
    model: Any = "default",
    batch_size: int = 64,
    device: str = "cpu",
    embeddings: bool = True,
    workers: int | None = None,
    progress: bool = False,
    classes: Any = None,
    recursive: bool = False,
    engine: str = "auto",
):
    """Classify cutout files; return an astropy Table with one row per input.

    Directories and glob patterns are expanded (with ``recursive``, the
    sub-folders of directories too; see `~galaxalign_astro.io.expand_inputs`).
    Rows of files that cannot be used have ``status='error'`` and the reason in
    ``message``. ``engine``: the image tower's engine (see :class:`Predictor`).
    """
    from astropy.table import Table

    from .columns import output_columns

    files = expand_inputs(paths, recursive=recursive)
    predictor = Predictor(model, device=device, classes=classes, engine=engine)
    dataset = _file_dataset(files, predictor)
    chunks = list(
        iter_classify(
            dataset,
            predictor,
            batch_size=batch_size,
            workers=workers,
            embeddings=embeddings,
            progress=progress,
        )
    )
    specs = output_columns(
        predictor.class_names,
        embed_dim=predictor.embed_dim,
        embeddings=embeddings,
        path_width=max([len(p) for p in dataset.paths] + [1]),
    )
    table = Table(meta=_meta(predictor))
    for spec in specs:
        if spec.name == "source":
            values = np.array(dataset.paths, dtype=str)
        elif chunks:
            values = np.concatenate([c[spec.name] for c in chunks])
        else:
            values = np.zeros((0, *spec.shape), dtype=spec.numpy_dtype)
        table[spec.name] = values
        table[spec.name].unit = spec.unit
        table[spec.name].description = spec.description
    return table


def _provenance(predictor: Predictor, *, command: str | None = None):
    """The catalog's `~galaxalign_astro.catalog.Provenance` (the engine is settled first,
    so the record names the one that runs)."""
    from ..catalog import Provenance

    predictor.ready()
    return Provenance.from_model(predictor, step="classify", command=command)


def _meta(predictor: Predictor, *, command: str | None = None) -> dict[str, Any]:
    """Catalog metadata: the standard provenance header keys (GAVERSN, CREATOR, DATE,
    MODEL, WSHA256, ENGINE, PREPROC, STRETCH, BANDS) and the full record."""
    meta = _provenance(predictor, command=command).to_meta()
    meta["package_version"] = __version__
    return meta


def classify_to_file(
    paths: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    model: Any = "default",
    batch_size: int = 64,
    device: str = "cpu",
    embeddings: bool = True,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    classes: Any = None,
    recursive: bool = False,
    engine: str = "auto",
    command: str | None = None,
) -> ClassifySummary:
    """Classify cutout files and stream the rows to ``output`` (format from its suffix).

    The output is written atomically and an existing one is never replaced unless
    ``overwrite``; that check, the one of the output suffix (an
    `~galaxalign_astro.errors.UnsupportedFormatError`) and the expansion of
    ``paths`` (as in `classify`) happen before the model is loaded. ``command`` (the
    command line) goes into the catalog's provenance.
    """
    from ..catalog import open_writer, output_format
    from ..catalog.base import check_output_path
    from .columns import output_columns

    check_output_path(output, overwrite=overwrite)
    output_format(output)
    t0 = time.perf_counter()
    files = expand_inputs(paths, recursive=recursive)
    if not files:
        msg = "no input cutouts (empty directory or glob with no match)"
        raise ValueError(msg)
    predictor = Predictor(model, device=device, classes=classes, engine=engine)
    dataset = _file_dataset(files, predictor)
    specs = output_columns(
        predictor.class_names,
        embed_dim=predictor.embed_dim,
        embeddings=embeddings,
        path_width=max(len(p) for p in dataset.paths),
    )
    failures: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    n_ok = 0
    with open_writer(
        output, specs, meta=_meta(predictor, command=command), overwrite=overwrite
    ) as writer:
        for chunk in iter_classify(
            dataset,
            predictor,
            batch_size=batch_size,
            workers=workers,
            embeddings=embeddings,
            progress=progress,
        ):
            chunk["source"] = np.array([dataset.paths[i] for i in chunk["index"]], dtype=str)
            del chunk["index"]
            writer.write(chunk)
            for status, message, source, name in zip(
                chunk["status"],
                chunk["message"],
                chunk["source"],
                chunk["class_name"],
                strict=True,
            ):
                if status == "ok":
                    n_ok += 1
                    counts[str(name)] = counts.get(str(name), 0) + 1
                else:
                    failures.append((str(source), str(message)))
                    log.error("%s", message)
    return ClassifySummary(
        str(output), len(dataset), n_ok, time.perf_counter() - t0, failures, counts
    )


def add_morphology_columns(
    table,
    *,
    path_col: str | None = None,
    images: str | None = None,
    model: Any = "default",
    bands: Sequence[str] | None = None,
    prefix: str = "",
    embeddings: bool = True,
    batch_size: int = 64,
    device: str = "cpu",
    workers: int | None = 0,
    base_dir: str | os.PathLike[str] | None = None,
):
    """Add the model's columns to an astropy ``table`` in place and return it.

    .. deprecated::
        Use ``galaxalign_astro.annotate.annotate(table, inplace=True, ...)``, the
        one Table API (cutouts from ``path_col``, ``images``, a directory or a
        survey; columns with ``prefix='gxa_'`` by default, status and message
        included); ``annotate(table, ...)`` without ``inplace`` returns a copy.

    Parameters
    ----------
    table : astropy.table.Table
    path_col : str
        Name of the column of cutout file paths (relative to ``base_dir``).
    images : str
        Name of the column of image arrays (N, bands, H, W) with band names
        ``bands``. File paths here are deprecated: use ``path_col``.
    prefix : str
        Prepended to the new column names; a name already in the table is an error.

    Raises
    ------
    TypeError
        Not exactly one of ``path_col`` and ``images``.
    ValueError
        A missing column, or a column the model would add is already in ``table``.
    """
    import warnings

    warnings.warn(
        "add_morphology_columns is deprecated; use "
        "galaxalign_astro.annotate.annotate(table, inplace=True, ...) instead",
        DeprecationWarning,
        stacklevel=2,
    )
    if (path_col is None) == (images is None):
        msg = "add_morphology_columns takes one of path_col (file paths) and images (arrays)"
        raise TypeError(msg)
    if images is not None and images in table.colnames:
        column = table[images]
        if column.dtype.kind in "US" or (column.dtype == object and isinstance(column[0], str)):
            warnings.warn(
                f"images= with file paths is deprecated; use path_col={images!r}",
                DeprecationWarning,
                stacklevel=2,
            )
            path_col, images = images, None
    name = path_col if path_col is not None else images
    from .columns import model_columns
    from .dataset import ArrayCutouts, CutoutFiles, PreparedDataset

    predictor = Predictor(model, device=device)
    specs = model_columns(
        predictor.class_names, embed_dim=predictor.embed_dim, embeddings=embeddings, prefix=prefix
    )
    clash = [s.name for s in specs if s.name in table.colnames]
    if clash:
        msg = f"table already has column(s) {', '.join(clash)}; pass prefix= to add them"
        raise ValueError(msg)
    if name not in table.colnames:
        msg = f"table has no column {name!r} with cutouts"
        raise ValueError(msg)
    column = table[name]
    if path_col is not None:
        base = os.fspath(base_dir) if base_dir is not None else ""
        paths = [str(p) if os.path.isabs(str(p)) else os.path.join(base, str(p)) for p in column]
        dataset: PreparedDataset = CutoutFiles(paths, predictor.config)
    else:
        dataset = ArrayCutouts(np.asarray(column), predictor.config, bands=bands)
    chunks = list(
        iter_classify(
            dataset, predictor, batch_size=batch_size, workers=workers, embeddings=embeddings
        )
    )
    for spec in specs:
        key = spec.name[len(prefix) :]
        values = np.concatenate([c[key] for c in chunks]) if chunks else np.zeros((0, *spec.shape))
        table[spec.name] = values
        table[spec.name].unit = spec.unit
        table[spec.name].description = spec.description
    table.meta.setdefault("galaxalign", _provenance(predictor).record())
    return table
