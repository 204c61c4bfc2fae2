"""What a run shows and records: a tqdm bar with loss and ETA, and a CSV or JSON-lines log."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO, Any

__all__ = ["MetricLog"]


class MetricLog:
    """Append one record per line to ``path``: ``.csv`` (header from the first record's keys) or
    ``.jsonl``. Records are flushed as they come, so a killed run keeps its log."""

    def __init__(self, path: str | os.PathLike[str] | None, resume: bool = False) -> None:
        self.path = None if path is None else Path(path)
        self._file: IO[str] | None = None
        self._fields: list[str] | None = None
        if self.path is None:
            return
        if self.path.suffix not in (".csv", ".jsonl"):
            raise ValueError(f"log file {str(self.path)!r}: the suffix must be .csv or .jsonl")
        append = resume and self.path.exists()
        if append and self.path.suffix == ".csv":
            with self.path.open() as f:
                header = f.readline().strip()
            self._fields = header.split(",") if header else None
        self._file = self.path.open("a" if append else "w", newline="")

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        if self.path is not None and self.path.suffix == ".jsonl":
            self._file.write(json.dumps(record) + "\n")
        else:
            if self._fields is None:
                self._fields = list(record)
                self._file.write(",".join(self._fields) + "\n")
            writer = csv.DictWriter(self._file, fieldnames=self._fields, extrasaction="ignore")
            writer.writerow(record)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
