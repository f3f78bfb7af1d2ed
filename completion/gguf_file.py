"""A small GGUF reader and writer: enough to derive a model file with fewer vocabulary rows.

GGUF (llama.cpp's model format, version 2 or 3): a header, key/value metadata, tensor infos
(name, dims, ggml type, offset into the data section), then the tensor data, each tensor aligned
to ``general.alignment`` (32 by default). Everything is little-endian.

Reading keeps metadata values as they are (strings as bytes, numeric arrays as numpy arrays), so
a file written back from what was read is the same file; tensor data is never loaded, only
located (``TensorInfo.data_offset``), and the writer copies byte ranges from the source.

No llama.cpp and no ``gguf`` package here: the derived model is built at first use, where the
``gguf`` package (a dev dependency) may not be installed.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "GGML_BLOCKS",
    "GGUFError",
    "GGUFFile",
    "TensorInfo",
    "Value",
    "VType",
    "read_gguf",
    "write_gguf",
]


class GGUFError(ValueError):
    """The file is not a GGUF file this module understands."""


class VType:
    """GGUF metadata value types."""

    UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)


_SCALAR = {
    VType.UINT8: "<u1", VType.INT8: "<i1", VType.UINT16: "<u2", VType.INT16: "<i2",
    VType.UINT32: "<u4", VType.INT32: "<i4", VType.FLOAT32: "<f4", VType.BOOL: "<u1",
    VType.UINT64: "<u8", VType.INT64: "<i8", VType.FLOAT64: "<f8",
}

#: ggml tensor type id -> (elements per block, bytes per block), from ggml's block definitions.
#: A row of ``ne0`` elements is ``ne0 // block * bytes`` bytes, and rows are independent: any
#: subset of rows, in any order, is a valid tensor of the same type.
GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0: f16 scale + 16 bytes of nibbles
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0: f16 scale + 32 int8
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    15: (256, 292),  # Q8_K
    16: (256, 66),  # IQ2_XXS
    17: (256, 74),  # IQ2_XS
    18: (256, 98),  # IQ3_XXS
    19: (256, 50),  # IQ1_S
    20: (32, 18),  # IQ4_NL
    21: (256, 110),  # IQ3_S
    22: (256, 82),  # IQ2_S
    23: (256, 136),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (256, 56),  # IQ1_M
    30: (1, 2),  # BF16
    34: (256, 54),  # TQ1_0
    35: (256, 66),  # TQ2_0
    39: (32, 17),  # MXFP4
}


@dataclass
class Value:
    """One metadata value: its type, and for arrays the element type. Strings are bytes;
    numeric arrays are numpy arrays; string arrays are lists of bytes."""

    vtype: int
    value: Any
    elem: int | None = None

    def text(self) -> str:
        return self.value.decode("utf-8", "replace") if isinstance(self.value, bytes) else str(self.value)


@dataclass
class TensorInfo:
    name: str
    dims: tuple[int, ...]  # ggml order: dims[0] is the row length (ne0)
    ggml_type: int
    offset: int  # relative to the data section
    data_offset: int = 0  # absolute, in the file it was read from

    @property
    def row_bytes(self) -> int:
        try:
            block, size = GGML_BLOCKS[self.ggml_type]
        except KeyError:
            raise GGUFError(f"tensor {self.name}: ggml type {self.ggml_type} is not known here") from None
        if self.dims[0] % block:
            raise GGUFError(f"tensor {self.name}: row length {self.dims[0]} is not a multiple of its block ({block})")
        return self.dims[0] // block * size

    @property
    def n_rows(self) -> int:
        n = 1
        for d in self.dims[1:]:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        return self.row_bytes * self.n_rows


@dataclass
class GGUFFile:
    path: Path
    version: int
    kv: dict[str, Value] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)
    alignment: int = 32
    data_start: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        v = self.kv.get(key)
        return default if v is None else v.value

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise GGUFError("truncated GGUF file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return struct.unpack_from("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack_from("<Q", self.take(8))[0]

    def string(self) -> bytes:
        return bytes(self.take(self.u64()))

    def scalar(self, vtype: int) -> Any:
        dt = np.dtype(_SCALAR[vtype])
        v = np.frombuffer(self.take(dt.itemsize), dtype=dt)[0].item()
        return bool(v) if vtype == VType.BOOL else v

    def value(self, vtype: int) -> Value:
        if vtype == VType.STRING:
            return Value(vtype, self.string())
        if vtype == VType.ARRAY:
            elem = self.u32()
            n = self.u64()
            if elem == VType.STRING:
                data, pos = self.data, self.pos
                out = []
                unpack = struct.unpack_from
                for _ in range(n):
                    if pos + 8 > len(data):
                        raise GGUFError("truncated GGUF file")
                    k = unpack("<Q", data, pos)[0]
                    out.append(bytes(data[pos + 8 : pos + 8 + k]))
                    pos += 8 + k
                if pos > len(data):
                    raise GGUFError("truncated GGUF file")
                self.pos = pos
                return Value(vtype, out, elem)
            if elem == VType.ARRAY:
                return Value(vtype, [self.value(VType.ARRAY) for _ in range(n)], elem)
            if elem not in _SCALAR:
                raise GGUFError(f"unknown GGUF array element type {elem}")
            dt = np.dtype(_SCALAR[elem])
            arr = np.frombuffer(self.take(dt.itemsize * n), dtype=dt).copy()
            return Value(vtype, arr, elem)
        if vtype not in _SCALAR:
            raise GGUFError(f"unknown GGUF value type {vtype}")
        return Value(vtype, self.scalar(vtype))


def read_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Metadata and tensor infos of a GGUF file (tensor data is located, not read)."""
    p = Path(path)
    with p.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        # the metadata of a large-vocabulary model is a few MB; read more until it parses
        want = min(size, 8 << 20)
        while True:
            f.seek(0)
            head = f.read(want)
            try:
                return _parse(p, memoryview(head), size)
            except GGUFError as exc:
                if "truncated" not in str(exc) or want >= size:
                    raise
                want = min(size, want * 4)


