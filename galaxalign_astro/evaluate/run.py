"""Evaluate a trained model on labelled images: every classifier head and similarity search.

Heads (PAPER.md "Using the trained model"): cosine-softmax against the text
prototypes, the symbol prototypes and their stored mix (``alpha``), and a
linear probe on the image embeddings (:mod:`.probe`). Similarity search uses
the image embeddings of the evaluation set (:func:`.metrics.retrieval_metrics`).

When the data's classes are a subset of the model's (a Galaxy10 model on
GalaxyMNIST, matched by class key), the prototype heads choose among the
data's classes only (ours: the zero-shot protocol for a narrower label set).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..catalog import Provenance
from ..errors import OutputExistsError
from .hierarchy import hierarchical_metrics
from .metrics import classification_metrics, retrieval_metrics

__all__ = ["REPORT_FILES", "embed_images", "evaluate_model", "evaluate_to_dir"]

log = logging.getLogger(__name__)

REPORT_FILES = ("report.json", "report.md", "confusion.png", "reliability.png")


def embed_images(model, data, *, batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """Normalised image embeddings (n, dim) of prepared uint8 images (n, 3, S, S)."""
    import torch

    net = model.model
    dev = torch.device(device) if device else next(net.parameters()).device
    net.to(dev).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(data.images), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(data.images[start : start + batch_size]))
            out.append(net.encode_image(chunk.to(dev).float() / 255.0).float().cpu().numpy())
    dim = net.embed_dim
    return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)


def _class_columns(model, data) -> tuple[list[int], list[str], list[str]]:
    """Model prototype columns, class names and keys that the data's labels index."""
    spec = model.spec
    taxonomy = getattr(data, "taxonomy", None)
    if taxonomy is None or list(taxonomy.keys) == list(spec.class_keys):
        n = len(spec.class_keys)
        tree = _model_taxonomy(model)
        nodes = tree.n_nodes if tree is not None else n
        if len(data.labels) and int(np.max(data.labels)) >= nodes:
            msg = f"label {int(np.max(data.labels))} but the model has {n} classes"
            if nodes > n:
                msg += f" and {nodes - n} coarse groups"
            raise ValueError(msg)
        return list(range(n)), list(spec.class_names), list(spec.class_keys)
    missing = [k for k in taxonomy.keys if k not in spec.class_keys]
    if missing:
        msg = (
            f"the data's classes ({taxonomy.name}) include {', '.join(missing)}, "
            f"which model {spec.name!r} does not know"
        )
        raise ValueError(msg)
    return [spec.class_keys.index(k) for k in taxonomy.keys], taxonomy.names, taxonomy.keys


def _model_taxonomy(model):
    """The model's taxonomy when it has coarse groups over exactly the model's classes."""
    from ..taxonomy import TAXONOMIES

    tree = TAXONOMIES.get(str(model.spec.taxonomy))
    if tree is None or not tree.groups or list(tree.keys) != list(model.spec.class_keys):
        return None
    return tree


def _approximate_index_recall(embeddings, *, k: int) -> dict[str, Any]:
    """recall@k of the approximate (IVF) index against exact search on these embeddings."""
    from ..search.index import EmbeddingIndex
    from ..search.query import approximate_recall

    emb = np.asarray(embeddings, dtype=np.float32)
    if len(emb) < 1000 or k < 1:
        return {"k": k, "recall": None, "note": "fewer than 1,000 images: not measured"}
    try:
        exact = EmbeddingIndex(emb, kind="exact")
        approx = EmbeddingIndex(emb, kind="ivf")
        recall = approximate_recall(exact, approx, emb[:500], k=k)
    except Exception as exc:  # a report without this number beats no report
        return {"k": k, "recall": None, "note": f"not measured: {exc}".splitlines()[0]}
    return {"k": k, "recall": float(recall), "kind": "ivf", "n_queries": min(500, len(emb))}


