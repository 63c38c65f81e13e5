"""Write an evaluation result as JSON, a Markdown summary and PNG plots.

Plots are drawn on bare matplotlib ``Figure`` objects (Agg canvas), so writing a
report never changes the pyplot backend of the calling session.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputExistsError

__all__ = ["plot_confusion", "plot_reliability", "summary_markdown", "write_report"]

HEAD_TITLES = {
    "mix": "mixed prototypes",
    "text": "text prototypes",
    "symbol": "symbol prototypes",
    "probe": "linear probe",
}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def summary_markdown(result: dict[str, Any]) -> str:
    """A readable Markdown summary of :func:`~galaxalign_astro.evaluate.evaluate_model`'s result."""
    model, data = result["model"], result["data"]
    cls, ret = result["classification"], result["retrieval"]
    lines = [
        f"# Evaluation of {model.get('model_name', '?')}",
        "",
        f"- model: `{model.get('model_path', '?')}` (weights sha256 "
        f"`{str(model.get('weights_sha256', ''))[:16]}`)",
        f"- data: `{data.get('path', 'in-memory images')}`, split `{data.get('split', '?')}`, "
        f"{data['n_images']} images of {data['image_size']} px",
    ]
    if data.get("indices_sha256"):
        lines.append(f"- evaluation index list sha256: `{data['indices_sha256']}`")
    train = result.get("train_data")
    if train:
        lines.append(
            f"- probe trained on `{train.get('path', 'in-memory images')}`, split "
            f"`{train.get('split', '?')}`, {train['n_images']} images (label fraction "
            f"{train.get('label_fraction', 1.0)})"
        )
    if result.get("class_mapping"):
        lines.append("- classes matched to the model's by key; prototypes restricted to them")
    lines += _hierarchical_lines(result)
    lines += [
        "",
        "## Classification" + (" (rows with a fine label)" if result.get("hierarchical") else ""),
        "",
        "| head | accuracy | macro-F1 | top-2 | ECE |",
        "|---|---|---|---|---|",
    ]
    for head in ("mix", "text", "symbol", "probe"):
        if head in cls:
            m = cls[head]
            title = HEAD_TITLES[head]
            if head == "mix":
                title += f" (alpha {m['alpha']:.2f})"
            lines.append(
                f"| {title} | {_fmt(m['accuracy'])} | {_fmt(m['macro_f1'])} | "
                f"{_fmt(m['top2_accuracy'])} | {_fmt(m['ece'])} |"
            )
    ks = [key for key in ret if key.startswith("map@")]
    lines += [
        "",
        "## Similarity search",
        "",
        f"mAP {_fmt(ret['map'])}, " + ", ".join(f"mAP@{k[4:]} {_fmt(ret[k])}" for k in ks),
        f"over {ret['n_queries']} queries.",
        "",
    ]
    if "mix" in cls:
        lines += _per_class_lines(result)
    lines += ["", "## Protocol", ""]
    lines += [f"- {key}: {text}" for key, text in result["protocol"].items()]
    return "\n".join(lines) + "\n"


def _per_class_lines(result: dict[str, Any]) -> list[str]:
    cls, ret = result["classification"], result["retrieval"]
    lines = [
        "## Per class",
        "",
        "| class | support | recall (mix) | F1 (mix) | F1 (probe) | AP |",
        "|---|---|---|---|---|---|",
    ]
    for name in result["class_names"]:
        mix = cls["mix"]["per_class"][name]
        probe = cls.get("probe", {}).get("per_class", {}).get(name)
        lines.append(
            f"| {name} | {mix['support']} | {_fmt(mix['recall'], 3)} | {_fmt(mix['f1'], 3)} | "
            f"{_fmt(probe['f1'], 3) if probe else 'n/a'} | "
            f"{_fmt(ret['per_class_ap'].get(name), 3)} |"
        )
    return lines


def _interval(block: dict[str, Any], key: str) -> str:
    ci = (block.get("ci95") or {}).get(key)
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _hierarchical_lines(result: dict[str, Any]) -> list[str]:
    """Coarse (and fine, where known) accuracy of every head, then per source (mix head)."""
    tree = result.get("hierarchical")
    if not tree:
        return []
    groups = next(iter(tree.values()))["groups"]
    lines = [
        "",
        "## Coarse classes",
        "",
        "Group probability = sum of its classes' probabilities; 95% bootstrap intervals.",
        "",
        *_tree_header("head", groups),
    ]
    for head in ("mix", "text", "symbol", "probe"):
        if head not in tree:
            continue
        m = tree[head]
        title = HEAD_TITLES[head] + (" (coarse)" if m.get("level") == "coarse" else "")
        lines.append(_tree_row(title, m, groups))
    mix = tree.get("mix", {})
    if mix.get("by_source"):
        lines += [
            "",
            "Per source (mixed prototypes):",
            "",
            *_tree_header("source", groups),
        ]
        lines += [_tree_row(name, m, groups) for name, m in mix["by_source"].items()]
    if mix:
        lines += [
            "",
            "Coarse confusion matrix (mixed prototypes; rows true, columns predicted):",
            "",
            "| true \\ predicted | " + " | ".join(groups) + " |",
            "|---|" + "---|" * len(groups),
        ]
        for g, row in zip(groups, mix["coarse_confusion_matrix"], strict=True):
            lines.append(f"| {g} | " + " | ".join(str(v) for v in row) + " |")
    return lines


