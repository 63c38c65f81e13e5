"""Write ``MODEL_CARD.md`` beside a model from its spec and evaluation reports.

Usage::

    python docs/make_model_card.py MODEL_DIR --sim SIM_REPORT_DIR \\
        [--real REAL_REPORT_DIR] [--before BEFORE_REPORT_DIR] [--samples samples.fits] \\
        [--earlier STEP1_MODEL_DIR --earlier STEP2_MODEL_DIR ...]

Every number in the card comes from the ``report.json`` files (written by
``galaxalign-astro evaluate``), the classify catalog of the samples, or the model's
``galaxalign.json``; nothing is typed by hand. ``--real`` is a report on real
labelled galaxies (coarse and fine labels), ``--before`` the same evaluation of the
model this one replaces. Confusion images are copied to ``docs/images``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent
HEADS = (
    ("mix", "mixed prototypes"),
    ("text", "text prototypes"),
    ("symbol", "symbol prototypes"),
    ("probe", "linear probe"),
)


def _model_label(report: dict) -> str:
    """A report's model as ``name`` (``architecture``, input size)."""
    model = report["model"]
    size = (model.get("preprocess") or {}).get("size")
    arch = model.get("architecture")
    detail = ", ".join(x for x in (arch and f"`{arch}`", size and f"{size} px") if x)
    return f"`{model.get('model_name', 'previous model')}`" + (f" ({detail})" if detail else "")


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(block: dict, key: str) -> str:
    ci = (block.get("ci95") or {}).get(key)
    return f"{block[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else _f(block.get(key))


