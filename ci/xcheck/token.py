"""Independent cross-check of vectors/pairing-token.json against spec/02-pairing-token.md.

The decoder and encoder below are written from chapter 2 of the spec (and the token rows
of chapter 6) alone; they share no code with the reference implementation.

What is checked, for every test of vectors/pairing-token.json:

- header: `numberOfTests` equals the number of tests, and every tcId is unique;
- every flag of a case is explained in the file's `notes`, and the flags that make a
  checkable claim hold: TextOnly exactly when `binary` is absent, RecomputedChecksum /
  StaleChecksum (the checksum of `binary` is right / wrong), Expiry exactly on the
  Expired cases, HostName / NoHostName, ExpiryEdge (now within 1 s of expiresAt);
- a case that gives `binary` must give `text` = `TETHER:` + canonical base32 of it
  (the file's schema: the binary is present when the text is valid base32 of it);
- valid cases: the text and the binary both decode (TOKEN-1, TOKEN-3), every decoded field
  equals `token`; encoding `token` gives exactly the binary and the text (TOKEN-1,
  TOKEN-3); the token is not expired at `now` (TOKEN-10: expired when now >= expiresAt);
- invalid cases: decoding the text, and the binary when given, fails with exactly
  `error.name`, the first failure in the decode order of section 2.3 (TOKEN-17), and the
  requirement id this implementation ties to that failure equals `error.requirement`:
  TooLong TOKEN-12, BadPrefix and BadEncoding TOKEN-3, Truncated and TrailingBytes
  TOKEN-5, UnknownVersion TOKEN-2, BadChecksum TOKEN-4, ReservedFlags TOKEN-6,
  BadKeyLength TOKEN-13, BadWorkspace TOKEN-7, BadRelayUrl and BadHostName TOKEN-8.
  An `Expired` case (TOKEN-10) must decode, match `token` and re-encode like a valid
  case, and then fail the expiry check at `now`;
- the worked example of spec section 2.5 (its byte table and its text form) is vector
  case 1.

TooLong (TOKEN-12) counts the text's characters as Unicode code points; the spec says
"characters" and no vector has non-ASCII text near the 1024 limit.

`run(root, data=None)` raises `Mismatch` on the first disagreement and otherwise returns
the counts; `mutants(root)` yields altered copies of the file that `run` must reject.
"""

import hashlib
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from .common import Mismatch, Result, check_header, checking, load, unhex, variant_of

FILE = "pairing-token.json"

PREFIX = "TETHER:"                               # TOKEN-3
CHECKSUM_LABEL = b"TETHER-TOKEN-CHECKSUM-V1"     # TOKEN-4
VERSION = 0x01                                   # TOKEN-2
FLAG_HOST_NAME = 0x01                            # TOKEN-1 (flags bit 0)
KEY_LEN = 32                                     # TOKEN-13
TOKEN_ID_LEN = 16                                # TOKEN-11
TOKEN_SECRET_LEN = 32                            # TOKEN-11
CHECKSUM_LEN = 4                                 # TOKEN-4
MIN_BINARY_LEN = 99                              # section 2.1 (W = 1, U = 1, no host name)
MAX_TEXT_LEN = 1024                              # TOKEN-12
B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 section 6

# The requirement id of every decode error (table of section 2.3, plus TOKEN-10).
REQUIREMENT = {
    "TooLong": "TOKEN-12",
    "BadPrefix": "TOKEN-3",
    "BadEncoding": "TOKEN-3",
    "Truncated": "TOKEN-5",
    "UnknownVersion": "TOKEN-2",
    "BadChecksum": "TOKEN-4",
    "ReservedFlags": "TOKEN-6",
    "BadKeyLength": "TOKEN-13",
    "TrailingBytes": "TOKEN-5",
    "BadWorkspace": "TOKEN-7",
    "BadRelayUrl": "TOKEN-8",
    "BadHostName": "TOKEN-8",
    "Expired": "TOKEN-10",
}

FIELDS = ("hostKey", "tokenId", "tokenSecret", "expiresAt", "workspace", "relayUrl", "hostName")


