"""Map/reduce over the standard library's source: parse every module, rank the results.

The workflow lists every ``.py`` file under a root directory (by default the running
Python's standard library, tests included, ``site-packages`` excluded), analyzes each
file in a fan-out (one ``analyze`` call per file), and reduces the per-module metrics
to totals and two rankings: the largest modules and the most imported modules.

The standard library ships a few files that do not parse on purpose (test data with bad
syntax or a bad encoding declaration). ``analyze`` is an ``on_error="skip"`` task, so
those files are dropped from the fan-out, counted, and reported in the run's
``RunResult.skipped`` instead of failing the run.

Run it::

    namu run examples/stdlib_stats.py                       # the whole stdlib
    namu run examples/stdlib_stats.py --input top=5 --json
    namu run examples/stdlib_stats.py --input root=/path/to/project
"""

from __future__ import annotations

import ast
import collections
import os
import sysconfig
import tokenize
import warnings

import namu

#: directory names never descended into.
EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})


def _resolve_root(root: str) -> str:
    return os.path.abspath(root) if root else sysconfig.get_paths()["stdlib"]


@namu.task
def list_sources(root: str) -> list[str]:
    """Every ``.py`` file under ``root`` ("" means the standard library), sorted.

    Subdirectories are included; ``site-packages`` and ``__pycache__`` are not.
    """
    base = _resolve_root(root)
    if not os.path.isdir(base):
        raise NotADirectoryError(f"not a directory: {base}")
    paths = []
    for directory, subdirs, files in os.walk(base):
        subdirs[:] = [d for d in subdirs if d not in EXCLUDED_DIRS]
        paths.extend(os.path.join(directory, f) for f in files if f.endswith(".py"))
    return sorted(paths)


def module_name(path: str) -> str:
    """The dotted name Python imports ``path`` by: walk up while directories are packages.

    ``.../json/decoder.py`` -> ``json.decoder``; ``.../json/__init__.py`` -> ``json``.
    A file in a plain directory (no ``__init__.py``) is named by its stem.
    """
    directory, filename = os.path.split(os.path.abspath(path))
    stem = filename[:-3] if filename.endswith(".py") else filename
    parts = [] if stem == "__init__" else [stem]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.append(package)
        if not package:
            break
    return ".".join(reversed(parts)) or stem


#: statement fields holding nested statement lists (if/for/while/try/with/match bodies).
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(body: list[ast.stmt]):
    """Every statement nested in ``body``, in no particular order.

    Definitions and imports are statements, so there is no need to visit expressions:
    this is several times faster than ``ast.walk``, which visits every node.
    """
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        yield node
        for field in _BLOCK_FIELDS:
            nested = getattr(node, field, None)
            if nested:
                stack.extend(nested)


@namu.task(on_error="skip")
def analyze(path: str) -> dict:
    """Per-module metrics of one source file.

    The file is decoded as Python decodes source (``tokenize.open``: BOM and coding
    cookie) and parsed with ``ast``. A file that does not decode or parse raises, and
    the fan-out skips it.

    Returns:
        ``module`` (dotted name), ``path``, ``lines``, ``functions`` (``def`` and
        ``async def``, methods included), ``classes``, ``imports`` (sorted top-level
        names of absolutely imported modules), ``documented`` and ``documentable``
        (how many of the module, its classes and functions have a docstring, out of
        how many) and ``docstring_coverage`` (their ratio).
    """
    with tokenize.open(path) as f:
        source = f.read()
    with warnings.catch_warnings():
        # Invalid escape sequences and the like warn at parse time; they are not errors.
        warnings.simplefilter("ignore")
        tree = ast.parse(source, filename=path)
    functions = classes = 0
    documented = 1 if ast.get_docstring(tree, clean=False) is not None else 0
    imports: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if isinstance(node, ast.ClassDef):
                classes += 1
            else:
                functions += 1
            if ast.get_docstring(node, clean=False) is not None:
                documented += 1
        elif isinstance(node, ast.Import):
            imports.update(alias.name.split(".", 1)[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                imports.add(node.module.split(".", 1)[0])
    documentable = 1 + functions + classes
    return {
        "module": module_name(path),
        "path": path,
        "lines": len(source.splitlines()),
        "functions": functions,
        "classes": classes,
        "imports": sorted(imports),
        "documented": documented,
        "documentable": documentable,
        "docstring_coverage": documented / documentable,
    }


@namu.task
def summarize(paths: list[str], metrics: list, top: int) -> dict:
    """Aggregate the per-module metrics and rank them.

    Returns:
        ``totals``: ``files`` (listed), ``parsed``, ``skipped`` (listed but not
        analyzed), ``lines``, ``functions``, ``classes``, ``docstring_coverage`` (mean
        over parsed modules); ``largest``: the ``top`` modules by lines
        (``{"module", "lines"}``, ties by name); ``most_imported``: the ``top`` modules
        imported by the most analyzed modules (``{"module", "importers"}``).
    """
    importers: collections.Counter[str] = collections.Counter()
    for m in metrics:
        importers.update(m["imports"])
    parsed = len(metrics)
    totals = {
        "files": len(paths),
        "parsed": parsed,
        "skipped": len(paths) - parsed,
        "lines": sum(m["lines"] for m in metrics),
        "functions": sum(m["functions"] for m in metrics),
        "classes": sum(m["classes"] for m in metrics),
        "docstring_coverage": round(sum(m["docstring_coverage"] for m in metrics) / parsed, 4) if parsed else 0.0,
    }
    largest = sorted(metrics, key=lambda m: (-m["lines"], m["module"]))[: max(top, 0)]
    ranked = sorted(importers.items(), key=lambda kv: (-kv[1], kv[0]))[: max(top, 0)]
    return {
        "totals": totals,
        "largest": [{"module": m["module"], "lines": m["lines"]} for m in largest],
        "most_imported": [{"module": name, "importers": count} for name, count in ranked],
    }


@namu.workflow
def stdlib_stats(root: str = "", top: int = 10) -> dict:
    """Statistics over every module under ``root`` (default: the standard library)."""
    paths = list_sources(root)
    metrics = [analyze(p) for p in paths]
    return summarize(paths, metrics, top)


if __name__ == "__main__":
    import json

    result = stdlib_stats.run()
    print(json.dumps(result.value, indent=2))
    print(f"{len(result.skipped)} files skipped in {result.elapsed_s:.1f} s")
