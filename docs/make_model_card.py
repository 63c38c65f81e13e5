"""Write ``MODEL_CARD.md`` beside a model from its spec and an evaluation report.

Usage::

    python docs/make_model_card.py MODEL_DIR REPORT_DIR [--command "..."]

Every number in the card comes from ``REPORT_DIR/report.json`` (written by
``galaxalign-astro evaluate``) or from the model's ``galaxalign.json``; nothing is
typed by hand. The confusion matrix image is copied to ``docs/images``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def _confusion_table(names: list[str], matrix: list[list[int]]) -> str:
    short = [
        n.replace("Unbarred ", "").replace(" Smooth", "").replace("Edge-on ", "E/") for n in names
    ]
    lines = ["| true \\ predicted | " + " | ".join(short) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _samples_section(path: Path | None) -> list[str]:
    if path is None:
        return []
    from astropy.table import Table

    table = Table.read(path)
    lines = [
        "## Transfer to real images (bundled samples)",
        "",
        "`galaxalign-astro classify galaxalign_astro/data/samples` (what `make demo` runs).",
        "The real images are Hubble Deep Field colour composites and statmorph's single-band",
        "spiral (see the samples README for what each shows by eye), not DECaLS g,r,z cutouts.",
        "",
        "| sample | predicted class | probability |",
        "|---|---|---|",
    ]
    for row in table:
        name = Path(str(row["source"])).name
        lines.append(f"| {name} | {row['class_name']} | {float(row['class_prob']):.2f} |")
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--samples", type=Path, help="classify output on the bundled samples")
    args = parser.parse_args()

    spec = json.loads((args.model / "galaxalign.json").read_text())
    report = json.loads((args.report / "report.json").read_text())
    training = spec["training"]
    mix = report["classification"]["mix"]
    names = report["class_names"]
    weights = args.model / "model.safetensors"
    size_mb = weights.stat().st_size / 1e6
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        dtype = str(fh.get_slice(next(iter(fh.keys()))).get_dtype()).lower()
    history = training.get("history", [])
    last = {h["stage"]: h for h in history}
    shutil.copyfile(args.report / "confusion.png", DOCS / "images" / "default_model_confusion.png")

    lines = [
        f"# Model card: `{spec['name']}` (bundled default model)",
        "",
        "**Trained on simulated galaxies only.** Every number below is measured by this",
        "project on simulated cutouts; none is from the GalaxAlign paper, and accuracy on",
        "real survey images is expected to be lower (see Limits).",
        "",
        "## Training",
        "",
        f"- Command: `{training.get('command') or 'see docs/training.md'}`",
        f"- Data: {json.dumps(training.get('source'))}, {training.get('n_train')} training images,"
        " the rest of the simulated set held out for validation (alpha tuning)",
        "- Method: GalaxAlign two-stage tri-modal fine-tuning (stage 1 shared visual tower, "
        "stage 2 separate symbol tower), class-aware contrastive loss; random initialisation "
        "(no pretrained weights can be downloaded here)",
        f"- Package version: {spec['package_version']}, created {spec['created']}",
        "",
        "| stage | epochs | final loss | images/s (CPU) |",
        "|---|---|---|---|",
    ]
    for stage in training["config"]["stages"]:
        h = last.get(stage["name"], {})
        lines.append(
            f"| {stage['name']} ({stage['symbol_tower']} symbol tower) | {stage['epochs']} | "
            f"{h.get('loss', float('nan')):.3f} | {h.get('images_per_s', float('nan')):.0f} |"
        )
    pre = spec["preprocess"]
    lines += [
        "",
        "## Architecture and input",
        "",
        f"- open_clip architecture `{spec['architecture']}` (config stored in `galaxalign.json`),"
        f" {spec['symbol_tower']} symbol tower, weights {size_mb:.1f} MB ({dtype} safetensors)",
        f"- Input: bands {', '.join(pre['bands'])}; stretch `{pre['stretch']}`; field of view "
        f'{pre["fov_arcsec"]:.1f}" (cropped or padded by WCS); resized to {pre["size"]} px',
        f"- Prototype mix alpha = {spec['prototype_alpha']} (tuned on validation)",
        f"- weights sha256: `{report['model']['weights_sha256']}`",
        "",
        "## Held-out accuracy (fresh simulated test set)",
        "",
        f"Data: `{report['data']['path']}` (seed never used in training), "
        f"{report['data']['n_images']} images.",
        "",
        "| head | accuracy | macro-F1 | top-2 | ECE |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("mix", "mixed prototypes"),
        ("text", "text prototypes"),
        ("symbol", "symbol prototypes"),
        ("probe", "linear probe"),
    ):
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
        _confusion_table(names, mix["confusion_matrix"]),
        "",
        "![confusion matrix](../../../../docs/images/default_model_confusion.png)",
        "",
        *_samples_section(args.samples),
        "## Limits",
        "",
        "- Trained only on this project's simulator: real DECaLS images differ in ways the",
        "  simulator does not capture (real arm structure, dust, artefacts, blends), so",
        "  expect lower accuracy on real data, most of all for the rarer and subtler classes",
        "  (disturbed vs merging, tight vs loose spirals, barred vs unbarred).",
        "- A small CPU architecture trained from scratch: a pretrained ViT-B-16 fine-tuned on",
        "  real Galaxy10 DECaLS (the paper's setting) is expected to be far better.",
        "- Inputs other than g,r,z DECaLS-like cutouts (HST colour composites, single bands)",
        "  are outside the training distribution.",
        "",
        "## Fine-tuning on real Galaxy10 DECaLS",
        "",
        "```bash",
        "galaxalign-astro train pipelines/train_galaxy10_vit_b16.toml -o my_galaxy10_model   # GPU",
        "galaxalign-astro evaluate --model my_galaxy10_model --data Galaxy10_DECals.h5 -o report/",
        "```",
        "",
        "See docs/training.md for recipes (including a CPU-sized one) and resuming.",
        "",
    ]
    (args.model / "MODEL_CARD.md").write_text("\n".join(lines))
    print(f"wrote {args.model / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
