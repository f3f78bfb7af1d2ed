"""Monitors: the identifier state machine on a synthetic vocabulary, golden cases per monitor on
real jedi (cursor marked with ┃), purity, failure handling, and end to end on the real model."""

from __future__ import annotations

import concurrent.futures
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import split_cursor
from fakes import FakeBackend

from completion.constraints import HealingConstraint
from completion.decoding import Decoder
from monitors.base import AnalysisRunner, MonitorContext, NameSet, Pending, Rewind
from monitors.identifiers import IdentifierSession
from monitors.python.calls import CallsMonitor, call_ok, parse_args
from monitors.python.jedi_analysis import KEYWORD_ONLY, POSITIONAL_OR_KEYWORD, VAR_KEYWORD, Param, Signature
from monitors.python.names import ImportsMonitor, MembersMonitor, NamesMonitor
from monitors.vocabulary import Vocabulary

# ---- the identifier state machine on a synthetic vocabulary -----------------------------------

PIECES = [b"<eos>", b"app", b"append", b"end", b"ex", b"extend", b"(", b"()", b"append(", b" ", b"x",
          b"pop", b"po", b"p", b"ap", b"\n", b".", b"_", b"clear", b"copy"]
MEMBERS = {"append", "extend", "pop", "clear", "copy"}


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(PIECES, control=[0])


def test_spaced_tokens_start_a_name_after_a_space(vocab):
    from monitors.base import NameSet

    ids = NameSet({"pop", "extend"}).spaced_tokens(vocab)
    assert sorted(vocab.text(int(i)) for i in ids) == [" "]  # this vocabulary has no " pop"
    v2 = Vocabulary([b"<eos>", b" ", b" po", b" pop", b" x", b"pop"], control=[0])
    assert sorted(v2.text(int(i)) for i in NameSet({"pop"}).spaced_tokens(v2)) == [" ", " po", " pop"]


class StaticMembers(IdentifierSession):
    """Members after ``xs.`` come from a fixed set (no analysis)."""

    name = "members"
    requires_identifier = True
    calls = 0

    def in_context(self, full, s):
        return s > 0 and full[s - 1] == "."

    def legal_at(self, full, s):
        StaticMembers.calls += 1
        return NameSet(MEMBERS)


def session(vocab, text="xs = []\nxs."):
    ctx = MonitorContext(text=text, offset=len(text), cursor=len(text), language="python", path=None, vocab=vocab)
    return StaticMembers(ctx, runner=None, timeout_s=1.0)  # type: ignore[arg-type]


def t(s):
    return PIECES.index(s.encode())


def test_member_prefixes_and_complete_names(vocab):
    s = session(vocab)
    assert s.check("", t("app"), "app")  # a prefix of "append"
    assert s.check("app", t("end"), "end")
    assert s.check("", t("append("), "append(")  # a name, then a break character
    assert s.check("", t("ex"), "ex")  # prefix of "extend"
    assert not s.check("", t("x"), "x")  # no member starts with "x"
    assert not s.check("ap", t("x"), "x")  # "apx"
    assert not s.check("po", t("("), "(")  # "po" is not a member: cannot end there
    assert s.check("pop", t("("), "(")


def test_an_identifier_is_required_after_the_dot(vocab):
    s = session(vocab)
    assert not s.check("", t("("), "(")
    assert not s.check("", t("\n"), "\n")
    assert not s.check("", 0, None)  # <eos> right after "xs."
    assert not s.check("ap", 0, None)  # ending on a partial name


def test_allowed_set_is_exactly_the_consistent_tokens(vocab):
    s = session(vocab)
    got = {PIECES[i].decode() for i in s.allowed("")}
    assert got == {"app", "append", "append(", "ex", "extend", "pop", "po", "p", "ap", "clear", "copy"}
    after = {PIECES[i].decode() for i in s.allowed("ap")}
    assert after == {"p"} | set()  # "ap" + "p" -> "app" is a prefix of append; "pend" is not a token


def test_answers_are_pure(vocab):
    s = session(vocab)
    first = [s.check(g, t(p), p) for g, p in [("", "app"), ("app", "x"), ("", "x"), ("pop", "(")]]
    s2 = session(vocab)
    again = [s2.check(g, t(p), p) for g, p in reversed([("", "app"), ("app", "x"), ("", "x"), ("pop", "(")])]
    assert first == list(reversed(again))


def test_monitor_and_healing_together(vocab):
    # cursor after "xs.ap": healing backs off "ap"; the monitor then sees the regenerated name
    be = FakeBackend(len(PIECES), script={(5,): t("x")})  # the model prefers "x" (not a member)
    s = session(vocab)
    r = Decoder(be, vocab, {0}).generate([5], max_tokens=4, constraints=[s, HealingConstraint("ap", vocab)])
    assert r.text.startswith("ap")
    word = re.match(r"\w*", r.text).group(0)
    assert any(m.startswith(word) for m in MEMBERS)


def test_decoder_uses_the_monitor(vocab):
    be = FakeBackend(len(PIECES), script={(7,): t("x")})
    r = Decoder(be, vocab, {0}).generate([7], max_tokens=3, constraints=[session(vocab)])
    ident = re.match(r"\w*", r.text).group(0)
    assert ident and any(m.startswith(ident) for m in MEMBERS)
    assert r.stats.interventions["members"] >= 1


# ---- calls: argument validity (pure functions) ------------------------------------------------

SIG = Signature("f", (Param("a", POSITIONAL_OR_KEYWORD, False), Param("b", POSITIONAL_OR_KEYWORD, True),
                      Param("c", KEYWORD_ONLY, False)))


@pytest.mark.parametrize(
    "args, closed, ok",
    [
        ("1, c=2", True, True),
        ("1", True, False),  # c is required
        ("1, 2, 3", False, False),  # too many positional
        ("1, 2, ", False, True),  # the next argument may still be c=
        ("1, d=2", False, False),  # no parameter d
        ("a=1, 2", False, False),  # positional after keyword
        ("1, a=2", False, False),  # a given twice
        ("*xs", True, True),  # unpacking: unknowable, allowed
        ("1, c=f(x, y)", True, True),
        ("1, b", False, True),  # "b" may be a variable or become b=
    ],
)
def test_call_ok(args, closed, ok):
    assert call_ok(parse_args(args), closed, SIG) is ok


