"""Independent JSON-RPC decoder for vectors/command.json, written from spec/05 alone.

What is checked, per test of vectors/command.json:

* the header: `numberOfTests` equals the number of tests, every `tcId` is unique;
* `msg` is hex and, when `text` is present, `text` is exactly those bytes as UTF-8;
* every message goes through a receiver written here from chapter 5 and nothing else:
  - the size limit of 65 519 bytes (CMD-2, `TooLarge`), the byte-order mark (CMD-3,
    `Bom`), strict UTF-8 (CMD-3, `InvalidUtf8`: overlong forms, surrogates, UTF-16 text),
    then a strict JSON parser of its own (CMD-3 `Parse`: one value only, JSON whitespace
    only, no NaN/comments/trailing commas/single quotes, no lone-surrogate `\\u` escapes;
    CMD-4 `TooDeep`: a level-33 container, the message object being level 1; CMD-5
    `DuplicateKey`: names compared after unescaping, at any depth), in the single order
    section 5.1.1 prescribes (the first error reached while reading decides);
  - the envelope in the order of section 5.1.2: CMD-6 (`Batch`, `NotObject`), CMD-7
    (`BadVersion`; an absent `jsonrpc` is accepted), then for a message with `method` its type, the id
    (CMD-8 `BadId`), no `result`/`error`, the type of `params` (CMD-9 `InvalidRequest`);
    for one without: the id's presence, exactly one of `result`/`error` (CMD-9), the id
    (CMD-8), the error object (CMD-10 `BadErrorObject`);
  - the typed layer (CMD-61 order): the method in the direction's table of chapter 5
    (CMD-12 `MethodNotFound`, case-sensitive, methods of the other direction unknown),
    then the params against the tables of sections 5.2-5.10 (CMD-13 `InvalidParams`:
    required members, types, enumerations, ranges and lengths, CMD-43 limits, CMD-40
    base64 chunks, array params refused), `UnsupportedProtocolVersion` (CMD-15) and the
    bundle rules of CMD-53 (`InvalidBundle`) after the bundle has its type; a success
    response's result against the result type of `resultOf` (CMD-13 `BadResult`);
  - the answer rule of CMD-11: which error response (its id) the receiver sends, or none
    (responses and refused notifications are never answered).
* valid tests: the computed kind, method, id, error code and `resultOf` equal `expected`;
  an error response whose `data` is `{"error", "requirement"}` names an error of the
  section 5.12 row of its code; the direction of a response is the opposite of the
  direction of the request named by `resultOf`.
* invalid tests: the receiver refuses at the vector's `stage` (envelope or typed) with
  the vector's error name, requirement id, JSON-RPC code (`rpcCode`) and `reply`.

`decode(msg, direction, result_of)` is reused by payloads.py for the session transcript.
"""

import base64
import copy
import re
from collections.abc import Iterator
from pathlib import Path

from xcheck.common import Mismatch, check_header, load, unhex

FILE = "command.json"
MAX_MESSAGE = 65519          # CMD-2
MAX_DEPTH = 32               # CMD-4
MAX_ID = 2 ** 53 - 1         # CMD-8
MAX_STRING_ID = 256          # CMD-8
MAX_CHUNK = 16384            # CMD-40

# Section 5.12: error name -> (JSON-RPC code, requirement id of the rule that raises it).
ERRORS = {
    "TooLarge": (-32700, "CMD-2"),
    "Bom": (-32700, "CMD-3"),
    "InvalidUtf8": (-32700, "CMD-3"),
    "Parse": (-32700, "CMD-3"),
    "TooDeep": (-32700, "CMD-4"),
    "DuplicateKey": (-32700, "CMD-5"),
    "Batch": (-32600, "CMD-6"),
    "NotObject": (-32600, "CMD-6"),
    "BadVersion": (-32600, "CMD-7"),
    "BadId": (-32600, "CMD-8"),
    "InvalidRequest": (-32600, "CMD-9"),
    "BadErrorObject": (-32600, "CMD-10"),
    "MethodNotFound": (-32601, "CMD-12"),
    "InvalidParams": (-32602, "CMD-13"),
    "UnsupportedProtocolVersion": (-32602, "CMD-15"),
    "InvalidBundle": (-32017, "CMD-53"),
    "BadResult": (-32603, "CMD-13"),   # 5.12: reported locally in the -32603 row
}

# Section 5.12 table, for the consistency check of valid error responses:
# code -> (error names of the row, requirement ids of the row).
CODE_TABLE = {
    -32700: ({"TooLarge", "Bom", "InvalidUtf8", "Parse", "TooDeep", "DuplicateKey"},
             {"CMD-2", "CMD-3", "CMD-4", "CMD-5"}),
    -32600: ({"Batch", "NotObject", "BadVersion", "BadId", "InvalidRequest",
              "BadErrorObject", "AlreadyInitialized"},
             {"CMD-6", "CMD-7", "CMD-8", "CMD-9", "CMD-10", "CMD-15"}),
    -32601: ({"MethodNotFound"}, {"CMD-12", "CMD-16"}),
    -32602: ({"InvalidParams", "UnsupportedProtocolVersion"}, {"CMD-13", "CMD-15"}),
    -32603: ({"Internal"}, {"CMD-60"}),
    -32001: ({"Overloaded"}, {"CMD-58"}),
    -32002: ({"NotInitialized"}, {"CMD-15"}),
    -32800: ({"Cancelled"}, {"CMD-57"}),
    -32010: ({"RemoteAccessDisabled"}, {"CMD-55"}),
    -32011: ({"NotAuthorized"}, {"CMD-56"}),
    -32012: ({"SandboxDenied"}, {"CMD-46"}),
    -32013: ({"ThreadNotFound"}, {"CMD-18"}),
    -32014: ({"TurnNotFound"}, {"CMD-23"}),
    -32015: ({"ApprovalAlreadyResolved"}, {"CMD-32"}),
    -32016: ({"ProcessNotFound"}, {"CMD-38"}),
    -32017: ({"InvalidBundle"}, {"CMD-53"}),
    -32018: ({"TurnAlreadyActive"}, {"CMD-22"}),
}


