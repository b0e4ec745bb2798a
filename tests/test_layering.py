"""Layering of `pipeline/`: a plain library that never imports Dagster, and whose production steps never import
the toy world (`pipeline/toy/`)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pipeline_never_imports_dagster():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "pipeline").rglob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "print(bad[:3]); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"pipeline imports dagster: {proc.stdout} {proc.stderr[-2000:]}"


# production modules that still reach into pipeline/toy/, each with its reason; the list only shrinks
TOY_IMPORT_EXCEPTIONS = {
    "pipeline/sources.py": "starts the toy image server for the toy profile (not yet moved out of pipeline/)",
}


def _imported_modules(path: Path) -> set[str]:
    """Every module an import statement in `path` names, at any depth (inside functions too)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def test_production_code_never_imports_the_toy_world():
    """`pipeline/toy/` builds the toy profile's corpora and models; nothing else in `pipeline/` may depend on it
    (the assets pick a toy builder when the profile is toy)."""
    bad = {}
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("pipeline/toy/") or rel in TOY_IMPORT_EXCEPTIONS:
            continue
        toy = sorted(m for m in _imported_modules(path) if m == "pipeline.toy" or m.startswith("pipeline.toy."))
        if toy:
            bad[rel] = toy
    assert not bad, f"production modules import pipeline.toy: {bad}"
