"""Independent cross-check of vectors/relay-frames.json against spec/03-relay-link.md.

The frame decoder and encoder below are written from chapter 3 of the spec (sections 3.2
and 3.3) and the frame-type, role and close-code registries of chapter 6 alone; they share
no code with the reference implementation.

What is checked, for every test of vectors/relay-frames.json:

- header: `numberOfTests` equals the number of tests, and every tcId is unique;
- every flag of a case is explained in the file's `notes`, and the flags that make a
  checkable claim hold: Repeat exactly when `frameRepeat` is given, the frame-type flags
  (Hello, Registration, Ready, Session, Data, Close, Keepalive, GoAway) match the type
  byte, a valid case has exactly one of them, an invalid case carries its error's name,
  VersionNotChecked marks a HELLO version other than 1;
- `relayAnswer` is given exactly when the frame is a HELLO whose version byte is not 1
  (byte 0 is 0x01, byte 1 exists and is not 0x01), carries the flag VersionFirst, and says
  GOAWAY UNSUPPORTED_VERSION for LINK-41: the relay reads the version before decoding the
  rest (section 3.3), whatever the codec makes of the bytes;
- `frameRepeat` (and, in `decoded`, `payloadRepeat`) are expanded as the file's `Repeat`
  note says: the bytes given, followed by `count` copies of `hex`;
- valid cases: the frame decodes (LINK-30) to exactly the fields of `decoded`, named as
  the file's schema says (bytes in hex, version and code as numbers, role "host" or
  "controller", workspace and reason as strings, PING/PONG value as a decimal string);
  encoding `decoded` gives exactly the frame (LINK-30). `HELLO` versions other than 1
  decode (LINK-3 is the relay's check), and `CLOSE` / `GOAWAY` codes decode whatever
  their value (section 3.3, REG-1);
- invalid cases: decoding fails with exactly `error.name`, the first failure in the order
  of section 3.3: TooLarge (LINK-5), empty Truncated (LINK-4), UnknownType (LINK-4),
  then the fields read and checked one at a time (Truncated LINK-4, BadRole LINK-31,
  BadWorkspace LINK-32, BadCredentialLength LINK-10, BadRegistrationLength LINK-9 in
  HELLO and LINK-12 in HOST_CHALLENGE / HOST_PROOF, BadHandshakeLength LINK-15,
  EmptyPayload LINK-33, BadUtf8 LINK-34), then TrailingBytes (LINK-4); the requirement id
  and the GOAWAY close code this implementation ties to the failure (FRAME_TOO_LARGE for
  TooLarge, PROTOCOL_ERROR for every other, LINK-4 and LINK-5) must equal `error.requirement`
  and `error.closeCode`, and the close code must be a name of the registry (section 6.2);
- the worked examples of spec section 3.11 that give bytes (cases 2, 16 and 22) are those
  vector cases.

A string field (length byte and bytes) is read whole before its constraint is checked
(section 3.3), so `01 01 02 41 61` (W = 65, one byte follows) is Truncated, not
BadWorkspace (cases 87 and 88).

`run(root, data=None)` raises `Mismatch` on the first disagreement and otherwise returns
the counts; `mutants(root)` yields altered copies of the file that `run` must reject.
"""

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from .common import Mismatch, Result, check_header, checking, load, unhex, variant_of

FILE = "relay-frames.json"

MAX_FRAME_LEN = 65544          # LINK-5: 1 + 8 + 65535
MAX_HANDSHAKE_LEN = 512        # LINK-15
REGISTRATION_LEN = {"HELLO": 32, "HOST_CHALLENGE": 48, "HOST_PROOF": 64}   # LINK-9, LINK-12
SESSION_ID_LEN = 8             # LINK-16
KEY_LEN = 32

# Section 3.2 / registry 6.1.
TYPES = {
    0x01: "HELLO", 0x02: "HOST_CHALLENGE", 0x03: "HOST_PROOF", 0x04: "READY",
    0x10: "OPEN", 0x11: "INCOMING", 0x12: "DATA", 0x13: "CLOSE",
    0x20: "PING", 0x21: "PONG", 0x30: "GOAWAY",
}
TYPE_BYTE = {name: value for value, name in TYPES.items()}
ROLES = {0x01: "host", 0x02: "controller"}       # LINK-31, registry 6.1
ROLE_BYTE = {name: value for value, name in ROLES.items()}