def _parse(path: Path, data: memoryview, size: int) -> GGUFFile:
    r = _Reader(data)
    if bytes(r.take(4)) != b"GGUF":
        raise GGUFError(f"{path}: not a GGUF file")
    version = r.u32()
    if version not in (2, 3):
        raise GGUFError(f"{path}: GGUF version {version} is not supported")
    n_tensors, n_kv = r.u64(), r.u64()
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise GGUFError(f"{path}: corrupt GGUF header")
    g = GGUFFile(path, version)
    for _ in range(n_kv):
        key = r.string().decode("utf-8")
        g.kv[key] = r.value(r.u32())
    align = g.kv.get("general.alignment")
    g.alignment = int(align.value) if align is not None else 32
    if g.alignment <= 0 or g.alignment & (g.alignment - 1):
        raise GGUFError(f"{path}: bad alignment {g.alignment}")
    for _ in range(n_tensors):
        name = r.string().decode("utf-8")
        n_dims = r.u32()
        if n_dims > 8:
            raise GGUFError(f"{path}: tensor {name} has {n_dims} dimensions")
        dims = tuple(r.u64() for _ in range(n_dims))
        ggml_type = r.u32()
        offset = r.u64()
        g.tensors.append(TensorInfo(name, dims, ggml_type, offset))
    g.data_start = _align(r.pos, g.alignment)
    for t in g.tensors:
        t.data_offset = g.data_start + t.offset
        if t.ggml_type in GGML_BLOCKS and t.data_offset + t.n_bytes > size:
            raise GGUFError(f"{path}: tensor {t.name} runs past the end of the file (truncated?)")
    return g


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


# ---------------------------------------------------------------------------------------------
# writing


def _pack_value(v: Value) -> bytes:
    out = bytearray()
    if v.vtype == VType.STRING:
        s = v.value if isinstance(v.value, bytes) else str(v.value).encode("utf-8")
        out += struct.pack("<Q", len(s)) + s
    elif v.vtype == VType.ARRAY:
        assert v.elem is not None
        items = v.value
        out += struct.pack("<IQ", v.elem, len(items))
        if v.elem == VType.STRING:
            for s in items:
                s = s if isinstance(s, bytes) else str(s).encode("utf-8")
                out += struct.pack("<Q", len(s)) + s
        elif v.elem == VType.ARRAY:
            for sub in items:
                out += _pack_value(sub)
        else:
            out += np.asarray(items, dtype=_SCALAR[v.elem]).tobytes()
    else:
        x = int(v.value) if v.vtype == VType.BOOL else v.value
        out += np.asarray([x], dtype=_SCALAR[v.vtype]).tobytes()
    return bytes(out)


def write_gguf(
    out: BinaryIO,
    *,
    version: int,
    kv: dict[str, Value],
    tensors: Iterable[tuple[TensorInfo, int, Callable[[BinaryIO], None]]],
    alignment: int = 32,
) -> None:
    """Write a GGUF file: ``tensors`` are (info with the new dims, byte size, a function that
    writes exactly that many bytes of data). Offsets are computed here."""
    tensors = list(tensors)
    head = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv)))
    for key, v in kv.items():
        k = key.encode("utf-8")
        head += struct.pack("<Q", len(k)) + k + struct.pack("<I", v.vtype) + _pack_value(v)
    offset = 0
    for info, n_bytes, _ in tensors:
        name = info.name.encode("utf-8")
        head += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(info.dims))
        head += struct.pack(f"<{len(info.dims)}Q", *info.dims) + struct.pack("<IQ", info.ggml_type, offset)
        offset = _align(offset + n_bytes, alignment)
    head += b"\0" * (_align(len(head), alignment) - len(head))
    out.write(head)
    for _info, n_bytes, write in tensors:
        start = out.tell()
        write(out)
        written = out.tell() - start
        if written != n_bytes:
            raise GGUFError(f"tensor {_info.name}: wrote {written} bytes, expected {n_bytes}")
        out.write(b"\0" * (_align(n_bytes, alignment) - n_bytes))
