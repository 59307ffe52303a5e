#!/usr/bin/env python3
"""Independent cross-check of every Tether vector file, written from spec/ alone.

Each module of ci/xcheck/ is a second implementation of one layer, in Python's standard
library, sharing no code with tether-proto or with the Rust generator of vectors/:

  xcheck/token.py     vectors/pairing-token.json   token decoder and encoder, decode order,
                                                   checksum, expiry (TOKEN-*)
  xcheck/frames.py    vectors/relay-frames.json    every relay frame, decode order, close
                                                   codes (LINK-*, chapter 6)
  xcheck/command.py   vectors/command.json         JSON-RPC envelope and typed params and
                                                   results, error codes and replies (CMD-*)
  xcheck/payloads.py  vectors/noise-ik.json        its own X25519, ChaCha20-Poly1305, BLAKE2s
                      vectors/session.json         HMAC/HKDF and Noise IK: every ciphertext,
                                                   handshake payload, prologue, handshake hash
                                                   and confirmation code (CHAN-*); in
                                                   session.json also the token, the relay
                                                   frames and the command transcript
  xcheck/records.py   vectors/records.json         records (OUTPUT among them), windows,
                                                   credits, grants and reassembly of section
                                                   4.13 (CHAN-31..36, CMD-76), the split and
                                                   grant policy as the spec states the
                                                   reference's

vectors/noise-rekey.json (and the Noise layer again) is replayed by ci/crosscheck-noise with
the `noiseprotocol` package, a third implementation.

Usage:
  ci/crosscheck_vectors.py [ROOT]              check every file; exit 0 when all agree
  ci/crosscheck_vectors.py --self-test [ROOT]  also feed each checker its mutants (vector
                                               files with one targeted change each) and
                                               require every one to be refused, so that a
                                               checker that accepts anything fails

Exit status: 0 if everything matched, 1 on any mismatch (or a mutant accepted), 2 on a usage
problem.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from xcheck import command, frames, payloads, records, token  # noqa: E402
from xcheck.common import Mismatch  # noqa: E402

CHECKERS = [
    ("pairing-token.json", token.run, token.mutants),
    ("relay-frames.json", frames.run, frames.mutants),
    ("command.json", command.run, command.mutants),
    ("noise-ik.json", lambda root, data=None: payloads.run(root, data, file="noise-ik.json"), None),
    ("session.json", lambda root, data=None: payloads.run(root, data, file="session.json"), None),
    ("records.json", records.run, records.mutants),
]


def describe(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items() if k != "file")


def self_test(root: Path) -> tuple[int, list[str]]:
    """Runs every mutant; returns (count, mutants that were accepted)."""
    accepted = []
    n = 0
    sources = [(token.mutants, token.run), (frames.mutants, frames.run),
               (command.mutants, command.run), (payloads.mutants, payloads.run),
               (records.mutants, records.run)]
    for mutants, run in sources:
        for desc, data in mutants(root):
            n += 1
            try:
                run(root, data=data)
            except Mismatch:
                continue
            accepted.append(desc)
    return n, accepted


def main(argv: list[str]) -> int:
    args = argv[1:]
    selftest = "--self-test" in args
    args = [a for a in args if a != "--self-test"]
    if any(a.startswith("-") for a in args) or len(args) > 1:
        print(__doc__.split("Usage:")[1].split("Exit status")[0], file=sys.stderr)
        return 2
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    if not (root / "vectors").is_dir():
        print(f"{root / 'vectors'}: not a directory", file=sys.stderr)
        return 2
    failures = 0
    total = 0
    for name, run, _ in CHECKERS:
        try:
            counts = run(root)
        except Mismatch as e:
            failures += 1
            print(f"FAIL  {name}: {e}")
            continue
        except FileNotFoundError as e:
            failures += 1
            print(f"FAIL  {name}: {e}")
            continue
        total += counts.get("valid", 0) + counts.get("invalid", 0)
        print(f"ok    {name:<20} {describe(counts)}")
    print(f"total: {total} tests in {len(CHECKERS)} files, {failures} file(s) failed")
    if selftest:
        n, accepted = self_test(root)
        for desc in accepted:
            print(f"FAIL  self-test: the mutant {desc!r} was accepted")
        print(f"self-test: {n - len(accepted)} of {n} mutants refused")
        if accepted or n == 0:
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