# Registry 6.2 (every assigned close code).
CLOSE_CODES = {
    "NORMAL": 0, "PROTOCOL_ERROR": 1, "UNSUPPORTED_VERSION": 2, "FRAME_TOO_LARGE": 3,
    "UNEXPECTED_FRAME": 4, "AUTH_FAILED": 5, "AUTH_TIMEOUT": 6, "REGISTRATION_FAILED": 7,
    "REMOTE_ACCESS_DISABLED": 8, "IDLE_TIMEOUT": 9, "REPLACED": 10, "GOING_AWAY": 11,
    "SLOW_READER": 12, "HOST_UNREACHABLE": 16, "SESSION_LIMIT": 17, "SESSION_ID_IN_USE": 18,
    "UNKNOWN_SESSION": 19, "PEER_GONE": 20, "NOT_AUTHORIZED": 32, "REPLAYED": 33,
    "TOKEN_REJECTED": 34, "HANDSHAKE_FAILED": 35, "DECRYPT_FAILED": 36, "RATE_LIMITED": 37,
    "CONFIRMATION_REJECTED": 38, "CLOCK_SKEW": 39, "COMMAND_PROTOCOL_ERROR": 40,
    "HOST_ERROR": 41,
}


class FrameError(Exception):
    """A decode failure of section 3.3: its name, requirement id and GOAWAY close code."""

    def __init__(self, name: str, requirement: str, detail: str = "",
                 close_code: str = "PROTOCOL_ERROR"):
        super().__init__(f"{name} ({requirement}, GOAWAY {close_code}){': ' + detail if detail else ''}")
        self.name, self.requirement, self.close_code = name, requirement, close_code


def workspace_ok(b: bytes) -> bool:
    """LINK-32 (the TOKEN-7 rule): 1 to 64 bytes of a-z 0-9 . _ -"""
    return 1 <= len(b) <= 64 and all(
        0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c in (0x2E, 0x5F, 0x2D) for c in b)


# ---------------------------------------------------------------- decode (section 3.3)

class _Reader:
    def __init__(self, frame: bytes):
        self.frame, self.pos = frame, 1

    def take(self, n: int, what: str) -> bytes:
        """A fixed-size field or the bytes of a string (step 4: Truncated)."""
        if self.pos + n > len(self.frame):
            raise FrameError("Truncated", "LINK-4", f"{what} runs past the end")
        out = self.frame[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def uint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "big")

    def rest(self) -> bytes:
        """A rest field: every byte to the end; it cannot be truncated."""
        out = self.frame[self.pos:]
        self.pos = len(self.frame)
        return out


def _registration(kind: str, reg: bytes, want: int, requirement: str) -> None:
    if len(reg) != want:
        raise FrameError("BadRegistrationLength", requirement,
                         f"{kind} registration of {len(reg)} bytes, not {want}")


def _handshake(r: _Reader) -> bytes:
    hs = r.rest()
    if not 1 <= len(hs) <= MAX_HANDSHAKE_LEN:
        raise FrameError("BadHandshakeLength", "LINK-15", f"{len(hs)} bytes")
    return hs


