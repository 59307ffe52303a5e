#!/usr/bin/env python3
"""Writes the seed corpora and dictionaries of the byte-level fuzz targets from vectors/.

Run from anywhere: python3 fuzz/seeds/generate.py. Deterministic; the output is committed.
The structured targets (Arbitrary event sequences) start from an empty corpus.
"""
import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz" / "seeds"
DICT = ROOT / "fuzz" / "dict"

# Must match fuzz/src/lib.rs.
WALL0 = 1_800_000_000
RAW_DEVICE = bytes([0x77]) * 32
TOKEN0 = (bytes([0x40]) * 16, bytes([0x50]) * 32)


def vectors(name):
    return json.loads((ROOT / "vectors" / name).read_text())["tests"]


def write(target, data):
    if len(data) > 16 * 1024:  # size limits are covered by the unit tests; keep seeds small
        return
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def clear(target):
    d = SEEDS / target
    if d.exists():
        for f in d.iterdir():
            f.unlink()


for t in ["token_decode", "frame_decode", "cmd_parse", "noise_responder"]:
    clear(t)

# token_decode: mode byte 0 = text, 1 = binary.
for t in vectors("pairing-token.json"):
    if t.get("text") is not None:
        write("token_decode", b"\x00" + t["text"].encode())
    if t.get("binary") is not None:
        write("token_decode", b"\x01" + bytes.fromhex(t["binary"]))
for t in vectors("session.json"):
    write("token_decode", b"\x00" + t["tokenText"].encode())
    write("token_decode", b"\x01" + bytes.fromhex(t["tokenBinary"]))

# frame_decode: every frame of the relay-frame and session vectors.
for t in vectors("relay-frames.json"):
    write("frame_decode", bytes.fromhex(t["frame"]))
for t in vectors("session.json"):
    for f in t["frames"]:
        write("frame_decode", bytes.fromhex(f["hex"]))

# cmd_parse: every command-protocol message.
for t in vectors("command.json"):
    write("cmd_parse", bytes.fromhex(t["msg"]))

# noise_responder: mode 0 (real crypto) + the vectors' message 1 as is; mode 1 (insecure
# primitives, see reference/proto/src/fuzzing.rs) + e ‖ s ‖ tag0 ‖ payload ‖ tag0 built
# from the vectors' message-1 payloads, with the timestamp moved to the fuzz host's clock
# and a PAIR payload's token replaced by the fuzz host's token 0.
TAG0 = bytes(16)
for t in vectors("noise-ik.json"):
    msgs = t["noise"]["messages"]
    write("noise_responder", b"\x00" + bytes.fromhex(msgs[0]["ciphertext"]))
    payload = bytearray(bytes.fromhex(msgs[0]["payload"]))
    write("noise_responder", b"\x01" + bytes(32) + RAW_DEVICE + TAG0 + bytes(payload) + TAG0)
    if len(payload) >= 14:
        payload[2:10] = (0x4000000000000000 + WALL0).to_bytes(8, "big")
    if len(payload) >= 62 and payload[1] == 1:
        payload[14:30] = TOKEN0[0]
        payload[30:62] = TOKEN0[1]
    e = bytes.fromhex(t["noise"]["init_ephemeral"])
    write("noise_responder", b"\x01" + e + RAW_DEVICE + TAG0 + bytes(payload) + TAG0)

# Dictionaries.
DICT.mkdir(parents=True, exist_ok=True)
frame_types = {
    "HELLO": 0x01, "HOST_CHALLENGE": 0x02, "HOST_PROOF": 0x03, "READY": 0x04,
    "OPEN": 0x10, "INCOMING": 0x11, "DATA": 0x12, "CLOSE": 0x13,
    "PING": 0x20, "PONG": 0x21, "GOAWAY": 0x30,
}
lines = ["# Relay frame types (spec/06-registries.md)"]
lines += [f'{name.lower()}="\\x{v:02x}"' for name, v in frame_types.items()]
lines += ["# roles, version", 'role_controller="\\x00"', 'role_host="\\x01"', 'version="\\x01"',
          "# workspaces", 'ws_acme="\\x04acme"', 'ws_a="\\x04ws-a"']
codes = set()
for p in ["reference/proto/src/link/codes.rs"]:
    for m in re.finditer(r"^\s+[A-Z_]+ = (\d+),", (ROOT / p).read_text(), re.M):
        codes.add(int(m.group(1)))
lines += ["# close codes (u16, big-endian)"]
lines += [f'code_{c}="\\x{c >> 8:02x}\\x{c & 0xff:02x}"' for c in sorted(codes)]
(DICT / "frame_decode.dict").write_text("\n".join(lines) + "\n")
(DICT / "relay_router.dict").write_text("\n".join(lines) + "\n")

methods = set()
for m in re.finditer(r'"([a-z]+(?:/[a-zA-Z]+)+|initialize|initialized)"',
                     (ROOT / "reference/proto/src/cmd/methods.rs").read_text()):
    methods.add(m.group(1))
keys = set()


def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            keys.add(k)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)


for t in vectors("command.json"):
    try:
        walk(json.loads(bytes.fromhex(t["msg"]).decode()))
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
lines = ["# JSON-RPC envelope", 'jsonrpc="\\"jsonrpc\\""', 'v2="\\"2.0\\""', 'id="\\"id\\""',
         'method="\\"method\\""', 'params="\\"params\\""', 'result="\\"result\\""',
         'error="\\"error\\""', 'code="\\"code\\""', 'message="\\"message\\""',
         "# method names (spec/05)"]
lines += [f'm{i}="\\"{m}\\""' for i, m in enumerate(sorted(methods))]
lines += ["# member names seen in vectors/command.json"]
lines += [f'k{i}="\\"{k}\\""' for i, k in enumerate(sorted(keys)) if re.fullmatch(r"[A-Za-z0-9_./-]+", k)]
(DICT / "cmd_parse.dict").write_text("\n".join(lines) + "\n")
(DICT / "host_session.dict").write_text("\n".join(lines) + "\n")
(DICT / "controller_session.dict").write_text("\n".join(lines) + "\n")

lines = ['prefix="TETHER:"', 'version="\\x01"', "# base32 alphabet runs", 'b32="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"',
         'scheme_wss="wss://"', 'scheme_ws="ws://"']
(DICT / "token_decode.dict").write_text("\n".join(lines) + "\n")
lines = ['zero_tag="' + "\\x00" * 16 + '"', 'session="\\x01\\x00"', 'pair="\\x01\\x01"',
         'tai64="\\x40\\x00\\x00\\x00"', 'raw_device="' + "\\x77" * 32 + '"',
         'token0_id="' + "\\x40" * 16 + '"', 'token0_secret="' + "\\x50" * 32 + '"']
(DICT / "noise_responder.dict").write_text("\n".join(lines) + "\n")
print("seeds:", {d.name: len(list(d.iterdir())) for d in SEEDS.iterdir() if d.is_dir()})
