"""The documentation names only what exists: config keys, modules, files and sections.

Fast and offline: reads README.md, docs/*.md, docs/runs/README.md, config/README.md,
config/schema.yaml and the library's source text (nothing is imported or run).

- Every backticked dotted name whose first part is a top-level key of the schema
  (`evaluation.retention`, `models.<id>.replicates`) is a key of the schema; a part in angle
  brackets stands for any key of a mapping (`additionalProperties`).
- Every key of the schema, blocks and leaves, is documented in config/README.md.
- Every backticked `kneurons.a.b` (optionally `.name`) is a module or package under src/, or a
  module and a name it defines (`def name`, `class name`, `name =`).
- README.md is at most 250 lines, and every relative link or image of the pages points to an
  existing file (and, for `page.md#anchor`, to a heading of that page).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
SCHEMA = ROOT / "config" / "schema.yaml"
CONFIG_README = ROOT / "config" / "README.md"
README = ROOT / "README.md"
README_MAX_LINES = 250


def doc_pages() -> list[Path]:
    pages = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "docs" / "runs" / "README.md"]
    return [*pages, CONFIG_README]


FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
PART = r"(?:[A-Za-z_]\w*|<[\w-]+>)"
DOTTED = re.compile(rf"^({PART}(?:\.{PART})*)")
MODULE_NAME = re.compile(r"(?<![\w/.])kneurons(?:\.[A-Za-z_]\w*)+")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
# a dotted name that ends like a file name is a file, not a key (`evaluation.smk`)
FILE_SUFFIXES = {
    "md", "py", "yaml", "yml", "smk", "parquet", "png", "svg", "json", "tsv", "html", "rst",
    "txt", "gz", "pt", "npy", "csv", "fasta",
}  # fmt: skip


def without_code_blocks(text: str) -> str:
    return FENCE.sub("", text)


def code_spans(path: Path) -> list[str]:
    return CODE_SPAN.findall(without_code_blocks(path.read_text(encoding="utf-8")))


def is_placeholder(part: str) -> bool:
    return part.startswith("<") and part.endswith(">")


def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def _object_alternatives(node: dict) -> list[dict]:
    """The node itself and, for a `oneOf`, its alternatives that are blocks with properties."""
    return [node, *(alt for alt in node.get("oneOf", []) if isinstance(alt, dict))]


def children(node: dict, part: str) -> list[dict]:
    """The schema nodes a documented key part may name under `node`."""
    found = []
    for alt in _object_alternatives(node):
        properties = alt.get("properties") or {}
        extra = alt.get("additionalProperties")
        if is_placeholder(part):
            if isinstance(extra, dict):
                found.append(extra)
            else:  # `scoring.<method>`: one of the named blocks
                found.extend(v for v in properties.values() if isinstance(v, dict))
        elif part in properties:
            found.append(properties[part])
        elif isinstance(extra, dict):  # a concrete key of a mapping (`models.esm2_8M`)
            found.append(extra)
    return found


def resolves(root: dict, parts: list[str]) -> bool:
    nodes = [root]
    for part in parts:
        nodes = [child for node in nodes for child in children(node, part)]
        if not nodes:
            return False
    return True


def schema_paths(node: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of the schema, blocks and leaves; `<>` stands for any key of a mapping."""
    paths = []
    for alt in _object_alternatives(node):
        for key, child in (alt.get("properties") or {}).items():
            path = (*prefix, key)
            paths.append(path)
            paths.extend(schema_paths(child, path))
        extra = alt.get("additionalProperties")
        if isinstance(extra, dict):
            path = (*prefix, "<>")
            paths.append(path)
            paths.extend(schema_paths(extra, path))
    return list(dict.fromkeys(paths))


def dotted_names(span: str) -> list[str] | None:
    match = DOTTED.match(span.strip())
    return match.group(1).split(".") if match else None


def documented_config_keys(top_level: set[str]) -> dict[str, list[str]]:
    """Backticked dotted names whose first part is a top-level key: name -> pages naming it."""
    keys: dict[str, list[str]] = {}
    for page in doc_pages():
        for span in code_spans(page):
            parts = dotted_names(span)
            if not parts or len(parts) < 2 or parts[0] not in top_level:
                continue
            if parts[-1] in FILE_SUFFIXES:
                continue
            pages = keys.setdefault(".".join(parts), [])
            if str(page.relative_to(ROOT)) not in pages:
                pages.append(str(page.relative_to(ROOT)))
    return keys


def test_every_config_key_the_docs_name_is_in_the_schema():
    root = schema()
    top_level = set(root["properties"])
    keys = documented_config_keys(top_level)
    assert keys, "no config key found in the docs: the scan is broken"
    unknown = {k: pages for k, pages in keys.items() if not resolves(root, k.split("."))}
    assert not unknown, (
        "config keys named in the docs but not in config/schema.yaml:\n"
        + "\n".join(f"  {key} ({', '.join(pages)})" for key, pages in sorted(unknown.items()))
    )


def test_every_schema_key_is_documented_in_config_readme():
    documented = set()
    for span in code_spans(CONFIG_README):
        parts = dotted_names(span)
        if parts:
            documented.add(tuple("<>" if is_placeholder(p) else p for p in parts))
    missing = [".".join(p) for p in schema_paths(schema()) if p not in documented]
    assert not missing, "schema keys missing from config/README.md:\n" + "\n".join(
        f"  {key}" for key in missing
    )


def defines(module: Path, name: str) -> bool:
    text = module.read_text(encoding="utf-8")
    pattern = rf"^(?:(?:async\s+)?def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]"
    return re.search(pattern, text, re.M) is not None


def module_file(parts: list[str]) -> Path | None:
    """src/kneurons/a/b.py or src/kneurons/a/b/__init__.py for parts ['kneurons', 'a', 'b']."""
    base = SRC.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name_resolves(name: str) -> bool:
    parts = name.split(".")
    # the longest prefix that is a module; what follows may be one name defined in it
    for end in range(len(parts), 0, -1):
        module = module_file(parts[:end])
        if module is None:
            continue
        rest = parts[end:]
        return not rest or (len(rest) == 1 and defines(module, rest[0]))
    return False


def documented_module_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for page in doc_pages():
        for span in code_spans(page):
            for name in MODULE_NAME.findall(span):
                pages = names.setdefault(name, [])
                if str(page.relative_to(ROOT)) not in pages:
                    pages.append(str(page.relative_to(ROOT)))
    return names


def test_every_module_the_docs_name_exists():
    names = documented_module_names()
    assert names, "no kneurons module found in the docs: the scan is broken"
    unknown = {n: pages for n, pages in names.items() if not module_name_resolves(n)}
    assert not unknown, "modules named in the docs but not under src/:\n" + "\n".join(
        f"  {name} ({', '.join(pages)})" for name, pages in sorted(unknown.items())
    )


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; at most {README_MAX_LINES}: move detail into docs/"
    )


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, heading in HEADING.findall(without_code_blocks(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(without_code_blocks(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target} (no heading #{anchor})")
    return broken


def test_every_relative_link_points_to_an_existing_file():
    problems = {
        str(page.relative_to(ROOT)): broken
        for page in doc_pages()
        if page.is_file() and (broken := broken_links(page))
    }
    assert not problems, "broken links:\n" + "\n".join(
        f"  {page}: {link}" for page, links in problems.items() for link in links
    )