def decode(frame: bytes) -> dict:
    """Decodes one frame into the vector file's `decoded` convention, or raises FrameError."""
    if len(frame) > MAX_FRAME_LEN:                              # step 1
        raise FrameError("TooLarge", "LINK-5", f"{len(frame)} bytes", "FRAME_TOO_LARGE")
    if not frame:                                               # step 2
        raise FrameError("Truncated", "LINK-4", "empty message")
    name = TYPES.get(frame[0])
    if name is None:                                            # step 3
        raise FrameError("UnknownType", "LINK-4", f"type {frame[0]:#04x}")
    r = _Reader(frame)
    out = {"type": name}                                        # steps 4-5, interleaved
    if name == "HELLO":
        out["version"] = r.u8("version")                        # any value decodes (LINK-3)
        role = r.u8("role")
        if role not in ROLES:
            raise FrameError("BadRole", "LINK-31", f"role {role:#04x}")
        out["role"] = ROLES[role]
        # A string is its length byte and its bytes, read whole before its constraint is
        # checked (section 3.3).
        ws = r.take(r.u8("workspace length"), "workspace")
        if not 1 <= len(ws) <= 64:
            raise FrameError("BadWorkspace", "LINK-32", f"workspace length {len(ws)}")
        if not workspace_ok(ws):
            raise FrameError("BadWorkspace", "LINK-32", repr(ws))
        out["workspace"] = ws.decode("ascii")
        cred = r.take(r.u8("credential length"), "credential")
        if len(cred) < 16:
            raise FrameError("BadCredentialLength", "LINK-10", f"credential length {len(cred)}")
        out["credential"] = cred.hex()
        reg = r.rest()
        _registration(out["role"], reg, REGISTRATION_LEN["HELLO"] if role == 0x01 else 0, "LINK-9")
        out["registration"] = reg.hex()
    elif name in ("HOST_CHALLENGE", "HOST_PROOF"):
        msg = r.rest()
        _registration(name, msg, REGISTRATION_LEN[name], "LINK-12")
        out["message"] = msg.hex()
    elif name == "READY":
        pass
    elif name in ("OPEN", "INCOMING"):
        out["session"] = r.take(SESSION_ID_LEN, "session id").hex()
        if name == "OPEN":
            out["hostKey"] = r.take(KEY_LEN, "host key").hex()
        out["handshake"] = _handshake(r).hex()
    elif name == "DATA":
        out["session"] = r.take(SESSION_ID_LEN, "session id").hex()
        payload = r.rest()
        if not payload:
            raise FrameError("EmptyPayload", "LINK-33")
        out["payload"] = payload.hex()
    elif name == "CLOSE":
        out["session"] = r.take(SESSION_ID_LEN, "session id").hex()
        out["code"] = r.uint(2, "code")                         # any value decodes
    elif name in ("PING", "PONG"):
        out["value"] = str(r.uint(8, "value"))
    elif name == "GOAWAY":
        out["code"] = r.uint(2, "code")                         # any value decodes
        reason = r.take(r.u8("reason length"), "reason")
        try:
            out["reason"] = reason.decode("utf-8")              # strict: no overlong, no surrogates
        except UnicodeDecodeError as e:
            raise FrameError("BadUtf8", "LINK-34", str(e)) from None
    if r.pos != len(frame):                                     # step 6
        raise FrameError("TrailingBytes", "LINK-4", f"{len(frame) - r.pos} bytes after the last field")
    return out


# ---------------------------------------------------------------- encode (LINK-30)

def encode(fields: dict) -> bytes:
    """Frame bytes of `fields` (the `decoded` convention); refuses a field that breaks a
    constraint of section 3.2 (LINK-30), or a missing or extra field."""
    name = fields["type"]
    if name not in TYPE_BYTE:
        raise Mismatch(f"encoder: unknown frame type {name!r}")
    layout = {
        "HELLO": ("version", "role", "workspace", "credential", "registration"),
        "HOST_CHALLENGE": ("message",), "HOST_PROOF": ("message",), "READY": (),
        "OPEN": ("session", "hostKey", "handshake"), "INCOMING": ("session", "handshake"),
        "DATA": ("session", "payload"), "CLOSE": ("session", "code"),
        "PING": ("value",), "PONG": ("value",), "GOAWAY": ("code", "reason"),
    }[name]
    if set(fields) != {"type", *layout}:
        raise Mismatch(f"encoder: {name} has fields {sorted(fields)}, expected {sorted(('type',) + layout)}")

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise Mismatch(f"encoder refuses {name}: {what} (LINK-30)")

    def fixed(key: str, n: int) -> bytes:
        b = unhex(fields[key])
        need(len(b) == n, f"{key} of {len(b)} bytes, not {n}")
        return b

    def uint(key: str, n: int) -> bytes:
        v = fields[key]
        need(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << (8 * n),
             f"{key} {v!r} is not a u{8 * n}")
        return v.to_bytes(n, "big")

    out = bytearray([TYPE_BYTE[name]])
    if name == "HELLO":
        out += uint("version", 1)
        need(fields["role"] in ROLE_BYTE, f"role {fields['role']!r}")
        out.append(ROLE_BYTE[fields["role"]])
        ws = fields["workspace"].encode("utf-8")
        need(workspace_ok(ws), "workspace breaks LINK-32")
        cred = unhex(fields["credential"])
        need(16 <= len(cred) <= 255, f"credential of {len(cred)} bytes")
        reg = unhex(fields["registration"])
        need(len(reg) == (REGISTRATION_LEN["HELLO"] if fields["role"] == "host" else 0),
             f"registration of {len(reg)} bytes for a {fields['role']} (LINK-9)")
        out += bytes([len(ws)]) + ws + bytes([len(cred)]) + cred + reg
    elif name in ("HOST_CHALLENGE", "HOST_PROOF"):
        out += fixed("message", REGISTRATION_LEN[name])
    elif name in ("OPEN", "INCOMING"):
        out += fixed("session", SESSION_ID_LEN)
        if name == "OPEN":
            out += fixed("hostKey", KEY_LEN)
        hs = unhex(fields["handshake"])
        need(1 <= len(hs) <= MAX_HANDSHAKE_LEN, f"handshake of {len(hs)} bytes (LINK-15)")
        out += hs
    elif name == "DATA":
        out += fixed("session", SESSION_ID_LEN)
        payload = unhex(fields["payload"])
        need(1 <= len(payload) <= MAX_FRAME_LEN - 9, f"payload of {len(payload)} bytes (LINK-33, LINK-5)")
        out += payload
    elif name == "CLOSE":
        out += fixed("session", SESSION_ID_LEN) + uint("code", 2)
    elif name in ("PING", "PONG"):
        v = fields["value"]
        need(isinstance(v, str) and v.isdigit() and v == str(int(v)) and int(v) < 1 << 64,
             f"value {v!r} is not a decimal u64")
        out += int(v).to_bytes(8, "big")
    elif name == "GOAWAY":
        reason = fields["reason"].encode("utf-8")
        need(len(reason) <= 255, f"reason of {len(reason)} bytes (LINK-27)")
        out += uint("code", 2) + bytes([len(reason)]) + reason
    return bytes(out)


