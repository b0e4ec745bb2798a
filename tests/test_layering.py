"""The layering rules of DESIGN.md, read from the source with `ast` (every import, those inside functions too).

- `pipeline` never imports `dagster`, `assets` or `resources`: it is a plain library.
- the foundation (`pipeline/{config,lake,languages,rows,stats}.py`) imports no step.
- production steps never import `pipeline.toy`: only the asset layer picks a toy builder.
- `resources` never imports `assets`.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOUNDATION = {"config", "lake", "languages", "rows", "stats"}


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module named `module` (dotted)."""
    package = module.rsplit(".", 1)[0] if "." in module else ""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            # `from pipeline import toy` imports pipeline.toy
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return out


def violations(path: Path, root: Path = ROOT) -> list[str]:
    rel = path.relative_to(root)
    module = ".".join(rel.with_suffix("").parts)
    top = rel.parts[0]
    found = []
    for line, name in imported_modules(path.read_text(encoding="utf-8"), module):
        head = name.split(".")[0]
        where = f"{rel}:{line} imports {name}"
        if top == "pipeline":
            if head in ("dagster", "assets", "resources") or head.startswith("dagster_"):  # dagster_pipes too
                found.append(f"{where} (pipeline/ is a plain library)")
            if (name == "pipeline.toy" or name.startswith("pipeline.toy.")) and rel.parts[1] != "toy":
                found.append(f"{where} (a production step must not depend on the toy world)")
            if len(rel.parts) == 2 and rel.stem in FOUNDATION and name.startswith("pipeline.") \
                    and name.split(".")[1] not in FOUNDATION:
                found.append(f"{where} (the foundation must not depend on a step)")
        if top == "resources" and head == "assets":
            found.append(f"{where} (resources must not depend on assets)")
    return found


def test_the_tree_follows_the_layering_rules():
    files = [p for d in ("pipeline", "resources") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 20
    problems = [v for p in files for v in violations(p)]
    assert not problems, "\n".join(problems)


def test_the_checker_catches_an_import_hidden_inside_a_function(tmp_path):
    """A planted `pipeline.toy` import inside a production function, and the other kinds, are all caught."""
    planted = {
        "pipeline/translation/planted.py": "def f():\n    from pipeline.toy import lexicon\n    return lexicon\n",
        "pipeline/raw/planted.py": "def g():\n    import pipeline.toy.world as w\n    return w\n",
        "pipeline/translation/relative.py": "def h():\n    from ..toy import scenes\n",
        "pipeline/lake.py": "def k():\n    from pipeline.translation.memory import memory_url_for\n",
        "pipeline/stats.py": "import dagster as dg\n",
        "pipeline/training/planted.py": "def p():\n    from dagster_pipes import open_dagster_pipes\n",
        "resources/planted.py": "def r():\n    from assets.raw import raw_assets\n",
        "pipeline/toy/ok.py": "from pipeline.toy import lexicon\n",  # the toy line may use itself
    }
    for rel, code in planted.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(code)
    found = {rel: violations(tmp_path / rel, tmp_path) for rel in planted}
    assert all(found[rel] for rel in planted if rel != "pipeline/toy/ok.py"), found
    assert found["pipeline/toy/ok.py"] == []
    assert "toy world" in found["pipeline/translation/planted.py"][0]
    assert "foundation" in found["pipeline/lake.py"][0]


def test_pipeline_never_loads_dagster_at_run_time():
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