def test_var_keyword_accepts_any_name():
    sig = Signature("g", (Param("a", POSITIONAL_OR_KEYWORD, False), Param("kw", VAR_KEYWORD, False)))
    assert call_ok(parse_args("1, anything=2"), True, sig)


# ---- golden cases per monitor on real jedi (in-process analysis for speed) -------------------


@pytest.fixture(scope="module")
def runner():
    r = AnalysisRunner(process=False)
    yield r
    r.shutdown()


def test_signature_of_a_class_defined_in_the_class_body_after_its_members_were_analysed():
    """argparse's ``self._Section(`` after the members of ``self.`` were analysed: jedi's
    completion of ``_Section`` has no signature; the call itself has one (was: no opinion)."""
    import argparse
    from pathlib import Path

    from monitors.python.jedi_analysis import JediAnalyzer

    src = Path(argparse.__file__).read_text(encoding="utf-8")
    call = src.index("self._root_section = self._Section(") + len("self._root_section = self.")
    after = src[src.index("\n", call) :]
    a = JediAnalyzer(None)
    assert "_Section" in a.members(src[:call], after, argparse.__file__)
    sigs = a.signatures(src[:call] + "_Section(", after, argparse.__file__)
    assert sigs and [p.name for p in sigs[0].params] == ["formatter", "parent", "heading"]


def test_scoped_name_filters_give_what_jedi_gives():
    """``_scoped_values`` (a class's or function's names looked for inside it only) answers as
    jedi's own filters: the same completions, names and kinds, at member accesses (``self.``
    in classes with bases, modules, locals) and at expression starts inside functions and
    methods, on the same fresh documents."""
    import argparse
    import random
    from pathlib import Path

    import jedi
    from jedi.inference import filters

    from benchmarks.evaluation import member_sites, name_sites
    from monitors.python import parso_patches

    parso_patches.install()
    patched = filters._AbstractUsedNamesFilter.values
    assert patched is parso_patches._scoped_values
    path = argparse.__file__
    src = Path(path).read_text(encoding="utf-8")
    rnd = random.Random(1)
    members = member_sites(path, src)
    sites = [s.offset for s in rnd.sample([s for s in members if src[s.offset - 5 : s.offset] == "self."], 8)]
    sites += [s.offset for s in rnd.sample([s for s in members if src[s.offset - 5 : s.offset] != "self."], 6)]
    sites += [s.offset for s in rnd.sample(name_sites(path, src), 6)]

    def complete(offset: int, k: int) -> list[tuple[str, str]]:
        line_start = src.rfind("\n", 0, offset) + 1
        nl = src.find("\n", offset)
        code = src[:offset] + "\n" * (k + 1) + src[nl + 1 :]  # the rest of the line cut, a new version
        line = src.count("\n", 0, offset) + 1
        comps = jedi.Script(code, path=path).complete(line, offset - line_start)
        return sorted((c.name, c.type) for c in comps)

    # the analyzer's settings: with jedi's dynamic parameters on, which inferences hit jedi's
    # recursion limits depends on the order names are looked at, and so did the answers
    dynamic = ("dynamic_params", "dynamic_params_for_other_modules", "dynamic_array_additions")
    saved = {k: getattr(jedi.settings, k) for k in dynamic}
    answered = 0
    try:
        for k in dynamic:
            setattr(jedi.settings, k, False)
        for k, offset in enumerate(sites):
            filters._AbstractUsedNamesFilter.values = patched
            ours = complete(offset, 2 * k)
            filters._AbstractUsedNamesFilter.values = parso_patches._originals["values"]
            theirs = complete(offset, 2 * k + 1)
            assert ours == theirs, src[offset - 60 : offset]
            answered += bool(ours)
    finally:
        filters._AbstractUsedNamesFilter.values = patched
        for k, v in saved.items():
            setattr(jedi.settings, k, v)
    assert answered >= len(sites) - 4  # (a loop variable of an untyped list has no members)


def test_members_of_a_string_literal_are_cached_by_its_type():
    """jedi infers no value for a literal, so ``', '.`` used to run a full completion (100-250 ms
    on a 2,000-line file) every time; its members are now cached as str's (bytes' for ``b''.``)."""
    from monitors.python.jedi_analysis import JediAnalyzer

    a = JediAnalyzer(None)
    first = a.members("x = 1\ny = ', '.", "\n", None)
    assert "join" in first and "decode" not in first
    hits = a.type_hits
    again = a.members("def f(parts):\n    return ''.", "\n", None)  # another document, another string
    assert again == first and a.type_hits == hits + 1
    raw = a.members("y = rb'ab'.", "\n", None)
    assert "decode" in raw and "encode" not in raw and a.type_hits == hits + 1
    assert a.members("y = f'{x}a'.", "\n", None) == first  # jedi infers f-strings itself
    assert a.members("y = x.", "\n", None) is None  # no literal: unknown as before

@pytest.mark.parametrize(
    "body, kind",
    [
        ("    parts = [header]\n    parts.", "list"),
        ("    parts = [x for x in header]\n    if header:\n        parts = []\n    parts.", "list"),
        ("    seen = {}\n    seen.", "dict"),
        ("    seen = {header: 1, **other}\n    seen.", "dict"),
        ("    seen = {header, 2}\n    seen.", "set"),
        ("    seen = {header}\n    seen.", "set"),
        ("    seen = {x for x in header}\n    seen.", "set"),
        # unsure: the jedi path as before
        ("    parts = []\n    parts = None\n    parts.", None),  # another binding
        ("    parts = []\n    parts += other\n    parts.", None),
        ("    for parts in header:\n        pass\n    parts = []\n    parts.", None),
        ("    parts: list = []\n    parts.", None),
        ("    global parts\n    parts = []\n    parts.", None),
        ("    header.", None),  # a parameter
        ("    parts.\n    parts = []", None),  # bound only after the cursor
        ("    parts = []\n    self.parts.", None),  # an attribute
        ("    parts = ()\n    parts.", None),
        ("    def g():\n        parts = []\n    parts.", None),  # the nested function's own
    ],
)
def test_a_local_bound_only_to_displays_is_keyed_by_the_display(body, kind):
    """``parts = [action_header]`` then ``parts.`` (argparse.py): jedi inferred the element
    types before giving the list, 220-380 ms. The members of a list do not depend on them."""
    import jedi

    from monitors.python.jedi_analysis import JediAnalyzer, _display_kind

    code = "parts = 1\ndef f(header, other):\n" + body
    cut = max(i for i, c in enumerate(code) if c == "." and code[i + 1 : i + 2] in ("", "\n"))  # the trigger
    before = code[: cut + 1]
    line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1)
    script = jedi.Script(before + "\n" + code[cut + 1 :])
    assert _display_kind(script, line, col) == kind
    if kind is not None:  # the same members as jedi's own answer
        a = JediAnalyzer(None)
        expected = {c.name for c in jedi.Script(before + "\n").complete(line, col) if c.type != "keyword"}
        assert a.members(before, "\n", None) == expected


