"""The LSP server: thin handlers that convert LSP data, delegate to the engine, convert back.

Every completion handler does the same four things: get the document snapshot, convert the
position to a code-point offset, run ``Engine.complete`` on the scheduler's worker thread,
convert the result with an ``lsp_*`` function. Nothing here knows how completions are made.

Robustness rules (the server keeps serving whatever the client sends):
* bad positions / unknown documents / invalid params -> a -32602 error with a readable message;
* a message that cannot be deserialized gets an error response (pygls 1.3 would drop it, and
  the rest of its read buffer, silently);
* requests before the model is ready wait up to ``model_wait_ms``, then return no suggestion
  with one log line; a model that fails to load is reported once with ``window/showMessage``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.server import LanguageServer
from pygls.workspace import TextDocument, Workspace

from completion.decoding import Cancelled
from completion.engine import CompletionRequest, Engine, EngineNotReady, ModelLoadError, ModelServerError
from completion.models import check_gguf_file
from completion.settings import Settings
from monitors import version_gate
from monitors.syntax import language_for_path

from . import __version__
from .lsp_utils import (
    PositionError,
    lsp_completion_list,
    lsp_inline_list,
    lsp_inline_list_after_item,
    offset_at,
)
from .scheduling import Scheduler

log = logging.getLogger("steercode.server")
_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)

__all__ = ["SteercodeProtocol", "SteercodeServer", "create_server"]

STATUS_REQUEST = "steercode/status"


def _short_validation_error(exc: BaseException) -> str:
    try:
        from cattrs import transform_error
        from cattrs.v import format_exception

        def fmt(e: BaseException, t: Any) -> str:  # our own structure hooks explain themselves
            return str(e) if isinstance(e, ValueError) and str(e).startswith("invalid ") else format_exception(e, t)

        msgs = transform_error(exc, format_exception=fmt)  # type: ignore[arg-type]
        if msgs:
            return "; ".join(msgs[:3])
    except Exception:
        pass
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {cause}"[:300]


class _Document(TextDocument):
    """pygls's document, with incremental edits applied at LSP's positions.

    pygls 1.3 finds an edit's line with ``str.splitlines``, which also breaks lines at form
    feeds (common in Python source), \\v, \\x1c-\\x1e, \\x85 and U+2028/U+2029: after one of them
    every edit below it landed on the wrong line. LSP breaks lines only at \\n, \\r\\n and \\r.
    An edit whose range does not fit the document is logged and left out (pygls spliced it in
    anyway, duplicating or dropping text)."""

    def _apply_incremental_change(self, change: types.TextDocumentContentChangeEvent_Type1) -> None:
        src = self.source
        enc = self._position_codec.encoding
        try:
            start = offset_at(src, change.range.start, enc)
            end = offset_at(src, change.range.end, enc)
            if end < start:
                raise PositionError("its range ends before it starts")
        except PositionError as exc:
            log.error("didChange for %s left out: %s (range %s)", self.uri, exc, change.range)
            return
        self._source = src[:start] + change.text + src[end:]


def _apply_changes_by_lsp_lines(workspace: Workspace) -> None:
    def create(doc_uri: str, source=None, version=None, language_id=None) -> TextDocument:
        return _Document(doc_uri, source=source, version=version, language_id=language_id,
                         sync_kind=workspace._sync_kind, position_codec=workspace._position_codec)

    workspace._create_text_document = create


#: what the overrides of pygls's private internals below do; on a pygls they were not tested
#: against (``monitors.version_gate``) none is installed, and pygls's own code runs instead
PYGLS_PATCH = ("the overrides of pygls internals (message framing that resynchronises, stdio read on a "
               "daemon thread, edits at LSP's line breaks, lifecycle errors, LSP 3.18 trigger kinds)")
PYGLS_FALLBACK = "pygls's own message handling runs (VS Code's as-you-type requests may be refused)"


def pygls_patches_apply() -> bool:
    """Whether the installed pygls is one the overrides were tested against (logs when not)."""
    return version_gate.exact("pygls", PYGLS_PATCH, PYGLS_FALLBACK)


class BaseProtocol(LanguageServerProtocol):
    """pygls's protocol with inline completion advertised: no override of pygls's private
    methods. The protocol on a pygls the overrides were not tested against."""

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> types.InitializeResult:
        result = super().lsp_initialize(params)
        self._sc_initialized = True
        server = self._server
        if isinstance(self, SteercodeProtocol):
            _apply_changes_by_lsp_lines(server.workspace)
        # pygls 1.3 registers the handler but never advertises the capability
        result.capabilities.inline_completion_provider = types.InlineCompletionOptions()
        if isinstance(server, SteercodeServer):
            server.on_initialize(params)
        return result


class SteercodeProtocol(BaseProtocol):
    """``BaseProtocol`` with robust message handling: overrides of pygls 1.3.1's private
    methods, used only on the versions they were tested against (``pygls_patches_apply``)."""

    def _procedure_handler(self, message) -> None:
        """Answer requests the LSP lifecycle rules out instead of dropping or failing them:
        before ``initialize`` (ServerNotInitialized) and after ``shutdown`` (InvalidRequest;
        pygls left them unanswered, so a client waited forever)."""
        method = getattr(message, "method", None)
        if method is not None and getattr(message, "id", None) is not None:
            if self._shutdown:
                self._send_response(message.id, error=types.ResponseError(
                    code=-32600, message=f"{method}: the server is shut down (only 'exit' is left)"))
                return
            if not getattr(self, "_sc_initialized", False) and method != types.INITIALIZE:
                self._send_response(message.id, error=types.ResponseError(
                    code=-32002, message=f"{method}: the server is not initialized yet (send 'initialize' first)"))
                return
        super()._procedure_handler(message)

    def _execute_request_callback(self, msg_id, future):  # noqa: D401 - pygls override
        """Send JsonRpcExceptions raised by handlers with their own code and message."""
        if not future.cancelled():
            exc = future.exception()
            if isinstance(exc, JsonRpcException):
                self._request_futures.pop(msg_id, None)
                self._send_response(msg_id, error=exc.to_response_error())
                return
        super()._execute_request_callback(msg_id, future)

    def _data_received(self, data: bytes) -> None:
        """Frame messages by Content-Length; whatever the body holds, the stream stays in sync,
        and after a header without a valid Content-Length (or a body longer than it said) the
        next message is found by its header.

        (pygls 1.3 only recognises bodies that start with '{': any other body wedges the
        connection, since every later message is appended to the unmatched buffer.)
        """
        buf = getattr(self, "_sc_buf", b"") + data
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            length = None
            for line in buf[:head_end].split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    try:
                        length = int(value.strip())
                    except ValueError:
                        length = None
            if length is None or length < 0:
                log.error("message without a valid Content-Length header: %r", buf[:head_end][:200])
                # resynchronise on the next header: what is left of a body whose length was
                # wrong (or that had no header) runs into the next message's header
                nxt = _CONTENT_LENGTH.search(buf, 1, head_end)
                buf = buf[nxt.start() :] if nxt else buf[head_end + 4 :]
                continue
            start = head_end + 4
            if len(buf) - start < length:
                break
            body, buf = buf[start : start + length], buf[start + length :]
            self._handle_body(body)
        self._sc_buf = buf

    def _handle_body(self, body: bytes) -> None:
        try:
            raw = json.loads(body.decode(self.CHARSET))
        except (UnicodeDecodeError, ValueError) as exc:
            # without an id there is nothing to answer (clients choke on id-less responses):
            # say it in the log and the client's output channel
            log.error("unparseable message (%s): %r", exc, body[:200])
            self.show_message_log(f"steercode: ignored an unparseable message ({exc})", types.MessageType.Error)
            return
        try:
            msg = self._deserialize_message(raw) if isinstance(raw, dict) else raw
        except Exception as exc:
            method = raw.get("method") if isinstance(raw, dict) else None
            reason = _short_validation_error(exc.__cause__ or exc)
            log.error("invalid %s message: %s", method, reason)
            if isinstance(raw, dict) and "id" in raw and method:
                self._send_response(
                    raw["id"],
                    error=types.ResponseError(code=-32602, message=f"invalid params for {method}: {reason}"),
                )
            return
        try:
            self._procedure_handler(msg)
        except Exception:
            log.exception("error while handling a message")


def _accept_lsp_318_trigger_kinds(converter) -> None:
    """Read ``InlineCompletionContext.triggerKind`` as LSP 3.18 defines it: Invoked = 1, Automatic = 2.

    lsprotocol 2023.0.1 predates 3.18 and numbers them 0 and 1 (the proposal's values); editors
    (vscode-languageclient 10+, Neovim 0.12) send the final ones, and 2 would fail validation.
    0 is still read as Invoked.
    """
    kinds = {0: types.InlineCompletionTriggerKind.Invoked, 1: types.InlineCompletionTriggerKind.Invoked,
             2: types.InlineCompletionTriggerKind.Automatic}

    def structure(obj, _type):
        if not isinstance(obj, dict) or obj.get("triggerKind") not in kinds:
            raise ValueError(f"invalid InlineCompletionContext: {obj!r} (triggerKind must be 1 = Invoked or 2 = Automatic)")
        selected = obj.get("selectedCompletionInfo")
        return types.InlineCompletionContext(
            trigger_kind=kinds[obj["triggerKind"]],
            selected_completion_info=converter.structure(selected, types.SelectedCompletionInfo) if selected else None,
        )

    converter.register_structure_hook(types.InlineCompletionContext, structure)


class SteercodeServer(LanguageServer):
    def __init__(self, settings: Settings | None = None) -> None:
        #: whether pygls is a version the overrides of its internals were tested against
        self.pygls_patched = pygls_patches_apply()
        super().__init__(
            "steercode",
            __version__,
            protocol_cls=SteercodeProtocol if self.pygls_patched else BaseProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        if self.pygls_patched:
            _accept_lsp_318_trigger_kinds(self.lsp._converter)
        self.base_settings = settings or Settings()
        self.init_options: Any = None
        self.engine = Engine(self.base_settings)
        self.scheduler = Scheduler()
        self.pending_problems: list[str] = []
        self.last_stats: dict[str, Any] | None = None
        self._ready: asyncio.Event | None = None
        self._loading = False
        self._load_task: asyncio.Future | None = None
        self._progress: dict[str, Any] | None = None
        self._not_ready_logged = 0.0
        self._server_error_shown = -1e9
        self.completions_served = 0
        self.list_triggers: dict[str, str] = {}  # uri -> trigger of the completion list last opened there
        self.cancelled_count = 0
        self.last_cancelled: dict[str, Any] = {}
        #: the token of the completion the engine is working on (None: idle or background work)
        self.running: Any = None
        #: workspace/didChangeConfiguration notifications handled so far
        self.configurations_applied = 0

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        """pygls's stdio server, reading the stream in chunks and framing it with
        ``SteercodeProtocol._data_received``. (pygls 1.3 frames stdio by lines and accepts only
        an exact ``Content-Length: N`` line: after one message without it, or with a wrong
        length, the rest of that body runs into the next header, and every later message,
        ``shutdown`` included, went unread.) The stream is read on a daemon thread of its own:
        a read still blocked on the open stream when the server stops (SIGTERM) must not hold
        the shutdown, which waits for the thread pool's work. On a pygls these overrides were
        not tested against, pygls's own ``start_io``."""
        if not self.pygls_patched:
            super().start_io(stdin, stdout)
            return
        from pygls.server import StdOutTransportAdapter

        rfile = stdin or sys.stdin.buffer
        self._stop_event = threading.Event()
        self.lsp.connection_made(StdOutTransportAdapter(rfile, stdout or sys.stdout.buffer))
        try:  # the raw descriptor: a buffered reader's lock, held by a read blocked at exit, is fatal
            fd = rfile.fileno()
            read = lambda n: os.read(fd, n)  # noqa: E731
        except (AttributeError, OSError, ValueError):
            read = getattr(rfile, "read1", None) or rfile.read
        chunks: asyncio.Queue = asyncio.Queue()
        loop = self.loop

        def reader() -> None:
            chunk = b""
            try:
                while not self._stop_event.is_set():
                    chunk = read(65536)
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
                    if not chunk:
                        return
            except RuntimeError:  # the loop is closed: the server has stopped
                return
            except Exception as exc:  # the stream broke: end as at the end of input
                if chunk:
                    log.error("reading the client's messages failed: %s", exc)
                try:
                    loop.call_soon_threadsafe(chunks.put_nowait, b"")
                except RuntimeError:
                    pass

        threading.Thread(target=reader, name="steercode-stdin", daemon=True).start()

        async def pump() -> None:
            while not self._stop_event.is_set():
                chunk = await chunks.get()
                if not chunk:
                    break
                self.lsp.data_received(chunk)

        code = 0
        try:
            self.loop.run_until_complete(pump())
        except BrokenPipeError:
            log.error("the connection to the client is lost; shutting down")
        except KeyboardInterrupt:
            pass
        except SystemExit as exc:  # the exit notification: 1 when it came without shutdown (LSP)
            code = exc.code if isinstance(exc.code, int) else 0
        finally:
            self._cancel_load()
            self.shutdown()
        if code:
            raise SystemExit(code)

    def _cancel_load(self) -> None:
        """Cancel a model load still queued or awaited when the connection ends (``exit`` right
        after ``initialized``): the loop closes next, and a task it never ran was reported as
        "Task was destroyed but it is pending" and "coroutine ... was never awaited"."""
        task = self._load_task
        if task is None or task.done() or self.loop.is_closed():
            return
        task.cancel()
        try:
            self.loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        except Exception:
            log.debug("cancelling the model load at exit", exc_info=True)

    # ---- settings ------------------------------------------------------------------------
    @staticmethod
    def _section(value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("steercode"), dict):
            return value["steercode"]
        return value

    def on_initialize(self, params: types.InitializeParams) -> None:
        self.init_options = self._section(params.initialization_options)
        settings, problems = self.base_settings.merge(self.init_options or {})
        self.engine.update_settings(settings)
        self.pending_problems = problems

    def apply_settings(self, section: Any) -> list[str]:
        """Settings are: defaults <- initializationOptions <- ``section``. Returns problems."""
        settings, _ = self.base_settings.merge(self.init_options or {})  # (its problems: told at initialize)
        problems: list[str] = []
        if section is not None:
            settings, problems = settings.merge(section)
        current = self.engine.settings.model_path
        if self.engine.ready and settings.model_path and settings.model_path != current:
            # a typo must not take the working model away: a path that is no GGUF file is
            # refused before anything is unloaded
            try:
                check_gguf_file(settings.model_path)
            except ModelLoadError as exc:
                problems.append(f"{exc} (still using {current or 'the embedded model'})")
                settings = dataclasses.replace(settings, model_path=current)
        if self.engine.update_settings(settings):
            self.start_loading()
        return problems

    def report_problems(self, problems: list[str]) -> None:
        if problems:
            msg = "steercode settings ignored: " + "; ".join(problems)
            log.warning(msg)
            self.show_message(msg, types.MessageType.Warning)

    # ---- model loading -------------------------------------------------------------------
    def _ready_event(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    def start_loading(self) -> None:
        self._ready_event().clear()
        self._load_task = asyncio.ensure_future(self._load())

    def _supports_progress(self) -> bool:
        caps = self.client_capabilities
        return bool(caps and caps.window and caps.window.work_done_progress)

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        token: str | None = None
        if self._supports_progress():
            token = f"steercode-load-{uuid.uuid4().hex[:8]}"
            try:
                await asyncio.wait_for(self.progress.create_async(token), 5)
                self.progress.begin(token, types.WorkDoneProgressBegin(title="steercode", message="loading model", percentage=0))
            except Exception:
                log.debug("client did not accept a progress token", exc_info=True)
                token = None

        def progress(message: str, pct: int) -> None:
            self._progress = {"message": message, "percentage": pct}
            if token is not None:
                loop.call_soon_threadsafe(
                    self.progress.report, token, types.WorkDoneProgressReport(message=message, percentage=pct)
                )

        self._loading = True
        self._progress = {"message": "loading model", "percentage": 0}
        end_message = "ready"
        try:
            await self.scheduler.call(lambda: self.engine.load(progress))
            # the analysis worker starts now, not at the first completion (on the engine's
            # thread, like every other use of its monitors)
            await self.scheduler.call(self.engine.warm_up_monitors)
            d = self.engine.describe()
            self.show_message_log(f"steercode: model ready ({d.get('description')}, template {d.get('template')})", types.MessageType.Info)
        except ModelLoadError as exc:
            end_message = "model failed to load"
            log.error("model failed to load: %s", exc)
            self.show_message(f"steercode: {exc}", types.MessageType.Error)
        except Exception as exc:  # pragma: no cover - defensive
            end_message = "model failed to load"
            log.exception("unexpected error while loading the model")
            self.show_message(f"steercode: could not load the model: {exc}", types.MessageType.Error)
        finally:
            self._loading = False
            if token is not None:
                self.progress.end(token, types.WorkDoneProgressEnd(message=end_message))
            self._ready_event().set()

    async def _wait_ready(self) -> bool:
        if self.engine.ready:
            return True
        if not self._loading and self.engine.load_error:
            return False
        try:
            await asyncio.wait_for(self._ready_event().wait(), self.engine.settings.model_wait_ms / 1000)
        except TimeoutError:
            pass
        return self.engine.ready

    # ---- completion ----------------------------------------------------------------------
    async def complete(self, uri: str, position: types.Position, trigger: str,
                       selected: types.SelectedCompletionInfo | None = None):
        """The completion at ``position``: (completion, the text it was computed on, position
        encoding, selection). With ``selected`` (the completion item the editor's suggest
        widget has selected, replacing the word before the cursor), the suggestion is computed
        as if that item were accepted; selection is then (start, cursor, item text, document
        text), else None."""
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(message=f"document not open: {uri} (send textDocument/didOpen first)")
        text = doc.source
        encoding = self.workspace.position_encoding
        try:
            offset = offset_at(text, position, encoding)
        except PositionError as exc:
            raise JsonRpcInvalidParams(message=f"invalid position ({position.line}, {position.character}): {exc}") from None
        selection = None
        if selected is not None:
            try:
                start = offset_at(text, selected.range.start, encoding)
                end = offset_at(text, selected.range.end, encoding)
            except PositionError:
                start = end = -1
            if 0 <= start <= end == offset and "\n" not in text[start:end]:
                selection = (start, offset, selected.text, text)
                text = text[:start] + selected.text + text[end:]
                offset = start + len(selected.text)
            else:
                log.info("selectedCompletionInfo ignored: its range does not end at the cursor")
        if not await self._wait_ready():
            now = time.monotonic()
            if now - self._not_ready_logged > 10:
                self._not_ready_logged = now
                reason = self.engine.load_error or "the model is still loading"
                log.warning("no suggestion: %s", reason)
                self.show_message_log(f"steercode: no suggestion ({reason})", types.MessageType.Warning)
            return None
        language = doc.language_id or language_for_path(doc.path)
        req = CompletionRequest(text=text, offset=offset, language=language, path=doc.path, trigger=trigger,
                                related=self._related(uri, language))

        def work(token):
            self.running = token
            try:
                return self.engine.complete(req, token)
            except Cancelled as exc:  # runs on the worker thread: record how far it got
                self.cancelled_count += 1
                self.last_cancelled = {"reason": exc.reason, "generated_tokens": getattr(exc, "generated_tokens", 0)}
                raise
            finally:
                self.running = None

        try:
            comp = await self.scheduler.run(uri, work)
        except Cancelled as exc:
            log.info("request for %s %s", uri, exc.reason)
            return None
        except EngineNotReady as exc:
            log.warning("no suggestion: %s", exc)
            return None
        except ModelServerError as exc:  # team mode: the request fails with the reason; we go on serving
            log.warning("no suggestion: %s", exc)
            now = time.monotonic()
            if now - self._server_error_shown > 60:  # once a minute at most, not per keystroke
                self._server_error_shown = now
                self.show_message(f"steercode: {exc}", types.MessageType.Error)
            raise JsonRpcInternalError(message=f"steercode: {exc}") from None
        except ValueError as exc:
            raise JsonRpcInvalidParams(message=str(exc)) from None
        except Exception as exc:
            log.exception("completion failed")
            raise JsonRpcInternalError(message=f"completion failed: {type(exc).__name__}: {exc}") from None
        self.completions_served += 1
        self.last_stats = dict(comp.stats, uri=uri, line=position.line, character=position.character)
        if self.engine.has_background:
            self.scheduler.schedule_background(self.engine.run_background)
        s = comp.stats
        log.info(
            "completion %s:%d:%d %s %.0f ms (prompt %s/%s reused, %s generated, stop: %s) %r",
            uri.rsplit("/", 1)[-1], position.line, position.character, s.get("line_mode"), s.get("total_ms", 0),
            s.get("reused_tokens"), s.get("prompt_tokens"), s.get("generated_tokens"), s.get("stop_reason"),
            comp.insert_text[:60],
        )
        return comp, text, encoding, selection

    def _related(self, uri: str, language: str) -> tuple[str, ...]:
        """Other open documents for the drafter: same language first, the most recently opened first."""
        others = [d for u, d in reversed(self.workspace.text_documents.items()) if u != uri]
        others.sort(key=lambda d: (d.language_id or language_for_path(d.path)) != language)  # stable
        return tuple(d.source for d in others)

    def client_supports_markdown(self) -> bool:
        try:
            fmt = self.client_capabilities.text_document.completion.completion_item.documentation_format
            return bool(fmt) and types.MarkupKind.Markdown in fmt
        except AttributeError:
            return False

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "ready": self.engine.ready,
            "loading": self._loading,
            "progress": self._progress if self._loading else None,
            "error": self.engine.load_error,
            "analysis": self.engine.analysis_state(),
            "model": self.engine.describe() if self.engine.ready else None,
            "settings": self.engine.settings.as_dict(),
            "completions": self.completions_served,
            "configurations": self.configurations_applied,
            "cancelled": {
                "count": self.cancelled_count,
                "last_reason": self.last_cancelled.get("reason"),
                "last_generated_tokens": self.last_cancelled.get("generated_tokens"),
            },
            "last": self.last_stats,
            # the completion under way: how many decode steps it has begun (one poll of its
            # cancel token each, the first before the first token)
            "running": None if (running := self.running) is None else {"steps": running.polls},
        }


def create_server(settings: Settings | None = None) -> SteercodeServer:
    """A server with every handler registered."""
    server = SteercodeServer(settings)

    @server.feature(types.INITIALIZED)
    def initialized(ls: SteercodeServer, params: types.InitializedParams) -> None:
        ls.report_problems(ls.pending_problems)
        ls.pending_problems = []
        ls.start_loading()

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION)
    async def inline_completion(ls: SteercodeServer, params: types.InlineCompletionParams):
        kind = params.context.trigger_kind if params.context else types.InlineCompletionTriggerKind.Invoked
        trigger = "automatic" if kind == types.InlineCompletionTriggerKind.Automatic else "invoked"
        selected = params.context.selected_completion_info if params.context else None
        out = await ls.complete(params.text_document.uri, params.position, trigger, selected)
        if out is None:
            return types.InlineCompletionList(items=[])
        comp, text, encoding, selection = out
        if selection is not None:
            # the editor shows inline text only when it extends the selected item: the item's
            # text, then the suggestion, over the word it replaces
            return lsp_inline_list_after_item(comp, encoding, selection)
        return lsp_inline_list(text, comp, encoding)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["."]))
    async def completion(ls: SteercodeServer, params: types.CompletionParams):
        kind = params.context.trigger_kind if params.context else types.CompletionTriggerKind.Invoked
        uri = params.text_document.uri
        if kind == types.CompletionTriggerKind.TriggerForIncompleteCompletions:
            # the user types on in an open list: it keeps the trigger that opened it (an
            # explicitly asked-for item vanished after one character under `automatic: off`)
            trigger = ls.list_triggers.get(uri, "automatic")
        else:
            trigger = "invoked" if kind == types.CompletionTriggerKind.Invoked else "automatic"
            ls.list_triggers[uri] = trigger
        out = await ls.complete(uri, params.position, trigger)
        if out is None:
            return types.CompletionList(is_incomplete=True, items=[])
        comp, text, encoding, _ = out
        return lsp_completion_list(text, comp, encoding, markdown=ls.client_supports_markdown())

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: SteercodeServer, params: types.DidChangeConfigurationParams) -> None:
        section = ls._section(params.settings)
        if section in (None, {}) or not isinstance(section, dict):
            caps = ls.client_capabilities
            if caps and caps.workspace and caps.workspace.configuration:
                try:
                    result = await asyncio.wait_for(
                        ls.get_configuration_async(
                            types.ConfigurationParams(items=[types.ConfigurationItem(section="steercode")])
                        ),
                        5,
                    )
                    section = result[0] if result else None
                except Exception:
                    log.warning("workspace/configuration failed", exc_info=True)
                    section = None
        ls.report_problems(ls.apply_settings(section))
        ls.configurations_applied += 1

    @server.feature(STATUS_REQUEST)
    def status(ls: SteercodeServer, params: Any) -> dict[str, Any]:
        return ls.status()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: SteercodeServer, params: Any) -> None:
        ls.scheduler.cancel_all("shutdown")

    return server