# ---------------------------------------------------------------- the vector file

def _repeat(prefix_hex: str, rep) -> str:
    """`prefix` followed by `count` copies of `hex` (the file's Repeat note)."""
    if rep is None:
        return prefix_hex
    if not isinstance(rep, dict) or set(rep) != {"count", "hex"} or not isinstance(rep["count"], int) \
            or rep["count"] < 1 or not rep["hex"]:
        raise Mismatch(f"malformed repeat {rep!r}")
    unhex(rep["hex"])
    return prefix_hex + rep["hex"] * rep["count"]


def frame_of(t: dict) -> bytes:
    return unhex(_repeat(t["frame"], t.get("frameRepeat")))


def decoded_of(t: dict) -> dict:
    """`decoded` with every `<field>Repeat` folded into `<field>`."""
    d = t["decoded"]
    if not isinstance(d, dict):
        raise Mismatch("`decoded` is not an object")
    out = {k: v for k, v in d.items() if not k.endswith("Repeat")}
    for k, rep in d.items():
        if k.endswith("Repeat"):
            base = k[:-len("Repeat")]
            if base not in out:
                raise Mismatch(f"`{k}` without `{base}`")
            out[base] = _repeat(out[base], rep)
    return out


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 120 else s[:100] + f"...({len(s)} chars)"


def _check_valid(t: dict, where: str) -> None:
    if "error" in t:
        raise Mismatch(f"{where}: a valid case carries an error")
    frame, want = frame_of(t), decoded_of(t)
    try:
        got = decode(frame)
    except FrameError as e:
        raise Mismatch(f"{where}: the frame does not decode: {e}") from None
    if set(got) != set(want):
        raise Mismatch(f"{where}: decoded fields {sorted(got)}, vector has {sorted(want)}")
    for k in got:
        if got[k] != want[k]:
            raise Mismatch(f"{where}: {k} decodes as {_short(got[k])}, vector says {_short(want[k])}")
    enc = encode(want)
    if enc != frame:
        raise Mismatch(f"{where}: encoding `decoded` gives\n    python {_short(enc.hex())}"
                       f"\n    vector {_short(frame.hex())}")


