"""Exact version gates for the patches of third-party private internals (monitors/version_gate.py).

The patches (parso_patches: parso's diff parser, used names, name at a position, jedi's scoped
filters, the shared InferenceState; lsp_server/server.py: pygls's framing, stdio reader,
incremental edits, lifecycle errors, trigger kinds) are installed on the exact versions they were
tested against, and on any other version left out with a warning."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitors import version_gate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(version_gate, "_warned", set())


def test_the_installed_versions_are_the_tested_ones():
    """Upgrading parso, jedi or pygls without re-running the patches' tests on the new release
    (and adding it to TESTED) fails here: the patches would silently be off."""
    for dist, tested in version_gate.TESTED.items():
        assert version_gate.installed_version(dist) in tested, (dist, version_gate.installed_version(dist), tested)


def test_a_tested_version_passes_the_gate_silently(caplog, fresh_warnings):
    with caplog.at_level(logging.WARNING, logger=version_gate.__name__):
        assert version_gate.exact("parso", "a patch", "the fallback")
    assert not caplog.records


def test_another_version_is_refused_once_with_what_runs_instead(monkeypatch, caplog, fresh_warnings):
    monkeypatch.setattr(version_gate, "installed_version", lambda dist: "0.8.6")
    with caplog.at_level(logging.WARNING, logger=version_gate.__name__):
        assert not version_gate.exact("parso", "the diff patch", "parso's own code runs")
        assert not version_gate.exact("parso", "the diff patch", "parso's own code runs")
    (record,) = caplog.records  # once per process
    msg = record.getMessage()
    assert "parso 0.8.6" in msg and "0.8.7" in msg and "the diff patch" in msg and "parso's own code runs" in msg
    # a near miss is a miss: the gate is exact, not on the minor series
    monkeypatch.setattr(version_gate, "installed_version", lambda dist: "0.8.70")
    assert not version_gate.exact("parso", "the diff patch", "x")
    monkeypatch.setattr(version_gate, "installed_version", lambda dist: None)
    assert not version_gate.exact("parso", "the diff patch", "x")


def test_parso_patches_are_installed_on_the_tested_versions_only():
    probe = """
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        from monitors import version_gate
        real = version_gate.installed_version
        if sys.argv[-1] == "old":
            version_gate.installed_version = lambda d: {"parso": "0.8.6", "jedi": "0.19.1"}.get(d) or real(d)
        from monitors.python import parso_patches
        parso_patches.install()
        from parso.python import diff
        from parso.python.tree import Module
        from jedi.inference import filters
        print(diff.DiffParser.update is parso_patches._update, Module.get_used_names is parso_patches._used_names,
              filters._AbstractUsedNamesFilter.values is parso_patches._scoped_values)
    """
    tested = subprocess.run([sys.executable, "-c", textwrap.dedent(probe), "tested"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert tested.stdout.split() == ["True", "True", "True"], tested.stderr
    old = subprocess.run([sys.executable, "-c", textwrap.dedent(probe), "old"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert old.stdout.split() == ["False", "False", "False"], old.stderr
    assert "parso 0.8.6 is not a version" in old.stderr and "jedi 0.19.1 is not a version" in old.stderr


def test_the_server_overrides_pygls_on_the_tested_version_only(monkeypatch, fresh_warnings):
    from lsp_server import server as srv

    s = srv.SteercodeServer()
    try:
        assert s.pygls_patched and type(s.lsp) is srv.SteercodeProtocol
    finally:
        s.engine.close()
    real = version_gate.installed_version
    monkeypatch.setattr(version_gate, "installed_version", lambda d: "1.3.2" if d == "pygls" else real(d))
    s = srv.SteercodeServer()
    try:
        assert not s.pygls_patched and type(s.lsp) is srv.BaseProtocol
        # pygls's own methods run: none of the overrides is reachable from this protocol
        for name in ("_data_received", "_procedure_handler", "_execute_request_callback"):
            assert getattr(type(s.lsp), name) is getattr(srv.LanguageServerProtocol, name)
    finally:
        s.engine.close()
