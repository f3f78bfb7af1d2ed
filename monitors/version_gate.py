"""Exact version gates for the patches of third-party private internals.

steercode replaces a few private functions of parso and jedi (``monitors/python/parso_patches.py``)
and overrides private methods of pygls (``lsp_server/server.py``). Each replacement was checked
against the code it replaces in one release; another release may have moved, renamed or changed
that code without notice. So a patch is installed only on the exact versions it was tested
against (``TESTED``). On any other version it is left out, with one warning naming the version,
the tested ones and what runs instead (the library's own code: correct, only without what the
patch added). To support a new release: run the patch's tests on it (``tests/test_parso_patches.py``,
``tests/test_lsp*.py``), then add it here.
"""

from __future__ import annotations

import logging
from importlib import metadata

__all__ = ["TESTED", "exact", "installed_version"]

log = logging.getLogger(__name__)

#: distribution -> the versions whose private internals the patches were checked against
TESTED: dict[str, tuple[str, ...]] = {
    "parso": ("0.8.7",),
    "jedi": ("0.19.2",),
    "pygls": ("1.3.1",),
}

_warned: set[tuple[str, str | None, str]] = set()


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None: not installed)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def exact(dist: str, patch: str, fallback: str) -> bool:
    """Whether the installed ``dist`` is a version ``patch`` was tested against. When it is not,
    log (once per process) a warning naming the version, the tested ones, and ``fallback``:
    what runs instead."""
    version = installed_version(dist)
    tested = TESTED.get(dist, ())
    if version in tested:
        return True
    key = (dist, version, patch)
    if key not in _warned:
        _warned.add(key)
        log.warning(
            "%s %s is not a version %s was tested against (%s): not installed, %s",
            dist, version or "(not installed)", patch, ", ".join(tested) or "none", fallback,
        )
    return False
