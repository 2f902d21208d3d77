"""Read an offline W&B run back from its `.wandb` transaction log, without the network.

`wandb.Api` only talks to a server, and wandb >= 0.19 no longer ships a Python reader of the log (the Go core
writes it). The format is stable: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then 32 KiB blocks of
LevelDB-log records (CRC-32 of type byte + payload, 2-byte length, type FULL/FIRST/MIDDLE/LAST), each payload
one `wandb_internal_pb2.Record` protobuf. Checking every CRC makes a misread fail loudly instead of silently.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<4sHB")
_RECORD = struct.Struct("<IHB")
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What the dashboard would show for one run: identity, config, per-step history, final summary, files."""

    name: str = ""
    group: str = ""
    project: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    record_types: list[str] = field(default_factory=list)

    def series(self, key: str) -> list[tuple[int, Any]]:
        """(step, value) of every history row that logged `key`."""
        return [(row["_step"], row[key]) for row in self.history if key in row]


def _payloads(data: bytes) -> list[bytes]:
    ident, magic, version = _HEADER.unpack_from(data)
    if (ident, magic, version) != (b":W&B", 0xBEE1, 0):
        raise ValueError(f"not a W&B transaction log (header {data[:7]!r})")
    out, pending, pos = [], b"", _HEADER.size
    while pos + _RECORD.size <= len(data):
        if _BLOCK - pos % _BLOCK < _RECORD.size:  # too little room for a header: the block is padded
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = _RECORD.unpack_from(data, pos)
        chunk = data[pos + _RECORD.size : pos + _RECORD.size + length]
        pos += _RECORD.size + length
        if kind == 0 and length == 0:  # zero padding at the end of a block
            continue
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise ValueError(f"CRC mismatch in the W&B log at byte {pos}")
        if kind == _FULL:
            out.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            out.append(pending + chunk)
    return out


def _set(target: dict[str, Any], item: Any) -> None:
    path = list(item.nested_key) or [item.key]
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = json.loads(item.value_json)


def _remove(target: dict[str, Any], item: Any) -> None:
    path = list(item.nested_key) or [item.key]
    for part in path[:-1]:
        target = target.get(part, {})
    target.pop(path[-1], None)


def read_offline_run(run_dir: str | Path, timeout: float = 60.0) -> OfflineRun:
    """The run logged in `run_dir` (an `offline-run-*` folder holding one `run-*.wandb` file).

    `run.finish()` returns before W&B's core process has written the log (offline, the file holds only its header
    at that point; it is complete within a second or so, or at `wandb.teardown()`), so this waits up to `timeout`
    seconds for the run's closing `exit` record.
    """
    (log_file,) = Path(run_dir).glob("run-*.wandb")
    deadline = time.monotonic() + timeout
    while True:
        try:
            run = _parse(log_file.read_bytes())
        except (ValueError, struct.error):  # a file or record still being written
            run = None
        if run is not None and "exit" in run.record_types:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"{log_file} has no exit record after {timeout} s: the run did not finish")
        time.sleep(0.2)


def _parse(data: bytes) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    run = OfflineRun()
    for payload in _payloads(data):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        run.record_types.append(kind)
        if kind == "run":
            r = record.run
            run.name, run.group, run.project, run.tags = r.display_name, r.run_group, r.project, list(r.tags)
            for item in r.config.update:
                _set(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, item)
            for item in record.config.remove:
                _remove(run.config, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item)
            row["_step"] = record.history.step.num if record.history.HasField("step") else row.get("_step")
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, item)
            for item in record.summary.remove:
                _remove(run.summary, item)
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
    run.config.pop("_wandb", None)
    return run