class TokenError(Exception):
    """A decode (or expiry) failure, named as in the spec."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name
        self.requirement = REQUIREMENT[name]


# ---------------------------------------------------------------- field rules

def workspace_ok(b: bytes) -> bool:
    """TOKEN-7 (also LINK-32): 1 to 64 bytes of a-z 0-9 . _ -"""
    return 1 <= len(b) <= 64 and all(
        0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c in (0x2E, 0x5F, 0x2D) for c in b)


def relay_url_ok(b: bytes) -> bool:
    """TOKEN-8: 1 to 255 bytes in 0x21-0x7e, `ws://` or `wss://` then at least one byte."""
    if not 1 <= len(b) <= 255 or not all(0x21 <= c <= 0x7E for c in b):
        return False
    return any(b.startswith(s) and len(b) > len(s) for s in (b"ws://", b"wss://"))


def host_name_ok(b: bytes) -> bool:
    """TOKEN-8: 1 to 64 bytes of valid UTF-8 without U+0000-U+001F or U+007F-U+009F."""
    if not 1 <= len(b) <= 64:
        return False
    try:
        s = b.decode("utf-8")   # strict: rejects overlong forms and surrogates
    except UnicodeDecodeError:
        return False
    return not any(ord(ch) <= 0x1F or 0x7F <= ord(ch) <= 0x9F for ch in s)


def checksum(body: bytes) -> bytes:
    """TOKEN-4: first 4 bytes of BLAKE2s-256(label || every byte before the checksum)."""
    return hashlib.blake2s(CHECKSUM_LABEL + body, digest_size=32).digest()[:CHECKSUM_LEN]


# ---------------------------------------------------------------- base32 (TOKEN-3)

def b32encode(data: bytes) -> str:
    """Canonical upper-case unpadded RFC 4648 base32 (unused low bits zero)."""
    out = []
    acc = nbits = 0
    for byte in data:
        acc = (acc << 8) | byte
        nbits += 8
        while nbits >= 5:
            nbits -= 5
            out.append(B32_ALPHABET[(acc >> nbits) & 31])
    if nbits:
        out.append(B32_ALPHABET[(acc << (5 - nbits)) & 31])
    return "".join(out)


def b32decode(s: str) -> bytes:
    """Strict inverse of b32encode; any other input is BadEncoding (TOKEN-3)."""
    if len(s) % 8 in (1, 3, 6):
        raise TokenError("BadEncoding", f"length {len(s)} is {len(s) % 8} modulo 8")
    out = bytearray()
    acc = nbits = 0
    for ch in s:
        v = B32_ALPHABET.find(ch) if len(ch) == 1 else -1
        if v < 0:
            raise TokenError("BadEncoding", f"character {ch!r}")
        acc = (acc << 5) | v
        nbits += 5
        if nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)
    if acc & ((1 << nbits) - 1):
        raise TokenError("BadEncoding", "non-zero unused bits")
    return bytes(out)


# ---------------------------------------------------------------- decode (section 2.3)

def decode_text(text: str) -> dict:
    """Steps 1-3 of section 2.3, then the binary decoder."""
    if len(text) > MAX_TEXT_LEN:                      # step 1, TOKEN-12
        raise TokenError("TooLong", f"{len(text)} characters")
    if not text.startswith(PREFIX):                   # step 2, TOKEN-3
        raise TokenError("BadPrefix", repr(text[:8]))
    return decode_binary(b32decode(text[len(PREFIX):]))   # step 3, TOKEN-3


def decode_binary(b: bytes) -> dict:
    """Steps 4-14 of section 2.3; returns the fields with the vector file's names."""
    if not b:                                          # step 4
        raise TokenError("Truncated", "empty")
    if b[0] != VERSION:                                # step 5, TOKEN-2
        raise TokenError("UnknownVersion", f"version {b[0]}")
    if len(b) < MIN_BINARY_LEN:                        # step 6, TOKEN-5
        raise TokenError("Truncated", f"{len(b)} bytes")
    end = len(b) - CHECKSUM_LEN
    if checksum(b[:end]) != b[end:]:                   # step 7, TOKEN-4
        raise TokenError("BadChecksum")
    flags = b[1]
    if flags & ~FLAG_HOST_NAME & 0xFF:                 # step 8, TOKEN-6
        raise TokenError("ReservedFlags", f"flags {flags:#04x}")
    if b[2] != KEY_LEN:                                # step 9, TOKEN-13
        raise TokenError("BadKeyLength", f"key length {b[2]}")

    pos = 3                                            # step 10: structure, TOKEN-5

    def take(n: int, what: str) -> bytes:
        nonlocal pos
        if pos + n > end:
            raise TokenError("Truncated", f"{what} runs into the checksum")
        field = b[pos:pos + n]
        pos += n
        return field

    host_key = take(KEY_LEN, "host key")
    token_id = take(TOKEN_ID_LEN, "token id")
    secret = take(TOKEN_SECRET_LEN, "token secret")
    expires = int.from_bytes(take(8, "expires at"), "big")
    workspace = take(take(1, "W")[0], "workspace id")
    relay_url = take(take(1, "U")[0], "relay URL")
    host_name = take(take(1, "N")[0], "host name") if flags & FLAG_HOST_NAME else None
    if pos != end:                                     # step 11, TOKEN-5
        raise TokenError("TrailingBytes", f"{end - pos} bytes before the checksum")
    if not workspace_ok(workspace):                    # step 12, TOKEN-7
        raise TokenError("BadWorkspace", repr(workspace))
    if not relay_url_ok(relay_url):                    # step 13, TOKEN-8
        raise TokenError("BadRelayUrl", repr(relay_url))
    if host_name is not None and not host_name_ok(host_name):   # step 14, TOKEN-8
        raise TokenError("BadHostName", repr(host_name))
    return {
        "hostKey": host_key.hex(),
        "tokenId": token_id.hex(),
        "tokenSecret": secret.hex(),
        "expiresAt": expires,
        "workspace": workspace.decode("ascii"),
        "relayUrl": relay_url.decode("ascii"),
        "hostName": None if host_name is None else host_name.decode("utf-8"),
    }


