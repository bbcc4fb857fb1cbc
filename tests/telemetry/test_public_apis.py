"""backend/ uses other packages through their public APIs only; private names live in telemetry._compat.

Three ways code can lean on another package's private name, each scanned here:
importing it (``from flask.globals import _cv_request``, ``import x._internal``),
reading it off an object (``metrics._use_created``, ``getattr(reader, "_x")``,
``super()._receive_metrics``), and overriding it in a subclass of that
package's class (a ``_collect`` property on an SDK reader). The first two are
read from the source (AST), the last from the imported classes' MRO.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parents[2] / "backend"
FIRST_PARTY = {"telemetry", "refapp"}
COMPAT = BACKEND / "telemetry" / "_compat.py"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in FIRST_PARTY and top not in sys.stdlib_module_names


def _sources() -> list[Path]:
    return sorted(p for p in BACKEND.rglob("*.py") if "egg-info" not in str(p) and p != COMPAT)


def _imported_names(tree: ast.AST) -> set[str]:
    """Names a module binds to another package's objects by importing them."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if _third_party(a.name))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _third_party(node.module):
            names.update(a.asname or a.name for a in node.names)
    return names


def _defined_private_names(trees: list[ast.AST]) -> set[str]:
    """Every private name first-party code binds itself (so reading it back is ours to do)."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            if isinstance(node, ast.arguments):
                names.update(a.arg for a in [*node.args, *node.kwonlyargs, *node.posonlyargs])
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del))
                  and not (isinstance(node.value, ast.Name) and node.value.id in _imported_names(tree))):
                names.add(node.attr)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
            elif isinstance(node, ast.ImportFrom) and node.level:  # relative: first-party by definition
                names.update(alias.name for alias in node.names)
    return {name for name in names if _private(name)}


def private_uses(files: list[Path]) -> list[str]:
    """``path:line: what`` for each import or read of another package's private name in ``files``."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in files}
    ours = _defined_private_names(list(trees.values()))
    found = []
    for path, tree in trees.items():
        imported = _imported_names(tree)
        standard = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                    for a in n.names if a.name.split(".")[0] in sys.stdlib_module_names}
        where = path.relative_to(BACKEND.parent) if path.is_relative_to(BACKEND.parent) else path
        for node in ast.walk(tree):
            what = None
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _third_party(node.module):
                if any(_private(part) for part in node.module.split(".")):
                    what = f"from {node.module} import ..."
                elif private := [a.name for a in node.names if _private(a.name)]:
                    what = f"from {node.module} import {', '.join(private)}"
            elif isinstance(node, ast.Import):
                private = [a.name for a in node.names
                           if _third_party(a.name) and any(_private(part) for part in a.name.split("."))]
                what = f"import {', '.join(private)}" if private else None
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                receiver = node.value
                if isinstance(receiver, ast.Name) and receiver.id in imported:
                    what = f"{receiver.id}.{node.attr}"
                elif isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "super":
                    what = f"super().{node.attr}"
                elif node.attr not in ours and not (isinstance(receiver, ast.Name) and receiver.id in standard):
                    what = f".{node.attr}"
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in {"getattr", "setattr", "hasattr", "delattr"} and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                  and _private(node.args[1].value) and node.args[1].value not in ours):
                what = f"{node.func.id}(..., {node.args[1].value!r})"
            if what:
                found.append(f"{where}:{node.lineno}: {what}")
    return found


def _modules() -> list[str]:
    names = []
    for path in _sources():
        parts = list(path.relative_to(BACKEND).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


ABC_BOOKKEEPING = {"_abc_impl", "_is_protocol"}  # abc.ABCMeta and typing.Protocol write them on subclasses


def private_overrides(module_names: list[str]) -> list[str]:
    """``module.Class._name`` for each private member a first-party class redefines from another package's class."""
    found = set()
    for module_name in module_names:
        module = importlib.import_module(module_name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module_name:
                continue
            mro = cls.__mro__
            for position, owner in enumerate(mro):
                if owner.__module__ not in module_names:  # another package's, or telemetry._compat
                    continue
                for name in vars(owner):
                    if not _private(name) or name in ABC_BOOKKEEPING:
                        continue
                    for base in mro[position + 1:]:
                        if _third_party(base.__module__) and name in vars(base):
                            found.add(f"{owner.__module__}.{owner.__qualname__}.{name} "
                                      f"(from {base.__module__}.{base.__qualname__})")
                            break
    return sorted(found)


def test_backend_reads_no_private_name_of_another_package():
    assert private_uses(_sources()) == []


def test_no_backend_class_overrides_a_private_member_of_another_package():
    assert private_overrides(_modules()) == []


# --- the guard itself finds what it is for ------------------------------------------------


@pytest.mark.parametrize("source, expected", [
    ("from flask.globals import _cv_request\n", "from flask.globals import _cv_request"),
    ("from opentelemetry.semconv._incubating.attributes import x\n",
     "from opentelemetry.semconv._incubating.attributes import ..."),
    ("import opentelemetry.instrumentation._semconv\n", "import opentelemetry.instrumentation._semconv"),
    ("from prometheus_client import metrics\nmetrics._use_created = True\nprint(metrics._use_created)\n",
     "metrics._use_created"),
    ("def f(reader):\n    return getattr(reader, '_instrument_class_temporality', {})\n",
     "getattr(..., '_instrument_class_temporality')"),
    ("class R(Base):\n    def _receive_metrics(self, data):\n        super()._receive_metrics(data)\n",
     "super()._receive_metrics"),
])
def test_the_scan_flags_each_kind_of_private_use(tmp_path, source, expected):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert sorted({line.split(": ", 1)[1] for line in private_uses([path])}) == [expected]


def test_the_scan_lets_first_party_and_standard_library_privates_through(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("import os\nfrom ._compat import sublarr_breakers\n"
                    "class C:\n    def __init__(self):\n        self._rows = {}\n"
                    "    def f(self):\n        os._exit(0)\n        return self._rows, getattr(self, '_rows')\n")
    assert private_uses([path]) == []


def test_the_override_scan_finds_a_private_sdk_member_redefined(tmp_path, monkeypatch):
    (tmp_path / "overriding_module.py").write_text(
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "class Reader(InMemoryMetricReader):\n"
        "    def _receive_metrics(self, *a, **k):\n        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert private_overrides(["overriding_module"]) == [
        "overriding_module.Reader._receive_metrics "
        "(from opentelemetry.sdk.metrics._internal.export.InMemoryMetricReader)"]
