"""The codebase is shaped like the pipeline (issue 25): one package per stage, imported only by
itself and later stages; a ground floor that imports no stage; no module over 500 lines; no
module named like another stage's package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src/kneurons"
# The stages in the order the data flows (rules/<stage>.smk); a stage may import the ground
# floor and earlier stages only.
STAGES = ["data", "model", "sae", "scoring", "selection", "evaluation", "classes", "residues",
          "profiles", "concepts", "summary"]  # fmt: skip
MAX_LINES = 500


def modules() -> dict[str, Path]:
    """Dotted name (without `kneurons.`) -> file, for every module of the package."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts) or "__init__"] = path
    return out


def stage_of(name: str) -> int | None:
    """The stage index of a module (`kneurons.` left out), None for the ground floor."""
    top = name.split(".")[0]
    return STAGES.index(top) if top in STAGES else None


def kneurons_imports(path: Path) -> set[str]:
    """Every kneurons module `path` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kneurons":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("kneurons."):
                base = node.module.removeprefix("kneurons.")
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kneurons."):
                    found.add(alias.name.removeprefix("kneurons."))
    known = modules()
    return {name for name in found if name in known}


def test_every_stage_is_a_package_with_its_rules():
    for stage in STAGES:
        assert (SRC / stage / "__init__.py").is_file(), stage
    rules = {p.stem for p in (REPO / "rules").glob("*.smk")}
    assert set(STAGES) - {"model"} <= rules | {"data", "residues"}
    assert "model" in rules and "data" in rules


@pytest.mark.parametrize("name", sorted(modules()), ids=str)
def test_a_stage_imports_only_the_ground_floor_and_earlier_stages(name):
    own = stage_of(name)
    for imported in sorted(kneurons_imports(modules()[name])):
        other = stage_of(imported)
        if other is None:
            continue
        assert own is not None, f"ground-floor module {name} imports stage module {imported}"
        assert other <= own, f"{name} (stage {STAGES[own]}) imports later stage {imported}"


def test_no_module_is_over_500_lines():
    files = list(SRC.rglob("*.py")) + list((REPO / "benchmarks").glob("*.py"))
    files += list((REPO / "workflow/scripts").glob("*.py"))
    files += list((REPO / "src").glob("snakemake_logger_plugin_*/*.py"))  # the console
    long = {
        str(p.relative_to(REPO)): n
        for p in files
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_no_module_is_named_like_a_stage_package():
    """The name twins of the flat layout (`selection` and `summary/selection`, `profiles` and
    `summary/profiles`, `scores` and `scoring`) do not come back."""
    for name in modules():
        parts = name.split(".")
        if len(parts) > 1:
            assert parts[-1] not in STAGES, f"kneurons.{name} is named like the stage {parts[-1]}"
    stems = [p.stem for p in SRC.glob("*.py")]
    assert not set(stems) & set(STAGES), "a ground-floor module is named like a stage"