def check_expiry(token: dict, now: int) -> None:
    """TOKEN-10: expired when now >= expires_at."""
    if now >= token["expiresAt"]:
        raise TokenError("Expired", f"now {now} >= expiresAt {token['expiresAt']}")


# ---------------------------------------------------------------- encode (TOKEN-1)

def encode_binary(token: dict) -> bytes:
    """Binary form of `token`; every field is checked first (TOKEN-1)."""
    host_key, token_id, secret = (unhex(token[k]) for k in ("hostKey", "tokenId", "tokenSecret"))
    expires = token["expiresAt"]
    workspace = token["workspace"].encode("utf-8")
    relay_url = token["relayUrl"].encode("utf-8")
    name = token["hostName"]
    host_name = None if name is None else name.encode("utf-8")
    problems = []
    if len(host_key) != KEY_LEN:
        problems.append(f"host key of {len(host_key)} bytes")
    if len(token_id) != TOKEN_ID_LEN:
        problems.append(f"token id of {len(token_id)} bytes")
    if len(secret) != TOKEN_SECRET_LEN:
        problems.append(f"token secret of {len(secret)} bytes")
    if not isinstance(expires, int) or isinstance(expires, bool) or not 0 <= expires < 1 << 64:
        problems.append(f"expiresAt {expires!r} is not a u64")
    if not workspace_ok(workspace):
        problems.append("workspace breaks TOKEN-7")
    if not relay_url_ok(relay_url):
        problems.append("relay URL breaks TOKEN-8")
    if host_name is not None and not host_name_ok(host_name):
        problems.append("host name breaks TOKEN-8")
    if problems:
        raise Mismatch("encoder refuses the fields: " + "; ".join(problems))
    out = bytearray([VERSION, FLAG_HOST_NAME if host_name is not None else 0, KEY_LEN])
    out += host_key + token_id + secret + expires.to_bytes(8, "big")
    out += bytes([len(workspace)]) + workspace + bytes([len(relay_url)]) + relay_url
    if host_name is not None:
        out += bytes([len(host_name)]) + host_name
    return bytes(out) + checksum(bytes(out))


def encode_text(token: dict) -> str:
    return PREFIX + b32encode(encode_binary(token))


# ---------------------------------------------------------------- the vector file

def _attempt(fn, arg):
    """(fields, None) on success, (None, TokenError) on a decode failure."""
    try:
        return fn(arg), None
    except TokenError as e:
        return None, e


def _expect_fields(got: dict, want, where: str, form: str) -> None:
    if not isinstance(want, dict) or set(want) != set(FIELDS):
        raise Mismatch(f"{where}: `token` must have exactly the fields {FIELDS}")
    for k in FIELDS:
        if got[k] != want[k]:
            raise Mismatch(f"{where}: {form} decodes {k} = {got[k]!r}, vector says {want[k]!r}")


