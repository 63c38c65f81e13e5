"""The annotation engine: the model, the added columns and where each row's cutout is.

`Annotator` fills in the added columns of a block of rows; `cutout_source` turns a
`~galaxalign_astro.annotate.CutoutSpec` into the object that finds each row's
cutout (`galaxalign_astro.annotate.cutouts`); `coord_columns` and `catalog_radec`
find and read the positions. The in-memory API (`galaxalign_astro.annotate.table`),
the streamed file driver (`galaxalign_astro.annotate.stream`) and the Dask and LSDB
runners of `galaxalign_astro.scale` all classify through these.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..catalog import Provenance
from ..inference.columns import fit_message
from .columns import annotation_columns
from .cutouts import CutoutSource
from .params import CutoutSpec

__all__ = [
    "Annotator",
    "catalog_radec",
    "coord_columns",
    "cutout_source",
    "predictor_for",
    "progress_bar",
]

log = logging.getLogger(__name__)


def predictor_for(model: Any, device: str, classes: Any = None) -> Any:
    """A `~galaxalign_astro.inference.Predictor` of ``model`` (reused when it is one)."""
    from ..inference.run import Predictor

    if isinstance(model, Predictor):
        return model if classes is None else model.with_classes(classes)
    return Predictor(model, device=device, classes=classes)


class Annotator:
    """The model, the added columns and how a block of rows is filled in."""

    def __init__(
        self,
        predictor: Any,
        *,
        prefix: str,
        embeddings: bool,
        batch_size: int,
        workers: int | None,
    ) -> None:
        from ..inference.columns import MESSAGE_WIDTH

        self.predictor = predictor
        self.prefix = prefix
        self.embeddings = embeddings
        self.batch_size = batch_size
        self.workers = workers
        config = predictor.config
        self.n_bands = len(config.bands) if config.sources is not None else None
        self.columns = annotation_columns(
            predictor.class_names,
            embed_dim=predictor.embed_dim,
            embeddings=embeddings,
            n_bands=self.n_bands,
            prefix=prefix,
        )
        self.specs = {spec.name[len(prefix) :]: spec for spec in self.columns}
        self.message_width = MESSAGE_WIDTH

    def blank(self, n: int, errors: Sequence[str]) -> dict[str, np.ndarray]:
        """Columns of ``n`` rows that all failed with ``errors``."""
        out = {
            key: np.full((n, *spec.shape), spec.null, dtype=spec.numpy_dtype)
            for key, spec in self.specs.items()
        }
        out["status"][:] = "error"
        out["message"][:] = [fit_message(e, self.message_width) for e in errors]
        return out

    def fill(
        self,
        dataset: Any,
        rows: np.ndarray,
        out: dict[str, np.ndarray],
        radec: tuple[np.ndarray, np.ndarray] | None,
        bar: Any,
    ) -> None:
        """Classify ``dataset`` (item ``i`` is block row ``rows[i]``) into ``out``."""
        from ..inference.dataset import measurement_layout
        from ..inference.run import iter_classify

        layout = measurement_layout(self.n_bands) if self.n_bands is not None else []
        for batch in iter_classify(
            dataset,
            self.predictor,
            batch_size=self.batch_size,
            workers=self.workers,
            embeddings=self.embeddings,
            progress=False,
        ):
            idx = rows[batch["index"]]
            for key in ("class_id", "class_name", "class_prob", "probs", "status"):
                out[key][idx] = batch[key]
            if self.embeddings:
                out["embedding"][idx] = batch["embedding"]
            out["message"][idx] = [fit_message(m, self.message_width) for m in batch["message"]]
            if radec is not None:
                out["sep"][idx] = _separation_arcsec(
                    radec[0][idx], radec[1][idx], batch["ra"], batch["dec"]
                )
            if layout:
                vectors = batch["measurements"]
                for name, start, length in layout:
                    spec = self.specs[name]
                    values = vectors[:, start : start + length].reshape(len(idx), *spec.shape)
                    if spec.dtype[0] in "iu":  # NaN marks rows without the measurement
                        good = np.isfinite(values).reshape(len(idx), -1).all(axis=1)
                        out[name][idx[good]] = values[good].astype(spec.numpy_dtype)
                    else:
                        out[name][idx] = values
            bar.update(len(idx))

    def block(
        self,
        paths: Sequence[str | None],
        errors: Sequence[str],
        radec: tuple[np.ndarray, np.ndarray] | None,
        bar: Any,
    ) -> dict[str, np.ndarray]:
        """Columns of a block of rows whose cutouts are ``paths`` (None: failed)."""
        from ..inference.dataset import CutoutFiles

        out = self.blank(len(paths), errors)
        todo = np.array([i for i, p in enumerate(paths) if p is not None], dtype=int)
        bar.update(len(paths) - len(todo))
        if len(todo):
            dataset = CutoutFiles(
                [str(paths[i]) for i in todo],
                self.predictor.config,
                measurements=self.n_bands is not None,
            )
            self.fill(dataset, todo, out, radec, bar)
        return out

    def provenance(
        self, settings: Mapping[str, Any], date: str | None = None, **run: Any
    ) -> Provenance:
        """The run's `~galaxalign_astro.catalog.Provenance`: the model, the annotate
        ``settings``, and ``run`` (``command``, ``input``, ``survey``, extra entries)."""
        return Provenance.from_model(
            self.predictor, step="annotate", settings=settings, date=date, **run
        )


def _separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    from astropy.coordinates import angular_separation

    rad = np.deg2rad
    with np.errstate(invalid="ignore"):
        sep = angular_separation(rad(ra1), rad(dec1), rad(np.asarray(ra2)), rad(np.asarray(dec2)))
    return np.rad2deg(np.asarray(sep, dtype=np.float64)) * 3600.0


def coord_columns(
    template: Any, ra_col: str | None, dec_col: str | None, *, required: bool
) -> tuple[str, str] | None:
    from ..fetch import find_coord_columns

    try:
        return find_coord_columns(template, ra_col=ra_col, dec_col=dec_col)
    except ValueError:
        if required or ra_col is not None or dec_col is not None:
            raise
        log.info("no RA/Dec columns found; the separation column stays NaN")
        return None


def catalog_radec(table: Any, coords: tuple[str, str] | None):
    """RA and Dec in degrees of every row of ``table`` (None without ``coords``)."""
    if coords is None:
        return None
    from ..fetch import read_targets

    _, ra, dec = read_targets(table, ra_col=coords[0], dec_col=coords[1])
    return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)


def cutout_source(
    spec: CutoutSpec, *, coords: tuple[str, str] | None, preprocess: Any
) -> CutoutSource | None:
    """The `~galaxalign_astro.annotate.CutoutSource` of ``spec`` (None for images in memory).

    Parameters
    ----------
    spec : `~galaxalign_astro.annotate.CutoutSpec`
        Where the cutouts come from (already checked).
    coords : (str, str) or None
        RA and Dec column names; fetching needs them.
    preprocess : `~galaxalign_astro.preprocess.PreprocessConfig`
        The model's preprocessing, which sets the geometry of fetched cutouts.
    """
    from .cutouts import CutoutsDirectory, PathColumn

    if spec.path_col is not None:
        return PathColumn(spec.path_col, spec.base_dir)
    if spec.cutouts_dir is not None:
        return CutoutsDirectory(spec.cutouts_dir, spec.id_col, spec.pattern)
    if spec.fetch is not None:
        return _fetch_source(
            spec.fetch, spec.fetch_options, spec.fetch_dir, coords, spec.id_col, preprocess
        )
    return None


#: fetch options that go to the survey client (the others set the cutout geometry)
_GEOMETRY_KEYS = ("size", "pixscale", "bands", "max_workers")


def _fetch_source(fetch, fetch_options, fetch_dir, coords, id_col, preprocess):
    from ..fetch import SurveyClient, get_client
    from .cutouts import FetchedCutouts, fetch_geometry, geometry_problems

    options = dict(fetch_options or {})
    geometry = {key: options.pop(key) for key in _GEOMETRY_KEYS if key in options}
    if isinstance(fetch, SurveyClient):
        if options:
            msg = f"fetch options {sorted(options)} configure a new client; not with a client"
            raise ValueError(msg)
        client = fetch
    else:
        if geometry.get("max_workers") is not None:
            options["max_workers"] = geometry["max_workers"]
        client = get_client(str(fetch), **options)
    shape = fetch_geometry(
        client,
        preprocess,
        size=geometry.get("size"),
        pixscale=geometry.get("pixscale"),
        bands=geometry.get("bands"),
    )
    for problem in geometry_problems(preprocess, shape):
        log.warning("fetch geometry: %s", problem)
    if coords is None:  # pragma: no cover - coord_columns raises first
        msg = "fetching cutouts needs RA/Dec columns"
        raise ValueError(msg)
    return FetchedCutouts(
        client,
        fetch_dir or "",
        ra_col=coords[0],
        dec_col=coords[1],
        id_col=id_col,
        max_workers=geometry.get("max_workers"),
        **shape,
    )


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar of rows on stderr (disabled unless ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="row",
        disable=not enabled,
        file=sys.stderr,
        smoothing=0.05,
        dynamic_ncols=True,
    )
