"""Independent cross-check of vectors/records.json against spec/04-secure-channel.md 4.13.

The record codec, the sender, the receiver and the reassembly below are written from
section 4.13 of the spec (CHAN-31 to CHAN-36), its error table (section 4.10), the record
table and limits of chapter 6, CMD-2 and, for OUTPUT records, the OUTPUT body table of
4.13.2 with CMD-34, CMD-41 and CMD-76 alone; they share no code with the reference
implementation.

What is checked:

- header: `vectors` is "records", `numberOfTests` equals the number of cases, and the
  tcIds run 1, 2, 3, ... through the sections `records`, `invalid`, `segmentation`,
  `accounting` and `reassembly` in that order; every case names one of CHAN-31 to CHAN-36
  as its `requirement` and says `result` valid or invalid;
- the spec is the one this checker was written from: the record types of 4.13.2 are
  MESSAGE, PART, WINDOW and OUTPUT, the OUTPUT body is stream, flags, N (1..=64), process
  id and output bytes, and CMD-76 lets a record carry 65515 bytes less the process id;
- `records`: the plaintext decodes (CHAN-32) to exactly `decoded`, encoding `decoded`
  gives the plaintext, and a MESSAGE, PART or OUTPUT has `size` plaintext + 16 (CHAN-34)
  while a WINDOW has none; an OUTPUT with more than 64 bytes of data is given by its head
  and the length of its data (the pattern), and no plaintext is over 65519 bytes;
- `invalid`: decoding refuses the plaintext (CHAN-32: empty, unknown type, empty PART,
  WINDOW body not 4 bytes, increment outside 4096..258048, an OUTPUT shorter than 3
  bytes, with a stream other than 0/1, a reserved flag bit, N outside 1..=64 or past the
  end, a process id that is not UTF-8, or no output bytes without capReached), and
  `error` is the row of section 4.10 for it (name, requirement, close code);
- `segmentation` and `accounting`: one side of one session is simulated event by event
  and every event must match the file member for member: what it sends, what it makes of
  what it receives, its grants and its `state`. The normative rules are checked on their
  own as well: no MESSAGE, PART or OUTPUT larger than the window before it, no body over
  65518, PARTs not empty, a message's records carry its bytes in order and are not
  interleaved with another message's (CHAN-32, CHAN-34); only a host sends OUTPUT, the
  OUTPUT records of a chunk of output carry its stream, process id and bytes in order,
  the header in each, capReached on the last alone, and messages and output leave in the
  order queued (CHAN-32, CMD-41, CMD-76); a host refuses an OUTPUT from its controller and
  a controller counts OUTPUT records against its grants and holds them until consumed
  like messages (CHAN-32, CHAN-34); a host that listed channel.flow sends
  nothing before the controller's first message and decides from it (CHAN-31); a
  controller's first transport message is a WINDOW (CHAN-31); the receiver refuses
  records beyond the initial window plus its grants (CHAN-34) and a WINDOW that takes the
  window past 258048 (CHAN-35); a grant keeps the credit at or below 258048 (CHAN-35) and,
  when the credit is below 8192, brings it back to at least 8192 (CHAN-36); a consumed
  size is the size of a message held. Where the sender splits and when it grants follow
  the reference policy stated in the last paragraph of section 4.13 (informative);
- `reassembly`: a receiver reassembles the records into the messages of `results`, up to
  16 MiB, and answers a longer message TooLarge (CMD-2) once its MESSAGE arrives, the
  session going on (CHAN-33);
- the last paragraph of section 4.13 names `vectors/records.json`, each of its five
  sections and OUTPUT records.

`run(root, data=None)` raises `Mismatch` on the first disagreement and otherwise returns
the counts; `mutants(root)` yields altered copies of the file that `run` must reject.
"""

import copy
import hashlib
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from .common import Mismatch, checking, load, unhex

FILE = "records.json"
SECTIONS = ["records", "invalid", "segmentation", "accounting", "reassembly"]
REQUIREMENTS = {f"CHAN-{n}" for n in range(31, 37)}

# Chapter 6 limits and section 4.13.
TAG = 16                        # a record's size is its plaintext plus the AEAD tag
INITIAL_WINDOW = 16384          # CHAN-34
MAX_CREDIT = 258048             # CHAN-35, largest increment (CHAN-32)
MIN_INCREMENT = 4096            # CHAN-32
MIN_CREDIT = 8192               # CHAN-36
MAX_MESSAGE = 16777216          # CHAN-33
MAX_PLAINTEXT = 65519           # CHAN-16
MAX_BODY = MAX_PLAINTEXT - 1
MIN_PART = 4096                 # the reference sender's smallest PART or OUTPUT piece (informative)
SHORT = 64                      # the file writes plaintexts and messages up to this in hex

TYPES = {0x00: "MESSAGE", 0x01: "PART", 0x02: "WINDOW", 0x03: "OUTPUT"}   # 4.13.2, registry 6.3
TYPE_BYTE = {v: k for k, v in TYPES.items()}

# The OUTPUT body of section 4.13.2: stream, flags, N, process id (N bytes), output bytes.
STREAMS = {0x00: "stdout", 0x01: "stderr"}
STREAM_BYTE = {v: k for k, v in STREAMS.items()}
CAP_REACHED = 0x01              # flag bit 0; bits 1-7 are zero
MAX_PROCESS_ID = 64             # CMD-34: 1 to 64 bytes
OUTPUT_HEAD = 3                 # stream, flags, N
MAX_OUTPUT_DATA = MAX_PLAINTEXT - 1 - OUTPUT_HEAD   # CMD-76: 65515 bytes less the process id

# Section 4.10, rows of the flow-control errors (read from the spec by _spec_errors).
FLOW_ERRORS = ("BadRecord", "WindowExceeded", "WindowOverflow")
FLOW_CONTROL_ERROR = ("FLOW_CONTROL_ERROR", 42)
TOO_LARGE = {"name": "TooLarge", "requirement": "CMD-2"}    # CMD-2


class Refused(Exception):
    """The receiver closes the session: `name` is the error of section 4.10."""

    def __init__(self, name: str, why: str):
        super().__init__(f"{name}: {why}")
        self.name = name


