"""Shared helpers of the independent vector cross-checks in ci/xcheck/.

Only what several checkers need: the `Mismatch` exception every checker raises on its
first disagreement with a vector file, hex decoding, loading a vector file, the header
checks every file gets (numberOfTests, unique tcIds) and a small per-file counter.
"""

import copy
import json
from contextlib import contextmanager
from pathlib import Path


class Mismatch(Exception):
    """A vector file and the independent implementation disagree."""


def unhex(s: str) -> bytes:
    """Bytes of a hex string; a malformed string is a Mismatch, not a ValueError."""
    if not isinstance(s, str):
        raise Mismatch(f"expected a hex string, got {type(s).__name__}")
    try:
        return bytes.fromhex(s)
    except ValueError as e:
        raise Mismatch(f"bad hex {s[:40]!r}: {e}") from None


def load(root: Path, name: str, data: dict | None = None) -> dict:
    """`data` if given (a self-test mutant), else vectors/<name> under `root`."""
    if data is not None:
        return data
    return json.loads((Path(root) / "vectors" / name).read_text(encoding="utf-8"))


def check_header(data: dict, name: str) -> list:
    """Returns the tests after checking numberOfTests and that every tcId is unique."""
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        raise Mismatch(f"{name}: no tests")
    if data.get("numberOfTests") != len(tests):
        raise Mismatch(f"{name}: numberOfTests is {data.get('numberOfTests')!r}, "
                       f"but the file holds {len(tests)} tests")
    seen = set()
    for t in tests:
        tc = t.get("tcId") if isinstance(t, dict) else None
        if not isinstance(tc, int) or isinstance(tc, bool):
            raise Mismatch(f"{name}: test without an integer tcId: {str(t)[:80]}")
        if tc in seen:
            raise Mismatch(f"{name}: tcId {tc} appears more than once")
        seen.add(tc)
    return tests


@contextmanager
def checking(where: str):
    """Reports any failure inside the block as a Mismatch prefixed with `where` (a test's
    file and tcId); a malformed test (missing or mistyped member) is a Mismatch too."""
    try:
        yield
    except Mismatch as e:
        msg = str(e)
        raise Mismatch(msg if msg.startswith(where) else f"{where}: {msg}") from None
    except (KeyError, TypeError, AttributeError, ValueError, UnicodeError) as e:
        raise Mismatch(f"{where}: malformed test ({type(e).__name__}: {e})") from None


def variant_of(base: dict, tc_id: int, change) -> dict:
    """A deep copy of the vector file `base` with `change(test, file)` applied to the test
    `tc_id` (a self-test mutant)."""
    d = copy.deepcopy(base)
    change(next(t for t in d["tests"] if t["tcId"] == tc_id), d)
    return d


class Result:
    """Counts of checked tests per kind, reported as {"file": name, kind: n, ...}."""

    def __init__(self, name: str, *kinds: str):
        self.name = name
        self.counts = {k: 0 for k in kinds}

    def add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def as_dict(self) -> dict:
        return {"file": self.name, **self.counts}
