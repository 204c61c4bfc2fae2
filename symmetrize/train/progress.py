"""What a run shows and records: a tqdm bar with loss and ETA, and a CSV or JSON-lines log."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO, Any

__all__ = ["MetricLog"]


class MetricLog:
    """Append one record per line to ``path``: ``.csv`` (columns ``fields``) or ``.jsonl``.
    Records are flushed as they come, so a killed run keeps its log.

    A fresh run starts the file anew. A resumed run (``resume=True``) keeps its first
    ``keep_bytes`` bytes (:attr:`offset` when its checkpoint was written) and drops what a
    killed run logged after that checkpoint, so the steps it repeats are not logged twice.
    """

    def __init__(self, path: str | os.PathLike[str] | None, resume: bool = False,
                 keep_bytes: int | None = None,
                 fields: tuple[str, ...] = ("epoch", "step", "loss", "lr", "val")) -> None:
        self.path = None if path is None else Path(path)
        self._file: IO[str] | None = None
        self._fields: list[str] | None = None
        self._columns = list(fields)
        if self.path is None:
            return
        if self.path.suffix not in (".csv", ".jsonl"):
            raise ValueError(f"log file {str(self.path)!r}: the suffix must be .csv or .jsonl")
        append = resume and self.path.is_file()
        if append and keep_bytes is not None:
            if self.path.stat().st_size > keep_bytes:
                with self.path.open("r+b") as f:
                    f.truncate(keep_bytes)
        if append and self.path.suffix == ".csv":
            with self.path.open() as f:
                header = f.readline().strip()
            self._fields = header.split(",") if header else None
            if self._fields is not None and self._fields != self._columns:
                raise ValueError(f"log {str(self.path)!r} has the columns {header}, this run "
                                 f"writes {','.join(self._columns)}. Fix: log to a new file")
        self._file = self.path.open("a" if append else "w", newline="")

    @property
    def offset(self) -> int | None:
        """Bytes written so far (``None`` without a file)."""
        return None if self._file is None else self._file.tell()

    def write(self, record: dict[str, Any]) -> None:
        """Write ``record``; a key the CSV has no column for is an error, never dropped."""
        if self._file is None:
            return
        if self.path is not None and self.path.suffix == ".jsonl":
            self._file.write(json.dumps(record) + "\n")
        else:
            if self._fields is None:
                self._fields = self._columns
                self._file.write(",".join(self._fields) + "\n")
            extra = [key for key in record if key not in self._fields]
            if extra:
                raise ValueError(f"log {str(self.path)!r} has no column for {extra} (columns: "
                                 f"{', '.join(self._fields)}); use a .jsonl log")
            writer = csv.DictWriter(self._file, fieldnames=self._fields)
            writer.writerow(record)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