def decode_output(body: bytes) -> dict:
    """An OUTPUT body (section 4.13.2) as {stream, capReached, processId, data}; Refused
    when it breaks the layout (CHAN-32)."""
    if len(body) < OUTPUT_HEAD:
        raise Refused("BadRecord", f"OUTPUT body of {len(body)} bytes")
    stream, flags, n = body[0], body[1], body[2]
    if stream not in STREAMS:
        raise Refused("BadRecord", f"OUTPUT stream 0x{stream:02x}")
    if flags & ~CAP_REACHED:
        raise Refused("BadRecord", f"OUTPUT flags 0x{flags:02x}")
    if not 1 <= n <= MAX_PROCESS_ID or OUTPUT_HEAD + n > len(body):
        raise Refused("BadRecord", f"OUTPUT process id length {n} in a body of {len(body)}")
    try:
        # Python's decoder is strict: no overlong forms, no surrogates.
        process_id = body[OUTPUT_HEAD:OUTPUT_HEAD + n].decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("BadRecord", "OUTPUT process id is not UTF-8") from None
    data = bytes(body[OUTPUT_HEAD + n:])
    cap = bool(flags & CAP_REACHED)
    if not data and not cap:
        raise Refused("BadRecord", "OUTPUT without output bytes or capReached")
    return {"stream": STREAMS[stream], "capReached": cap, "processId": process_id, "data": data}


def decode(p: bytes):
    """A record plaintext as (type name, body bytes, increment or OUTPUT fields);
    Refused on CHAN-32."""
    if not p:
        raise Refused("BadRecord", "empty plaintext")
    kind = TYPES.get(p[0])
    body = p[1:]
    if kind is None:
        raise Refused("BadRecord", f"unknown type 0x{p[0]:02x}")
    if kind == "PART" and not body:
        raise Refused("BadRecord", "PART without a body")
    if kind == "WINDOW":
        if len(body) != 4:
            raise Refused("BadRecord", f"WINDOW body of {len(body)} bytes")
        increment = int.from_bytes(body, "big")
        if not MIN_INCREMENT <= increment <= MAX_CREDIT:
            raise Refused("BadRecord", f"WINDOW increment {increment}")
        return kind, increment
    if kind == "OUTPUT":
        return kind, decode_output(body)
    return kind, body


def process_id_bytes(process_id) -> bytes:
    """A process id as its UTF-8 bytes, 1 to 64 of them (CMD-34)."""
    if not isinstance(process_id, str):
        raise Mismatch(f"process id {process_id!r} is not a string")
    b = process_id.encode("utf-8")
    if not 1 <= len(b) <= MAX_PROCESS_ID:
        raise Mismatch(f"process id {process_id!r} of {len(b)} bytes (CMD-34: 1 to 64)")
    return b


def encode(kind: str, value) -> bytes:
    if kind == "WINDOW":
        return bytes([TYPE_BYTE[kind]]) + value.to_bytes(4, "big")
    if kind == "OUTPUT":
        pid = process_id_bytes(value["processId"])
        if value["stream"] not in STREAM_BYTE or not isinstance(value["capReached"], bool):
            raise Mismatch(f"OUTPUT fields {value}")
        flags = CAP_REACHED if value["capReached"] else 0
        return bytes([TYPE_BYTE[kind], STREAM_BYTE[value["stream"]], flags, len(pid)]) \
            + pid + value["data"]
    return bytes([TYPE_BYTE[kind]]) + value


_CYCLE = bytes(range(251))


def pattern(offset: int, length: int) -> bytes:
    """Bytes offset .. offset + length of the file's pattern: byte i is i mod 251."""
    start = offset % 251
    reps = (start + length) // 251 + 1
    return (_CYCLE * reps)[start:start + length]


def describe(message: bytes) -> dict:
    d = {"length": len(message)}
    if len(message) <= SHORT:
        d["hex"] = message.hex()
    else:
        d["sha256"] = hashlib.sha256(message).hexdigest()
    return d


def described(d: dict) -> bytes:
    """The bytes `describe` wrote: its hex, or the pattern of its length (the file's
    convention for long output data) when the SHA-256 matches."""
    data = unhex(d["hex"]) if "hex" in d else pattern(0, d["length"])
    if describe(data) != d:
        raise Mismatch(f"{d} does not describe {len(data)} bytes")
    return data


def output_fields(e: dict, data: bytes) -> dict:
    """The OUTPUT fields of an event or a decoded record, with `data`."""
    return {"stream": e["stream"], "capReached": e["capReached"],
            "processId": e["processId"], "data": data}


# ---------------------------------------------------------------- spec tables

def _spec_errors(root: Path) -> dict:
    """Section 4.10: error name -> {name, requirement, closeCode} for the flow errors."""
    path = Path(root) / "spec" / "04-secure-channel.md"
    text = path.read_text(encoding="utf-8")
    errors = {}
    for m in re.finditer(r"^\|[^|]*\| (CHAN-\d+) \| `([A-Z_]+)` \((\d+)\) \| `(\w+)` \|$", text, re.M):
        req, code, number, name = m.groups()
        if name in FLOW_ERRORS:
            if (code, int(number)) != FLOW_CONTROL_ERROR:
                raise Mismatch(f"{path.name} 4.10: {name} is closed with {code} ({number})")
            errors[name] = {"name": name, "requirement": req, "closeCode": code}
    if set(errors) != set(FLOW_ERRORS):
        raise Mismatch(f"{path.name} 4.10: rows for {sorted(set(FLOW_ERRORS) - set(errors))} not found")
    return errors


def _section_413(root: Path) -> tuple[str, str]:
    path = Path(root) / "spec" / "04-secure-channel.md"
    return path.name, path.read_text(encoding="utf-8").split("## 4.13", 1)[-1].split("\n## ", 1)[0]


def _check_spec_paragraph(root: Path) -> None:
    """The last paragraph of 4.13 names the file, its five sections and OUTPUT records."""
    name, section = _section_413(root)
    paragraphs = [p for p in section.split("\n\n") if "vectors/records.json" in p]
    if not paragraphs:
        raise Mismatch(f"{name} 4.13 does not name vectors/records.json")
    missing = [s for s in SECTIONS + ["OUTPUT"] if f"`{s}`" not in paragraphs[-1]]
    if missing:
        raise Mismatch(f"{name} 4.13: the paragraph on vectors/records.json does not name {missing}")