def test_members_when_jedi_completes_nothing_after_inferring(monkeypatch):
    """At argparse's ``elif inserts.get(i + 1) == '|':`` / ``inserts.┃`` jedi infers a dict,
    then the same Script completes nothing: the monitor had no opinion there, and the eval
    skipped the site for want of a truth. A new Script over the same parse gives dict's names."""
    import argparse

    import monitors.python.jedi_analysis as ja

    monkeypatch.setattr(ja, "_display_kind", lambda *a: None)  # the path any other type takes
    text = Path(argparse.__file__).read_text(encoding="utf-8")
    head = "elif inserts.get(i + 1) == '|':\n                    inserts."
    off = text.index(head) + len(head)
    names = ja.JediAnalyzer(None).members(text[:off], text[off:], argparse.__file__)
    assert names is not None and {"pop", "get", "items"} <= names


def test_warm_up_caches_the_members_of_common_builtin_types():
    """After the warm-up, the first ``lines.`` (a list) and ``_os.`` of a session are answered
    from the type cache, with no full completion."""
    from monitors import worker
    from monitors.suite import MonitorSuite

    suite = MonitorSuite(["members"])
    suite.runner = AnalysisRunner(process=False)  # the analyzer in this process, to look into
    try:
        suite.warm_up()
        deadline = time.monotonic() + 120
        while suite.warm_state != "warm":
            assert time.monotonic() < deadline, f"the warm-up never finished ({suite.warm_state})"
            time.sleep(0.05)
        a = worker._analyzer()
        hits = a.type_hits
        assert "append" in a.members("def f():\n    lines = []\n    lines.", "\n", None)
        assert "path" in a.members("import os as _os\n_os.", "\n", None)
        assert a.type_hits == hits + 2
    finally:
        suite.close()


def test_warm_up_without_python_monitors_is_done_at_once():
    """Only the repeats monitor: nothing to warm up, so a benchmark waiting for the warm-up
    (``Engine.wait_warm``) goes on at once (it used to wait for its 300 s timeout)."""
    from monitors.suite import MonitorSuite

    suite = MonitorSuite(["repeats"])
    try:
        suite.warm_up()
        assert suite.warm_state == "warm"
        assert not suite.runner.busy()  # and no worker was started for it
    finally:
        suite.close()


def test_warm_up_queues_one_type_analysis_at_a_time():
    """A completion's own analysis waits behind at most one warm-up job, never all of them."""
    from monitors.suite import MonitorSuite

    suite = MonitorSuite(["members"])
    try:
        suite.warm_up()
        seen = []  # the number of queued or running jobs, sampled through the whole warm-up
        deadline = time.monotonic() + 120
        while suite.warm_state != "warm" and time.monotonic() < deadline:
            seen.append(len(suite.runner._pending))
            time.sleep(0.002)
        assert suite.warm_state == "warm"  # every warm-up job ran
        assert seen.count(1) >= 10  # the samples saw the warm-up at work, not only before or after it
        assert max(seen) == 1  # never two at once: all queued up front would show up to 13
    finally:
        suite.close()


def test_suites_for_other_monitor_settings_share_the_analysis_worker():
    """A request that names other monitors (a stdio request's ``monitors``, the eval's plain
    mode) gets a suite of its own but keeps the worker: a new suite used to start a new worker
    process, so every switch lost jedi's caches and the warm-up, and the next analyses ran cold
    (in an eval alternating modes, most of them past their 300 ms budget)."""
    from completion.engine import Engine
    from completion.settings import Settings

    e = Engine(Settings())
    try:
        a = e.monitor_suite(Settings(monitors=("members",)))
        assert a.runner.call(("ping",), timeout=120)
        executor = a.runner._executor
        a.runner.warm_state = "warm"
        b = e.monitor_suite(Settings(monitors=("members", "calls")))
        assert b is not a and b.runner is a.runner
        assert b.runner._executor is executor  # the same worker process, still running
        assert b.warm_state == "warm"  # and it is still warm
        assert b.runner.call(("ping",), timeout=30)
        assert e.monitor_suite(Settings(monitors=("repeats",))).runner is a.runner
    finally:
        e.close()
    assert a.runner._executor is None  # the engine's close stops it


def test_the_worker_collects_garbage_between_jobs():
    """In the worker process, Python's collections no longer run inside analyses: young ones
    run after each job (while its result is on its way), and none is a full one."""
    import argparse
    from pathlib import Path

    r = AnalysisRunner()
    try:
        src = Path(argparse.__file__).read_text(encoding="utf-8")
        for k, cut in enumerate(range(20000, 60000, 5000)):
            dot = src.index("self.", cut) + len("self.")
            r.submit(("t", k), ("py-members", src[:dot], "\n" * (k + 1) + src[src.index("\n", dot) :], argparse.__file__)
                     ).result(timeout=120)
            time.sleep(0.05)
        time.sleep(0.3)
        stats = r.call(("gc-stats",), timeout=30)
    finally:
        r.shutdown()
    assert stats.get("gen1", [0])[0] >= 6  # after (nearly) every job
    assert not [k for k in stats if k.endswith("_in_job")], stats  # and never inside one
    assert "gen2" not in stats  # no full collection over the worker's whole heap