def _confusion_table(names: list[str], matrix: list[list[int]]) -> str:
    short = [
        n.replace("Unbarred ", "").replace(" Smooth", "").replace("Edge-on ", "E/") for n in names
    ]
    lines = ["| true \\ predicted | " + " | ".join(short) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _tree_row(title: str, m: dict) -> str:
    groups = m["groups"] if "groups" in m else list(m["per_group"])
    recalls = " | ".join(
        _f(m["per_group"][g]["recall"]) if m["per_group"][g]["support"] else "n/a" for g in groups
    )
    fine = (
        f"{_ci(m, 'fine_accuracy')} ({m['n_fine']})"
        if m.get("fine_accuracy") is not None
        else "n/a"
    )
    return (
        f"| {title} | {m['n']} | {_ci(m, 'coarse_accuracy')} | {_ci(m, 'balanced_accuracy')} | "
        f"{fine} | {recalls} | {_f(m['coarse_ece'])} |"
    )


def _real_section(
    report: dict, before: dict | None, kind: str, before_label: str = "before"
) -> list[str]:
    tree = report["hierarchical"]
    groups = tree["mix"]["groups"]
    data = report["data"]
    header = (
        "| {} | n | coarse accuracy | balanced accuracy | fine accuracy (n) | "
        + " | ".join(f"{g} recall" for g in groups)
        + " | coarse ECE |"
    )
    rule = "|---|---|---|---|---|" + "---|" * len(groups) + "---|"
    lines = [
        "## Real galaxies: validation split",
        "",
        f"Data: the `val` split of `{Path(data['path']).parent.name}/{Path(data['path']).name}` "
        f"({data['n_images']} real Galaxy Zoo images; never trained on; list sha256 "
        f"`{data.get('indices_sha256', '')[:16]}`). Coarse accuracy counts every row (group "
        "probability = sum of its classes'); fine accuracy counts the rows with a Galaxy10 "
        "label. 95% bootstrap intervals in brackets. A separate test portion of the same "
        "sources, not available to this project, is what independent evaluation uses.",
        "",
        header.format("head"),
        rule,
    ]
    lines += [_tree_row(label, tree[key]) for key, label in HEADS if key in tree]
    if before is not None and before.get("hierarchical"):
        old = before["hierarchical"]["mix"]
        name = _model_label(before)
        lines.append(_tree_row(f"{before_label}: {name}, mixed", old))
    lines += ["", "Per source (mixed prototypes):", "", header.format("source"), rule]
    lines += [_tree_row(src, m) for src, m in tree["mix"]["by_source"].items()]
    if before is not None and before.get("hierarchical"):
        name = _model_label(before)
        title = before_label[:1].upper() + before_label[1:]
        lines += ["", f"{title} ({name}), per source:", "", header.format("source"), rule]
        lines += [
            _tree_row(src, m) for src, m in before["hierarchical"]["mix"]["by_source"].items()
        ]
    lines += [
        "",
        "Coarse confusion matrix (mixed prototypes; rows true, columns predicted):",
        "",
        _confusion_table(groups, tree["mix"]["coarse_confusion_matrix"]),
        "",
        f"![coarse confusion matrix](../../../../docs/images/{kind}_model_real_confusion.png)",
        "",
    ]
    return lines


def _sim_section(report: dict, kind: str) -> list[str]:
    names = report["class_names"]
    lines = [
        "## Simulated held-out set",
        "",
        f"Data: `{report['data']['path']}` (simulator seed never used in training), "
        f"{report['data']['n_images']} images.",
        "",
        "| head | accuracy | macro-F1 | top-2 | ECE |",
        "|---|---|---|---|---|",
    ]
    for key, label in HEADS:
        head = report["classification"].get(key)
        if head:
            lines.append(
                f"| {label} | {head['accuracy']:.3f} | {head['macro_f1']:.3f} | "
                f"{head['top2_accuracy']:.3f} | {head['ece']:.3f} |"
            )
    ret = report["retrieval"]
    lines += [
        "",
        f"Similarity search (protocol in docs/evaluation.md): mAP {ret['map']:.3f}, "
        f"mAP@10 {ret['map@10']:.3f}, mAP@100 {ret['map@100']:.3f}.",
        "",
        "Confusion matrix (mixed prototypes; rows true, columns predicted):",
        "",
        _confusion_table(names, report["classification"]["mix"]["confusion_matrix"]),
        "",
        f"![confusion matrix](../../../../docs/images/{kind}_model_confusion.png)",
        "",
    ]
    return lines


def _samples_section(path: Path | None) -> list[str]:
    if path is None:
        return []
    from astropy.table import Table

    table = Table.read(path)
    lines = [
        "## Bundled samples",
        "",
        "`galaxalign-astro classify galaxalign_astro/data/samples` (what `make demo` runs).",
        "The real images are Hubble Deep Field colour composites and statmorph's single-band",
        "spiral (see the samples README for what each shows by eye); `sim_*` are simulated.",
        "",
        "| sample | predicted class | probability |",
        "|---|---|---|",
    ]
    for row in table:
        name = Path(str(row["source"])).name
        lines.append(f"| {name} | {row['class_name']} | {float(row['class_prob']):.2f} |")
    return [*lines, ""]


def _steps_data(steps: list[dict]) -> list[str]:
    """The data of each training step (steps with the same data share an entry)."""
    groups: list[tuple[list[int], dict]] = []
    for number, training in enumerate(steps, 1):
        if groups and _training_data(groups[-1][1]) == _training_data(training):
            groups[-1][0].append(number)
        else:
            groups.append(([number], training))
    lines = []
    for numbers, training in groups:
        indent = "  " if len(groups) > 1 else ""
        if indent:
            label = "step" if len(numbers) == 1 else "steps"
            lines.append(f"  - {label} {', '.join(map(str, numbers))}:")
        lines += [indent + line for line in _training_data(training)]
        lines.append(
            f"{indent}  - {training.get('n_train')} images trained on, {training.get('n_val')} "
            "held out of them for epoch selection and alpha tuning"
        )
    return lines


def _training_data(training: dict) -> list[str]:
    source = training.get("source") or {}
    parts = source.get("parts", [source])
    lines = []
    for part in parts:
        if part.get("kind") == "simulated":
            lines.append(
                f"  - simulated: `{part['path']}`, its train split, {part['n_images']} cutouts"
            )
        elif part.get("kind") == "catalog":
            lines.append(
                f"  - real: `{part['path']}`, split `{part['split']}`, {part['n_images']} images "
                f"({part.get('n_coarse_only', 0)} with a coarse label only)"
            )
        else:
            lines.append(f"  - {json.dumps(part)}")
    return lines


def _headline(real: dict | None, sim: dict) -> list[str]:
    acc = sim["classification"]["mix"]["accuracy"]
    text = f"In short: simulated held-out accuracy {acc:.3f}"
    if real is not None:
        m = real["hierarchical"]["mix"]
        spiral = m["per_group"].get("spiral", {}).get("recall")
        text = (
            f"In short (mixed prototypes): on real Galaxy Zoo images (`val` split) coarse "
            f"accuracy {m['coarse_accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, "
            f"spiral recall {_f(spiral)}, fine accuracy {_f(m.get('fine_accuracy'))} on the "
            f"{m['n_fine']} images with a fine label; simulated held-out accuracy {acc:.3f}."
        )
    return [text, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--sim", type=Path, required=True, help="report on simulated data")
    parser.add_argument("--real", type=Path, help="report on real labelled galaxies (val)")
    parser.add_argument("--before", type=Path, help="the same real report of the old model")
    parser.add_argument("--samples", type=Path, help="classify output on the bundled samples")
    parser.add_argument(
        "--before-label", default="before", help="what --before is to this model (e.g. 'default')"
    )
    parser.add_argument(
        "--earlier",
        type=Path,
        action="append",
        default=[],
        help="a model this one continues (repeat, first step first): listed before it",
    )
    args = parser.parse_args()

    spec = json.loads((args.model / "galaxalign.json").read_text())
    sim = json.loads((args.sim / "report.json").read_text())
    real = json.loads((args.real / "report.json").read_text()) if args.real else None
    before = json.loads((args.before / "report.json").read_text()) if args.before else None
    training = spec["training"]
    config = training["config"]
    weights = args.model / "model.safetensors"
    size_mb = weights.stat().st_size / 1e6
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        dtype = str(fh.get_slice(next(iter(fh.keys()))).get_dtype()).lower()
    earlier = [json.loads((d / "galaxalign.json").read_text()) for d in args.earlier]
    step1 = earlier[0] if earlier else None
    steps = [e["training"] for e in earlier] + [training]
    last = {h["stage"]: h for t in steps for h in t.get("history", [])}
    kind = args.model.name  # the bundled model's folder: default, large...
    shutil.copyfile(args.sim / "confusion.png", DOCS / "images" / f"{kind}_model_confusion.png")
    if args.real:
        target = DOCS / "images" / f"{kind}_model_real_confusion.png"
        shutil.copyfile(args.real / "confusion.png", target)
    pre = spec["preprocess"]
    image_weights = next(
        (t["config"]["image_weights"] for t in steps if t["config"].get("image_weights")), None
    )
    init = (step1["training"]["config"] if step1 else config).get("init_from")
    lines = [
        f"# Model card: `{spec['name']}` (bundled `{kind}` model)",
        "",
        "Trained on simulated DECaLS-like cutouts and real Galaxy Zoo images. Every number",
        "below is measured by this project (data and split named with each table); none is",
        "from the GalaxAlign paper.",
        "",
        *_headline(real, sim),
        "## Training",
        "",
        *(
            [
                "- Commands, in order: "
                + ", then ".join(f"`{t.get('command')}`" for t in steps)
                + " (each starts from the model of the one before"
                + (
                    ", at a new input size, position embeddings interpolated)"
                    if step1["architecture"] != spec["architecture"]
                    else ")"
                ),
            ]
            if step1
            else [f"- Command: `{training.get('command') or 'see docs/training.md'}`"]
        ),
        "- Data:",
        *_steps_data(steps),
        "- Method: GalaxAlign two-stage tri-modal fine-tuning (stage 1 shared visual tower, "
        "stage 2 separate symbol tower), class-aware contrastive loss with hierarchical "
        "(coarse) labels and the prototype term (ours, docs/method.md)"
        + (f"; towers initialised from the bundled `{init}` model" if init else "")
        + (
            f"; image trunk started from `{image_weights}` (ImageNet weights a "
            "Python package ships, docs/training.md)"
            if image_weights
            else "; no pretrained weights can be downloaded here"
        ),
        f"- Augmentation: `{config.get('augment')}` preset (docs/method.md)",
        f"- Package version: {spec['package_version']}, created {spec['created']}",
        "",
        "| stage | epochs | loss, last epoch in the saved history | images/s (CPU) |",
        "|---|---|---|---|",
    ]
    for stage in [st for t in steps for st in t["config"]["stages"]]:
        h = last.get(stage["name"], {})
        lines.append(
            f"| {stage['name']} ({stage['symbol_tower']} symbol tower) | {stage['epochs']} | "
            f"{h.get('loss', float('nan')):.3f} | {h.get('images_per_s', float('nan')):.0f} |"
        )
    frame = pre.get("frame")
    lines += [
        "",
        "## Architecture and input",
        "",
        f"- open_clip architecture `{spec['architecture']}` (config stored in `galaxalign.json`),"
        f" {spec['symbol_tower']} symbol tower, weights {size_mb:.1f} MB ({dtype} safetensors)",
        f"- Input: bands {', '.join(pre['bands'])}; stretch `{pre['stretch']}` for FITS "
        f'fluxes (PNG/JPEG composites as they are); field of view {pre["fov_arcsec"]:.1f}" '
        "(cropped or padded by WCS)"
        + (f"; framed to {frame} isophotal diameters of the central galaxy" if frame else "")
        + f"; resized to {pre['size']} px. `classify` applies all of it from the stored spec.",
        f"- Prototype mix alpha = {spec['prototype_alpha']} (tuned on the held-out images)",
        f"- weights sha256: `{sim['model']['weights_sha256']}`",
        "",
    ]
    if real is not None:
        lines += _real_section(real, before, kind, args.before_label)
    lines += _sim_section(sim, kind)
    lines += _samples_section(args.samples)
    lines += [
        "## Data card",
        "",
        "The real training images are Galaxy Zoo colour composites (SDSS, DECaLS, GAMA/KiDS,",
        "UKIDSS, GOODS, CANDELS) with volunteer labels, from public repositories; none is in",
        "this repository, only the weights trained on them. Origins, commits, label mappings",
        'and licences are listed in docs/training.md ("Real galaxies"), with how to rebuild',
        "the folder:",
        "",
        "- `gz1_sdss`: github.com/Eggochi/Proyecto_Galaxias@5226e5e4 (licence: none stated)",
        "- `gz2_kaggle`: github.com/isi-mube/Cosmic-Compendium@05482aa2 (none stated)",
        "- `gz2_gallery`, `gz2_perturbed`: github.com/willettk/galaxyzoo2@d50c18c8 (MIT)",
        "- `gz_examples`: github.com/zooniverse/Galaxy-Zoo@355aa592 (Apache-2.0)",
        "- `gzd_zoobot` (unlabelled, not used): github.com/mwalmsley/zoobot@5630c7b2 (GPL-3.0)",
        "",
        "Labels are volunteer majorities and tutorial picks (noisy), most of them coarse only;",
        "classes are imbalanced (smooth about 55%, merger-irregular about 3%).",
        "",
        "## Limits",
        "",
        "- Most real labels are coarse: fine Galaxy10 accuracy on real images rests on few",
        "  labelled examples (see n above) and on the simulator; trust the coarse class more.",
        "- The real images are mostly SDSS composites; DECaLS grz cutouts (the survey the",
        "  simulator mimics) are fewer among them.",
        "- Speed: the input size sets the image tower's cost; docs/benchmarks.md gives classify"
        " throughput of this model and the previous default, measured in one run.",
        "- Label noise caps the real numbers: most `val` labels are Galaxy Zoo 1 majority votes",
        "  without an agreement threshold, and two unrelated architectures mostly make the same",
        '  mistakes on them (docs/training.md, "Candidates measured on real `val`").',
        "- A small CPU architecture: a pretrained ViT-B-16 fine-tuned on real Galaxy10 DECaLS",
        "  (the paper's setting, `pipelines/train_galaxy10_vit_b16.toml`) is expected to do",
        "  better where a GPU and the data are available.",
        "",
        "## Reproduce these numbers",
        "",
        "```bash",
    ]
    if real is not None:
        lines.append(
            f"galaxalign-astro evaluate --model {kind} "
            "--data ../shared/real-galaxies/labels.csv --split val --no-probe -o report-real/"
        )
    lines += [
        f"galaxalign-astro evaluate --model {kind} --data {sim['data']['path']} "
        "--split all -o report-sim/ --train-data simulated:2000:1",
        "```",
        "",
    ]
    (args.model / "MODEL_CARD.md").write_text("\n".join(lines))
    print(f"wrote {args.model / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