def _check_invalid(t: dict, where: str) -> None:
    err = t.get("error")
    if not isinstance(err, dict) or set(err) != {"name", "requirement", "closeCode"}:
        raise Mismatch(f"{where}: an invalid case needs error {{name, requirement, closeCode}}")
    if "decoded" in t:
        raise Mismatch(f"{where}: an invalid case carries decoded fields")
    if err["closeCode"] not in CLOSE_CODES:
        raise Mismatch(f"{where}: closeCode {err['closeCode']!r} is not in the registry (6.2)")
    try:
        got = decode(frame_of(t))
    except FrameError as e:
        failure = e
    else:
        raise Mismatch(f"{where}: vector says {err['name']}, but the frame decodes: {_short(got)}")
    if failure.name != err["name"]:
        raise Mismatch(f"{where}: the frame fails with {failure}, vector says {err['name']}")
    if failure.requirement != err["requirement"]:
        raise Mismatch(f"{where}: {failure.name} enforces {failure.requirement} here "
                       f"(section 3.3), vector says {err['requirement']}")
    if failure.close_code != err["closeCode"]:
        raise Mismatch(f"{where}: {failure.name} is answered with GOAWAY {failure.close_code} "
                       f"(section 3.3), vector says {err['closeCode']}")


def _check_spec_examples(root: Path, tests: list) -> None:
    """Section 3.11 of the spec writes out cases 2, 16 and 22 byte for byte."""
    path = Path(root) / "spec" / "03-relay-link.md"
    if not path.exists():
        raise Mismatch(f"{path}: missing (its worked examples are checked against the vectors)")
    section = path.read_text(encoding="utf-8").split("## 3.11", 1)[-1].split("\n## ", 1)[0]
    by_id = {t["tcId"]: t for t in tests}
    chunks = re.split(r"\bCase (\d+)\b", section)
    checked = 0
    for tc_id, chunk in zip(chunks[1::2], chunks[2::2]):
        rows = re.findall(r"^\| \d+ \| `([0-9a-f]+)` \|", chunk, re.M)
        blocks = [re.sub(r"\s+", "", b) for b in re.findall(r"```text\n(.*?)```", chunk, re.S)]
        if not rows and not blocks:
            continue
        t = by_id.get(int(tc_id))
        want = t["frame"] if t is not None and "frameRepeat" not in t else None
        for what, got in [("byte table", "".join(rows))] * bool(rows) + [("frame", b) for b in blocks]:
            if got != want:
                raise Mismatch(f"{path.name} section 3.11: the {what} of case {tc_id} is not "
                               f"the frame of tcId {tc_id}\n    spec   {got}\n    vector {want}")
        checked += 1
    if checked < 3:
        raise Mismatch(f"{path.name} section 3.11: found {checked} worked examples with bytes, expected 3")


# The file's flags that name frame types, with the type bytes they stand for.
TYPE_FLAGS = {
    "Hello": {0x01}, "Registration": {0x02, 0x03}, "Ready": {0x04}, "Session": {0x10, 0x11},
    "Data": {0x12}, "Close": {0x13}, "Keepalive": {0x20, 0x21}, "GoAway": {0x30},
}


def _check_flags(t: dict, notes: dict, where: str) -> None:
    """The flags a case carries are explained in `notes`, and the checkable ones hold."""
    flags = t.get("flags")
    if not isinstance(flags, list) or not flags:
        raise Mismatch(f"{where}: no flags")
    unknown = [f for f in flags if f not in notes]
    if unknown:
        raise Mismatch(f"{where}: flags {unknown} are not explained in `notes`")

    def claim(ok: bool, what: str) -> None:
        if not ok:
            raise Mismatch(f"{where}: flag {what} does not hold")

    claim(("Repeat" in flags) == ("frameRepeat" in t), "Repeat (set exactly when `frameRepeat` is given)")
    first = unhex(t["frame"])[:1]
    type_flags = [f for f in flags if f in TYPE_FLAGS]
    for f in type_flags:
        claim(bool(first) and first[0] in TYPE_FLAGS[f], f"{f} (the frame's type byte)")
    if t.get("result") == "valid":
        claim(len(type_flags) == 1, "of the frame type (exactly one on a valid case)")
    elif isinstance(t.get("error"), dict):
        claim(t["error"].get("name") in flags, "named after the error (an invalid case carries it)")
    if "VersionNotChecked" in flags:
        claim(t["decoded"].get("version") != 1, "VersionNotChecked (a HELLO version other than 1)")
    frame = unhex(t["frame"])
    other_version = len(frame) >= 2 and frame[0] == 0x01 and frame[1] != 0x01
    claim(("VersionFirst" in flags) == other_version, "VersionFirst (exactly a HELLO whose version byte is not 1)")
    answer = t.get("relayAnswer")
    if other_version:
        if answer != {"closeCode": "UNSUPPORTED_VERSION", "requirement": "LINK-41"}:
            raise Mismatch(f"{where}: a HELLO of version {frame[1]} needs relayAnswer UNSUPPORTED_VERSION (LINK-41), got {answer!r}")
    elif answer is not None:
        raise Mismatch(f"{where}: relayAnswer on a frame that is not a HELLO of another version")