def _check_spec_tables(root: Path) -> None:
    """The record table and the OUTPUT body table of 4.13.2, and the data limit of CMD-76,
    are the ones this checker was written from."""
    name, section = _section_413(root)
    types = {int(b, 16): n for b, n in re.findall(r"^\| `0x([0-9a-f]{2})` \| `([A-Z]+)` \|", section, re.M)}
    if types != TYPES:
        raise Mismatch(f"{name} 4.13.2: record types {types}, this checker knows {TYPES}")
    table = section.split("An `OUTPUT` body:", 1)[-1].strip().split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()[2:]]
    want = [("0", "1", "stream: `0x00` stdout, `0x01` stderr"),
            ("1", "1", "flags: bit 0 `capReached`"), ("2", "1", "N, the length of the process id, 1..=64"),
            ("3", "N", "the process id, UTF-8"), ("3 + N", "rest", "the output bytes; at least 1 byte unless `capReached`")]
    if len(rows) != len(want) or any(r[:2] != list(w[:2]) or not r[2].startswith(w[2]) for r, w in zip(rows, want)):
        raise Mismatch(f"{name} 4.13.2: the OUTPUT body table is not the one this checker knows: {rows}")
    cmd = (Path(root) / "spec" / "05-command-protocol.md").read_text(encoding="utf-8")
    m = re.search(r"\*\*\[CMD-76\]\*\*(.*?)(?=\n- \*\*\[)", cmd, re.S)
    limit = m and re.search(r"up to what one record holds \((\d+) (\d{3}) bytes less the process id\)",
                            re.sub(r"\s+", " ", m.group(1)))
    if not limit or int(limit.group(1) + limit.group(2)) != MAX_OUTPUT_DATA:
        raise Mismatch(f"05-command-protocol.md CMD-76: the data limit is not {MAX_OUTPUT_DATA} bytes less the process id")


# ---------------------------------------------------------------- one side of a session

class Queued:
    """A message, or a chunk of a command's output for OUTPUT records (CMD-76), in a
    sender's queue: `data` its bytes, `sent` how many of them have left, `output` the
    chunk's {stream, capReached, processId} (None for a message)."""

    def __init__(self, data: bytes, output: dict | None = None):
        self.data, self.sent, self.output = data, 0, output


