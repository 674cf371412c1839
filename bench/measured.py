"""What every benchmark records with its figures (the commit measured), and where it writes them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def private_files() -> None:
    """Files made as every station command makes them (umask 027): `station run` refuses to start
    on a config or database that other users can read, and so would refuse a benchmark's."""
    import os

    from station.at_rest import UMASK
    os.umask(UMASK)


def commit() -> str:
    """HEAD, marked when the code measured (station, web, bench) differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "station", "web", "bench"], cwd=HERE.parent,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+uncommitted changes" if dirty else "")


def save(results: dict, out: Path | None, quick: bool, name: str) -> int:
    """A full run writes bench/results/NAME (or --out); a quick run only where --out says."""
    if quick and not out:
        return 0
    out = out or HERE / "results" / name
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")
    return 0
