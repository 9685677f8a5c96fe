"""Find strategies by name.

Every module of the ``strategies`` package (except this one, ``base`` and ``_private`` modules)
is imported once; each concrete :class:`~strategies.base.Strategy` subclass *defined* in it with
a ``name`` registers itself. A user drops ``strategies/mystrat.py`` and ``get("mystrat")`` finds
it -- no list to edit (the original needed a factory entry). Names are case-insensitive and must be
unique; a module that fails to import is an error naming the module, never a silently missing
strategy.

Strategies kept outside the package (a benchmark's port, an operator's private ones) are found through
``ALBRA_STRATEGY_PATH``: directories (``os.pathsep``-separated) whose ``*.py`` files are imported by path under
the same rules (``_private`` files skipped, a failed import is an error, names unique across both places).

:func:`get` does not import every shipped strategy to find one (each pulls its indicators and builds a pydantic
model: start-up time every ``albra backtest`` and ``albra run`` paid): it imports every ``ALBRA_STRATEGY_PATH``
file as always (so a broken or clashing file there is still an error) and, of the package, only the modules
whose source declares the asked name as a literal (``name = "TFPE"``). Two modules declaring one name are both
imported, so the duplicate is still an error. A name found no such way (computed, inherited, unknown) falls back
to the full discovery. :func:`names`, :func:`all` and :func:`discover` always import everything.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from albra.strategies.base import Strategy

SKIP = {"base", "registry"}


class RegistryError(LookupError):
    """Unknown strategy name, duplicate name, or a strategy module that cannot be imported."""


PATH_ENV = "ALBRA_STRATEGY_PATH"


def _import_file(path: Path) -> ModuleType:
    """Import one strategy file from outside the package (module name ``albra_ext_<stem>``)."""
    modname = f"albra_ext_{path.stem}"
    if modname in sys.modules and getattr(sys.modules[modname], "__file__", None) == str(path):
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise RegistryError(f"strategy file {path} cannot be imported")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # a broken user file must be loud
        del sys.modules[modname]
        raise RegistryError(f"strategy file {path} failed to import: {type(e).__name__}: {e}") from e
    return mod


def _external_modules() -> list[ModuleType]:
    mods = []
    for d in filter(None, os.environ.get(PATH_ENV, "").split(os.pathsep)):
        folder = Path(d)
        if not folder.is_dir():
            raise RegistryError(f"{PATH_ENV}: {d} is not a directory")
        mods.extend(_import_file(f.resolve()) for f in sorted(folder.glob("*.py")) if not f.name.startswith("_"))
    return mods


def _package_modules(package: str) -> list[tuple[str, Path | None]]:
    """The strategy modules of ``package`` by name order, each with its source file (None when not a plain file)."""
    pkg = importlib.import_module(package)
    out = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in SKIP or info.name.startswith("_") or info.ispkg:
            continue
        folder = getattr(info.module_finder, "path", None)
        source = Path(folder) / f"{info.name}.py" if folder else None
        out.append((f"{package}.{info.name}", source if source is not None and source.is_file() else None))
    return out


def _import_module(modname: str) -> ModuleType:
    try:
        return importlib.import_module(modname)
    except Exception as e:  # a broken user file must be loud
        raise RegistryError(f"strategy module {modname} failed to import: {type(e).__name__}: {e}") from e


def discover(package: str = "albra.strategies") -> dict[str, type["Strategy"]]:
    """Import every module of ``package`` (and of ``ALBRA_STRATEGY_PATH``) and map upper-cased names to strategy
    classes."""
    mods = [_import_module(modname) for modname, _ in _package_modules(package)]
    if package == "albra.strategies":
        mods.extend(_external_modules())
    return _strategies_in(mods)


def _strategies_in(mods: list[ModuleType]) -> dict[str, type["Strategy"]]:
    """Upper-cased name → class of the concrete strategies defined in ``mods`` (an error for a duplicate)."""
    from albra.strategies.base import Strategy

    found: dict[str, type[Strategy]] = {}
    for mod in mods:
        modname = mod.__name__
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if (obj.__module__ != mod.__name__ or not issubclass(obj, Strategy)
                    or inspect.isabstract(obj) or not isinstance(getattr(obj, "name", None), str)):
                continue
            key = obj.name.strip().upper()
            if not key:
                raise RegistryError(f"{modname}.{obj.__name__} has an empty name")
            if key in found and found[key] is not obj:
                other = found[key]
                raise RegistryError(
                    f"duplicate strategy name {obj.name!r}: {other.__module__}.{other.__name__} "
                    f"and {modname}.{obj.__name__}"
                )
            found[key] = obj
    return found


# ``name = "X"`` (optionally annotated) at class-body indentation: where a strategy may declare the asked name
_NAME_LITERAL = re.compile(r"""^[ \t]+name[ \t]*(?::[^=\n]*)?=[ \t]*(?:"([^"\n]*)"|'([^'\n]*)')""", re.M)


def _declares(source: Path | None, keys: set[str]) -> bool:
    """Whether a module file declares one of the strategy names ``keys`` (upper-cased) as a literal; True when
    it cannot be read (the import then reports it)."""
    if source is None:
        return True
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True
    return any((a or b).strip().upper() in keys for a, b in _NAME_LITERAL.findall(text))


def _find(key: str) -> type["Strategy"] | None:
    """The strategy called ``key``, importing every external file but only the package modules that declare
    ``key`` or an external strategy's name (so a clash is still found); None when that does not find it (the
    caller then discovers everything)."""
    external = _external_modules()
    keys = {key, *_strategies_in(external)}
    mods = [_import_module(modname) for modname, src in _package_modules("albra.strategies") if _declares(src, keys)]
    return _strategies_in(mods + external).get(key)  # package first, as discover() orders them


_cache: dict[str, type["Strategy"]] | None = None
_found: dict[str, type["Strategy"]] = {}


def _registry() -> dict[str, type["Strategy"]]:
    global _cache
    if _cache is None:
        _cache = discover()
    return _cache


def refresh() -> None:
    """Forget what was discovered (a new strategy file appeared)."""
    global _cache
    _cache = None
    _found.clear()


def names() -> list[str]:
    """Registered strategy names, sorted, as the strategies spell them."""
    return sorted(cls.name for cls in _registry().values())


def all() -> list[type["Strategy"]]:  # noqa: A001 - the brief's API name
    """Registered strategy classes, sorted by name."""
    reg = _registry()
    return [reg[k] for k in sorted(reg)]


def get(name: str) -> type["Strategy"]:
    """The strategy class called ``name`` (case-insensitive)."""
    key = str(name).strip().upper()
    if _cache is None and key:
        cls = _found.get(key) or _find(key)
        if cls is not None:
            _found[key] = cls
            return cls
    reg = _registry()
    try:
        return reg[key]
    except KeyError:
        raise RegistryError(f"unknown strategy {name!r}; known: {', '.join(names())}") from None
