"""The library files a job computes with, found from its code's imports (not typed by hand).

A rule declares these files as inputs (`library()` in rules/common.smk), so that editing a module
reruns exactly the jobs that use it, even with Snakemake's `code` rerun trigger off (the profiles
turn it off so that a comment edited in a workflow script does not rerun a day of scoring).
Imports are read with `ast` (nothing is imported or executed): every `import kneurons.x` /
`from kneurons.x import y` / `from kneurons import x`, at module level or inside a function,
followed transitively through the library. Imports no torch.
"""

from __future__ import annotations

import ast
import os
from functools import cache
from pathlib import Path

PACKAGE = "kneurons"


def _module_file(src: Path, module: str) -> Path | None:
    """src/kneurons/x.py or src/kneurons/x/__init__.py for "kneurons.x"; None if neither."""
    base = src.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _parents(module: str) -> list[str]:
    """ "kneurons.summary.tables" -> ["kneurons", "kneurons.summary"]: run before it."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imported_modules(path: str | Path, src: str | Path) -> set[str]:
    """The `kneurons` modules that the Python file `path` imports directly."""
    src = Path(src)
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    package = _package_of(Path(path), src)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import inside the library
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base]
            # `from kneurons import x`: x may itself be a module
            names += [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                if _module_file(src, name) is not None:
                    found.add(name)
    return found


def _package_of(path: Path, src: Path) -> str:
    try:
        relative = path.resolve().relative_to(src.resolve())
    except ValueError:
        return ""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1])
    return ".".join(parts[:-1])


@cache
def _closure(start: str, src: str) -> tuple[str, ...]:
    src_path = Path(src)
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        for name in (module, *_parents(module)):
            if name in seen:
                continue
            seen.add(name)
            file = _module_file(src_path, name)
            if file is not None:
                todo.extend(imported_modules(file, src_path) - seen)
    return tuple(sorted(seen))


def library_modules(path: str | Path, src: str | Path) -> list[str]:
    """Every `kneurons` module that running `path` (a script or a library module) can import,
    transitively, packages' `__init__` included."""
    src_path = Path(src).resolve()
    modules: set[str] = set()
    for module in imported_modules(path, src_path):
        modules.update(_closure(module, str(src_path)))
    own = _package_of(Path(path), src_path)
    if own:
        name = own if Path(path).name == "__init__.py" else f"{own}.{Path(path).stem}"
        modules.update(_closure(name, str(src_path)))
    return sorted(modules)


def library_files(path: str | Path, src: str | Path) -> list[str]:
    """The files of `library_modules(path, src)`, as paths under `src`."""
    src_path = Path(src)
    files = (_module_file(src_path, m) for m in library_modules(path, src_path))
    return sorted(str(f) for f in files if f is not None)


def share_library_path(src: str) -> None:
    """Prepend `src` to PYTHONPATH, so that every job process imports the library from there."""
    parts = [src, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
