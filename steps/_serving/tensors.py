"""Open Inference Protocol tensors as raw bytes: what the HTTP binary tensor data extension and the gRPC service's
`raw_input_contents` / `raw_output_contents` carry. Fixed-size types are little-endian and packed, row-major;
BYTES elements each have a 4-byte little-endian length before their bytes. Decoded values are the plain Python
values the JSON form would carry (floats, ints, bools, text), so one contract check serves every encoding."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from steps._serving.contract import RequestError

# datatype -> struct format character (little-endian throughout)
FORMATS = {"BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "INT8": "b", "INT16": "h",
           "INT32": "i", "INT64": "q", "FP16": "e", "FP32": "f", "FP64": "d"}
SIZES = {name: struct.calcsize("<" + code) for name, code in FORMATS.items()}
DATATYPES = (*FORMATS, "BYTES")


def decode(datatype: str, raw: bytes | memoryview, count: int, where: str, field: str | None = None) -> list[Any]:
    """`count` elements of `datatype` from `raw`, which must hold exactly them. A mismatch is the client's
    mistake: RequestError naming `where` (e.g. "inputs[0] (amount)") and the sizes."""
    if datatype == "BYTES":
        return _decode_bytes(raw, count, where, field)
    code = FORMATS.get(datatype)
    if code is None:
        raise RequestError(f"{where}.datatype: {datatype[:40]!r} is not an Open Inference Protocol datatype "
                           f"({', '.join(DATATYPES)})", "datatype", field)
    size = SIZES[datatype]
    if len(raw) != count * size:
        raise RequestError(f"{where}: {len(raw)} bytes of binary data, but its shape says {count} {datatype} "
                           f"values ({count * size} bytes)", "binary_data_size", field)
    return list(struct.unpack(f"<{count}{code}", raw))


def encode(datatype: str, data: Sequence[Any]) -> bytes:
    """The raw bytes of `data` as `datatype` (BYTES: text is UTF-8, numbers are written as their text)."""
    if datatype == "BYTES":
        parts = []
        for value in data:
            blob = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(blob)))
            parts.append(blob)
        return b"".join(parts)
    return struct.pack(f"<{len(data)}{FORMATS[datatype]}", *data)


_LENGTH = struct.Struct("<I")  # a BYTES element's length prefix


def _decode_bytes(raw: bytes | memoryview, count: int, where: str, field: str | None) -> list[Any]:
    data = bytes(raw)  # one copy: slicing bytes and decoding the slice is cheaper than through a memoryview
    end = len(data)
    values: list[Any] = []
    append, unpack_from = values.append, _LENGTH.unpack_from
    at = i = 0
    try:
        for i in range(count):  # noqa: B007 - `i` names the element in the errors
            (length,) = unpack_from(data, at)
            at += 4
            stop = at + length
            if stop > end:
                raise RequestError(f"{where}: element {i} says {length} bytes, but only {end - at} remain",
                                   "binary_data_size", field)
            append(data[at:stop].decode())
            at = stop
    except struct.error:
        raise RequestError(f"{where}: the binary data ends at element {i} of {count} (each BYTES element is a "
                           "4-byte little-endian length, then that many bytes)", "binary_data_size", field) from None
    except UnicodeDecodeError:
        raise RequestError(f"{where}: element {i} is not UTF-8 text", "utf8", field) from None
    if at != end:
        raise RequestError(f"{where}: {end - at} bytes left after its {count} BYTES elements", "binary_data_size",
                           field)
    return values