def run(root: Path, data: dict | None = None) -> dict:
    data = load(root, FILE, data)
    tests = check_header(data, FILE)
    notes = data.get("notes") if isinstance(data.get("notes"), dict) else {}
    result = Result(FILE, "valid", "invalid")
    for t in tests:
        where = f"{FILE} tcId {t['tcId']}"
        with checking(where):
            _check_flags(t, notes, where)
            if t.get("result") == "valid":
                _check_valid(t, where)
                result.add("valid")
            elif t.get("result") == "invalid":
                _check_invalid(t, where)
                result.add("invalid")
            else:
                raise Mismatch(f"{where}: result {t.get('result')!r}")
    _check_spec_examples(root, tests)
    return result.as_dict()


# ---------------------------------------------------------------- self-test mutants

def mutants(root: Path) -> Iterator[tuple[str, dict]]:
    """Altered copies of the vector file; `run` must raise Mismatch on every one."""
    base = load(root, FILE)

    variant = partial(variant_of, base)

    yield "tcId 1: role host -> controller", variant(1, lambda t, d: t["decoded"].update(role="controller"))
    yield "tcId 3: HELLO version 2 -> 1", variant(3, lambda t, d: (t["decoded"].update(version=1), t.update(flags=["Hello"])))
    yield "tcId 3: relayAnswer dropped", variant(3, lambda t, d: t.pop("relayAnswer"))
    yield "tcId 16: CLOSE code 20 -> 21", variant(16, lambda t, d: t["decoded"].update(code=21))
    yield "tcId 19: PING value + 1", variant(19, lambda t, d: t["decoded"].update(value=str(int(t["decoded"]["value"]) + 1)))
    yield "tcId 22: GOAWAY reason changed", variant(22, lambda t, d: t["decoded"].update(reason="slow reader - 4 MiB queued"))
    yield "tcId 13: extra decoded field", variant(13, lambda t, d: t["decoded"].update(hostKey="00" * 32))
    yield "tcId 2: a byte appended to a controller HELLO, still valid", variant(2, lambda t, d: t.update(frame=t["frame"] + "00"))
    yield "tcId 15: frameRepeat one byte short of payloadRepeat", variant(15, lambda t, d: t["frameRepeat"].update(count=65534))
    yield "tcId 55: frameRepeat shortened to 65544 bytes, still TooLarge", variant(55, lambda t, d: t["frameRepeat"].update(count=65535))
    yield "tcId 56: TooLarge renamed UnknownType (size before type)", variant(56, lambda t, d: (t["error"].update(name="UnknownType", closeCode="PROTOCOL_ERROR", requirement="LINK-4"), t["flags"].append("UnknownType")))
    yield "tcId 60: BadRole renamed BadWorkspace (role read first)", variant(60, lambda t, d: (t["error"].update(name="BadWorkspace", requirement="LINK-32"), t["flags"].append("BadWorkspace")))
    yield "tcId 73: BadRegistrationLength renamed Truncated (rest field)", variant(73, lambda t, d: (t["error"].update(name="Truncated", requirement="LINK-4"), t["flags"].append("Truncated")))
    yield "tcId 68: requirement LINK-9 -> LINK-12", variant(68, lambda t, d: t["error"].update(requirement="LINK-12"))
    yield "tcId 24: closeCode PROTOCOL_ERROR -> FRAME_TOO_LARGE", variant(24, lambda t, d: t["error"].update(closeCode="FRAME_TOO_LARGE"))
    yield "tcId 85: closeCode not in the registry", variant(85, lambda t, d: t["error"].update(closeCode="MALFORMED_FRAME"))
    yield "tcId 14: flagged Close instead of Data", variant(14, lambda t, d: t.update(flags=["Close", "MinLength"]))
    yield "tcId 15: Repeat flag dropped", variant(15, lambda t, d: t.update(flags=["Data", "MaxLength"]))
    yield "numberOfTests off by one", variant(1, lambda t, d: d.update(numberOfTests=d["numberOfTests"] - 1))
    yield "tcId 5 duplicated as tcId 4", variant(5, lambda t, d: t.update(tcId=4))