def evaluate_model(
    model,
    data,
    *,
    train=None,
    batch_size: int = 256,
    device: str | None = None,
    n_bins: int = 15,
    ks: tuple[int, ...] = (10, 100),
    probe_l2: float | None = None,
) -> dict[str, Any]:
    """Classification and similarity-search metrics of ``model`` on ``data``.

    Parameters
    ----------
    model : LoadedModel or str or path-like
        A loaded model, a model directory or a bundled model name.
    data : LabelledImages
        Prepared evaluation images (with the model's preprocessing); a
        :class:`~galaxalign_astro.datasets.DatasetImages` also names its classes
        and source.
    train : LabelledImages, optional
        Training images of the linear probe; without them the probe is skipped.
    batch_size : int
    device : str, optional
        torch device (default: where the model is).
    n_bins : int
        Bins of the expected calibration error.
    ks : tuple of int
        Cut-offs of mAP@k.
    probe_l2 : float, optional
        Fixed probe regularisation (default: tuned, see :mod:`.probe`).

    Returns
    -------
    dict
        JSON-serialisable report: ``classification`` (one entry per head),
        ``retrieval``, ``model``, ``data``, ``train_data``, ``protocol``.
    """
    import torch

    from ..models.checkpoint import LoadedModel, load_model
    from ..models.prototypes import class_probabilities, mix_prototypes

    start = time.perf_counter()
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device=device or "cpu")
    if len(data) < 2:
        msg = f"evaluation needs at least two images, got {len(data)}"
        raise ValueError(msg)
    columns, names, keys = _class_columns(loaded, data)
    emb = embed_images(loaded, data, batch_size=batch_size, device=device)
    alpha = float(loaded.spec.prototype_alpha)
    cols = torch.as_tensor(columns)
    text = loaded.prototypes_text.cpu()[cols]
    symbol = loaded.prototypes_symbol.cpu()[cols]
    heads = {"text": text, "symbol": symbol, "mix": mix_prototypes(text, symbol, alpha)}
    scale = loaded.model.logit_scale.detach().cpu()
    emb_t = torch.from_numpy(emb)
    labels = np.asarray(data.labels, dtype=np.int64)
    tree = _model_taxonomy(loaded) if columns == list(range(len(columns))) else None
    # fine metrics on the rows with a fine label; coarse-only rows count in `hierarchical`
    fine_rows = np.flatnonzero(labels < len(names))
    sources = (getattr(data, "info", None) or {}).get("source")
    classification: dict[str, Any] = {}
    hierarchical: dict[str, Any] = {}
    with torch.inference_mode():
        for head, protos in heads.items():
            probs = class_probabilities(emb_t, protos.float(), scale).numpy()
            if len(fine_rows):
                classification[head] = classification_metrics(
                    probs[fine_rows], labels[fine_rows], class_names=names, n_bins=n_bins
                )
            if tree is not None:
                hierarchical[head] = hierarchical_metrics(
                    probs, labels, tree, sources=sources, n_bins=n_bins
                )
    if "mix" in classification:
        classification["mix"]["alpha"] = alpha

    train_record = None
    if train is not None:
        from .probe import fit_linear_probe

        train_columns = _class_columns(loaded, train)
        if train_columns[2] != keys:
            msg = "the probe's training images and the evaluation images have different classes"
            raise ValueError(msg)
        train_emb = embed_images(loaded, train, batch_size=batch_size, device=device)
        train_labels = np.asarray(train.labels, dtype=np.int64)
        if tree is not None and np.any(train_labels >= len(names)):
            # coarse training labels: the probe classifies the groups (ours)
            probe = fit_linear_probe(
                train_emb, tree.node_groups(train_labels), n_classes=len(tree.groups), l2=probe_l2
            )
            hierarchical["probe"] = hierarchical_metrics(
                None, labels, tree, coarse=probe.predict_proba(emb), sources=sources, n_bins=n_bins
            )
            hierarchical["probe"].update(l2=probe.l2, n_train=probe.n_train, level="coarse")
        else:
            probe = fit_linear_probe(train_emb, train_labels, n_classes=len(names), l2=probe_l2)
            probe_probs = probe.predict_proba(emb)
            if len(fine_rows):
                classification["probe"] = classification_metrics(
                    probe_probs[fine_rows], labels[fine_rows], class_names=names, n_bins=n_bins
                )
                classification["probe"].update(l2=probe.l2, n_train=probe.n_train)
            if tree is not None:
                hierarchical["probe"] = hierarchical_metrics(
                    probe_probs, labels, tree, sources=sources, n_bins=n_bins
                )
        train_record = _data_record(train, names)
    else:
        log.info("no training images given: linear probe skipped")

    if tree is not None and len(fine_rows) < len(labels):
        # coarse labels: relevant = same coarse group
        group_names = [g.name for g in tree.groups]
        retrieval = retrieval_metrics(emb, tree.node_groups(labels), class_names=group_names, ks=ks)
        retrieval["level"] = "coarse"
    else:
        retrieval = retrieval_metrics(emb, labels, class_names=names, ks=ks)
    retrieval["approximate_index"] = _approximate_index_recall(emb, k=min(10, len(emb) - 1))
    mapping = None
    if columns != list(range(len(loaded.spec.class_keys))):
        mapping = {name: loaded.spec.class_names[c] for name, c in zip(names, columns, strict=True)}
    return _json_ready(
        {
            "package_version": __version__,
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - start, 3),
            "model": Provenance.from_model(loaded, step="evaluate").record(),
            "data": _data_record(data, names),
            "train_data": train_record,
            "class_names": list(names),
            "class_keys": list(keys),
            "class_mapping": mapping,
            "classification": classification,
            "hierarchical": hierarchical or None,
            "retrieval": retrieval,
            "protocol": {
                "heads": (
                    "text/symbol/mix: softmax(s * f_I(x) . P_c) with the model's prototypes "
                    "(mix: normalise(alpha * text + (1 - alpha) * symbol)); probe: L2-regularised "
                    "multinomial logistic regression on the image embeddings of the training images"
                ),
                "macro_f1": "mean F1 over the classes present in the evaluation labels",
                "fine_rows": (
                    "classification: the rows with a fine label only; hierarchical: every row, "
                    "group probability = sum of its classes' probabilities, 95% percentile "
                    "bootstrap intervals (1,000 resamples)"
                ),
                "ece": f"top-class confidence, {n_bins} equal-width bins",
                "retrieval": retrieval["protocol"],
            },
        }
    )