def _check_decodes(t: dict, where: str) -> dict:
    """Text and binary decode to `token`, which re-encodes to both; returns the fields."""
    forms = [("text", decode_text, t["text"])]
    if "binary" in t:
        forms.append(("binary", decode_binary, unhex(t["binary"])))
    else:
        raise Mismatch(f"{where}: a decodable case must give `binary`")
    for form, fn, arg in forms:
        got, err = _attempt(fn, arg)
        if err is not None:
            raise Mismatch(f"{where}: {form} does not decode: {err}")
        _expect_fields(got, t.get("token"), where, form)
    binary = encode_binary(t["token"])
    if binary.hex() != t["binary"]:
        raise Mismatch(f"{where}: encoding `token` gives binary\n    python {binary.hex()}"
                       f"\n    vector {t['binary']}")
    text = PREFIX + b32encode(binary)
    if text != t["text"]:
        raise Mismatch(f"{where}: encoding `token` gives text\n    python {text}\n    vector {t['text']}")
    return t["token"]


def _check_invalid(t: dict, where: str) -> None:
    err = t.get("error")
    if not isinstance(err, dict) or set(err) != {"name", "requirement"}:
        raise Mismatch(f"{where}: an invalid case needs error {{name, requirement}}")
    if err["name"] == "Expired":
        fields = _check_decodes(t, where)
        try:
            check_expiry(fields, t["now"])
        except TokenError as e:
            failure = e
        else:
            raise Mismatch(f"{where}: vector says Expired, but expiresAt {fields['expiresAt']} "
                           f"is after now {t['now']}")
        forms = [("expiry check", failure)]
    else:
        forms = []
        for form, fn, arg in [("text", decode_text, t["text"])] + (
                [("binary", decode_binary, unhex(t["binary"]))] if "binary" in t else []):
            got, failure = _attempt(fn, arg)
            if failure is None:
                raise Mismatch(f"{where}: vector says {err['name']}, but the {form} decodes: {got}")
            forms.append((form, failure))
    for form, failure in forms:
        if failure.name != err["name"]:
            raise Mismatch(f"{where}: {form} fails with {failure}, vector says {err['name']}")
        if failure.requirement != err["requirement"]:
            raise Mismatch(f"{where}: {failure.name} enforces {failure.requirement} "
                           f"(spec section 2.3), vector says {err['requirement']}")


def _check_spec_example(root: Path, tests: list) -> None:
    """Section 2.5 of the spec gives case 1 as a byte table and a text form."""
    path = Path(root) / "spec" / "02-pairing-token.md"
    if not path.exists():
        raise Mismatch(f"{path}: missing (the worked example is checked against case 1)")
    section = path.read_text(encoding="utf-8").split("## 2.5", 1)[-1].split("\n## ", 1)[0]
    hex_rows = re.findall(r"^\| \d+ \| `([0-9a-f]+)` \|", section, re.M)
    texts = re.findall(r"```text\n(.*?)\n```", section, re.S)
    case1 = next((t for t in tests if t["tcId"] == 1), None)
    if case1 is None or not hex_rows or len(texts) != 1:
        raise Mismatch(f"{path.name} section 2.5: worked example or vector case 1 not found")
    if "".join(hex_rows) != case1.get("binary"):
        raise Mismatch(f"{path.name} section 2.5: the byte table is not the binary of tcId 1")
    if texts[0].strip() != case1.get("text"):
        raise Mismatch(f"{path.name} section 2.5: the text form is not the text of tcId 1")


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

    claim(("TextOnly" in flags) == ("binary" not in t), "TextOnly (no binary form) "
          "is set exactly when `binary` is absent:")
    if "binary" in t:
        b = unhex(t["binary"])
        good = len(b) > CHECKSUM_LEN and checksum(b[:-CHECKSUM_LEN]) == b[-CHECKSUM_LEN:]
        if "RecomputedChecksum" in flags:
            claim(good, "RecomputedChecksum (checksum correct)")
        if "StaleChecksum" in flags:
            claim(not good, "StaleChecksum (checksum wrong)")
    expired = isinstance(t.get("error"), dict) and t["error"].get("name") == "Expired"
    claim(("Expiry" in flags) == expired, "Expiry (set exactly on the Expired cases)")
    if "HostName" in flags or "NoHostName" in flags:
        claim(("HostName" in flags) == (t["token"]["hostName"] is not None), "HostName / NoHostName")
    if "ExpiryEdge" in flags:
        claim(abs(t["now"] - t["token"]["expiresAt"]) <= 1, "ExpiryEdge (now within 1 s of expiresAt)")