class Refused(Exception):
    """The receiver refuses a message: stage, error name, and the reply it sends."""

    def __init__(self, stage, name, reply, detail=""):
        super().__init__(f"{stage}/{name}: {detail}")
        self.stage, self.name, self.reply, self.detail = stage, name, reply, detail

    @property
    def code(self):
        return ERRORS[self.name][0]

    @property
    def requirement(self):
        return ERRORS[self.name][1]


# ---------------------------------------------------------------------------------------
# Strict JSON (CMD-3, CMD-4, CMD-5)

class JFloat:
    """A JSON number written with a fraction or an exponent (never an 'integer', CMD-8)."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, JFloat) and other.text == self.text

    def __repr__(self):
        return f"JFloat({self.text})"


class _JsonError(Exception):
    def __init__(self, name, detail):
        super().__init__(detail)
        self.name = name


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WS = " \t\r\n"
_ESC = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class _Parser:
    def __init__(self, s, max_depth=MAX_DEPTH):
        self.s, self.i, self.max_depth = s, 0, max_depth

    def fail(self, what):
        raise _JsonError("Parse", f"{what} at offset {self.i}")

    def ws(self):
        s, i = self.s, self.i
        while i < len(s) and s[i] in _WS:
            i += 1
        self.i = i

    def value(self, level):
        self.ws()
        if self.i >= len(self.s):
            self.fail("unexpected end")
        c = self.s[self.i]
        if c in "{[":
            if level + 1 > self.max_depth:
                raise _JsonError("TooDeep", f"level-{level + 1} container at offset {self.i}")
            return self.obj(level + 1) if c == "{" else self.arr(level + 1)
        if c == '"':
            return self.string()
        for lit, val in (("true", True), ("false", False), ("null", None)):
            if self.s.startswith(lit, self.i):
                self.i += len(lit)
                return val
        m = _NUMBER.match(self.s, self.i)
        if m:
            self.i = m.end()
            if m.group(1) is None and m.group(2) is None:
                return int(m.group(0))
            return JFloat(m.group(0))
        self.fail(f"unexpected character {c!r}")

    def obj(self, level):
        self.i += 1
        out = {}
        self.ws()
        if self.i < len(self.s) and self.s[self.i] == "}":
            self.i += 1
            return out
        while True:
            self.ws()
            if self.i >= len(self.s) or self.s[self.i] != '"':
                self.fail("expected a member name")
            key = self.string()
            if key in out:
                raise _JsonError("DuplicateKey", f"member {key!r} repeated")
            self.ws()
            if self.i >= len(self.s) or self.s[self.i] != ":":
                self.fail("expected ':'")
            self.i += 1
            out[key] = self.value(level)
            if self.closed("}", "object"):
                return out

    def closed(self, close, what):
        """After a member or element: True at `close`, False after a comma."""
        self.ws()
        if self.i >= len(self.s):
            self.fail(f"unterminated {what}")
        c = self.s[self.i]
        self.i += 1
        if c == close:
            return True
        if c != ",":
            self.fail(f"expected ',' or '{close}'")
        return False

    def arr(self, level):
        self.i += 1
        out = []
        self.ws()
        if self.i < len(self.s) and self.s[self.i] == "]":
            self.i += 1
            return out
        while True:
            out.append(self.value(level))
            if self.closed("]", "array"):
                return out

    def hex4(self):
        h = self.s[self.i:self.i + 4]
        if len(h) != 4 or any(ch not in "0123456789abcdefABCDEF" for ch in h):
            self.fail("bad \\u escape")
        self.i += 4
        return int(h, 16)

    def string(self):
        self.i += 1
        s, out = self.s, []
        while True:
            if self.i >= len(s):
                self.fail("unterminated string")
            c = s[self.i]
            self.i += 1
            if c == '"':
                return "".join(out)
            if ord(c) < 0x20:
                self.fail("control character in string")
            if c != "\\":
                out.append(c)
                continue
            if self.i >= len(s):
                self.fail("unterminated escape")
            e = s[self.i]
            self.i += 1
            if e in _ESC:
                out.append(_ESC[e])
            elif e == "u":
                u = self.hex4()
                if 0xD800 <= u <= 0xDBFF:
                    if s[self.i:self.i + 2] != "\\u":
                        self.fail("lone high surrogate escape")
                    self.i += 2
                    lo = self.hex4()
                    if not 0xDC00 <= lo <= 0xDFFF:
                        self.fail("high surrogate escape not followed by a low one")
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                elif 0xDC00 <= u <= 0xDFFF:
                    self.fail("lone low surrogate escape")
                out.append(chr(u))
            else:
                self.fail(f"bad escape \\{e}")


def parse_strict(raw: bytes):
    """Bytes -> JSON value, or _JsonError named as in 5.12, checked in the 5.1.1 order."""
    if len(raw) > MAX_MESSAGE:
        raise _JsonError("TooLarge", f"{len(raw)} bytes")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise _JsonError("Bom", "leading byte-order mark")
    try:
        text = raw.decode("utf-8", errors="strict")   # rejects overlongs and surrogates
    except UnicodeDecodeError as e:
        raise _JsonError("InvalidUtf8", str(e)) from None
    p = _Parser(text)
    v = p.value(0)
    p.ws()
    if p.i != len(text):
        p.fail("data after the JSON value")
    return v


# ---------------------------------------------------------------------------------------
# Envelope (CMD-6..CMD-11)

def is_int(v):
    return type(v) is int


def valid_id(v):
    """CMD-8."""
    if is_int(v):
        return -MAX_ID <= v <= MAX_ID
    if isinstance(v, str):
        return len(v.encode("utf-8")) <= MAX_STRING_ID
    return False


def envelope(v):
    """Returns (kind, message) or raises Refused at stage 'envelope'."""
    if isinstance(v, list):
        raise Refused("envelope", "Batch", {"id": None})
    if not isinstance(v, dict):
        raise Refused("envelope", "NotObject", {"id": None})
    # CMD-11: a message that looks like a response is never answered; otherwise the reply
    # carries the id if it was read and meets CMD-8, else null.
    if "method" not in v and ("result" in v or "error" in v):
        reply = None
    else:
        reply = {"id": v["id"] if "id" in v and valid_id(v["id"]) else None}

    def refuse(name, detail=""):
        raise Refused("envelope", name, reply, detail)

    # CMD-7: absent is JSON-RPC 2.0; present, it must be the string "2.0".
    if "jsonrpc" in v and not (isinstance(v["jsonrpc"], str) and v["jsonrpc"] == "2.0"):
        refuse("BadVersion", repr(v["jsonrpc"]))
    if "method" in v:
        if not isinstance(v["method"], str):
            refuse("InvalidRequest", "method is not a string")
        if "id" in v and not valid_id(v["id"]):
            refuse("BadId", repr(v["id"]))
        if "result" in v or "error" in v:
            refuse("InvalidRequest", "method with result or error")
        if "params" in v and not isinstance(v["params"], (dict, list)):
            refuse("InvalidRequest", "params neither object nor array")
        return ("request" if "id" in v else "notification"), v
    if "id" not in v:
        refuse("InvalidRequest", "neither method nor id")
    if ("result" in v) == ("error" in v):
        refuse("InvalidRequest", "not exactly one of result and error")
    if "result" in v:
        if not valid_id(v["id"]):
            refuse("BadId", repr(v["id"]))
        return "response", v
    if v["id"] is not None and not valid_id(v["id"]):
        refuse("BadId", repr(v["id"]))
    err = v["error"]
    if not (isinstance(err, dict) and is_int(err.get("code")) and isinstance(err.get("message"), str)):
        refuse("BadErrorObject", repr(err)[:60])
    return "error", v


# ---------------------------------------------------------------------------------------
# Typed layer: the tables of sections 5.2-5.10

class Bad(Exception):
    """A value does not have its type (CMD-13); `name` is the 5.12 error to report."""

    def __init__(self, path, why, name=None):
        super().__init__(f"{path}: {why}")
        self.name = name


def t_str(min_bytes=None, max_bytes=None):
    def check(v, path):
        if not isinstance(v, str):
            raise Bad(path, "not a string")
        n = len(v.encode("utf-8"))
        if min_bytes is not None and n < min_bytes:
            raise Bad(path, f"{n} bytes, below {min_bytes}")
        if max_bytes is not None and n > max_bytes:
            raise Bad(path, f"{n} bytes, above {max_bytes}")
    return check


def t_int(lo=None, hi=None):
    def check(v, path):
        if not is_int(v):
            raise Bad(path, "not an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Bad(path, f"{v} outside {lo}..{hi}")
    return check


def t_bool(v, path):
    if not isinstance(v, bool):
        raise Bad(path, "not a boolean")


def t_enum(*values):
    def check(v, path):
        if not isinstance(v, str) or v not in values:
            raise Bad(path, f"{v!r} not one of {values}")
    return check


def t_const(value):
    return t_enum(value)


def t_null_or(inner):
    def check(v, path):
        if v is not None:
            inner(v, path)
    return check


def t_arr(inner, min_len=0):
    def check(v, path):
        if not isinstance(v, list):
            raise Bad(path, "not an array")
        if len(v) < min_len:
            raise Bad(path, f"fewer than {min_len} elements")
        for i, e in enumerate(v):
            inner(e, f"{path}[{i}]")
    return check


def t_id(v, path):
    if not valid_id(v):
        raise Bad(path, "not an id (CMD-8)")


def t_obj(**fields):
    """fields: name -> (check, required). Unknown members are ignored (CMD-9, CMD-13)."""
    def check(v, path):
        if not isinstance(v, dict):
            raise Bad(path, "not an object")
        for name, (inner, required) in fields.items():
            if name in v:
                inner(v[name], f"{path}.{name}")
            elif required:
                raise Bad(path, f"missing required member {name}")
    return check


def req(c):
    return (c, True)


def opt(c):
    return (c, False)


def t_base64_chunk(v, path):
    """CMD-40: standard base64 with padding, at most 16 384 raw bytes."""
    if not isinstance(v, str):
        raise Bad(path, "not a string")
    if len(v) % 4 or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", v):
        raise Bad(path, "not padded standard base64")
    try:
        raw = base64.b64decode(v, validate=True)
    except ValueError:
        raise Bad(path, "not base64") from None
    if base64.b64encode(raw).decode("ascii") != v:
        raise Bad(path, "non-canonical base64")
    if len(raw) > MAX_CHUNK:
        raise Bad(path, f"{len(raw)} raw bytes, above {MAX_CHUNK}")


SandboxMode = t_enum("read-only", "workspace-write", "danger-full-access")          # 5.7
ApprovalPolicy = t_enum("untrusted", "on-request", "never")                         # 5.5


def t_one_key(**forms):
    """An object with exactly one member, one of `forms` (Codex's externally tagged form)."""
    def check(v, path):
        if not isinstance(v, dict) or len(v) != 1:
            raise Bad(path, "not a one-member object")
        (k, inner), = v.items()
        if k not in forms:
            raise Bad(path, f"unknown form {k!r}")
        forms[k](inner, f"{path}.{k}")
    return check


def ApprovalDecision(v, path):                                                        # 5.5
    if isinstance(v, str):
        t_enum("accept", "acceptForSession", "decline", "cancel")(v, path)
        return
    t_one_key(
        acceptWithExecpolicyAmendment=t_obj(execpolicy_amendment=req(t_arr(t_str()))),
        applyNetworkPolicyAmendment=t_obj(network_policy_amendment=req(
            t_obj(host=req(t_str()), action=req(t_str())))),
    )(v, path)
Stream = t_enum("stdout", "stderr")
STR = t_str()
Implementation = t_obj(name=req(STR), version=req(STR))                              # 5.2
SandboxSupport = t_obj(modes=req(t_arr(SandboxMode)), mechanism=req(STR), degrade=req(t_bool))
Platform = t_obj(os=req(STR), arch=req(STR), pathStyle=req(t_enum("posix", "windows")))
SandboxReport = t_obj(requested=req(SandboxMode), enforced=req(SandboxMode),        # 5.7
                      network=req(t_enum("denied", "allowed", "unenforced")),
                      degraded=req(t_bool), mechanism=req(STR))
def t_tagged(**forms):
    """An object whose string `type` picks its check; `None` for a form not listed means
    "refused", a `default` form takes unknown types."""
    def check(v, path):
        if not isinstance(v, dict):
            raise Bad(path, "not an object")
        kind = v.get("type")
        if not isinstance(kind, str):
            raise Bad(path, "no string type")
        inner = forms.get(kind, forms.get("default"))
        if inner is None:
            raise Bad(path, f"type {kind!r} not taken")
        inner(v, path)
    return check


def opt_n(c):
    """Optional member that may also be null (section 5: receivers take both)."""
    return (t_null_or(c), False)


ANY = lambda v, path: None                                                           # noqa: E731
INT = t_int()
ThreadStatus = t_tagged(notLoaded=ANY, idle=ANY, systemError=ANY,                   # 5.3
                        active=t_obj(activeFlags=opt_n(t_arr(STR))))
ThreadTether = t_obj(sandbox=req(SandboxMode), approvalPolicy=req(ApprovalPolicy))
CommandAction = t_tagged(                                                            # 5.4
    read=t_obj(command=req(STR), name=req(STR), path=req(STR)),
    listFiles=t_obj(command=req(STR), path=opt_n(STR)),
    search=t_obj(command=req(STR), path=opt_n(STR), query=opt_n(STR)),
    unknown=t_obj(command=req(STR)))
# UserInput in a userMessage item: any type is kept; text has its members.
UserInputAny = t_tagged(text=t_obj(text=req(STR), text_elements=opt_n(t_arr(ANY))), default=ANY)
_AT = {"startedAtMs": opt_n(INT), "completedAtMs": opt_n(INT)}
Item = t_tagged(                                                                     # 5.4
    userMessage=t_obj(id=req(STR), content=req(t_arr(UserInputAny)), **_AT),
    agentMessage=t_obj(id=req(STR), text=req(STR), **_AT),
    commandExecution=t_obj(id=req(STR), command=req(STR), cwd=req(STR),
                           status=req(t_enum("inProgress", "completed", "failed", "declined")),
                           commandActions=opt_n(t_arr(CommandAction)),
                           exitCode=opt_n(INT), aggregatedOutput=opt_n(STR),
                           durationMs=opt_n(INT), **_AT),
    default=ANY)   # an unknown item type is kept, not refused (5.4)
Turn = t_obj(id=req(t_str(max_bytes=64)),
             status=req(t_enum("inProgress", "completed", "interrupted", "failed")),
             items=req(t_arr(Item)),
             itemsView=opt_n(t_enum("notLoaded", "summary", "full")),
             startedAt=opt_n(INT), completedAt=opt_n(INT), durationMs=opt_n(INT))
Thread = t_obj(id=req(t_str(max_bytes=64)), sessionId=opt_n(STR), cwd=req(STR),       # 5.3
               createdAt=req(INT), updatedAt=req(INT), status=req(ThreadStatus),
               preview=opt_n(STR), turns=opt_n(t_arr(Turn)), ephemeral=opt(t_bool),
               cliVersion=opt_n(STR), modelProvider=opt_n(STR), source=opt(ANY),
               projectId=opt_n(STR), tether=opt(ThreadTether))
SandboxPolicy = t_tagged(                                                            # 5.3
    dangerFullAccess=ANY,
    readOnly=t_obj(networkAccess=opt_n(t_bool)),
    externalSandbox=ANY,
    workspaceWrite=t_obj(writableRoots=opt_n(t_arr(STR)), networkAccess=opt_n(t_bool),
                         excludeTmpdirEnvVar=opt_n(t_bool), excludeSlashTmp=opt_n(t_bool)))
ThreadOpened = t_obj(thread=req(Thread), approvalPolicy=req(ApprovalPolicy),
                     approvalsReviewer=req(STR), cwd=req(STR), model=req(STR),
                     modelProvider=req(STR), sandbox=req(SandboxPolicy),
                     instructionSources=opt_n(t_arr(STR)),
                     tether=opt(t_obj(sandbox=req(SandboxReport))))
# UserInput in turn/start: only text (5.4).
UserInput = t_tagged(text=t_obj(text=req(STR), text_elements=opt_n(t_arr(ANY))))


def no_override(names, inner):
    """The Codex params that would change a thread's settings: refused unless null (5.3)."""
    def check(v, path):
        inner(v, path)
        for n in names:
            if v.get(n) is not None:
                raise Bad(f"{path}.{n}", "a Tether host does not change a thread's settings")
    return check


def thread_start_params(v, path):                                                    # 5.3
    t_obj(cwd=opt_n(STR), sandbox=opt_n(SandboxMode), approvalPolicy=opt_n(ApprovalPolicy),
          approvalsReviewer=opt_n(t_const("user")), ephemeral=opt_n(t_bool))(v, path)
    if v.get("ephemeral") is True:
        raise Bad(f"{path}.ephemeral", "threads are durable")


RESUME_OVERRIDES = ("approvalPolicy", "approvalsReviewer", "baseInstructions", "config", "cwd",
                    "developerInstructions", "model", "modelProvider", "personality",
                    "sandbox", "serviceTier")
TURN_OVERRIDES = ("approvalPolicy", "approvalsReviewer", "cwd", "effort", "model",
                  "personality", "sandboxPolicy", "serviceTier", "summary")
ThreadBundle = t_obj(version=req(t_int()), goal=opt(STR), cwdRelative=req(STR),      # 5.9
                     sandbox=req(SandboxMode), approvalPolicy=req(ApprovalPolicy),
                     items=req(t_arr(Item)), exportedAt=req(t_int()))
EMPTY = t_obj()


ClientInfo = t_obj(name=req(STR), title=opt(t_null_or(STR)), version=req(STR))


def initialize_params(v, path):
    """Codex's InitializeParams; Tether's members in `tether`, absent from a plain
    app-server client (CMD-15)."""
    t_obj(clientInfo=req(ClientInfo), capabilities=opt(t_null_or(t_obj())),
          tether=opt(t_null_or(t_obj(protocolVersion=req(STR),
                                     capabilities=opt(t_null_or(t_arr(STR)))))))(v, path)
    t = v.get("tether")
    if t is not None and t["protocolVersion"] != "tether/2":                         # CMD-15
        raise Bad(f"{path}.tether.protocolVersion", "not tether/2", "UnsupportedProtocolVersion")


def cwd_relative_ok(s):
    """CMD-53: "." or names joined by single "/", none empty, ".", ".." or with \\ : NUL."""
    if s == ".":
        return True
    names = s.split("/")
    return all(n not in ("", ".", "..") and not any(c in n for c in "\\:\0") for n in names)


def import_params(v, path):
    t_obj(bundle=req(ThreadBundle), projectRoot=opt(STR))(v, path)   # not a bundle: -32602
    b = v["bundle"]
    if b["version"] != 1:
        raise Bad(f"{path}.bundle.version", f"{b['version']}", "InvalidBundle")
    if not cwd_relative_ok(b["cwdRelative"]):
        raise Bad(f"{path}.bundle.cwdRelative", repr(b["cwdRelative"]), "InvalidBundle")


THREAD_ID = t_obj(threadId=req(STR))


def sandbox_policy(v, path):
    """Codex's SandboxPolicy; the mode it names for a Tether host (CMD-34)."""
    if not isinstance(v, dict):
        raise Bad(path, "not an object")
    kind = v.get("type")
    shapes = {
        "dangerFullAccess": t_obj(),
        "readOnly": t_obj(networkAccess=opt(t_bool)),
        "externalSandbox": t_obj(networkAccess=opt(t_enum("restricted", "enabled"))),
        "workspaceWrite": t_obj(writableRoots=opt(t_arr(STR)), networkAccess=opt(t_bool),
                                excludeTmpdirEnvVar=opt(t_bool), excludeSlashTmp=opt(t_bool)),
    }
    if kind not in shapes:
        raise Bad(f"{path}.type", f"unknown sandbox policy {kind!r}")
    shapes[kind](v, path)
    if kind == "externalSandbox":
        raise Bad(path, "externalSandbox is not a Tether mode")
    if v.get("networkAccess") is True:
        raise Bad(path, "networkAccess true is not offered")
    if kind == "workspaceWrite" and v.get("writableRoots"):
        raise Bad(path, "the host decides the writable roots")


def _opt_null(c):
    """An optional member that may also be null (Codex sends null for absent ones)."""
    return opt(t_null_or(c))


def exec_params(v, path):
    """command/exec: Codex's CommandExecParams and the rules of CMD-34, CMD-41 .. CMD-43."""
    t_obj(command=req(t_arr(STR, 1)), cwd=_opt_null(STR), processId=_opt_null(t_str(1, 64)),
          streamStdoutStderr=_opt_null(t_bool), streamStdin=_opt_null(t_bool),
          tty=_opt_null(t_bool),
          size=_opt_null(t_obj(rows=req(t_int(0, 65535)), cols=req(t_int(0, 65535)))),
          timeoutMs=_opt_null(t_int(1, 86_400_000)), disableTimeout=_opt_null(t_bool),
          outputBytesCap=_opt_null(t_int(0, 67_108_864)), disableOutputCap=_opt_null(t_bool),
          env=_opt_null(t_obj()), sandboxPolicy=_opt_null(sandbox_policy))(v, path)
    for name, value in (v.get("env") or {}).items():
        if value is not None and not isinstance(value, str):
            raise Bad(f"{path}.env.{name}", "not a string or null")
    on = lambda name: v.get(name) is True                                      # noqa: E731
    given = lambda name: v.get(name) is not None                               # noqa: E731
    if on("streamStdoutStderr") and not given("processId"):
        raise Bad(path, "streamStdoutStderr without processId")
    if on("tty") or on("streamStdin") or given("size"):
        raise Bad(path, "tty, streamStdin and size are not offered")
    if v.get("env"):
        raise Bad(f"{path}.env", "environment overrides are not offered")
    if on("disableTimeout") and given("timeoutMs"):
        raise Bad(path, "timeoutMs with disableTimeout")
    if on("disableOutputCap") and given("outputBytesCap"):
        raise Bad(path, "outputBytesCap with disableOutputCap")
    if not on("streamStdoutStderr"):
        if given("outputBytesCap") and v["outputBytesCap"] > 8192:
            raise Bad(f"{path}.outputBytesCap", "above 8 192 with the output in the result")
        if on("disableOutputCap"):
            raise Bad(path, "disableOutputCap with the output in the result")

# direction -> kind -> method -> params check (section 5 tables).
METHODS = {
    "controllerToHost": {
        "request": {
            "initialize": initialize_params,
            "thread/start": thread_start_params,
            "thread/resume": no_override(RESUME_OVERRIDES, t_obj(
                threadId=req(STR), excludeTurns=opt_n(t_bool))),
            "thread/list": t_obj(cursor=opt_n(STR), limit=opt_n(t_int(1, 1000)),
                                 sortKey=opt_n(t_const("updated_at")),
                                 sortDirection=opt_n(t_const("desc"))),
            "thread/read": t_obj(threadId=req(STR), includeTurns=opt_n(t_bool)),
            "turn/start": no_override(TURN_OVERRIDES, t_obj(
                threadId=req(STR), input=req(t_arr(UserInput, 1)))),
            "turn/interrupt": t_obj(threadId=req(STR), turnId=req(STR)),
            "command/exec": exec_params,
            "command/exec/terminate": t_obj(processId=req(STR)),
            "tether/thread/export": THREAD_ID,
            "tether/thread/import": import_params,
            "tether/host/info": EMPTY,
        },
        "notification": {
            "initialized": EMPTY,
            "tether/cancelled": t_obj(requestId=req(t_id), reason=opt(STR)),
        },
    },
    "hostToController": {
        "request": {
            "item/commandExecution/requestApproval": t_obj(
                threadId=req(STR), turnId=req(STR), itemId=req(STR), startedAtMs=req(INT),
                command=opt_n(STR), cwd=opt_n(STR), commandActions=opt_n(t_arr(CommandAction)),
                reason=opt_n(STR), availableDecisions=opt_n(t_arr(ApprovalDecision)),
                tether=opt(t_obj(sandbox=req(SandboxMode)))),
        },
        "notification": {
            "turn/started": t_obj(threadId=req(STR), turn=req(Turn)),
            "turn/completed": t_obj(threadId=req(STR), turn=req(Turn)),
            "item/started": t_obj(threadId=req(STR), turnId=req(STR), item=req(Item),
                                  startedAtMs=req(INT)),
            "item/completed": t_obj(threadId=req(STR), turnId=req(STR), item=req(Item),
                                    completedAtMs=req(INT)),
            "item/commandExecution/outputDelta": t_obj(                                # CMD-40
                threadId=req(STR), turnId=req(STR), itemId=req(STR),
                delta=req(t_str(max_bytes=MAX_CHUNK))),
            "serverRequest/resolved": t_obj(
                threadId=req(STR), requestId=req(t_id), tether=opt(t_obj(
                    decision=req(ApprovalDecision), resolvedBy=opt_n(STR),
                    rejectedAnswer=opt_n(t_obj(code=req(t_int()), message=req(STR)))))),
            "command/exec/outputDelta": t_obj(
                processId=req(STR), stream=req(Stream), deltaBase64=req(t_base64_chunk),
                capReached=req(t_bool)),
            "tether/cancelled": t_obj(requestId=req(t_id), reason=opt(STR)),
        },
    },
}

# request method -> result check.
RESULTS = {
    "initialize": t_obj(userAgent=req(STR), codexHome=req(STR), platformFamily=req(STR),
                        platformOs=req(STR),
                        tether=req(t_obj(serverInfo=req(Implementation),
                                         protocolVersion=req(STR),
                                         capabilities=req(t_arr(STR)),
                                         sandbox=req(SandboxSupport),
                                         platform=req(Platform)))),
    "thread/start": ThreadOpened,
    "thread/resume": ThreadOpened,
    "tether/thread/import": ThreadOpened,
    "thread/list": t_obj(data=req(t_arr(Thread)), nextCursor=opt_n(STR)),
    "thread/read": t_obj(thread=req(Thread)),
    "turn/start": t_obj(turn=req(Turn)),
    "turn/interrupt": EMPTY,
    "command/exec": t_obj(exitCode=req(t_int(-2**31, 2**31 - 1)), stdout=req(STR),
                          stderr=req(STR),
                          tether=req(t_obj(exitCode=req(t_null_or(t_int())),
                                           signal=req(t_null_or(STR)),
                                           timedOut=req(t_bool), capReached=req(t_bool),
                                           sandbox=req(SandboxReport)))),
    "command/exec/terminate": EMPTY,
    "tether/thread/export": t_obj(bundle=req(ThreadBundle)),
    "item/commandExecution/requestApproval": t_obj(decision=req(ApprovalDecision)),
    "tether/host/info": t_obj(home=req(t_null_or(STR)), defaultCwd=req(t_null_or(STR)),
                              defaultSandbox=req(SandboxMode), maxSandbox=req(SandboxMode),
                              defaultApprovalPolicy=req(ApprovalPolicy),
                              maxApprovalPolicy=req(ApprovalPolicy)),
}

OTHER = {"controllerToHost": "hostToController", "hostToController": "controllerToHost"}


def request_direction(method):
    """The direction a request of `method` travels in, or None."""
    for d, kinds in METHODS.items():
        if method in kinds["request"]:
            return d
    return None


def typed(kind, v, direction, result_of):
    """The typed decode of a message that passed the envelope; raises Refused('typed')."""
    if kind in ("request", "notification"):
        reply = {"id": v["id"]} if kind == "request" else None   # notifications: ignored
        table = METHODS[direction][kind]
        method = v["method"]
        if method not in table:
            raise Refused("typed", "MethodNotFound", reply, method)
        params = v.get("params", {})                            # CMD-13: absent = {}
        if isinstance(params, list):
            raise Refused("typed", "InvalidParams", reply, "params is an array")
        try:
            table[method](params, "params")
        except Bad as e:
            raise Refused("typed", e.name or "InvalidParams", reply, str(e)) from None
        return
    if kind == "response":
        if result_of not in RESULTS:
            raise Mismatch(f"resultOf {result_of!r} is not a request method of chapter 5")
        if request_direction(result_of) != OTHER[direction]:
            raise Mismatch(f"resultOf {result_of!r} is a {request_direction(result_of)} request, so "
                           f"its response travels {OTHER[request_direction(result_of)]}, but the "
                           f"test's direction is {direction}")
        try:
            RESULTS[result_of](v["result"], "result")
        except Bad as e:
            raise Refused("typed", "BadResult", None, str(e)) from None


def decode(raw: bytes, direction: str, result_of=None) -> dict:
    """One transport plaintext as its receiver decodes it: a summary dict, or Refused."""
    try:
        v = parse_strict(raw)
    except _JsonError as e:
        raise Refused("envelope", e.name, {"id": None}, str(e)) from None
    kind, v = envelope(v)
    typed(kind, v, direction, result_of)
    out = {"kind": kind}
    if kind in ("request", "notification"):
        out["method"] = v["method"]
    if "id" in v:
        out["id"] = v["id"]
    if kind == "error":
        out["code"] = v["error"]["code"]
    if kind == "response":
        out["resultOf"] = result_of
    out["_value"] = v
    return out


# ---------------------------------------------------------------------------------------
# The vector file

def _check_error_data(v, where):
    """An error response's data {"error", "requirement"} must fit its 5.12 row (CMD-10)."""
    err = v["error"]
    data = err.get("data")
    if not isinstance(data, dict) or "error" not in data:
        return False
    row = CODE_TABLE.get(err["code"])
    if row is None:
        raise Mismatch(f"{where}: error code {err['code']} is not in section 5.12")
    names, reqs = row
    if data["error"] not in names:
        raise Mismatch(f"{where}: data.error {data['error']!r} is not an error of code {err['code']} "
                       f"in section 5.12 ({sorted(names)})")
    if data.get("requirement") not in reqs:
        raise Mismatch(f"{where}: data.requirement {data.get('requirement')!r} is not a requirement "
                       f"of code {err['code']} in section 5.12 ({sorted(reqs)})")
    return True


def check_test(t, counts):
    where = f"{FILE} tcId {t.get('tcId')}"
    raw = unhex(t["msg"])
    if "text" in t and t["text"].encode("utf-8") != raw:
        raise Mismatch(f"{where}: text is not the msg bytes")
    direction = t.get("direction")
    if direction not in METHODS:
        raise Mismatch(f"{where}: direction {direction!r}")
    result = t.get("result")
    if result == "valid":
        exp = t.get("expected")
        if not isinstance(exp, dict):
            raise Mismatch(f"{where}: valid test without expected")
        try:
            got = decode(raw, direction, exp.get("resultOf"))
        except Refused as e:
            raise Mismatch(f"{where}: valid message refused: {e}") from None
        except Mismatch as e:
            raise Mismatch(f"{where}: {e}") from None
        value = got.pop("_value")
        if got != exp or any(type(got[k]) is not type(exp[k]) for k in got):
            raise Mismatch(f"{where}: expected {exp}, decoded {got}")
        if got["kind"] == "error" and _check_error_data(value, where):
            counts["errorDataChecked"] += 1
        counts["valid"] += 1
    elif result == "invalid":
        for k in ("stage", "error", "rpcCode", "reply"):
            if k not in t:
                raise Mismatch(f"{where}: invalid test without {k}")
        try:
            got = decode(raw, direction, t.get("resultOf"))
        except Refused as e:
            mine = {"stage": e.stage, "error": {"name": e.name, "requirement": e.requirement},
                    "rpcCode": e.code, "reply": e.reply}
            theirs = {k: t[k] for k in mine}
            if mine != theirs or (e.reply and type(e.reply["id"]) is not type(t["reply"]["id"])):
                raise Mismatch(f"{where}: vector says {theirs}, this receiver {mine} ({e.detail})")
            counts["invalid"] += 1
            counts[e.stage] += 1
            return
        except Mismatch as e:
            raise Mismatch(f"{where}: {e}") from None
        got.pop("_value")
        raise Mismatch(f"{where}: invalid message accepted as {got}")
    else:
        raise Mismatch(f"{where}: result {result!r}")


def run(root: Path, data=None) -> dict:
    data = load(root, FILE, data)
    if data.get("vectors") != "command":
        raise Mismatch(f"{FILE}: vectors is {data.get('vectors')!r}")
    tests = check_header(data, FILE)
    counts = {"file": FILE, "valid": 0, "invalid": 0, "envelope": 0, "typed": 0,
              "errorDataChecked": 0}
    for t in tests:
        check_test(t, counts)
    return counts


# ---------------------------------------------------------------------------------------
# Self-test mutants

def _with_msg(t, text):
    t["msg"] = text.encode("utf-8").hex()
    t["text"] = text


def mutants(root) -> Iterator[tuple[str, dict]]:
    """Yields (description, mutated command.json); run() must raise Mismatch on each."""
    base = load(root, FILE)

    def by_tc(d, tc):
        return next(t for t in d["tests"] if t["tcId"] == tc)

    def mut(desc, fn):
        d = copy.deepcopy(base)
        fn(d)
        return desc, d

    yield mut("numberOfTests off by one", lambda d: d.update(numberOfTests=d["numberOfTests"] + 1))
    yield mut("duplicate tcId", lambda d: by_tc(d, 2).update(tcId=1))
    yield mut("tcId 1: expected method renamed",
              lambda d: by_tc(d, 1)["expected"].update(method="thread/start"))
    yield mut("tcId 45: expected id changed", lambda d: by_tc(d, 45)["expected"].update(id="i"))
    yield mut("tcId 46: expected id as a string", lambda d: by_tc(d, 46)["expected"].update(id="9007199254740991"))
    yield mut("tcId 38: expected error code", lambda d: by_tc(d, 38)["expected"].update(code=-32001))
    yield mut("tcId 26: resultOf thread/list", lambda d: by_tc(d, 26)["expected"].update(resultOf="thread/list"))
    yield mut("tcId 15: kind request", lambda d: by_tc(d, 15)["expected"].update(kind="request"))
    yield mut("tcId 62: rpcCode", lambda d: by_tc(d, 62).update(rpcCode=-32700))
    yield mut("tcId 104: stage envelope", lambda d: by_tc(d, 104).update(stage="envelope"))
    yield mut("tcId 97: reply id 1", lambda d: by_tc(d, 97).update(reply={"id": 1}))
    yield mut("tcId 98: reply id 1 (a response is never answered)",
              lambda d: by_tc(d, 98).update(reply={"id": 1}))
    yield mut("tcId 56: error name Parse", lambda d: by_tc(d, 56)["error"].update(name="Parse"))
    yield mut("tcId 114: requirement CMD-20", lambda d: by_tc(d, 114)["error"].update(requirement="CMD-20"))
    yield mut("tcId 51: one more nesting level (33 deep) in a valid test",
              lambda d: _with_msg(by_tc(d, 51), by_tc(d, 51)["text"].replace("[]", "[[]]")))
    yield mut("tcId 115: limit 1000 (in range) in an invalid test",
              lambda d: _with_msg(by_tc(d, 115), by_tc(d, 115)["text"].replace("1001", "1000")))
    yield mut("tcId 2: msg with a BOM prepended",
              lambda d: by_tc(d, 2).update(msg="efbbbf" + by_tc(d, 2)["msg"], text="\ufeff" + by_tc(d, 2)["text"]))
    yield mut("tcId 8: text differs from msg", lambda d: by_tc(d, 8).update(text=by_tc(d, 8)["text"] + " "))
    yield mut("tcId 40: data.error names an error of another code",
              lambda d: _with_msg(by_tc(d, 40), by_tc(d, 40)["text"].replace('"Parse"', '"BadId"')))
    yield mut("tcId 37: direction hostToController", lambda d: by_tc(d, 37).update(direction="hostToController"))
    yield mut("tcId 130: bundle version 1 (importable)",
              lambda d: _with_msg(by_tc(d, 130), by_tc(d, 130)["text"].replace('"version":2', '"version":1')))
    yield mut("tcId 20: base64 chunk loses its padding",
              lambda d: _with_msg(by_tc(d, 20), by_tc(d, 20)["text"].replace("9ETx", "9ET")))
    yield mut("tcId 2: approvalPolicy on-failure (tether/2 dropped it)",
              lambda d: _with_msg(by_tc(d, 2), by_tc(d, 2)["text"].replace('"untrusted"', '"on-failure"')))
    yield mut("tcId 148: the unknown item becomes a userMessage without content",
              lambda d: _with_msg(by_tc(d, 148), by_tc(d, 148)["text"].replace('"fileChange"', '"userMessage"')))
