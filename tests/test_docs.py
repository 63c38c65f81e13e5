import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_are_current():
    gen = _generator()
    for name, build in gen.PAGES.items():
        assert (DOCS / name).read_text() == build(), f"docs/{name} is stale: run docs/generate.py"


def test_no_merge_conflict_markers_in_docs():
    root = DOCS.parent
    pages = [*DOCS.glob("*.md"), root / "README.md", root / "CHANGES.md"]
    pages += list((root / "galaxalign_astro" / "data").rglob("*.md"))
    marked = [
        f"{page.relative_to(root)}:{number}"
        for page in pages
        for number, line in enumerate(page.read_text().splitlines(), start=1)
        if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "======="
    ]
    assert not marked, "unresolved merge conflict markers: " + ", ".join(marked)