def test_runner_shuts_down_with_jobs_queued():
    """Shutting down cancels queued jobs, whose callbacks take the runner's lock on the same
    thread: that used to deadlock."""
    r = AnalysisRunner(process=False)
    futures = [r.submit(("k", i), ("py-members", f"import argparse, json\nx{i} = argparse.ArgumentParser()\nx{i}.", "", None))
               for i in range(3)]
    t = threading.Thread(target=r.shutdown, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "shutdown hung"
    assert any(f.cancelled() for f in futures[1:])
    for f in futures:  # the job already running finishes on its thread
        if not f.cancelled():
            f.result(timeout=60)
    assert not r.busy()


def test_runner_shut_down_mid_job_in_its_process_reports_no_failure(caplog):
    """Closing a suite while its worker process runs a job (the warm-up, at exit) stops the
    worker on purpose: that is no failed analysis for the log, and the job answers None."""
    import logging

    caplog.set_level(logging.DEBUG, logger="monitors.base")
    r = AnalysisRunner(process=True)
    fut = r.submit(("warm",), ("warm-up",))
    deadline = time.monotonic() + 60
    while not fut.running() and time.monotonic() < deadline:  # handed to the worker process
        time.sleep(0.01)
    r.shutdown()
    assert isinstance(fut.exception(timeout=60), concurrent.futures.process.BrokenProcessPool)
    while r.busy() and time.monotonic() < deadline:  # the runner's callback runs after the waiters wake
        time.sleep(0.01)
    assert r.cached(("warm",)) is None  # the job answered "no opinion"
    assert not [m.getMessage() for m in caplog.records if m.levelno >= logging.WARNING]
    assert any("runner shut down" in m.getMessage() for m in caplog.records)


def test_runner_times_each_job_itself():
    """The worker's own time per job (no queueing), with the job's document size; a cache hit
    is answered like a job, and the result itself is what monitors get."""
    r = AnalysisRunner(process=False)
    try:
        src = "import argparse\n" + "x = 1\n" * 30 + "p = argparse.ArgumentParser()\np."
        deadlines: dict = {}
        res = r.resolve(("m",), ("py-members", src, "", None), deadlines, 60)
        if isinstance(res, Pending):
            res.wait()
            res = r.resolve(("m",), ("py-members", src, "", None), deadlines, 60)
        assert "parse_args" in res
        assert r.submit(("m",), ("py-members", src, "", None)).result()[0] is res  # cached
        ((kind, ms, lines),) = list(r.job_ms)
        assert kind == "py-members" and ms > 0 and lines == 33
    finally:
        r.shutdown()


def check(monitor, source: str, generated: str, piece: str, vocab: Vocabulary, language: str = "python"):
    """The monitor's verdict on ``piece`` after ``generated``, waiting for the analysis."""
    text, off = split_cursor(source)
    ctx = MonitorContext(text=text, offset=off, cursor=off, language=language, path=None, vocab=vocab)
    sess = monitor.start(ctx)
    assert sess is not None
    for _ in range(200):
        v = sess.check(generated, 1, piece)
        if not isinstance(v, Pending):
            return v
        v.wait()
    raise AssertionError("analysis never finished")


@pytest.fixture(scope="module")
def small_vocab():
    return Vocabulary([b"<eos>", b"x"], control=[0])


@pytest.mark.parametrize(
    "source, generated, piece, verdict",
    [
        ("import os\nos.┃", "", "path", True),
        ("import os\nos.┃", "", "pathh(", False),
        ("import os\nos.┃", "pa", "th.join(", True),
        ("import os\nos.┃", "pa", "tz", False),
        ("class A:\n    def __init__(self):\n        self.size = 1\n\n    def f(self):\n        return self.┃", "", "size", True),
        ("class A:\n    def __init__(self):\n        self.size = 1\n\n    def f(self):\n        return self.┃", "", "length ", False),
        ("x = unknown_thing.┃", "", "whatever", True),  # unknown type: no opinion
        ("import os\nimport sys\n┃", "", "sys.exit(", True),
        ("import os\n┃", "", "os.nope(", False),  # the member is checked inside the generated text
    ],
)
def test_members_golden(runner, small_vocab, source, generated, piece, verdict):
    assert bool(check(MembersMonitor(runner, 20000), source, generated, piece, small_vocab)) is verdict


_LOGGER = """class Manager:
    def __init__(self, root):
        self.root = root


class Logger:
    def __init__(self, name):
        self.name = name

    def child(self, suffix):
        return self.┃


Logger.manager = Manager(None)
Logger.root = Logger('root')
"""

_GUARDED = """class Container:
    def check(self, action):
        if hasattr(self, "_get_formatter"):
            self.┃

    def other(self):
        pass


class Unrelated:
    def f(self):
        return hasattr(self, "_elsewhere")
"""


_NESTED = """class HelpFormatter:
    def __init__(self, width):
        self.width = width

    class _Section:
        def __init__(self, formatter):
            self.formatter = formatter

    def _add_item(self, func):
        self.┃
"""


@pytest.mark.parametrize(
    "source, piece, verdict",
    [
        # attributes set on the class from outside it (logging's ``Logger.manager``): jedi misses them
        (_LOGGER, "manager.", True),
        (_LOGGER, "root)", True),
        (_LOGGER, "rooted)", False),
        (_LOGGER.replace("self.┃", "Logger.┃"), "root)", True),
        (_LOGGER.replace("self.┃", "Logger.┃"), "nothing)", False),
        # a name the class tests with hasattr (argparse's ``self._get_formatter()``), not another class's
        (_GUARDED, "_get_formatter()", True),
        (_GUARDED, "_elsewhere()", False),
        (_GUARDED, "other()", True),
        # a nested class's ``self.formatter = …`` is not this class's member (argparse's
        # HelpFormatter._Section)
        (_NESTED, "formatter.", False),
        (_NESTED, "width)", True),
    ],
)
def test_members_the_document_shows(runner, small_vocab, source, piece, verdict):
    assert bool(check(MembersMonitor(runner, 20000), source, "", piece, small_vocab)) is verdict


def test_members_allows_new_attribute_definitions(runner, small_vocab):
    src = "class A:\n    def __init__(self, size):\n        self.┃\n\n    def area(self):\n        return self.size * 2\n"
    m = MembersMonitor(runner, 20000)
    assert check(m, src, "", "size = size", small_vocab)  # used elsewhere / a parameter: a definition
    assert not check(m, src, "", "bogus = 1", small_vocab)  # appears nowhere: rejected
    v = check(m, src, "size", "(", small_vocab)  # not a member, and not assigned: a dead end
    assert isinstance(v, Rewind)


def test_a_parameter_already_stored_is_no_new_attribute_name(runner, small_vocab):
    """argparse's HelpFormatter stores ``indent_increment`` as ``self._indent_increment``: a
    second ``self.indent_increment = …`` is the paper's typical miss, not a definition."""
    src = ("class F:\n    def __init__(self, prog, indent_increment=2, width=None):\n"
           "        self._indent_increment = indent_increment\n        self.┃\n")
    m = MembersMonitor(runner, 20000)
    assert not check(m, src, "", "indent_increment = indent_increment", small_vocab)
    assert check(m, src, "", "width = width", small_vocab)  # not stored yet: may be defined


def test_a_local_the_method_bound_may_be_stored_as_a_new_attribute(runner, small_vocab):
    """json's JSONDecodeError computes ``lineno`` and then stores ``self.lineno = lineno``."""
    src = ("class E(ValueError):\n    def __init__(self, msg, doc, pos):\n"
           "        lineno = doc.count('\\n', 0, pos) + 1\n        self.msg = msg\n"
           "        for part, rest in doc:\n            pass\n        self.┃\n")
    m = MembersMonitor(runner, 20000)
    assert check(m, src, "", "lineno = lineno", small_vocab)
    assert check(m, src, "", "part = part", small_vocab)
    assert not check(m, src, "", "colno = 0", small_vocab)  # bound nowhere: rejected
    assert not check(m, src, "", "lineno.bit_length()", small_vocab)  # not a member: only as a definition
    stored = src.replace("self.msg = msg", "self._lineno = lineno")
    assert not check(m, stored, "", "lineno = lineno", small_vocab)  # stored already, under another name


def test_a_name_the_user_started_that_the_analysis_does_not_know_gets_no_opinion(runner, small_vocab):
    """``self.ca┃`` in ``__init__``: the user is writing a new attribute (``self.cache = {}``).
    No legal name starts with ``ca``, so rejecting every token would leave no suggestion at all."""
    src = "class A:\n    def __init__(self, size):\n        self.size = size\n        self.ca┃\n"
    m = MembersMonitor(runner, 20000)
    assert check(m, src, "", "che = {}", small_vocab)
    # a prefix some member has still constrains: ``self.si┃`` only to ``size``
    assert not check(m, src.replace("self.ca┃", "self.si┃"), "", "zes = 1", small_vocab)
    assert check(m, src.replace("self.ca┃", "self.si┃"), "", "ze = 1", small_vocab)
    # and the model's own names are judged as before
    assert not check(m, src.replace("self.ca┃", "self.┃"), "", "cache = {}", small_vocab)
    names = NamesMonitor(runner, 20000)
    use = "def f(size):\n    return siz┃\n"
    assert not check(names, use, "", "ing", small_vocab)  # ``sizing``: no such name
    assert check(names, use.replace("siz┃", "qq┃"), "", "x + size", small_vocab)  # nothing starts with ``qq``


def test_a_nested_classs_attributes_are_no_evidence_for_the_outer_self(runner, small_vocab):
    """HelpFormatter._Section's ``self.parent`` is not HelpFormatter's."""
    src = ("class F:\n    def __init__(self, width):\n        self.width = width\n        self.┃\n\n"
           "    class _Section:\n        def __init__(self, parent):\n            self.parent = parent\n\n"
           "    def format(self):\n        return self.heading\n")
    m = MembersMonitor(runner, 20000)
    assert not check(m, src, "", "parent = None", small_vocab)
    assert check(m, src, "", "heading = None", small_vocab)  # the outer class's own use, after the nested one


def _jobs_started(ctx: MonitorContext, monitor=None) -> list[tuple]:
    """The analysis jobs a monitor (members by default) starts for ``ctx`` before any token is
    generated."""
    jobs: list[tuple] = []

    class Spy(AnalysisRunner):
        def submit(self, key, job, aliases=()):
            jobs.append(job)  # recorded, not run: jedi is not thread-safe, other tests use it
            fut: concurrent.futures.Future = concurrent.futures.Future()
            fut.set_result(None)
            return fut

    spy = Spy(process=False)
    try:
        (monitor or MembersMonitor)(spy, 20000).start(ctx)
    finally:
        spy.shutdown()
    return jobs


@pytest.mark.parametrize("healed", [0, 2, 4])
def test_members_prefetch_after_a_known_name_with_token_healing(small_vocab, healed):
    """At ``parser┃`` the member analysis of ``parser.`` starts at once, also when token healing
    moved the decode start back over the end of the name (it nearly always does)."""
    text = "import argparse\nparser = argparse.ArgumentParser()\nparser"
    ctx = MonitorContext(text=text, offset=len(text) - healed, cursor=len(text), language="python", path=None,
                         vocab=small_vocab)
    jobs = _jobs_started(ctx)
    assert [j[0] for j in jobs] == ["py-members"] and jobs[0][1] == text + "."


@pytest.mark.parametrize("typed, expected", [("pars", "parser."), ("parser", "parser."), ("par", None), ("p", None)])
def test_members_prefetch_while_the_name_is_half_typed(small_vocab, typed, expected):
    """``pars┃``: only ``parser`` is used before a "." and starts so; its members are analysed
    before the user gets to the dot. Ambiguous (``par``: ``parser``, ``params``) or one letter: not."""
    text = "import argparse\nparser = argparse.ArgumentParser()\nparams = {}\nparams.clear()\nparser.parse_args()\n"
    doc = text + typed
    ctx = MonitorContext(text=doc, offset=len(doc), cursor=len(doc), language="python", path=None, vocab=small_vocab)
    jobs = _jobs_started(ctx)
    assert [j[1] for j in jobs if j[0] == "py-members"] == ([text + expected] if expected else [])


_CALLED = "class P:\n    def fmt(self, x):\n        return self.fmt(x) + self.other.fmt(x)\n\n    def g(self):\n        "


@pytest.mark.parametrize(
    "typed, members, signatures",
    [
        # (the members of "self." are the request's own trigger when the cursor is after "self.")
        ("self.fmt", ["self."], ["self.fmt("]),  # the document calls self.fmt: "(" is likely next
        ("self", ["self."], []),  # self is mostly followed by "."
        ("self.oth", ["self."], []),  # half-typed: neither
        ("self.other", ["self.", "self.other."], []),
        ("len", [], []),  # neither called nor dotted in this document
        ("return self.fmt", ["return self."], ["return self.fmt("]),
    ],
)
def test_prefetch_predicts_a_dot_or_a_call(small_vocab, typed, members, signatures):
    """Right after a name, the analysis for the keystroke the document makes likely starts:
    members when the name is mostly followed by ".", the signature when it is mostly called."""
    doc = _CALLED + typed
    ctx = MonitorContext(text=doc, offset=len(doc), cursor=len(doc), language="python", path=None, vocab=small_vocab)
    jobs = _jobs_started(ctx) + _jobs_started(ctx, CallsMonitor)
    assert [j[1][len(_CALLED) :] for j in jobs if j[0] == "py-members"] == members
    assert [j[1][len(_CALLED) :] for j in jobs if j[0] == "py-signatures"] == signatures


def test_no_signature_prefetch_for_a_definition(small_vocab):
    doc = "def fmt(x):\n    return fmt(x)\n\ndef fmt"
    ctx = MonitorContext(text=doc, offset=len(doc), cursor=len(doc), language="python", path=None, vocab=small_vocab)
    assert _jobs_started(ctx, CallsMonitor) == []


def test_members_definitions_of_self_come_from_its_own_class(runner, small_vocab):
    """Another class's ``self.emitted`` is no evidence for this class's ``self.emitted = ...``;
    an object that is not a method's ``self`` keeps the whole document as evidence."""
    other = "class Handler:\n    def emit(self):\n        self.emitted = True\n\n"
    src = other + "class A:\n    def __init__(self, size):\n        self.┃\n\n    def area(self):\n        return self.size\n"
    m = MembersMonitor(runner, 20000)
    assert check(m, src, "", "size = size", small_vocab)
    assert not check(m, src, "", "emitted = True", small_vocab)
    src = other + "def configure(obj):\n    obj.┃\n\nclass B:\n    def g(self, obj):\n        obj.emitted = 1\n"
    assert check(m, src, "", "emitted = 1", small_vocab)


_FORWARDER = """class Container:
    def __init__(self, description, prefix_chars):
        self.description = description


class Group(Container):
    def __init__(self, title=None, description=None, **kwargs):
        kwargs.setdefault('prefix_chars', '-')
        super().__init__(description=description, **kwargs)


class Parser:
    def add_group(self, *args, **kwargs):
        return Group(*args, **kwargs)


"""


@pytest.mark.parametrize(
    "source, generated, piece, verdict",
    [
        ("def f(a, b=1, *, c):\n    pass\n\nf(1, ┃", "", "c=2)", True),
        ("def f(a, b=1, *, c):\n    pass\n\nf(1, ┃", "", "d=2", False),
        ("def f(a, b=1, *, c):\n    pass\n\nf(1, ┃", "2, ", "3", False),
        ("def f(a, b=1, *, c):\n    pass\n\nf(1, ┃", "2", ")", False),  # c missing
        ("def f(a):\n    pass\n\nf(1┃", "", ", ", False),  # no argument can follow the comma
        ("def f(a, b=2):\n    pass\n\nf(1┃", "", ", ", True),
        ("def f(a, b=2):\n    pass\n\nf(1, b=3┃", "", ",", False),
        ("def f(a, **kw):\n    pass\n\nf(1┃", "", ", ", True),
        ("def f(a):\n    pass\n\nf(\n    1┃", "", ",\n", True),  # one argument per line: trailing comma
        ("print(┃", "", "1, 2, sep=', ')", True),
        ("print(┃", "", "1, bogus=2)", False),
        ("print(┃", "", "1, bogus = 2)", False),  # spaced keywords are keywords too
        # a docstring longer than the scan window ends before the call: the call is judged
        ('def f(a):\n    """Doc.\n' + "    more\n" * 60 + '    """\n    return f(1┃', "", ", ", False),
        ('def f(a):\n    """Doc.\n' + "    more\n" * 60 + '    """\n    return f(┃', "", "1)", True),
        # jedi reads a class's __init__ only: float's is object's, which takes nothing
        ("x = float(┃", "", "'inf')", True),
        # jedi shows a forwarder's callee's parameters, and misses that the forwarder fills the
        # required ``prefix_chars`` itself (argparse's add_argument_group): the forwarder's own count
        (_FORWARDER + "Parser().add_group(┃", "", "'options')", True),
        (_FORWARDER + "Group(┃", "", "'options')", True),
        (_FORWARDER + "Group(┃", "", "'a', 'b', 'c'", False),
    ],
)
def test_calls_golden(runner, small_vocab, source, generated, piece, verdict):
    assert bool(check(CallsMonitor(runner, 20000), source, generated, piece, small_vocab)) is verdict


@pytest.mark.parametrize(
    "source, generated, piece, verdict",
    [
        ("import ┃", "", "os", True),
        ("import ┃", "", "no_such_module_xyz ", False),
        ("from os import ┃", "", "path", True),
        ("from os import ┃", "", "pathz\n", False),
        ("import os as ┃", "", "anything", True),  # a binding: no opinion
    ],
)
def test_imports_golden(runner, small_vocab, source, generated, piece, verdict):
    assert bool(check(ImportsMonitor(runner, 20000), source, generated, piece, small_vocab)) is verdict


@pytest.mark.parametrize(
    "source, generated, piece, verdict",
    [
        ("def g(items):\n    return ┃", "", "len(items)", True),
        ("def g(items):\n    return ┃", "", "lenn(items)", False),
        ("def g(items):\n    total = ┃", "", "items", True),
        ("def g(items):\n    total = ┃", "", "itemz\n", False),
        ("def g(items):\n    ┃", "", "fresh_name = 1", True),  # a binding at statement start
        ("def g(items):\n    return [┃", "", "x for x in items]", True),  # comprehension: no opinion
        ("def g(items):\n    x = 1\n    return ┃", "y = 2\n    return ", "y", True),  # bound in generated text
        ("def fibonacci(n):\n    return n\n\nx = fibo┃", "", "(3)", False),  # the half-typed word is no name
        ("def fibonacci(n):\n    return n\n\nx = fibo┃", "", "nacci(3)", True),
    ],
)
def test_names_golden(runner, small_vocab, source, generated, piece, verdict):
    assert bool(check(NamesMonitor(runner, 20000), source, generated, piece, small_vocab)) is verdict


@pytest.mark.parametrize(
    "source, generated, piece, verdict",
    [
        # after a comma no comprehension can bind the name: judged when it ends
        ("def g(items):\n    return max(1, ┃", "", "itemz,", False),
        ("def g(items):\n    return max(1, ┃", "", "items,", True),
        ("def g(items):\n    return max(1, ┃", "", "key=len)", True),  # a keyword argument
        ("def g(items):\n    return max(1, ┃", "", "ke", True),  # may still become `key=`
        ("def g(items):\n    x = dict(\n        a=1,\n        ┃", "", "b=itemz,", False),  # multi-line call
        # the element of a possible comprehension: judged when the outermost bracket closes
        ("def g(items):\n    return len(┃", "", "itemz", True),
        ("def g(items):\n    return len(┃", "", "itemz)", False),
        ("def g(items):\n    return len(┃", "", "items)", True),
        ("def g(items):\n    return [┃", "", "y for x in items]", False),
        ("def g(items):\n    return [┃", "", "y for", True),  # its targets are still to come
        ("def g(items):\n    return [┃", "", "y, ", False),  # a comma: not a comprehension's element
        ("def g(items):\n    return super(┃", "", "Itemz, items", False),
        ("def g(items):\n    return [┃", "", "len(x) for x in items]", True),
        ("def g(items):\n    return {┃", "", "k: v for k, v in items}", True),
        ("def g(items):\n    return [[┃", "", "x for x in row] for row in items]", True),
        ("def g(items):\n    print(┃", "", "*args)", False),
        ("def g(*args):\n    print(┃", "", "*args)", True),
        ("def g(items):\n    return print(┃", "", 'f"{nope}")', True),  # a string prefix, and a string
        ("def g(items):\n    return (┃", "", "n := len(items))", True),  # a walrus target
        # brackets whose names are bindings, or may be: no opinion
        ("def g(\n    ┃", "", "alpha, beta)", True),
        ("def g(items):\n    for (┃", "", "a, b) in items:", True),
        ("def g(items):\n    (┃", "", "a, b) = items", True),
        ("def g(items):\n    return sorted(items, key=lambda ┃", "", "it: it[0])", True),
        ("def g(items):\n    with (open(items) as ┃", "", "fh):", True),
        ("def g(items):\n    return len(unknown_user┃", "", ")", True),  # typed by the user
        ("def fibonacci(n):\n    return n\n\nprint(fibo┃", "", "(3))", False),  # ended by the model: judged
        ("def fibonacci(n):\n    return n\n\nprint(fibo┃", "", "nacci(3))", True),
        ("def fibonacci(n):\n    return n\n\nprint(fibo┃)", "(3)", "\n", False),  # the editor's ")" closes it
        ("def fibonacci(n):\n    return n\n\nprint(fibo┃)", "nacci(3)", "\n", True),
    ],
)
def test_names_in_brackets_golden(runner, small_vocab, source, generated, piece, verdict):
    assert bool(check(NamesMonitor(runner, 20000), source, generated, piece, small_vocab)) is verdict


@pytest.mark.parametrize(
    "source, piece, verdict",
    [
        ("def a():\n    secret = 1\n    return secret\n\ndef b():\n    return ┃", "secret\n", False),  # another's local
        ("class K:\n    limit = 3\n\n    def m(self):\n        return ┃", "limit\n", False),  # a class name
        ("class K:\n    limit = 3\n\n    def m(self):\n        return ┃", "self.limit\n", True),
        ("def outer(xs):\n    def inner():\n        return ┃", "xs\n", True),  # an enclosing function's
        ("def f():\n    return ┃\n\nHELPER = 1\n", "HELPER\n", True),  # a global defined further down
        ("# mentions ghost\ndef f():\n    s = 'ghost'\n    return ┃", "ghost\n", False),  # comments, strings
        ("def setup():\n    global CONFIG\n    CONFIG = 1\n\ndef use():\n    return ┃", "CONFIG\n", True),
        ("def f(items):\n    hits = 0\n    def inner():\n        nonlocal hits\n        ┃", "x = len(items)\n", True),
        ("def f(items):\n    hits = 0\n    def inner():\n        nonlocal hits\n        ┃", "x = len(itemz)\n", False),
        ('class K:\n    def m(self, size):\n        """Doc\nat column 0\n        """\n        return ┃', "size\n", True),
        ("def f(width):\n    x = max(1,\n2)\n    return ┃", "width\n", True),  # a dedented continuation
        ("def f(width):\n    if width:\n        pass\n┃", "    return width\n", True),  # indented by the model
        ("def f(width):\n    if width:\n        pass\n┃", "x = width\n", False),  # module level: not visible
    ],
)
def test_names_follow_scopes(runner, small_vocab, source, piece, verdict):
    assert bool(check(NamesMonitor(runner, 20000), source, "", piece, small_vocab)) is verdict


def test_names_rewind_to_where_the_name_went_wrong(runner, small_vocab):
    v = check(NamesMonitor(runner, 20000), "def g(items):\n    return len(┃", "itemz", ")", small_vocab)
    assert isinstance(v, Rewind) and v.to == 4  # "item" is a prefix of "items": undo from the "z"


def test_analysis_failure_means_no_opinion(small_vocab, monkeypatch):
    from monitors.python.names import MembersSession

    monkeypatch.setattr(MembersSession, "job", lambda self, before: ("no-such-job-kind",))  # the worker raises
    monkeypatch.setattr(MembersSession, "semantic_key", lambda self, before: None)
    r = AnalysisRunner(process=False)
    try:
        m = MembersMonitor(r, 20000)
        text = "import os\nx = os."
        ctx = MonitorContext(text=text, offset=len(text), cursor=len(text), language="python", path=None, vocab=small_vocab)
        sess = m.start(ctx)
        v = sess.check("", 1, "bogus(")
        while isinstance(v, Pending):
            v.wait()
            v = sess.check("", 1, "bogus(")
        assert v is True
    finally:
        r.shutdown()


# ---- in the engine, on the real model ---------------------------------------------------------

pytestmark_model = pytest.mark.model


@pytest.mark.model
def test_plain_invents_a_member_monitored_does_not(engine):
    """Where the model alone writes a member the module does not have, the monitored model
    writes one it has. Which prompts make the model invent depends on the CPU (llama.cpp's
    numbers differ between AVX2 and AVX-512 builds: ``collections.`` got ``Counter()`` on
    one machine, an invented name on another), so several are tried and at least one must."""
    import importlib

    sources = [
        "import collections\n\ncounts = collections.", "import collections\n\nresult = collections.",
        "import shutil\n\ncounts = shutil.", "import logging\n\nvalue = logging.",
        "import textwrap\n\ncounts = textwrap.", "import logging\n\nresult = logging.",
    ]
    first = lambda s: (re.match(r"[A-Za-z_]\w*", s) or re.match("", s)).group(0)  # noqa: E731
    invented = 0
    for src in sources:
        module = importlib.import_module(src.split()[1])
        # jedi's first look at a module can take longer than the monitors' 300 ms budget on a
        # busy machine (then: no opinion, by design); this test is about the verdict, so load it first
        engine.monitor_suite().runner.call(("py-members", src, "", None), timeout=120)
        plain = engine.complete_text(src, options={"monitors": [], "line_mode": "single", "cache": False})
        if hasattr(module, first(plain.insert_text)):
            continue
        invented += 1
        monitored = engine.complete_text(src, options={"line_mode": "single", "cache": False})
        assert hasattr(module, first(monitored.insert_text)), (src, plain.insert_text, monitored.insert_text)
        assert monitored.stats["monitors"]["members"]["interventions"] >= 1
    assert invented >= 1, "the model invented no member at any of the prompts: pick others"


@pytest.mark.model
def test_plain_invents_a_name_monitored_does_not(engine):
    """In json/encoder.py the model wants ``class JSONEncoder(json.JSONEncoder)``; ``json`` is
    not bound there (only its docstrings say it)."""
    import builtins
    import json.encoder

    src = open(json.encoder.__file__).read()
    cut = src.index("class JSONEncoder(") + len("class JSONEncoder(")
    doc = src[:cut] + src[src.index("\n", cut) :]
    engine.monitor_suite().runner.call(("warm-up",), timeout=120)
    plain = engine.complete_text(doc, cut, options={"monitors": [], "line_mode": "single", "cache": False})
    monitored = engine.complete_text(doc, cut, options={"line_mode": "single", "cache": False})
    first = lambda s: re.match(r"\s*([A-Za-z_]\w*)", s).group(1)  # noqa: E731
    resolves = lambda n: hasattr(json.encoder, n) or hasattr(builtins, n)  # noqa: E731
    assert not resolves(first(plain.insert_text)), plain.insert_text
    assert resolves(first(monitored.insert_text)), monitored.insert_text
    assert monitored.stats["monitors"]["names"]["interventions"] >= 1


@pytest.mark.model
def test_non_ascii_names_resolve(engine):
    """Python names may be non-ASCII: the names monitor did not know ``计算`` (its scan took
    identifiers to start with an ASCII letter) and judged ``计`` complete when the next token
    was raw UTF-8 bytes; the monitored suggestion was empty ("dead end")."""
    doc = "def 计算(x):\n    return x * 2\n\n\nprint(计"
    plain = engine.complete_text(doc, options={"monitors": [], "line_mode": "single", "cache": False})
    monitored = engine.complete_text(doc, options={"line_mode": "single", "cache": False})
    assert plain.insert_text.startswith("算"), plain.insert_text
    assert monitored.insert_text == plain.insert_text, monitored.stats
    # token healing backs off " 计" after "y =": the names monitor's allowed set had no token
    # with a leading space, so nothing was allowed
    doc = "def 计算(x):\n    return x * 2\n\n\ny = 计"
    plain = engine.complete_text(doc, options={"monitors": [], "line_mode": "single", "cache": False})
    monitored = engine.complete_text(doc, options={"line_mode": "single", "cache": False})
    assert plain.insert_text.startswith("算") and monitored.insert_text == plain.insert_text, monitored.stats


@pytest.mark.model
def test_a_monitor_that_raises_never_fails_the_completion(engine, monkeypatch):
    from monitors.python.names import MembersSession

    def boom(self, *a, **k):
        raise RuntimeError("monitor bug")

    monkeypatch.setattr(MembersSession, "_check", boom)
    c = engine.complete_text("import os\n\npath = os.", options={"line_mode": "single"})
    assert c.insert_text.strip()
    assert any("members" in e for e in c.stats["constraint_errors"])


@pytest.mark.model
def test_typescript_members_through_multilspy(engine, tmp_path):
    from monitors.languages import server_status

    if server_status()["typescript"] != "ok":
        pytest.fail("typescript-language-server is not installed: `steercode install-servers` (make setup) does it")
    src = tmp_path / "app.ts"
    src.write_text(
        "class Counter {\n  private count = 0;\n  increment(step: number = 1): number { this.count += step; return this.count; }\n"
        "  reset(): void { this.count = 0; }\n}\nconst c = new Counter();\nconsole.log(c."
    )
    text = src.read_text()
    runner = engine.monitor_suite().runner
    legal = runner.call(("lsp-members", "typescript", str(tmp_path), str(src), text, ""), timeout=120)
    assert legal == frozenset({"increment", "reset"})
    from completion.engine import CompletionRequest

    for _ in range(2):  # the first request may arrive before the server is up (no opinion then)
        c = engine.complete(CompletionRequest(text=text, offset=len(text), language="typescript", path=str(src),
                                              options={"line_mode": "single", "cache": False}))
    first = c.insert_text.split("(")[0]
    assert first in ("increment", "reset"), c.insert_text
    assert c.stats["monitors"]["lsp-members"]["triggers"] >= 1


def test_nameset_tokens(vocab):
    ns = NameSet(["append", "pop"])
    ids = {PIECES[i].decode() for i in ns.tokens("", vocab)}
    assert {"app", "append", "append(", "pop", "po", "p", "ap"} <= ids
    assert "x" not in ids and "end" not in ids
    assert isinstance(ns.tokens("", vocab), np.ndarray)


def test_names_bracket_scans_start_outside_strings(runner, small_vocab):
    # another function's long docstring with an unbalanced "(": a bracket scan starting some lines
    # back would begin inside it and place the cursor's line in that function
    doc = "\n".join(["    line of text"] * 45 + ["    an aside (never closed"] + ["    more text"] * 3)
    src = f'def g(other):\n    """Doc.\n{doc}\n    """\n    return other\n\n\ndef f(size, *args):\n    return max(1, ┃'
    m = NamesMonitor(runner, 20000)
    assert check(m, src, "", "size, *args)", small_vocab)
    assert not check(m, src, "", "size, *argz)", small_vocab)


def test_names_monitor_accepts_real_code_and_rejects_misspelt_names():
    """The original lines of real modules all pass (no false rejections); the same lines with one
    name misspelt are mostly caught (bindings such as `for` targets are rightly let through).
    The measurement is benchmarks/names_on_real_code.py's, on three of its modules."""
    from benchmarks.names_on_real_code import measure

    r = measure(modules=("json.encoder", "argparse", "functools"), per_module=60)
    assert r["rejected"] == []  # false rejections
    assert r["lines"] >= 120
    assert r["caught"] / r["mutated"] >= 0.6, r