def _json_ready(value: Any) -> Any:
    """The result with NaN (undefined metrics) as None, so it is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def _data_record(data, names: list[str]) -> dict[str, Any]:
    labels = np.asarray(data.labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=len(names))
    record = dict(getattr(data, "source", {}) or {})
    record.update(
        n_images=len(data),
        image_size=int(data.images.shape[-1]),
        class_counts={name: int(counts[i]) for i, name in enumerate(names)},
    )
    if len(counts) > len(names):
        tree = getattr(data, "taxonomy", None)
        groups = [g.name for g in tree.groups] if tree is not None else []
        record["coarse_only_counts"] = {
            (groups[g] if g < len(groups) else str(len(names) + g)): int(c)
            for g, c in enumerate(counts[len(names) :])
        }
    return record


def evaluate_to_dir(
    model: Any,
    data: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    split: str = "test",
    train_data: str | os.PathLike[str] | None = None,
    probe: bool = True,
    label_fraction: float = 1.0,
    seed: int = 42,
    batch_size: int = 256,
    device: str = "cpu",
    workers: int = 1,
    verify: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Load a model and a data set, evaluate, and write the report files to ``output``.

    The probe trains on ``train_data`` (default: the ``train`` split of ``data``),
    reduced to ``label_fraction`` of every class. Writes :data:`REPORT_FILES`;
    refuses to replace them unless ``overwrite``.
    """
    from ..datasets import load_dataset
    from ..models.checkpoint import load_model
    from .report import write_report

    out = Path(output)
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing and not overwrite:
        msg = f"{out} already holds {', '.join(existing)}; use overwrite to replace"
        raise OutputExistsError(msg)
    loaded = load_model(model, device=device)
    preprocess = loaded.spec.preprocess
    test = load_dataset(data, preprocess, split=split, seed=seed, workers=workers, verify=verify)
    train = None
    if probe:
        source = data if train_data is None else train_data
        if train_data is None and split != "test":
            log.warning("the probe trains on the train split, which overlaps the %s split", split)
        train = load_dataset(
            source,
            preprocess,
            split="train",
            label_fraction=label_fraction,
            seed=seed,
            workers=workers,
            verify=verify and source != data,
        )
    result = evaluate_model(loaded, test, train=train, batch_size=batch_size, device=device)
    write_report(result, out, overwrite=overwrite)
    return result