def run(root: Path, data: dict | None = None) -> dict:
    data = load(root, FILE, data)
    tests = check_header(data, FILE)
    notes = data.get("notes") if isinstance(data.get("notes"), dict) else {}
    result = Result(FILE, "valid", "invalid")
    for t in tests:
        where = f"{FILE} tcId {t['tcId']}"
        with checking(where):
            _check_flags(t, notes, where)
            if not isinstance(t.get("text"), str):
                raise Mismatch(f"{where}: `text` missing")
            if "binary" in t and t["text"] != PREFIX + b32encode(unhex(t["binary"])):
                raise Mismatch(f"{where}: `text` is not TETHER: + base32 of `binary`")
            if t.get("result") == "valid":
                if "error" in t:
                    raise Mismatch(f"{where}: a valid case carries an error")
                fields = _check_decodes(t, where)
                try:
                    check_expiry(fields, t["now"])
                except TokenError as e:
                    raise Mismatch(f"{where}: valid, but {e}") from None
                result.add("valid")
            elif t.get("result") == "invalid":
                _check_invalid(t, where)
                result.add("invalid")
            else:
                raise Mismatch(f"{where}: result {t.get('result')!r}")
    _check_spec_example(root, tests)
    return result.as_dict()


# ---------------------------------------------------------------- self-test mutants

def mutants(root: Path) -> Iterator[tuple[str, dict]]:
    """Altered copies of the vector file; `run` must raise Mismatch on every one."""
    base = load(root, FILE)

    variant = partial(variant_of, base)

    def flip_binary(t, _d):
        # Binary and text both carry the flipped bit; the checksum is now stale.
        b = bytearray(unhex(t["binary"]))
        b[10] ^= 0x01                                  # inside the host key
        t["binary"], t["text"] = b.hex(), PREFIX + b32encode(bytes(b))

    def flip_text(t, _d):
        s = t["text"]
        t["text"] = s[:20] + ("B" if s[20] != "B" else "C") + s[21:]

    def set_reserved_flag_recomputed(t, _d):
        # A token with flags bit 0 set and no host name field, with a correct checksum.
        b = bytearray(unhex(t["binary"])[:-CHECKSUM_LEN])
        b[1] |= FLAG_HOST_NAME
        b += checksum(bytes(b))
        t["binary"], t["text"] = b.hex(), PREFIX + b32encode(bytes(b))

    yield "tcId 1: one host-key bit flipped in binary and text (stale checksum)", variant(1, flip_binary)
    yield "tcId 1: one character of the text changed, binary kept", variant(1, flip_text)
    yield "tcId 21: trailing newline removed, still BadEncoding", variant(21, lambda t, d: t.update(text=t["text"].rstrip("\n")))
    yield "tcId 2: workspace field changed", variant(2, lambda t, d: t["token"].update(workspace="acme-prod"))
    yield "tcId 1: hostName dropped", variant(1, lambda t, d: (t["token"].update(hostName=None), t.update(flags=["NoHostName"])))
    yield "tcId 5: expiresAt off by one", variant(5, lambda t, d: t["token"].update(expiresAt=t["token"]["expiresAt"] + 1))
    yield "tcId 7: now moved to expiresAt, still marked valid", variant(7, lambda t, d: t.update(now=t["token"]["expiresAt"]))
    yield "tcId 2: flags bit 0 set without host name (re-checksummed), still valid", variant(2, set_reserved_flag_recomputed)
    yield "tcId 9: now one second before expiry, still Expired", variant(9, lambda t, d: t.update(now=t["now"] - 1))
    yield "tcId 31: UnknownVersion renamed BadChecksum (decode order)", variant(31, lambda t, d: t["error"].update(name="BadChecksum"))
    yield "tcId 44: TrailingBytes renamed BadWorkspace (structure before content)", variant(44, lambda t, d: t["error"].update(name="BadWorkspace"))
    yield "tcId 26: Truncated requirement TOKEN-5 -> TOKEN-4", variant(26, lambda t, d: t["error"].update(requirement="TOKEN-4"))
    yield "tcId 61: BadHostName requirement TOKEN-8 -> TOKEN-7", variant(61, lambda t, d: t["error"].update(requirement="TOKEN-7"))
    yield "tcId 27: binary dropped but not flagged TextOnly", variant(27, lambda t, d: t.pop("binary"))
    yield "tcId 33: flagged RecomputedChecksum instead of Checksum", variant(33, lambda t, d: t.update(flags=["RecomputedChecksum"]))
    yield "numberOfTests off by one", variant(1, lambda t, d: d.update(numberOfTests=d["numberOfTests"] + 1))
    yield "tcId 3 duplicated as tcId 2", variant(3, lambda t, d: t.update(tcId=2))
