"""The measurement tools' own machinery (``benchmarks/``), without a model."""

from __future__ import annotations

import os

import pytest

from benchmarks.analysis import TruthWorker


def test_the_eval_truth_comes_from_a_process_of_its_own():
    """jedi with its default settings (call-site inference on) answers the eval's truth in a
    process the tool started, not in the monitors' worker, which has no truth jobs."""
    from monitors import worker

    with TruthWorker() as w:
        assert w.ping()
        assert w.pid not in (None, os.getpid())
        assert "parse_args" in w.truth("members", "import argparse\np = argparse.ArgumentParser()\np.", "\n", None)
        # call-site inference: ``x`` is a str because ``g`` is called with one
        assert "upper" in w.truth("members", "def g(x):\n    return x.", "\n\ng('s')\n", None)
        names = w.truth("names", "import argparse\ndef f(items):\n    return len(", ")\n", None)
        assert {"items", "argparse", "len"} <= names
        (sig,) = w.truth("calls", "def f(a, b=1):\n    pass\nf(", ")\n", None)
        assert [p.name for p in sig.params] == ["a", "b"]
        with pytest.raises(ValueError):
            w.truth("imports", "import ", "\n", None)
    with pytest.raises(ValueError, match="unknown analysis job"):
        worker.run("py-members-truth", "import argparse\nargparse.", "\n", None)


def test_trigger_job_times_are_read_from_the_runners_record():
    """The eval's and bench's worker times: the monitors' trigger analyses among the runner's
    finished jobs (``job_ms``), from an index on, in documents of a given size; warm-ups and
    pings left out."""
    from types import SimpleNamespace

    from benchmarks.analysis import trigger_job_ms

    runner = SimpleNamespace(job_ms=[("warm-up", 900.0, 1), ("py-members", 40.0, 2500), ("ping", 0.1, 1),
                                     ("py-signatures", 12.0, 300), ("py-imports", 7.0, 2000), ("lsp-members", 30.0, 2500)])
    assert trigger_job_ms(runner) == [40.0, 12.0, 7.0]
    assert trigger_job_ms(runner, min_lines=2000) == [40.0, 7.0]
    assert trigger_job_ms(runner, since=2) == [12.0, 7.0]
