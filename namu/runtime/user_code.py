"""Import user code by module name or by file path, the way ``python FILE.py`` would."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from types import ModuleType

__all__ = ["import_path", "lookup_qualname"]


def import_path(path: str | os.PathLike[str], *, module_name: str | None = None) -> ModuleType:
    """Import the Python file at ``path`` and return the module.

    The file's directory goes first on ``sys.path`` (as with ``python FILE.py``) so the
    file can import its neighbours. The module is registered under ``module_name`` or
    the file's stem; when that name belongs to another module (``ast.py`` next to the
    standard library's ``ast``), a unique private name is used instead.

    Raises:
        FileNotFoundError: there is no such file.
        Exception: whatever executing the module raised.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = module_name or os.path.splitext(os.path.basename(path))[0]
    existing = sys.modules.get(name)
    if existing is not None:
        if _same_file(getattr(existing, "__file__", None), path):
            return existing
        name = "_namu_user_" + hashlib.sha256(path.encode()).hexdigest()[:12]
        existing = sys.modules.get(name)
        if existing is not None:
            return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for non-.py paths
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _same_file(a: str | None, b: str) -> bool:
    if not a:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def lookup_qualname(module: ModuleType, qualname: str) -> object:
    """``module.<qualname>``, following dots.

    Raises:
        AttributeError: a part of the name does not exist.
    """
    obj: object = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
