"""Reading an export snapshot back as training rows, with the hash of exactly what was read.

A snapshot folder (training.export) holds one JSONL file per split plus a manifest. The
content hash covers the split files' bytes in a fixed order, so the hash the exporter
stores and the hash of the rows a trainer receives are the same number when, and only
when, the rows are byte-identical. Plain Python: no Django.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Split files in hash order; a snapshot holds those its kinds asked for.
SPLITS = ("sft_train", "sft_val", "dpo")


class SnapshotError(ValueError):
    """The snapshot folder is missing, incomplete or changed since it was written."""


@dataclass
class SnapshotRows:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sha256: str = ""

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.rows.items()}


def content_hash(folder: Path) -> str:
    """sha256 over the split files present, each as name, byte length, bytes."""
    return read_snapshot(folder).sha256


def read_snapshot(folder: Path) -> SnapshotRows:
    folder = Path(folder)
    if not folder.is_dir():
        raise SnapshotError(f"snapshot folder {folder} does not exist")
    digest = hashlib.sha256()
    out = SnapshotRows()
    for name in SPLITS:
        path = folder / f"{name}.jsonl"
        if not path.exists():
            continue
        data = path.read_bytes()
        digest.update(f"{name}\n{len(data)}\n".encode())
        digest.update(data)
        out.rows[name] = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    if not out.rows:
        raise SnapshotError(f"snapshot folder {folder} holds no split files ({', '.join(SPLITS)})")
    out.sha256 = digest.hexdigest()
    return out
