"""Rebuild tests/gps/expected_last_fix.json from the corpus (like gpsd's `regress-rebuild`).

Run it only after a deliberate change of the GPS reader, then review the diff line by line:
    .venv/bin/python -m tests.gps.regenerate
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tests.conftest import CORPORA
from tests.gps.replay import replay, summary

EXPECTED = Path(__file__).with_name("expected_last_fix.json")


def main() -> int:
    logs = sorted((CORPORA / "nmea" / "gpsd").glob("*.log"))
    if not logs:
        print(f"no logs under {CORPORA}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        out = {log.name: summary(replay(log, Path(tmp))) for log in logs}
    EXPECTED.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(out)} entries to {EXPECTED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