def _tree_header(first: str, groups: list[str]) -> list[str]:
    recalls = " | ".join(f"{g} recall" for g in groups)
    return [
        f"| {first} | n | coarse accuracy | balanced accuracy | fine accuracy (n) | {recalls} "
        "| coarse ECE |",
        "|---|---|---|---|---|" + "---|" * len(groups) + "---|",
    ]


def _tree_row(title: str, m: dict[str, Any], groups: list[str]) -> str:
    support = m["per_group"]
    recalls = " | ".join(
        _fmt(support[g]["recall"], 3) if support[g]["support"] else "n/a" for g in groups
    )
    fine = f"{_fmt(m.get('fine_accuracy'), 3)} ({m['n_fine']})" if m["n_fine"] else "n/a"
    return (
        f"| {title} | {m['n']} | {_fmt(m['coarse_accuracy'], 3)}"
        f"{_interval(m, 'coarse_accuracy')} | {_fmt(m['balanced_accuracy'], 3)}"
        f"{_interval(m, 'balanced_accuracy')} | {fine} | {recalls} | {_fmt(m['coarse_ece'], 3)} |"
    )


def plot_confusion(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Row-normalised confusion matrices, counts in the cells, of the mix and probe heads."""
    from matplotlib.figure import Figure

    # hierarchical labels: the coarse matrices (every row counts), else the class ones
    tree = result.get("hierarchical")
    source = tree if tree else result["classification"]
    heads = [h for h in ("mix", "probe") if h in source]
    names = next(iter(tree.values()))["groups"] if tree else result["class_names"]
    key, acc_key = (
        ("coarse_confusion_matrix", "coarse_accuracy") if tree else ("confusion_matrix", "accuracy")
    )
    n = len(names)
    side = max(4.5, 0.55 * n + 2.5)
    fig = Figure(figsize=(side * len(heads), side))
    axes = fig.subplots(1, len(heads), squeeze=False)
    for ax, head in zip(axes[0], heads, strict=True):
        cm = np.asarray(source[head][key], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = cm / cm.sum(axis=1, keepdims=True)
        ax.imshow(np.nan_to_num(frac), cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    colour = "white" if np.nan_to_num(frac[i, j]) > 0.5 else "black"
                    ax.text(
                        j, i, f"{int(cm[i, j])}", ha="center", va="center", color=colour, fontsize=8
                    )
        ax.set_xticks(range(n), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        acc = source[head][acc_key]
        level = "coarse accuracy" if tree else "accuracy"
        ax.set_title(f"{HEAD_TITLES[head]}: {level} {acc:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_reliability(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Accuracy against confidence per bin for every head, with the bin counts of the mix head."""
    from matplotlib.figure import Figure

    # hierarchical labels: the coarse probabilities (every row counts), else the class ones
    cls = result.get("hierarchical") or result["classification"]
    ece_key = "coarse_ece" if result.get("hierarchical") else "ece"
    fig = Figure(figsize=(5.5, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for head in ("mix", "text", "symbol", "probe"):
        if head not in cls:
            continue
        rel = cls[head]["reliability"]
        pairs = [
            (c, a) for c, a in zip(rel["confidence"], rel["accuracy"], strict=True) if c is not None
        ]
        if pairs:
            conf, acc = zip(*pairs, strict=True)
            label = f"{HEAD_TITLES[head]} (ECE {cls[head][ece_key]:.3f})"
            top.plot(conf, acc, marker="o", label=label)
    top.set_ylabel("accuracy")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(fontsize=8, loc="upper left")
    top.set_title("Reliability diagram")
    n_bins = len(cls["mix"]["reliability"]["count"])
    edges = np.linspace(0, 1, n_bins + 1)
    bottom.bar(
        edges[:-1],
        cls["mix"]["reliability"]["count"],
        width=1 / n_bins,
        align="edge",
        color="tab:blue",
        edgecolor="white",
    )
    bottom.set_xlabel(
        "confidence (top group)" if result.get("hierarchical") else "confidence (top class)"
    )
    bottom.set_ylabel("images (mix)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _atomic(path: Path, writer) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_report(
    result: dict[str, Any], directory: str | os.PathLike[str], *, overwrite: bool = False
) -> dict[str, Path]:
    """Write report.json, report.md, confusion.png and reliability.png; return their paths."""
    out = Path(directory)
    paths = {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "confusion": out / "confusion.png",
        "reliability": out / "reliability.png",
    }
    existing = [p.name for p in paths.values() if p.exists()]
    if existing and not overwrite:
        msg = f"{out} already holds {', '.join(existing)}; use overwrite to replace"
        raise OutputExistsError(msg)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, allow_nan=False) + "\n"
    _atomic(paths["json"], lambda p: Path(p).write_text(text))
    markdown = summary_markdown(result)
    _atomic(paths["markdown"], lambda p: Path(p).write_text(markdown))
    _atomic(paths["confusion"], lambda p: plot_confusion(result, p))
    _atomic(paths["reliability"], lambda p: plot_reliability(result, p))
    return paths