class Side:
    """One side of one session (section 4.13), with the reference policy of its last
    paragraph for splitting and granting."""

    def __init__(self, role: str, target: int, errors: dict, where: str):
        if role not in ("host", "controller"):
            raise Mismatch(f"{where}: role {role!r}")
        if not isinstance(target, int) or not INITIAL_WINDOW <= target <= MAX_CREDIT:
            raise Mismatch(f"{where}: target {target!r} outside 16384..258048")
        self.role, self.target, self.errors, self.where = role, target, errors, where
        # A host that listed channel.flow decides on the first message (CHAN-31); a
        # controller that takes part uses records from the start.
        self.framing = "undecided" if role == "host" else "records"
        self.window = INITIAL_WINDOW
        self.credit = INITIAL_WINDOW
        self.granted = INITIAL_WINDOW
        self.received = 0
        self.outbox = []            # Queued messages and chunks of output, in order
        self.sent_any = False
        self.first_grant = role == "controller"
        self.reassembly = bytearray()
        self.length = 0             # bytes of the message being received
        self.discarding = False
        self.held = []              # sizes of messages and output handed up, not yet consumed
        self.closed = False

    def fail(self, what: str):
        raise Mismatch(f"{self.where}: {what}")

    def state(self) -> dict:
        s = {"framing": self.framing, "queued": sum(len(q.data) - q.sent for q in self.outbox)}
        if self.framing == "records":
            s.update(window=self.window, credit=self.credit, granted=self.granted,
                     received=self.received)
        return s

    # --- sending

    def next_record(self):
        """The reference sender: the next (type, body or OUTPUT fields, bytes of the front
        item it carries) or None to wait."""
        q = self.outbox[0]
        rest = len(q.data) - q.sent
        # A message's record is the type byte and a body; an OUTPUT's repeats the header
        # (stream, flags, N, process id) before every piece of data (4.13.2).
        head = 0 if q.output is None else OUTPUT_HEAD + len(process_id_bytes(q.output["processId"]))
        if self.window < 1 + TAG + head:
            return None                 # not even the rest of nothing fits (CHAN-34)
        room = min(self.window - 1 - TAG - head, MAX_BODY - head)
        last = rest <= room
        if not last and room < MIN_PART:
            return None                 # the reference waits rather than send a sliver
        take = rest if last else room
        piece = q.data[q.sent:q.sent + take]
        if q.output is None:
            return ("MESSAGE" if last else "PART"), piece, take
        # CMD-41: capReached rides the piece that reaches the cap, the chunk's last.
        return "OUTPUT", {**q.output, "capReached": q.output["capReached"] and last, "data": piece}, take

    def send(self) -> dict:
        if self.framing == "undecided":
            return {"records": []}       # CHAN-31: nothing before the first message
        if self.framing == "v1":
            if any(q.output is not None for q in self.outbox):
                self.fail("output queued in a version 1 session (CMD-76 needs records)")
            out = [q.data for q in self.outbox]
            self.outbox = []
            return {"messages": [{"length": len(m), **({"plaintext": m.hex()} if len(m) <= SHORT else {})}
                                 for m in out]}
        records = []
        while self.outbox:
            r = self.next_record()
            if r is None:
                break
            kind, value, take = r
            p = encode(kind, value)
            size = len(p) + TAG
            body = len(p) - 1
            # The normative rules, apart from the policy (CHAN-32, CHAN-34).
            if size > self.window or body > MAX_BODY or (kind == "PART" and not body):
                self.fail(f"the sender would break CHAN-32/CHAN-34 with {kind} of {body}")
            try:
                if decode(p)[1] != value:
                    self.fail(f"the {kind} sent does not decode to what was meant")
            except Refused as e:
                self.fail(f"the sender would send a record it must refuse: {e}")
            self.window -= size
            self.sent_any = True
            q = self.outbox[0]
            q.sent += take
            if q.sent == len(q.data) and kind != "PART":
                self.outbox.pop(0)
            entry = {"type": kind, "bodyLength": body, "size": size, "window": self.window}
            if kind == "OUTPUT":
                entry.update(stream=value["stream"], capReached=value["capReached"],
                             processId=value["processId"], dataLength=len(value["data"]))
            if len(p) <= SHORT:
                entry["plaintext"] = p.hex()
            records.append(entry)
        return {"records": records}

    def queue_output(self, e: dict) -> None:
        """A host queues a chunk of a command's output (CMD-76): OUTPUT records exist in
        sessions with records only, and only a host sends them (CHAN-32)."""
        if self.role != "host" or self.framing != "records":
            self.fail(f"a {self.role} in a {self.framing} session queues output")
        fields = output_fields(e, b"")
        encode("OUTPUT", fields)        # stream, capReached and a 1..64-byte process id
        del fields["data"]
        self.outbox.append(Queued(_message_of(e["data"]), fields))

    # --- receiving

    def receive(self, p: bytes) -> dict:
        if self.framing == "undecided":
            # CHAN-31: exactly 5 bytes starting 0x02 is the controller's WINDOW.
            self.framing = "records" if len(p) == 5 and p[0] == 0x02 else "v1"
        if self.framing == "v1":
            return {"got": {"kind": "message", **describe(p), "size": 0}}
        try:
            kind, value = decode(p)
            if kind == "WINDOW":
                self.window += value
                if self.window > MAX_CREDIT:
                    raise Refused("WindowOverflow", f"window {self.window}")      # CHAN-35
                return {"got": {"kind": "nothing"}}
            size = len(p) + TAG
            self.received += size
            if self.received > self.granted:
                raise Refused("WindowExceeded", f"{self.received} > {self.granted}")  # CHAN-34
            if kind == "OUTPUT" and self.role == "host":
                raise Refused("BadRecord", "OUTPUT from the controller")             # CHAN-32
        except Refused as e:
            self.closed = True
            return {"error": self.errors[e.name]}
        if kind == "OUTPUT":
            # Held for the application like a message, consumed when it lets go (4.13.3).
            self.held.append(size)
            return {"got": {"kind": "output", "stream": value["stream"],
                            "capReached": value["capReached"], "processId": value["processId"],
                            "data": describe(value["data"]), "size": size}}
        body = value
        self.length += len(body)
        if self.length > MAX_MESSAGE:
            self.discarding = True
            self.reassembly = bytearray()
        elif not self.discarding:
            self.reassembly += body
        if kind == "PART":
            self.credit -= size         # moved into the reassembly buffer: consumed
            return {"got": {"kind": "nothing"}}
        length, message, discarded = self.length, bytes(self.reassembly), self.discarding
        self.length, self.reassembly, self.discarding = 0, bytearray(), False
        if discarded:
            self.credit -= size         # discarded: consumed (CHAN-33)
            return {"got": {"kind": "tooLarge", "length": length, "error": dict(TOO_LARGE)}}
        self.held.append(size)
        return {"got": {"kind": "message", **describe(message), "size": size}}

    def consume(self, size: int) -> None:
        if self.framing != "records":
            if size != 0:
                self.fail("a version 1 message has size 0")
            return
        if size not in self.held:
            self.fail(f"consume {size}: no message or output of that size is held ({self.held})")
        self.held.remove(size)
        self.credit -= size

    # --- granting

    def grant(self) -> dict:
        if self.framing != "records":
            return {"increment": None}
        t, c = self.target, self.credit
        if self.first_grant:
            self.first_grant = False
            if self.sent_any:
                self.fail("a controller sent something before its first WINDOW (CHAN-31)")
            increment = max(t - INITIAL_WINDOW, MIN_INCREMENT)
        elif c < MIN_CREDIT:
            increment = max(t - c, MIN_INCREMENT, MIN_CREDIT - c)
        elif t - c >= max(MIN_INCREMENT, t // 4):
            increment = t - c
        else:
            increment = None
        if increment is not None:
            increment = min(increment, MAX_CREDIT - c)
            if increment < MIN_INCREMENT:
                increment = None
        if increment is None:
            if c < MIN_CREDIT:
                self.fail(f"credit {c} < 8192 and no grant (CHAN-36)")
            return {"increment": None}
        self.credit += increment
        self.granted += increment
        # The normative rules, apart from the policy.
        if self.credit > MAX_CREDIT:
            self.fail(f"credit {self.credit} > 258048 (CHAN-35)")
        if c < MIN_CREDIT and self.credit < MIN_CREDIT:
            self.fail(f"grant leaves credit {self.credit} < 8192 (CHAN-36)")
        record = encode("WINDOW", increment)
        if decode(record) != ("WINDOW", increment):
            self.fail(f"WINDOW {increment} does not decode")
        return {"increment": increment, "record": record.hex()}


def _message_of(m: dict) -> bytes:
    if set(m) == {"hex"}:
        return unhex(m["hex"])
    if set(m) == {"length"} and isinstance(m["length"], int):
        return pattern(0, m["length"])
    raise Mismatch(f"a message is given by hex or by length, not {m}")


OUTPUT_INPUTS = ("stream", "capReached", "processId")
INPUTS = {"queue": ("message",), "output": (*OUTPUT_INPUTS, "data"), "send": (),
          "receive": ("plaintext", "type", "bodyLength", *OUTPUT_INPUTS, "dataLength"),
          "consume": ("size",), "grant": ()}


def _received_plaintext(e: dict, side: Side) -> bytes:
    """A receive event's plaintext: hex; a MESSAGE or PART by type and bodyLength (the
    next bytes of the message being reassembled); or an OUTPUT by its fields and
    dataLength (bytes 0 .. dataLength of the pattern)."""
    given = {k for k in INPUTS["receive"] if k in e}
    if given == {"plaintext"}:
        return unhex(e["plaintext"])
    if given == {"type", "bodyLength"} and e["type"] in ("MESSAGE", "PART"):
        return bytes([TYPE_BYTE[e["type"]]]) + pattern(side.length, e["bodyLength"])
    if given == {"type", *OUTPUT_INPUTS, "dataLength"} and e["type"] == "OUTPUT":
        return encode("OUTPUT", output_fields(e, pattern(0, e["dataLength"])))
    raise Mismatch("a receive gives plaintext, type and bodyLength, or an OUTPUT's fields")


def _run_sequence(t: dict, errors: dict, where: str) -> None:
    side = Side(t["role"], t["target"], errors, where)
    events = t["events"]
    if not isinstance(events, list) or not events:
        raise Mismatch(f"{where}: no events")
    for i, e in enumerate(events, 1):
        at = f"{where} event {i}"
        kind = e.get("event")
        if kind not in INPUTS:
            raise Mismatch(f"{at}: event {kind!r}")
        if side.closed:
            raise Mismatch(f"{at}: an event after the session closed")
        if side.first_grant and kind != "grant":
            raise Mismatch(f"{at}: a controller's first transport message is its WINDOW (CHAN-31)")
        want = {k: e[k] for k in ("event", "comment", *INPUTS[kind]) if k in e}
        side.where = at
        if kind == "queue":
            side.outbox.append(Queued(_message_of(e["message"])))
        elif kind == "output":
            side.queue_output(e)
        elif kind == "send":
            want.update(side.send())
        elif kind == "receive":
            want.update(side.receive(_received_plaintext(e, side)))
        elif kind == "consume":
            side.consume(e["size"])
        else:
            want.update(side.grant())
        want["state"] = side.state()
        if want != e:
            diff = sorted(k for k in set(want) | set(e) if want.get(k) != e.get(k))
            raise Mismatch(f"{at}: {', '.join(diff)} differ\n    spec   "
                           + str({k: want.get(k) for k in diff}) + "\n    vector "
                           + str({k: e.get(k) for k in diff}))
    failed = "error" in events[-1]
    if t["result"] != ("invalid" if failed else "valid"):
        raise Mismatch(f"{where}: result {t['result']!r}, but the sequence "
                       f"{'ends in an error' if failed else 'does not fail'}")


def _check_sent_records(t: dict, where: str) -> None:
    """The normative rules for what a sender sends, whatever its policy: every MESSAGE,
    PART or OUTPUT is within the window before it and takes its size off the window
    (CHAN-34), its body is at most 65518 bytes and a PART's is not empty; the records
    carry the queued messages' bytes in order, never interleaved (CHAN-32). Only a host
    sends OUTPUT records (CHAN-32); those of a chunk of output carry its stream, process
    id and bytes in order, data in each unless it is the chunk's last and capReached,
    capReached on the chunk's last alone; messages and output leave in the order queued
    (CMD-76, CMD-41)."""
    queue, current, window = [], None, INITIAL_WINDOW
    for e in t["events"]:
        if e["event"] == "queue":
            queue.append(("message", _message_of(e["message"]), None))
        if e["event"] == "output":
            queue.append(("output", _message_of(e["data"]), e))
        if e["event"] == "receive" and "window" in e["state"] and "error" not in e:
            window = e["state"]["window"]
        for r in e.get("records", []):
            n = r["bodyLength"]
            if r["size"] != n + 1 + TAG or r["size"] > window or n > MAX_BODY \
                    or (r["type"] == "PART" and n == 0) or r["window"] != window - r["size"]:
                raise Mismatch(f"{where}: {r['type']} of {n} bytes with a window of {window} "
                               f"breaks CHAN-32/CHAN-34: {r}")
            window = r["window"]
            if current is None:
                if not queue:
                    raise Mismatch(f"{where}: a record with nothing queued")
                (what, current, chunk), offset = queue.pop(0), 0
            if (r["type"] == "OUTPUT") != (what == "output"):
                raise Mismatch(f"{where}: a {r['type']} record where the next queued is {what} "
                               "(CHAN-32, CMD-76: in the order queued)")
            if what == "message":
                body = current[offset:offset + n]
                if "plaintext" in r and unhex(r["plaintext"])[1:] != body:
                    raise Mismatch(f"{where}: a record's body is not the next bytes of its message")
                offset += n
                if r["type"] == "MESSAGE":
                    if offset != len(current):
                        raise Mismatch(f"{where}: a MESSAGE ends its message early (CHAN-32)")
                    current = None
                elif offset >= len(current):
                    raise Mismatch(f"{where}: a PART carries the end of its message (CHAN-32)")
                continue
            if t["role"] != "host":
                raise Mismatch(f"{where}: a {t['role']} sends OUTPUT (CHAN-32: the host only)")
            d = r["dataLength"]
            pid = process_id_bytes(r["processId"])
            if (r["stream"], r["processId"]) != (chunk["stream"], chunk["processId"]) \
                    or n != OUTPUT_HEAD + len(pid) + d or d > MAX_OUTPUT_DATA - len(pid):
                raise Mismatch(f"{where}: an OUTPUT record is not a piece of its chunk: {r}")
            data = current[offset:offset + d]
            if "plaintext" in r:
                try:
                    kind, got = decode(unhex(r["plaintext"]))
                except Refused as x:
                    raise Mismatch(f"{where}: an OUTPUT record sent breaks its layout: {x}") from None
                if kind != "OUTPUT" or got != output_fields(r, data):
                    raise Mismatch(f"{where}: an OUTPUT record's plaintext is not its fields and the next bytes")
            offset += d
            last = offset == len(current)
            if offset > len(current) or r["capReached"] != (last and chunk["capReached"]) \
                    or (d == 0 and not r["capReached"]):
                raise Mismatch(f"{where}: capReached rides the last OUTPUT of a chunk that has it "
                               f"and an OUTPUT carries data otherwise (CMD-41, CHAN-32): {r}")
            if last:
                current = None


# ---------------------------------------------------------------- sections

def _check_record(t: dict, where: str) -> None:
    if "plaintext" in t and "plaintextHead" not in t and "dataLength" not in t:
        p = unhex(t["plaintext"])
    elif "plaintextHead" in t and "dataLength" in t and "plaintext" not in t:
        # An OUTPUT with more than 64 bytes of data: its head, then the pattern.
        if not isinstance(t["dataLength"], int) or t["dataLength"] <= SHORT:
            raise Mismatch(f"{where}: dataLength {t['dataLength']!r} with plaintextHead")
        p = unhex(t["plaintextHead"]) + pattern(0, t["dataLength"])
    else:
        raise Mismatch(f"{where}: a record is given by plaintext, or by plaintextHead and dataLength")
    if len(p) > MAX_PLAINTEXT:
        raise Mismatch(f"{where}: plaintext of {len(p)} bytes (CHAN-16)")
    try:
        kind, value = decode(p)
    except Refused as e:
        raise Mismatch(f"{where}: valid record refused: {e}") from None
    want = {"type": kind}
    if kind == "WINDOW":
        want["increment"] = value
    elif kind == "OUTPUT":
        want.update(value, data=describe(value["data"]))
        if ("plaintextHead" in t) != (len(value["data"]) > SHORT) \
                or ("plaintextHead" in t and len(unhex(t["plaintextHead"])) != len(p) - t["dataLength"]):
            raise Mismatch(f"{where}: plaintextHead is for an OUTPUT with more than 64 bytes of data")
    else:
        want["body"] = value.hex()
        if "plaintextHead" in t:
            raise Mismatch(f"{where}: plaintextHead for a {kind}")
    if t["decoded"] != want:
        raise Mismatch(f"{where}: decoded {t['decoded']}, spec gives {want}")
    d = t["decoded"]
    if d["type"] == "OUTPUT":
        again = encode("OUTPUT", output_fields(d, described(d["data"])))
    else:
        again = encode(d["type"], d["increment"] if d["type"] == "WINDOW" else unhex(d["body"]))
    if again != p:
        raise Mismatch(f"{where}: encoding `decoded` gives {again.hex()[:80]}")
    size = None if kind == "WINDOW" else len(p) + TAG
    if t.get("size") != size:
        raise Mismatch(f"{where}: size {t.get('size')}, spec gives {size} (CHAN-34)")


def _check_invalid(t: dict, errors: dict, where: str) -> None:
    p = unhex(t["plaintext"])
    try:
        got = decode(p)
    except Refused as e:
        if t["error"] != errors[e.name]:
            raise Mismatch(f"{where}: error {t['error']}, spec gives {errors[e.name]}") from None
        return
    raise Mismatch(f"{where}: vector says {t['error'].get('name')}, but it decodes: {got}")


def _expand(records: list) -> Iterator[dict]:
    for r in records:
        count = r.get("count", 1)
        if not isinstance(count, int) or count < 1 or ("count" in r and "plaintext" in r):
            raise Mismatch(f"bad count in {r}")
        for _ in range(count):
            yield r


def _check_reassembly(t: dict, errors: dict, where: str) -> None:
    """A receiver that grants as it consumes, so its sender stays within the window."""
    side = Side("host", MAX_CREDIT, errors, where)
    side.receive(encode("WINDOW", MIN_INCREMENT))
    results = []
    for r in _expand(t["records"]):
        if "plaintext" in r:
            p = unhex(r["plaintext"])
        else:
            if r.get("bodyLength", -1) < 0 or r.get("bodyLength") > MAX_BODY:
                raise Mismatch(f"{where}: bodyLength {r.get('bodyLength')} (CHAN-16)")
            if r.get("type") not in ("MESSAGE", "PART", "WINDOW"):
                raise Mismatch(f"{where}: a record given by type {r.get('type')!r} and bodyLength")
            p = bytes([TYPE_BYTE[r["type"]]]) + pattern(side.length, r["bodyLength"])
        side.granted = side.received + MAX_CREDIT      # the receiver keeps granting
        got = side.receive(p)
        if "error" in got:
            raise Mismatch(f"{where}: the receiver closes the session: {got['error']}")
        if got["got"]["kind"] == "message":
            side.consume(got["got"]["size"])
        if got["got"]["kind"] != "nothing":
            results.append(got["got"])
    if t["results"] != results:
        raise Mismatch(f"{where}: results {t['results']}\n    spec gives {results}")


def run(root: Path, data: dict | None = None) -> dict:
    data = load(root, FILE, data)
    if data.get("vectors") != "records":
        raise Mismatch(f"{FILE}: vectors is {data.get('vectors')!r}")
    errors = _spec_errors(root)
    _check_spec_paragraph(root)
    _check_spec_tables(root)
    counts = {"file": FILE, "valid": 0, "invalid": 0}
    n = 0
    for section in SECTIONS:
        cases = data.get(section)
        if not isinstance(cases, list) or not cases:
            raise Mismatch(f"{FILE}: no {section} cases")
        counts["badRecords" if section == "invalid" else section] = len(cases)
        for t in cases:
            n += 1
            where = f"{FILE} {section} tcId {t.get('tcId') if isinstance(t, dict) else '?'}"
            with checking(where):
                if t["tcId"] != n or isinstance(t["tcId"], bool):
                    raise Mismatch(f"{where}: expected tcId {n}")
                if t["requirement"] not in REQUIREMENTS:
                    raise Mismatch(f"{where}: requirement {t['requirement']!r} is not CHAN-31..36")
                if t["result"] not in ("valid", "invalid"):
                    raise Mismatch(f"{where}: result {t['result']!r}")
                fixed = {"records": "valid", "invalid": "invalid", "reassembly": "valid"}
                if section in fixed and t["result"] != fixed[section]:
                    raise Mismatch(f"{where}: result {t['result']!r} in {section}")
                if section == "records":
                    _check_record(t, where)
                elif section == "invalid":
                    _check_invalid(t, errors, where)
                elif section == "reassembly":
                    _check_reassembly(t, errors, where)
                else:
                    _check_sent_records(t, where)
                    _run_sequence(t, errors, where)
                counts[t["result"]] += 1
    if data.get("numberOfTests") != n:
        raise Mismatch(f"{FILE}: numberOfTests is {data.get('numberOfTests')!r}, the file holds {n}")
    return counts


# ---------------------------------------------------------------- self-test mutants

def _case(d: dict, tc_id: int) -> dict:
    return next(t for s in SECTIONS for t in d[s] if t["tcId"] == tc_id)


def _variant(base: dict, tc_id: int, change) -> dict:
    d = copy.deepcopy(base)
    change(_case(d, tc_id), d)
    return d


def _by_comment(base: dict, section: str, words: str) -> int:
    return next(t["tcId"] for t in base[section] if words in t["comment"])


def mutants(root: Path) -> Iterator[tuple[str, dict]]:
    """Altered copies of the vector file; `run` must raise Mismatch on every one."""
    base = load(root, FILE)
    variant = partial(_variant, base)
    rec = partial(_by_comment, base, "records")
    inv = partial(_by_comment, base, "invalid")
    seg = partial(_by_comment, base, "segmentation")
    acc = partial(_by_comment, base, "accounting")
    rea = partial(_by_comment, base, "reassembly")

    def ev(t, i):
        return t["events"][i]

    yield "empty MESSAGE: size 18", variant(rec("empty body"), lambda t, d: t.update(size=18))
    yield "WINDOW 4096: increment 4097", variant(rec("smallest increment"), lambda t, d: t["decoded"].update(increment=4097))
    yield "WINDOW 4096: given a size", variant(rec("smallest increment"), lambda t, d: t.update(size=21))
    yield "1-byte PART decoded as MESSAGE", variant(rec("1-byte body"), lambda t, d: t["decoded"].update(type="MESSAGE"))
    yield "increment 4095 -> 4096 (decodes)", variant(inv("4095"), lambda t, d: t.update(plaintext="0200001000"))
    yield "increment 258049 -> 258048 (decodes)", variant(inv("258049"), lambda t, d: t.update(plaintext="020003f000"))
    yield "empty PART -> 1-byte PART (decodes)", variant(inv("PART with an empty body"), lambda t, d: t.update(plaintext="0100"))
    yield "BadRecord named WindowExceeded", variant(inv("unknown type 0xff"), lambda t, d: t["error"].update(name="WindowExceeded", requirement="CHAN-34"))
    yield "BadRecord closed with PROTOCOL_ERROR", variant(inv("empty plaintext"), lambda t, d: t["error"].update(closeCode="PROTOCOL_ERROR"))
    # Segmentation: a split point moved, a record over the window, a wait skipped.
    t1 = seg("100000-byte")
    yield "first PART one byte shorter", variant(t1, lambda t, d: ev(t, 2)["records"][0].update(bodyLength=16366, size=16383, window=1))
    yield "first PART one byte longer (over the window)", variant(t1, lambda t, d: ev(t, 2)["records"][0].update(bodyLength=16368, size=16385))
    yield "window after a PART off by one", variant(t1, lambda t, d: ev(t, 4)["records"][0].update(window=176130))
    yield "the 4095-byte PART the reference does not send", variant(seg("would take a PART of only 4095"), lambda t, d: ev(t, 4)["records"].append({"type": "PART", "bodyLength": 4095, "size": 4112, "window": 0}))
    yield "an empty MESSAGE sent in a window of 0", variant(seg("fills the window exactly"), lambda t, d: ev(t, 4)["records"].append({"type": "MESSAGE", "bodyLength": 0, "plaintext": "00", "size": 17, "window": -17}))
    yield "messages reordered", variant(seg("never interleaved"), lambda t, d: ev(t, 6)["records"].reverse())
    yield "a 1-byte MESSAGE with the wrong byte", variant(seg("one byte more"), lambda t, d: ev(t, 4)["records"][0].update(plaintext="0000"))
    # Accounting.
    yield "host sends before the first message", variant(acc("sends nothing before"), lambda t, d: ev(t, 1).update(records=ev(t, 3)["records"]))
    yield "JSON first message decides records", variant(acc("keeps version 1"), lambda t, d: ev(t, 2)["state"].update(framing="records"))
    yield "6-byte 0x02 first message decides records", variant(acc("6-byte first plaintext"), lambda t, d: ev(t, 0)["state"].update(framing="records"))
    yield "bad first WINDOW accepted", variant(acc("increment 1"), lambda t, d: (ev(t, 0).pop("error"), ev(t, 0).update(got={"kind": "nothing"}), t.update(result="valid")))
    yield "controller's first WINDOW smaller", variant(acc("up to its target of 131072"), lambda t, d: ev(t, 0).update(increment=4096, record="0200001000"))
    yield "a quarter-rule grant skipped", variant(acc("up to its target of 131072"), lambda t, d: ev(t, 4).update(increment=None) or ev(t, 4).pop("record"))
    yield "credit under 8192 left unrestored", variant(acc("restores its credit"), lambda t, d: ev(t, 5).update(increment=None) or ev(t, 5).pop("record"))
    yield "credit off by one", variant(acc("restores its credit"), lambda t, d: ev(t, 4)["state"].update(credit=7368))
    yield "WindowExceeded one record late", variant(acc("fill the initial window exactly"), lambda t, d: ev(t, 3).pop("error") and ev(t, 3).update(got={"kind": "message", "length": 0, "hex": "", "size": 17}))
    yield "WindowExceeded named WindowOverflow", variant(acc("consuming grants nothing"), lambda t, d: ev(t, 3)["error"].update(name="WindowOverflow", requirement="CHAN-35"))
    yield "window back at exactly 258048 refused", variant(acc("the window is what is left"), lambda t, d: ev(t, 3).update(error=ev(t, 4)["error"]))
    yield "invalid case marked valid", variant(acc("takes the window to exactly 258048"), lambda t, d: t.update(result="valid"))
    # Reassembly.
    yield "16 MiB message: sha256 changed", variant(rea("exactly 16777216"), lambda t, d: t["results"][0].update(sha256="00" * 32))
    yield "16 MiB message turned TooLarge", variant(rea("exactly 16777216"), lambda t, d: t["records"][1].update(bodyLength=4609))
    yield "TooLarge length off by one", variant(rea("PARTs of 16777217 bytes"), lambda t, d: t["results"][0].update(length=16777218))
    yield "session does not go on after TooLarge", variant(rea("PARTs of 16777217 bytes"), lambda t, d: t["results"].pop())
    yield "200000-byte message: one PART fewer", variant(rea("200000-byte"), lambda t, d: t["records"][0].update(count=2))
    # OUTPUT records (4.13.2, CMD-76).
    yield "OUTPUT stdout decoded as stderr", variant(rec("6 bytes of stdout"), lambda t, d: t["decoded"].update(stream="stderr"))
    yield "OUTPUT data off by one byte", variant(rec("6 bytes of stdout"), lambda t, d: t["decoded"]["data"].update(hex="68656c6c6f0b"))
    yield "short OUTPUT written as plaintextHead", variant(rec("6 bytes of stdout"), lambda t, d: t.update(plaintextHead=t.pop("plaintext")[:14], dataLength=6))
    yield "empty capReached OUTPUT decoded without capReached", variant(rec("no data: the cap fell"), lambda t, d: t["decoded"].update(capReached=False))
    yield "64-byte process id: size 86", variant(rec("the longest (CMD-34)"), lambda t, d: t.update(size=86))
    yield "non-ASCII process id read as Latin-1", variant(rec("non-ASCII UTF-8"), lambda t, d: t["decoded"].update(processId="\u00c3\u00a9t\u00c3\u00a9-1"))
    yield "largest OUTPUT for a 1-byte id one byte longer", variant(rec("1-byte process id and the largest"), lambda t, d: t.update(dataLength=65515, size=65536) or t["decoded"]["data"].update(length=65515))
    yield "largest OUTPUT for a 64-byte id: sha256 changed", variant(rec("64-byte process id and the largest"), lambda t, d: t["decoded"]["data"].update(sha256="00" * 32))
    yield "largest OUTPUT for a 64-byte id: capReached dropped", variant(rec("64-byte process id and the largest"), lambda t, d: t["decoded"].update(capReached=False))
    yield "OUTPUT stream 2 -> 1 (decodes)", variant(inv("OUTPUT with stream 2"), lambda t, d: t.update(plaintext="030100017078"))
    yield "OUTPUT reserved flag -> 0 (decodes)", variant(inv("reserved flag bit 1"), lambda t, d: t.update(plaintext="030000017078"))
    yield "OUTPUT N 0 -> N 1 with data (decodes)", variant(inv("OUTPUT with N 0"), lambda t, d: t.update(plaintext="030000017878"))
    yield "OUTPUT N 65 -> 64 (decodes)", variant(inv("N 65"), lambda t, d: t.update(plaintext="03000040" + t["plaintext"][8:]))
    yield "OUTPUT N past the end -> N 3 (decodes)", variant(inv("capReached and N past the end"), lambda t, d: t.update(plaintext="03000103702d31"))
    yield "OUTPUT id 0xff -> 'p' (decodes)", variant(inv("not UTF-8: 0xff"), lambda t, d: t.update(plaintext="030000017078"))
    yield "OUTPUT id surrogate -> euro sign (decodes)", variant(inv("surrogate"), lambda t, d: t.update(plaintext="03000003e282ac78"))
    yield "OUTPUT id overlong -> '/' (decodes)", variant(inv("overlong"), lambda t, d: t.update(plaintext="030000012f78"))
    yield "OUTPUT without data -> capReached (decodes)", variant(inv("without data and without capReached"), lambda t, d: t.update(plaintext="03000103702d31"))
    yield "short OUTPUT named WindowExceeded", variant(inv("OUTPUT without a body"), lambda t, d: t["error"].update(name="WindowExceeded", requirement="CHAN-34"))
    o1 = seg("100000-byte chunk of output")
    yield "capReached on the first OUTPUT piece", variant(o1, lambda t, d: ev(t, 2)["records"][0].update(capReached=True))
    yield "capReached missing on the last OUTPUT piece", variant(o1, lambda t, d: ev(t, 6)["records"][0].update(capReached=False))
    yield "OUTPUT piece one byte over the window", variant(o1, lambda t, d: ev(t, 2)["records"][0].update(dataLength=20458, bodyLength=20464, size=20481, window=-1))
    yield "OUTPUT piece over 65515 - N", variant(o1, lambda t, d: ev(t, 4)["records"][0].update(dataLength=65513, bodyLength=65519, size=65536, window=0))
    yield "OUTPUT size without its header", variant(o1, lambda t, d: ev(t, 2)["records"][0].update(size=20474, window=6))
    yield "OUTPUT piece on the other stream", variant(o1, lambda t, d: ev(t, 4)["records"][0].update(stream="stderr"))
    yield "the 4095-byte OUTPUT piece the reference does not send", variant(seg("leaves room for 4095 bytes of output"), lambda t, d: (
        ev(t, 4)["records"].append({"type": "OUTPUT", "bodyLength": 4101, "size": 4118, "window": 0, "stream": "stderr", "capReached": False, "processId": "p-1", "dataLength": 4095}),
        ev(t, 6)["records"][0].update(dataLength=905, bodyLength=911, size=928, window=8214 - 928)))
    yield "the 4096-byte OUTPUT piece withheld", variant(seg("takes an OUTPUT piece of 4096"), lambda t, d: ev(t, 4).update(records=[]))
    yield "an empty capReached OUTPUT sent in a window of 0", variant(seg("goes whole when it fits"), lambda t, d: ev(t, 6)["records"].append(dict(ev(t, 8)["records"][0], window=-23)))
    yield "a piece with another process id", variant(seg("a 64-byte process id: pieces"), lambda t, d: ev(t, 3)["records"][1].update(processId=ev(t, 3)["records"][1]["processId"][:-1] + "b"))
    yield "the command/exec answer before the last OUTPUT", variant(seg("leave in the order queued"), lambda t, d: (
        ev(t, 6)["records"].reverse(), ev(t, 6)["records"][0].update(window=16384 - 53), ev(t, 6)["records"][1].update(window=16384 - 53 - 9595)))
    yield "output queued by a controller", variant(o1, lambda t, d: t.update(role="controller"))
    h1 = acc("controller sends an OUTPUT record")
    yield "a host accepts an OUTPUT from its controller", variant(h1, lambda t, d: (ev(t, 3).pop("error"), ev(t, 3).update(got={"kind": "output", "stream": "stdout", "capReached": False, "processId": "p-1", "data": {"length": 1, "hex": "78"}, "size": 24}), t.update(result="valid")))
    yield "a controller's OUTPUT named WindowExceeded", variant(h1, lambda t, d: ev(t, 3)["error"].update(name="WindowExceeded", requirement="CHAN-34"))
    yield "a refused OUTPUT's size not counted", variant(h1, lambda t, d: ev(t, 3)["state"].update(received=75))
    c1 = acc("counts OUTPUT records like MESSAGE")
    yield "OUTPUT size without the tag", variant(c1, lambda t, d: ev(t, 1)["got"].update(size=40007))
    yield "OUTPUT not counted as received", variant(c1, lambda t, d: ev(t, 1)["state"].update(received=0))
    yield "OUTPUT consumed on arrival", variant(c1, lambda t, d: ev(t, 1)["state"].update(credit=91049))
    yield "credit granted for output still held", variant(c1, lambda t, d: ev(t, 2).update(increment=40023, record="0200009c57"))
    yield "received OUTPUT loses capReached", variant(c1, lambda t, d: ev(t, 5)["got"].update(capReached=False))
    yield "received OUTPUT on the wrong stream", variant(c1, lambda t, d: ev(t, 5)["got"].update(stream="stdout"))
    yield "OUTPUT beyond the grant accepted", variant(acc("OUTPUT records fill what the controller granted"), lambda t, d: (ev(t, 3).pop("error"), ev(t, 3).update(got={"kind": "output", "stream": "stdout", "capReached": True, "processId": "p", "data": {"length": 0, "hex": ""}, "size": 21}), t.update(result="valid")))
    # Header.
    yield "numberOfTests off by one", variant(1, lambda t, d: d.update(numberOfTests=d["numberOfTests"] + 1))
    yield "tcId 5 renumbered 4", variant(5, lambda t, d: t.update(tcId=4))
    yield "requirement CHAN-3", variant(1, lambda t, d: t.update(requirement="CHAN-3"))
