"""Independent check of Tether's handshake layer in vectors/noise-ik.json and session.json.

Written from spec/04-secure-channel.md (with chapters 2, 3 and 5 for session.json) alone.
Everything cryptographic is recomputed here with the standard library only: X25519 (RFC
7748 ladder), ChaCha20-Poly1305 (RFC 8439), BLAKE2s (hashlib) with HMAC/HKDF as the Noise
framework defines them, and the Noise IK handshake (`-> e, es, s, ss`, `<- e, ee, se`).
No Noise library is used, so this is independent of ci/crosscheck_noise.py too.

noise-ik.json (`run(root)`), per test:

* header: numberOfTests, unique tcIds, protocol_name `Noise_IK_25519_ChaChaPoly_BLAKE2s`
  (CHAN-1);
* prologues: `init_prologue` / `resp_prologue` are rebuilt from `prologue.initiator` /
  `prologue.responder` with the layout of section 4.2 (CHAN-2); the responder's host key
  is X25519(resp_static) and the initiator's is `init_remote_static`;
* every message is written by this implementation from the vector's keys and payload and
  must equal `ciphertext`; messages before `deliver.afterMessages` (all of them in a valid
  test) are read back by the other side and must give `payload`; transport messages use
  the Split cipher states with nonces 0, 1, ... (CHAN-17, CHAN-21);
* message-1 payloads are parsed with the layout of section 4.3 (CHAN-3) and the TAI64N
  rules of section 4.4 (CHAN-4); the kind agrees with the `Session` / `Pair` flag;
  message-2 payloads are parsed as host info (section 4.5, CHAN-6, CHAN-25);
* `handshakeHashAfterMsg1` is the Noise `h` after message 1 on both sides, the
  `confirmationCode` is derived from it as CHAN-23 says, and `handshake_hash` is `h` after
  message 2;
* two SESSION handshakes of one controller to one host (same keys and workspace) carry
  strictly increasing timestamps in tcId order (CHAN-5);
* invalid tests: the side named by `deliver.to` fails on `deliver.message` with exactly
  `error.name`, and `error.requirement` is the requirement of section 4.10 for that name:
  HandshakeFailed CHAN-8 (tag or length), LowOrderKey CHAN-7 (an all-zero DH output),
  DecryptFailed CHAN-18 (transport), BadPayload CHAN-3, BadTimestamp CHAN-4, BadHostInfo
  CHAN-6, HostInfoTooLarge CHAN-25;
* the worked examples of chapter 4 (prologue of 4.2, SESSION payload of 4.3, host info of
  4.5, confirmation code of 4.8) are present in the spec and equal the vector values.

session.json (`run(root, file="session.json")`, `run_session(root)`, or `run(root, data=d)`
with d["vectors"] == "session"):

* the token text and binary decode (xcheck.token when present, chapter 2) to the
  `inputs` (host key = X25519(hostStatic) = hostStaticPublic, token id and secret,
  workspace, relay URL) and the token is unexpired at `inputs.now` (TOKEN-10, CHAN-12);
* the handshake is recomputed from `inputs` alone: the prologue from workspace, host key
  and session id (CHAN-2), the PAIR payload from the message-1 timestamp, token id, token
  secret and device name (CHAN-3, CHAN-12), the host info payload equals
  `inputs.hostInfo` (CHAN-6); the timestamp is not more than 600 s ahead of `now`
  (CHAN-11); `confirmationCode` follows from `h` after message 1 (CHAN-23);
* relay frames (xcheck.frames when present, chapter 3): OPEN carries the session id, the
  host key and message 1, INCOMING the same id and message 1 (LINK-18), the host's first
  DATA is message 2 (CHAN-28), then every DATA carries one transport message in order
  (CHAN-16), and every frame sent to the relay on one link is forwarded unchanged to the
  other link (LINK-18);
* each transport plaintext decodes with xcheck.command (chapter 5) in its direction,
  every response answers an unanswered request of the other side (CMD-14), the first
  controller request is `initialize` and the host sends no request or notification before
  `initialized` (CMD-15), `resolvedBy` is the paired device name (CMD-30, CHAN-27), a
  turn's first item is its userMessage (CMD-24), `turn/completed` carries every item
  completed in the turn (CMD-25), and a host that confirms pairings (flag Confirmation)
  lists `pairing.confirm` in message 2 and in the initialize result (6.6, CHAN-6, CMD-16).
  Breaches of these transcript rules are collected and reported together.

`mutants(root)` yields altered copies of both files (some "resealed": re-encrypted with
this module's writer so that only the payload or transcript check can catch them).
"""

import copy
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from pathlib import Path

from xcheck.common import Mismatch, check_header, load, unhex

PROTOCOL = "Noise_IK_25519_ChaChaPoly_BLAKE2s"
PROLOGUE_LABEL = b"TETHER-IK-V1"                 # section 4.2
CONFIRM_LABEL = b"TETHER-CONFIRM-V1"             # CHAN-23
TAI_BASE = 1 << 62                               # CHAN-4
MSG1_MIN, MSG1_MAX = 96, 512                     # section 4.7 step 4
MSG2_MAX = 4144                                  # section 4.5
HOST_INFO_MAX = 4096                             # CHAN-25
TRANSPORT_MAX = 65535                            # CHAN-16
CLOCK_SKEW = 600                                 # CHAN-11

# Section 4.10: reference error -> requirement.
REQUIREMENT = {
    "HandshakeFailed": "CHAN-8",
    "LowOrderKey": "CHAN-7",
    "BadPayload": "CHAN-3",
    "BadTimestamp": "CHAN-4",
    "BadHostInfo": "CHAN-6",
    "HostInfoTooLarge": "CHAN-25",
    "DecryptFailed": "CHAN-18",
    "MessageTooLarge": "CHAN-16",
}


class ChannelError(Exception):
    def __init__(self, name, detail=""):
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.requirement = REQUIREMENT[name]


# ------------------------------------------------------------------ X25519 (RFC 7748)

_P = 2 ** 255 - 19


def x25519(k: bytes, u: bytes) -> bytes:
    k = bytearray(k)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    n = int.from_bytes(k, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)   # top bit ignored (CHAN-7)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (n >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a = (x2 + z2) % _P
        aa = a * a % _P
        b = (x2 - z2) % _P
        bb = b * b % _P
        e = (aa - bb) % _P
        c = (x3 + z3) % _P
        d = (x3 - z3) % _P
        da = d * a % _P
        cb = c * b % _P
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + 121665 * e) % _P
    if swap:
        x2, x3, z2, z3 = x3, x2, z3, z2
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def public_key(private: bytes) -> bytes:
    return x25519(private, (9).to_bytes(32, "little"))


# ------------------------------------------------------- ChaCha20-Poly1305 (RFC 8439)

def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _chacha_block(key: bytes, counter: int, nonce: bytes) -> bytes:
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += [int.from_bytes(key[i:i + 4], "little") for i in range(0, 32, 4)]
    s += [counter] + [int.from_bytes(nonce[i:i + 4], "little") for i in range(0, 12, 4)]
    w = s[:]
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                           (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
            w[a] = (w[a] + w[b]) & 0xFFFFFFFF
            w[d] = _rotl(w[d] ^ w[a], 16)
            w[c] = (w[c] + w[d]) & 0xFFFFFFFF
            w[b] = _rotl(w[b] ^ w[c], 12)
            w[a] = (w[a] + w[b]) & 0xFFFFFFFF
            w[d] = _rotl(w[d] ^ w[a], 8)
            w[c] = (w[c] + w[d]) & 0xFFFFFFFF
            w[b] = _rotl(w[b] ^ w[c], 7)
    return b"".join(((w[i] + s[i]) & 0xFFFFFFFF).to_bytes(4, "little") for i in range(16))


def _chacha_xor(key, counter, nonce, data):
    out = bytearray()
    for i in range(0, len(data), 64):
        block = _chacha_block(key, counter + i // 64, nonce)
        out += bytes(x ^ y for x, y in zip(data[i:i + 64], block))
    return bytes(out)


def _poly1305(key: bytes, msg: bytes) -> bytes:
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p, acc = (1 << 130) - 5, 0
    for i in range(0, len(msg), 16):
        acc = (acc + int.from_bytes(msg[i:i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


def _pad16(b):
    return b"\0" * (-len(b) % 16)


def _tag(key, nonce, ad, ct):
    otk = _chacha_block(key, 0, nonce)[:32]
    return _poly1305(otk, ad + _pad16(ad) + ct + _pad16(ct)
                     + len(ad).to_bytes(8, "little") + len(ct).to_bytes(8, "little"))


def _nonce(n: int) -> bytes:
    return b"\0\0\0\0" + n.to_bytes(8, "little")          # CHAN-21


def aead_encrypt(key, n, ad, pt):
    ct = _chacha_xor(key, 1, _nonce(n), pt)
    return ct + _tag(key, _nonce(n), ad, ct)


def aead_decrypt(key, n, ad, data):
    if len(data) < 16:
        return None
    ct, tag = data[:-16], data[-16:]
    if not hmac.compare_digest(_tag(key, _nonce(n), ad, ct), tag):
        return None
    return _chacha_xor(key, 1, _nonce(n), ct)


# ------------------------------------------------------------- Noise IK, BLAKE2s

def _hash(b):
    return hashlib.blake2s(b).digest()


def _hmac(key, data):
    return hmac.new(key, data, hashlib.blake2s).digest()


def _hkdf2(ck, ikm):
    temp = _hmac(ck, ikm)
    o1 = _hmac(temp, b"\x01")
    return o1, _hmac(temp, o1 + b"\x02")


class Cipher:
    def __init__(self, key):
        self.k, self.n = key, 0

    def encrypt(self, ad, pt):
        ct = aead_encrypt(self.k, self.n, ad, pt)
        self.n += 1
        return ct

    def decrypt(self, ad, ct, error):
        pt = aead_decrypt(self.k, self.n, ad, ct)
        if pt is None:
            raise ChannelError(error, f"tag does not verify at nonce {self.n}")
        self.n += 1
        return pt


class HandshakeState:
    """One side of Noise_IK_25519_ChaChaPoly_BLAKE2s (Noise revision 34, section 5)."""

    def __init__(self, initiator, prologue, s, e, rs=None):
        name = PROTOCOL.encode("ascii")
        self.h = name.ljust(32, b"\0") if len(name) <= 32 else _hash(name)
        self.ck, self.cipher = self.h, None
        self.initiator, self.s, self.e, self.rs, self.re = initiator, s, e, rs, None
        self.mix_hash(prologue)
        self.mix_hash(rs if initiator else public_key(s))     # pre-message <- s
        self.h1 = None

    def mix_hash(self, data):
        self.h = _hash(self.h + data)

    def mix_key(self, ikm):
        self.ck, k = _hkdf2(self.ck, ikm)
        self.cipher = Cipher(k[:32])

    def dh(self, priv, pub):
        out = x25519(priv, pub)
        if out == bytes(32):
            raise ChannelError("LowOrderKey", "all-zero DH output")
        return out

    def enc_hash(self, pt):
        ct = self.cipher.encrypt(self.h, pt) if self.cipher else pt
        self.mix_hash(ct)
        return ct

    def dec_hash(self, ct):
        pt = self.cipher.decrypt(self.h, ct, "HandshakeFailed") if self.cipher else ct
        self.mix_hash(ct)
        return pt

    def write_msg1(self, payload):
        e_pub = public_key(self.e)
        self.mix_hash(e_pub)
        self.mix_key(self.dh(self.e, self.rs))                          # es
        s_ct = self.enc_hash(public_key(self.s))
        self.mix_key(self.dh(self.s, self.rs))                          # ss
        out = e_pub + s_ct + self.enc_hash(payload)
        self.h1 = self.h
        return out

    def read_msg1(self, msg):
        if not MSG1_MIN <= len(msg) <= MSG1_MAX:
            raise ChannelError("HandshakeFailed", f"message 1 of {len(msg)} bytes")
        self.re = msg[:32]
        self.mix_hash(self.re)
        self.mix_key(self.dh(self.s, self.re))                          # es
        self.rs = self.dec_hash(msg[32:80])
        self.mix_key(self.dh(self.s, self.rs))                          # ss
        payload = self.dec_hash(msg[80:])
        self.h1 = self.h
        return payload

    def write_msg2(self, payload):
        e_pub = public_key(self.e)
        self.mix_hash(e_pub)
        self.mix_key(self.dh(self.e, self.re))                          # ee
        self.mix_key(self.dh(self.e, self.rs))                          # se
        return e_pub + self.enc_hash(payload)

    def read_msg2(self, msg):
        if not 48 <= len(msg) <= MSG2_MAX:
            raise ChannelError("HandshakeFailed", f"message 2 of {len(msg)} bytes")
        self.re = msg[:32]
        self.mix_hash(self.re)
        self.mix_key(self.dh(self.e, self.re))                          # ee
        self.mix_key(self.dh(self.s, self.re))                          # se
        return self.dec_hash(msg[32:])

    def split(self):
        k1, k2 = _hkdf2(self.ck, b"")
        c1, c2 = Cipher(k1[:32]), Cipher(k2[:32])
        self.send, self.recv = (c1, c2) if self.initiator else (c2, c1)

    def encrypt(self, pt):
        if len(pt) + 16 > TRANSPORT_MAX:
            raise ChannelError("MessageTooLarge", f"{len(pt)} plaintext bytes")
        return self.send.encrypt(b"", pt)

    def decrypt(self, ct):
        if len(ct) > TRANSPORT_MAX:
            raise ChannelError("MessageTooLarge", f"{len(ct)} bytes")
        return self.recv.decrypt(b"", ct, "DecryptFailed")


def confirmation_code(h1: bytes) -> str:
    """CHAN-23."""
    return f"{int.from_bytes(_hash(CONFIRM_LABEL + h1)[:4], 'big') % 1000000:06d}"


# ------------------------------------------------------------------ payload layouts

WORKSPACE = re.compile(rb"[a-z0-9._-]{1,64}")


def build_prologue(workspace: str, host_key: bytes, session_id: bytes) -> bytes:
    """Section 4.2, CHAN-2."""
    w = workspace.encode("ascii")
    if not WORKSPACE.fullmatch(w) or len(host_key) != 32 or len(session_id) != 8:
        raise Mismatch(f"prologue inputs break section 4.2: {workspace!r}")
    return PROLOGUE_LABEL + bytes([len(w)]) + w + host_key + session_id


def parse_timestamp(b: bytes) -> tuple:
    """Section 4.4, CHAN-4: (label, nanoseconds)."""
    label, ns = int.from_bytes(b[:8], "big"), int.from_bytes(b[8:12], "big")
    if not TAI_BASE <= label < 2 * TAI_BASE:
        raise ChannelError("BadTimestamp", f"label {label:#x}")
    if ns >= 10 ** 9:
        raise ChannelError("BadTimestamp", f"{ns} nanoseconds")
    return label, ns


def encode_timestamp(unix_seconds: int, ns: int) -> bytes:
    return (TAI_BASE + unix_seconds).to_bytes(8, "big") + ns.to_bytes(4, "big")


def parse_msg1_payload(p: bytes) -> dict:
    """Section 4.3, CHAN-3; the layout first, then the timestamp (CHAN-4)."""
    if len(p) < 2:
        raise ChannelError("BadPayload", f"{len(p)} bytes")
    if p[0] != 0x01:
        raise ChannelError("BadPayload", f"version {p[0]:#04x}")
    if p[1] not in (0x00, 0x01):
        raise ChannelError("BadPayload", f"kind {p[1]:#04x}")
    out = {"kind": "SESSION" if p[1] == 0 else "PAIR"}
    if p[1] == 0x00:
        if len(p) != 14:
            raise ChannelError("BadPayload", f"SESSION payload of {len(p)} bytes")
    else:
        if len(p) < 63:
            raise ChannelError("BadPayload", f"PAIR payload of {len(p)} bytes")
        n = p[62]
        if not 1 <= n <= 64:
            raise ChannelError("BadPayload", f"device name length {n}")
        if len(p) != 63 + n:
            raise ChannelError("BadPayload", f"PAIR payload of {len(p)} bytes for N = {n}")
        try:
            name = p[63:].decode("utf-8")
        except UnicodeDecodeError:
            raise ChannelError("BadPayload", "device name is not UTF-8") from None
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name):
            raise ChannelError("BadPayload", "control character in the device name")
        out.update(tokenId=p[14:30].hex(), tokenSecret=p[30:62].hex(), deviceName=name)
    label, ns = parse_timestamp(p[2:14])
    out.update(timestamp=p[2:14], unixSeconds=label - TAI_BASE, nanos=ns)
    return out


HOST_INFO_STRINGS = ("name", "os", "arch", "shell")


def parse_host_info(p: bytes) -> dict:
    """Section 4.5, CHAN-6, CHAN-25."""
    from xcheck.command import _JsonError, _Parser   # the strict JSON reader of command.py
    if len(p) > HOST_INFO_MAX:
        raise ChannelError("HostInfoTooLarge", f"{len(p)} bytes")
    if not p or p[0] != 0x01:
        raise ChannelError("BadHostInfo", "empty or not version 0x01")
    body = p[1:]
    if body.startswith(b"\xef\xbb\xbf"):
        raise ChannelError("BadHostInfo", "byte-order mark")
    try:
        parser = _Parser(body.decode("utf-8"), max_depth=10 ** 9)   # CHAN-6 sets no depth
        v = parser.value(0)
        parser.ws()
        if parser.i != len(parser.s):
            raise ChannelError("BadHostInfo", "data after the JSON object")
    except (UnicodeDecodeError, _JsonError) as e:   # including a repeated member
        raise ChannelError("BadHostInfo", str(e)) from None
    if not isinstance(v, dict):
        raise ChannelError("BadHostInfo", "not one JSON object")
    for k in HOST_INFO_STRINGS + ("pathStyle", "protocol", "capabilities"):
        if k not in v:
            raise ChannelError("BadHostInfo", f"missing {k}")
    for k in HOST_INFO_STRINGS + ("pathStyle", "protocol"):
        if not isinstance(v[k], str):
            raise ChannelError("BadHostInfo", f"{k} is not a string")
    if not isinstance(v["capabilities"], list) or not all(isinstance(c, str) for c in v["capabilities"]):
        raise ChannelError("BadHostInfo", "capabilities is not an array of strings")
    if v["pathStyle"] not in ("posix", "windows"):
        raise ChannelError("BadHostInfo", f"pathStyle {v['pathStyle']!r}")
    if v["protocol"] != "tether/1":
        raise ChannelError("BadHostInfo", f"protocol {v['protocol']!r}")
    return v


# ------------------------------------------------------------------ noise-ik.json

def expect(got, want, what):
    if got != want:
        raise Mismatch(f"{what}: vector {want!r}, recomputed {got!r}")


class Replay:
    """Both sides of one cacophony-shaped handshake object, driven message by message."""

    def __init__(self, v, where):
        if v.get("protocol_name") != PROTOCOL:
            raise Mismatch(f"{where}: protocol_name {v.get('protocol_name')!r} (CHAN-1)")
        self.v, self.where = v, where
        self.init = HandshakeState(True, unhex(v["init_prologue"]), unhex(v["init_static"]),
                                   unhex(v["init_ephemeral"]), unhex(v["init_remote_static"]))
        self.resp = HandshakeState(False, unhex(v["resp_prologue"]), unhex(v["resp_static"]),
                                   unhex(v["resp_ephemeral"]))
        self.parsed = {}

    def step(self, i, read=True):
        """Writes message i (compared with the vector) and, if `read`, reads it back."""
        m = self.v["messages"][i]
        payload, ct = unhex(m["payload"]), unhex(m["ciphertext"])
        what = f"{self.where}: message {i + 1}" if i < 2 else f"{self.where}: transport message {i - 1}"
        try:
            if i == 0:
                expect(self.init.write_msg1(payload).hex(), ct.hex(), what + " ciphertext")
            elif i == 1:
                expect(self.resp.write_msg2(payload).hex(), ct.hex(), what + " ciphertext")
                self.resp.split()
            else:
                w = self.init if i % 2 == 0 else self.resp
                expect(w.encrypt(payload).hex(), ct.hex(), what + " ciphertext")
            if read:
                expect(self.deliver(i, ct).hex(), payload.hex(), what + " read back")
        except ChannelError as e:
            raise Mismatch(f"{what}: {e}") from None

    def deliver(self, i, ct):
        """The receiver of message index i reads ct; payloads are parsed (ChannelError)."""
        if i == 0:
            pt = self.resp.read_msg1(ct)
            self.parsed[0] = parse_msg1_payload(pt)
        elif i == 1:
            pt = self.init.read_msg2(ct)
            self.init.split()
            self.parsed[1] = parse_host_info(pt)
        else:
            pt = (self.resp if i % 2 == 0 else self.init).decrypt(ct)
        return pt


def check_ik_test(t, counts, sessions):
    where = f"noise-ik.json tcId {t['tcId']}"
    v, pro = t["noise"], t["prologue"]
    for side, key in (("initiator", "init_prologue"), ("responder", "resp_prologue")):
        p = pro[side]
        expect(v[key], build_prologue(p["workspace"], unhex(p["hostKey"]), unhex(p["sessionId"])).hex(),
               f"{where}: {key} from prologue.{side} (CHAN-2)")
    expect(v["init_remote_static"], pro["initiator"]["hostKey"], f"{where}: init_remote_static")
    expect(public_key(unhex(v["resp_static"])).hex(), pro["responder"]["hostKey"],
           f"{where}: X25519(resp_static) vs prologue.responder.hostKey")
    r = Replay(v, where)
    msgs = v["messages"]
    if t["result"] == "valid":
        if len(msgs) < 2:
            raise Mismatch(f"{where}: valid handshake with {len(msgs)} messages")
        for i in range(len(msgs)):
            r.step(i)
        expect(r.init.h1.hex(), t["handshakeHashAfterMsg1"], f"{where}: handshakeHashAfterMsg1 (initiator)")
        expect(r.resp.h1.hex(), t["handshakeHashAfterMsg1"], f"{where}: handshakeHashAfterMsg1 (responder)")
        expect(confirmation_code(r.init.h1), t["confirmationCode"], f"{where}: confirmationCode (CHAN-23)")
        expect(r.init.h.hex(), v["handshake_hash"], f"{where}: handshake_hash (initiator)")
        expect(r.resp.h.hex(), v["handshake_hash"], f"{where}: handshake_hash (responder)")
        p1 = r.parsed[0]
        flag = {"SESSION": "Session", "PAIR": "Pair"}[p1["kind"]]
        if flag not in t["flags"]:
            raise Mismatch(f"{where}: message 1 is {p1['kind']}, flags {t['flags']}")
        if p1["kind"] == "SESSION":
            key = (v["init_static"], v["resp_static"], pro["initiator"]["workspace"])
            last = sessions.get(key)
            if last is not None and p1["timestamp"] <= last[1]:
                raise Mismatch(f"{where}: SESSION timestamp not after that of tcId {last[0]} (CHAN-5)")
            sessions[key] = (t["tcId"], p1["timestamp"])
        counts["valid"] += 1
        counts["confirmationCodes"] += 1
        counts["payloads"] += 2
        counts["transport"] += len(msgs) - 2
        return
    d, err = t["deliver"], t["error"]
    after = d["afterMessages"]
    receiver = "responder" if after % 2 == 0 else "initiator"
    expect(d["to"], receiver, f"{where}: deliver.to for message index {after}")
    for i in range(len(msgs)):
        r.step(i, read=i < after)
    try:
        r.deliver(after, unhex(d["message"]))
    except ChannelError as e:
        expect({"name": e.name, "requirement": e.requirement}, err, f"{where}: error ({e})")
        if e.name in ("BadPayload", "BadTimestamp", "BadHostInfo"):
            # A payload error: the message is the vector's messages[after], read intact.
            expect(d["message"], msgs[after]["ciphertext"], f"{where}: delivered message")
            counts["payloadErrors"] += 1
        counts["invalid"] += 1
        return
    raise Mismatch(f"{where}: deliver.message accepted, vector expects {err}")


# Worked examples of chapter 4, as printed there (spaces removed), and the vector values
# they must equal.
SPEC_EXAMPLES = [
    ("4.2 prologue", 2, lambda t: t["noise"]["init_prologue"],
     "5445544845522d494b2d5631 04 61636d65 55879f725b04bb0c58a791a0fdba82b9589291378a7587896a9a3ee1eb795a3e e20d7067fa766a35"),
    ("4.3 SESSION payload", 1, lambda t: t["noise"]["messages"][0]["payload"],
     "01 00 400000006ab13b80 075bcd15"),
    ("4.8 h1", 2, lambda t: t["handshakeHashAfterMsg1"],
     "b38bd323b5b7a4c56356e8bda7121d2e5e1616508982dfa5985d2379b4e5d0b4"),
    ("4.8 code", 2, lambda t: t["confirmationCode"], "104366"),
]
SPEC_HOST_INFO = ('{"name":"build-box","os":"linux","arch":"aarch64","shell":"bash","pathStyle":"posix",'
                  '"capabilities":["agent.test","command.exec","pairing.confirm"],"protocol":"tether/1"}')


def check_spec_examples(root, tests):
    spec = (Path(root) / "spec" / "04-secure-channel.md").read_text(encoding="utf-8")
    by_tc = {t["tcId"]: t for t in tests}
    for what, tc, get, printed in SPEC_EXAMPLES:
        if f"`{printed}`" not in spec and printed not in spec:
            raise Mismatch(f"spec 4: example {what} not found as quoted in this checker")
        if tc not in by_tc:
            raise Mismatch(f"noise-ik.json: tcId {tc} of the spec example {what} is missing")
        expect(get(by_tc[tc]), printed.replace(" ", ""), f"spec {what} vs noise-ik.json tcId {tc}")
    if SPEC_HOST_INFO not in spec:
        raise Mismatch("spec 4.5: host info example not found")
    expect(unhex(by_tc[2]["noise"]["messages"][1]["payload"]), b"\x01" + SPEC_HOST_INFO.encode(),
           "spec 4.5 host info vs noise-ik.json tcId 2")
    h1 = unhex(by_tc[2]["handshakeHashAfterMsg1"])
    expect(_hash(CONFIRM_LABEL + h1).hex(),
           "2940acae38a00de3514c9a6753850d6b75084f2c1d631d52f5abb6157577b9ed", "spec 4.8 BLAKE2s row")
    ts = by_tc[1]["noise"]["messages"][0]["payload"][4:28]
    expect(ts, encode_timestamp(1790000000, 123456789).hex(), "spec 4.3: Unix time 1790000000.123456789")


def run_ik(root, data=None):
    data = load(root, "noise-ik.json", data)
    tests = check_header(data, "noise-ik.json")
    counts = {"file": "noise-ik.json", "valid": 0, "invalid": 0, "payloads": 0,
              "confirmationCodes": 0, "transport": 0, "payloadErrors": 0}
    sessions = {}
    for t in sorted(tests, key=lambda t: t["tcId"]):
        check_ik_test(t, counts, sessions)
    check_spec_examples(root, tests)
    return counts


# ------------------------------------------------------------------ session.json

def _decode_token(t, where):
    try:
        from xcheck.token import decode_binary, decode_text
    except ImportError:
        decode_text = decode_binary = None
    binary = unhex(t["tokenBinary"])
    if decode_text is not None:
        try:
            tok = decode_text(t["tokenText"])
            expect(decode_binary(binary), tok, f"{where}: tokenBinary vs tokenText")
        except Mismatch:
            raise
        except Exception as e:   # noqa: BLE001 - the token module's own error type
            raise Mismatch(f"{where}: token does not decode: {e}") from None
        return tok
    # Minimal reading of section 2.1 when xcheck.token is absent.
    end = len(binary) - 4
    if binary[:3] != b"\x01\x01\x20" and binary[:3] != b"\x01\x00\x20":
        raise Mismatch(f"{where}: token header {binary[:3].hex()}")
    if _hash(b"TETHER-TOKEN-CHECKSUM-V1" + binary[:end])[:4] != binary[end:]:
        raise Mismatch(f"{where}: token checksum")
    w = binary[91]
    u = binary[92 + w]
    return {"hostKey": binary[3:35].hex(), "tokenId": binary[35:51].hex(),
            "tokenSecret": binary[51:83].hex(), "expiresAt": int.from_bytes(binary[83:91], "big"),
            "workspace": binary[92:92 + w].decode("ascii"),
            "relayUrl": binary[93 + w:93 + w + u].decode("ascii")}


def _decode_frame(b):
    try:
        from xcheck.frames import decode
    except ImportError:
        decode = None
    if decode is not None:
        try:
            return decode(b)
        except Exception as e:   # noqa: BLE001 - the frame module's own error type
            raise Mismatch(f"frame {b[:12].hex()}... does not decode: {e}") from None
    names = {0x01: "HELLO", 0x02: "HOST_CHALLENGE", 0x03: "HOST_PROOF", 0x04: "READY",
             0x10: "OPEN", 0x11: "INCOMING", 0x12: "DATA"}
    out = {"type": names.get(b[0], f"{b[0]:#04x}")}
    if b[0] == 0x10:
        out.update(session=b[1:9].hex(), hostKey=b[9:41].hex(), handshake=b[41:].hex())
    elif b[0] == 0x11:
        out.update(session=b[1:9].hex(), handshake=b[9:].hex())
    elif b[0] == 0x12:
        out.update(session=b[1:9].hex(), payload=b[9:].hex())
    return out


def _check_frames(t, where, msg1, msg2, transport):
    frames = t["frames"]
    sid = t["inputs"]["sessionId"]
    decoded = []
    for i, f in enumerate(frames):
        d = _decode_frame(unhex(f["hex"]))
        expect(d["type"], f["type"], f"{where}: frame {i} type")
        decoded.append((f["link"], f["direction"], d))
    # LINK-18: every OPEN / DATA a link sends reaches the other link unchanged (OPEN as
    # INCOMING), in order, and only after it was sent.
    sent = {"controller": [], "host": []}
    forwarded = {"controller": [], "host": []}      # frames on their way to that link
    other = {"controller": "host", "host": "controller"}
    for i, (link, direction, d) in enumerate(decoded):
        if d["type"] not in ("OPEN", "INCOMING", "DATA"):
            continue
        expect(d["session"], sid, f"{where}: frame {i} ({d['type']}) session id")
        body = d.get("handshake", d.get("payload"))
        if direction == "toRelay":
            sent[link].append(d)
            forwarded[other[link]].append(("INCOMING" if d["type"] == "OPEN" else d["type"], body))
        else:
            queue = forwarded[link]
            if not queue:
                raise Mismatch(f"{where}: frame {i}: {link} receives {d['type']} nobody sent (LINK-18)")
            expect((d["type"], body), queue.pop(0), f"{where}: frame {i}: forwarded frame (LINK-18)")
    for link, queue in forwarded.items():
        if queue:
            raise Mismatch(f"{where}: {len(queue)} frame(s) sent to the {link} never delivered")
    opens = [d for d in sent["controller"] if d["type"] == "OPEN"]
    if len(opens) != 1 or any(d["type"] == "OPEN" for d in sent["host"]):
        raise Mismatch(f"{where}: {len(opens)} OPEN frames from the controller")
    expect(opens[0]["hostKey"], t["hostStaticPublic"], f"{where}: OPEN host key")
    expect(opens[0]["handshake"], msg1.hex(), f"{where}: OPEN handshake is message 1")
    host_data = [d["payload"] for d in sent["host"] if d["type"] == "DATA"]
    ctrl_data = [d["payload"] for d in sent["controller"] if d["type"] == "DATA"]
    if not host_data or host_data[0] != msg2.hex():
        raise Mismatch(f"{where}: the host's first DATA is not message 2 (CHAN-28)")
    expect(host_data[1:], [m["ciphertext"] for m in transport if m["from"] == "host"],
           f"{where}: host DATA payloads vs transport (CHAN-16)")
    expect(ctrl_data, [m["ciphertext"] for m in transport if m["from"] == "controller"],
           f"{where}: controller DATA payloads vs transport (CHAN-16)")
    # CHAN-15: the controller sends no DATA before it has received message 2.
    seen_msg2 = False
    for link, direction, d in decoded:
        if d["type"] == "DATA" and link == "controller" and direction == "fromRelay":
            seen_msg2 = True
        if d["type"] == "DATA" and link == "controller" and direction == "toRelay" and not seen_msg2:
            raise Mismatch(f"{where}: controller DATA before it read message 2 (CHAN-15)")
    return len(decoded)


def _check_transcript(t, where, device_name, host_info):
    """Chapter 5 over the session's plaintexts (see the module docstring)."""
    from xcheck.command import Refused, decode
    pending = {"controller": {}, "host": {}}        # requests sent by side, by id
    initialized = False
    first_request = None
    turn_items, completed_items = {}, {}
    problems = []          # rules of chapter 5 the transcript breaks, all reported at once
    # A host that shows confirmation codes at pairing (the session's Confirmation flag, as
    # the file's notes define it) offers `pairing.confirm` (section 6.6) and lists it in
    # message 2 (CHAN-6) and in the initialize result (CMD-16).
    confirms = "Confirmation" in t.get("flags", [])
    if confirms and "pairing.confirm" not in host_info["capabilities"]:
        problems.append(f"{where}: the host confirms the pairing (flag Confirmation) but its "
                        f"message-2 capabilities {host_info['capabilities']} lack pairing.confirm "
                        f"(section 6.6, CHAN-6)")
    n = 0
    for i, m in enumerate(t["transport"]):
        side = m["from"]
        other = "host" if side == "controller" else "controller"
        direction = "controllerToHost" if side == "controller" else "hostToController"
        raw = m["plaintext"].encode("utf-8")
        what = f"{where}: transport {i} ({side} nonce {m['nonce']})"
        # A response's result type is that of the request it answers (CMD-14).
        try:
            probe = json.loads(raw)
        except ValueError:
            probe = None
        result_of = None
        if isinstance(probe, dict) and "method" not in probe and "id" in probe:
            result_of = pending[other].pop(json.dumps(probe["id"]), None)
            if result_of is None:
                raise Mismatch(f"{what}: response id {probe['id']!r} answers no request (CMD-14)")
        try:
            got = decode(raw, direction, result_of)
        except Refused as e:
            raise Mismatch(f"{what}: refused: {e}") from None
        v = got["_value"]
        if got["kind"] == "request":
            key = json.dumps(v["id"])
            if key in pending[side]:
                raise Mismatch(f"{what}: id {v['id']!r} reused while unanswered (CMD-14)")
            pending[side][key] = v["method"]
            if side == "controller" and first_request is None:
                first_request = v["method"]
                if first_request != "initialize":
                    raise Mismatch(f"{what}: first request is {first_request} (CMD-15)")
        if side == "controller" and got.get("method") == "initialized":
            initialized = True
        if side == "host" and got["kind"] in ("request", "notification") and not initialized:
            raise Mismatch(f"{what}: host {got['kind']} before initialized (CMD-15)")
        if (got["kind"] == "response" and result_of == "initialize" and confirms
                and "pairing.confirm" not in v["result"]["tether"]["capabilities"]):
            problems.append(f"{what}: initialize result capabilities lack pairing.confirm although "
                            f"the host confirmed the pairing (CMD-16, section 6.6)")
        params = v.get("params", {})
        method = got.get("method")
        resolved_by = (params.get("tether") or {}).get("resolvedBy")
        if method == "serverRequest/resolved" and resolved_by is not None:
            if resolved_by != device_name:
                problems.append(f"{what}: tether.resolvedBy {resolved_by!r}, but the answering "
                               f"controller paired as {device_name!r} (CMD-30, CHAN-27)")
        if method == "item/started":
            items = turn_items.setdefault(params["turnId"], [])
            if not items and params["item"]["type"] != "userMessage":
                problems.append(f"{what}: the first item of turn {params['turnId']} is a "
                               f"{params['item']['type']}, not its userMessage (CMD-24)")
            items.append(params["item"]["id"])
        if method == "item/completed":
            completed_items.setdefault(params["turnId"], []).append(params["item"])
        if method == "turn/completed":
            turn = params["turn"]
            want = completed_items.get(turn["id"], [])
            if turn["items"] != want:
                problems.append(f"{what}: turn/completed carries {len(turn['items'])} items, "
                               f"{len(want)} were completed in the turn (CMD-25)")
        n += 1
    if problems:
        raise Mismatch("; ".join(problems))
    return n


def check_session_test(t, counts):
    try:
        _check_session_test(t, counts)
    except ChannelError as e:
        raise Mismatch(f"session.json tcId {t.get('tcId')}: {e}") from None


def _check_session_test(t, counts):
    where = f"session.json tcId {t['tcId']}"
    inp, v = t["inputs"], t["noise"]
    host_pub = public_key(unhex(inp["hostStatic"]))
    ctrl_pub = public_key(unhex(inp["controllerStatic"]))
    expect(t["hostStaticPublic"], host_pub.hex(), f"{where}: hostStaticPublic = X25519(hostStatic)")
    expect(t["controllerStaticPublic"], ctrl_pub.hex(), f"{where}: controllerStaticPublic")
    # Token (chapter 2): carries what the controller needs for the PAIR handshake.
    tok = _decode_token(t, where)
    for k, want in (("hostKey", host_pub.hex()), ("tokenId", inp["tokenId"]),
                    ("tokenSecret", inp["tokenSecret"]), ("workspace", inp["workspace"]),
                    ("relayUrl", inp["relayUrl"])):
        expect(tok[k], want, f"{where}: token {k}")
    if not inp["now"] < tok["expiresAt"]:
        raise Mismatch(f"{where}: token expired at now (TOKEN-10, CHAN-12)")
    # The handshake object is the one the inputs determine.
    prologue = build_prologue(tok["workspace"], unhex(tok["hostKey"]), unhex(inp["sessionId"]))
    for k, want in (("protocol_name", PROTOCOL), ("init_prologue", prologue.hex()),
                    ("resp_prologue", prologue.hex()), ("init_static", inp["controllerStatic"]),
                    ("init_ephemeral", inp["controllerEphemeral"]), ("init_remote_static", tok["hostKey"]),
                    ("resp_static", inp["hostStatic"]), ("resp_ephemeral", inp["hostEphemeral"])):
        expect(v[k], want, f"{where}: noise.{k}")
    if len(v["messages"]) != 2:
        raise Mismatch(f"{where}: session handshake has {len(v['messages'])} messages")
    p1 = parse_msg1_payload(unhex(v["messages"][0]["payload"]))
    if p1["kind"] != "PAIR":
        raise Mismatch(f"{where}: a pairing session sends a {p1['kind']} message 1")
    if p1["unixSeconds"] > inp["now"] + CLOCK_SKEW:
        raise Mismatch(f"{where}: message-1 timestamp more than 600 s ahead of now (CHAN-11)")
    want_p1 = (b"\x01\x01" + p1["timestamp"] + unhex(tok["tokenId"]) + unhex(tok["tokenSecret"])
               + bytes([len(inp["deviceName"].encode())]) + inp["deviceName"].encode())
    expect(v["messages"][0]["payload"], want_p1.hex(), f"{where}: PAIR payload from token and device name")
    host_info = parse_host_info(unhex(v["messages"][1]["payload"]))
    expect(host_info, inp["hostInfo"], f"{where}: host info vs inputs.hostInfo (CHAN-6)")
    r = Replay(v, where)
    r.step(0)
    r.step(1)
    expect(r.init.h.hex(), v["handshake_hash"], f"{where}: handshake_hash")
    expect(confirmation_code(r.init.h1), t["confirmationCode"], f"{where}: confirmationCode (CHAN-23)")
    expect(r.resp.rs, ctrl_pub, f"{where}: controller key read by the host")
    # Transport, with this module's cipher states (CHAN-16, CHAN-17).
    nonces = {"controller": 0, "host": 0}
    for i, m in enumerate(t["transport"]):
        w, rd = (r.init, r.resp) if m["from"] == "controller" else (r.resp, r.init)
        expect(m["nonce"], nonces[m["from"]], f"{where}: transport {i} nonce")
        nonces[m["from"]] += 1
        pt = m["plaintext"].encode("utf-8")
        try:
            expect(w.encrypt(pt).hex(), m["ciphertext"], f"{where}: transport {i} ciphertext")
            expect(rd.decrypt(unhex(m["ciphertext"])), pt, f"{where}: transport {i} read back")
        except ChannelError as e:
            raise Mismatch(f"{where}: transport {i}: {e}") from None
    counts["frames"] += _check_frames(t, where, unhex(v["messages"][0]["ciphertext"]),
                                      unhex(v["messages"][1]["ciphertext"]), t["transport"])
    counts["transport"] += _check_transcript(t, where, p1["deviceName"], host_info)
    counts["valid"] += 1
    counts["confirmationCodes"] += 1
    counts["payloads"] += 2


def run_session(root, data=None):
    data = load(root, "session.json", data)
    tests = check_header(data, "session.json")
    counts = {"file": "session.json", "valid": 0, "payloads": 0, "confirmationCodes": 0,
              "frames": 0, "transport": 0}
    for t in tests:
        if t.get("result") != "valid":
            raise Mismatch(f"session.json tcId {t.get('tcId')}: result {t.get('result')!r}")
        check_session_test(t, counts)
    return counts


def run(root: Path, data=None, file=None) -> dict:
    """Checks vectors/noise-ik.json (the default) or session.json (file="session.json", or
    `data` whose "vectors" member is "session")."""
    if file is None:
        file = "session.json" if data is not None and data.get("vectors") == "session" else "noise-ik.json"
    if file == "noise-ik.json":
        return run_ik(root, data)
    if file == "session.json":
        return run_session(root, data)
    raise ValueError(file)


# ------------------------------------------------------------------ self-test mutants

def _reseal_handshake(v):
    """Rewrites every ciphertext and h of handshake object `v` from its keys and payloads
    with this module's writer, so that a mutated payload is caught by the payload checks,
    not by a ciphertext comparison. Returns (h1, initiator, responder). Only for handshakes
    whose message 1 the responder can read (valid and payload-error tests); on the
    unmodified files it reproduces every such test byte for byte."""
    init = HandshakeState(True, unhex(v["init_prologue"]), unhex(v["init_static"]),
                          unhex(v["init_ephemeral"]), unhex(v["init_remote_static"]))
    resp = HandshakeState(False, unhex(v["resp_prologue"]), unhex(v["resp_static"]),
                          unhex(v["resp_ephemeral"]))
    for i, m in enumerate(v["messages"]):
        pt = unhex(m["payload"])
        if i == 0:
            ct = init.write_msg1(pt)
            resp.read_msg1(ct)
        elif i == 1:
            ct = resp.write_msg2(pt)
            init.read_msg2(ct)
            init.split()
            resp.split()
        else:
            w, r = (init, resp) if i % 2 == 0 else (resp, init)
            ct = w.encrypt(pt)
            r.decrypt(ct)
        m["ciphertext"] = ct.hex()
    if len(v["messages"]) >= 2:
        v["handshake_hash"] = init.h.hex()
    return init.h1, init, resp


def _reseal_ik(t):
    h1, _, _ = _reseal_handshake(t["noise"])
    if t["result"] == "valid":
        t["handshakeHashAfterMsg1"] = h1.hex()
        t["confirmationCode"] = confirmation_code(h1)
    elif t["error"]["name"] in ("BadPayload", "BadTimestamp", "BadHostInfo"):
        t["deliver"]["message"] = t["noise"]["messages"][t["deliver"]["afterMessages"]]["ciphertext"]


def _reseal_session(t):
    """As _reseal_ik for session.json: handshake, transport and the relay frames."""
    h1, init, resp = _reseal_handshake(t["noise"])
    t["confirmationCode"] = confirmation_code(h1)
    out = {"host": [unhex(t["noise"]["messages"][1]["ciphertext"])], "controller": []}
    for m in t["transport"]:
        w = init if m["from"] == "controller" else resp
        m["ciphertext"] = w.encrypt(m["plaintext"].encode("utf-8")).hex()
        out[m["from"]].append(unhex(m["ciphertext"]))
    msg1 = unhex(t["noise"]["messages"][0]["ciphertext"])
    fwd = {"host": [], "controller": []}
    for f in t["frames"]:
        b = unhex(f["hex"])
        if b[0] == 0x10:
            b = b[:41] + msg1
        elif b[0] == 0x11:
            b = b[:9] + msg1
        elif b[0] == 0x12 and f["direction"] == "toRelay":
            b = b[:9] + out[f["link"]].pop(0)
            fwd["host" if f["link"] == "controller" else "controller"].append(b)
        elif b[0] == 0x12:
            b = fwd[f["link"]].pop(0)
        f["hex"] = b.hex()


def _set_payload_byte(m, index, value):
    b = bytearray(unhex(m["payload"]))
    b[index] = value
    m["payload"] = b.hex()


def mutants(root) -> Iterator[tuple[str, dict]]:
    """Yields (description, mutated file dict) for noise-ik.json, then for session.json;
    run(root, data=m) picks the file from m["vectors"] and must raise Mismatch on each."""
    for desc, d in file_mutants(root, "noise-ik.json"):
        yield "noise-ik.json: " + desc, d
    for desc, d in file_mutants(root, "session.json"):
        yield "session.json: " + desc, d


def file_mutants(root, file):
    """The mutants of one file (see mutants)."""
    base = load(root, file)

    def mut(desc, fn):
        d = copy.deepcopy(base)
        fn(d)
        return desc, d

    def tc(d, n):
        return next(t for t in d["tests"] if t["tcId"] == n)

    def flip_hex(s, byte_index, mask=0x01):
        b = bytearray(bytes.fromhex(s))
        b[byte_index] ^= mask
        return b.hex()

    def resealed(n, change):
        def fn(d):
            change(tc(d, n))
            _reseal_ik(tc(d, n))
        return fn

    def host_info(t, old, new):
        m = t["noise"]["messages"][1]
        m["payload"] = unhex(m["payload"]).replace(old, new).hex()

    if file == "noise-ik.json":
        yield mut("tcId 1: confirmationCode", lambda d: tc(d, 1).update(confirmationCode="498419"))
        yield mut("tcId 2: handshakeHashAfterMsg1 bit",
                  lambda d: tc(d, 2).update(handshakeHashAfterMsg1=flip_hex(tc(d, 2)["handshakeHashAfterMsg1"], 31)))
        yield mut("tcId 3: handshake_hash bit",
                  lambda d: tc(d, 3)["noise"].update(handshake_hash=flip_hex(tc(d, 3)["noise"]["handshake_hash"], 0)))
        yield mut("tcId 1: message-1 payload byte (ciphertext not redone)",
                  lambda d: tc(d, 1)["noise"]["messages"][0].update(
                      payload=flip_hex(tc(d, 1)["noise"]["messages"][0]["payload"], 13)))
        yield mut("tcId 1 resealed: timestamp with 10^9 nanoseconds in a valid test (CHAN-4)",
                  resealed(1, lambda t: t["noise"]["messages"][0].update(
                      payload=t["noise"]["messages"][0]["payload"][:20] + "3b9aca00")))
        yield mut("tcId 1 resealed: TAI64 label 2^63 (CHAN-4)",
                  resealed(1, lambda t: _set_payload_byte(t["noise"]["messages"][0], 2, 0x80)))
        yield mut("tcId 3 resealed: timestamp not after tcId 1's (CHAN-5)",
                  resealed(3, lambda t: t["noise"]["messages"][0].update(
                      payload=tc(base, 1)["noise"]["messages"][0]["payload"])))
        yield mut("tcId 2 resealed: device name with a control character (CHAN-3)",
                  resealed(2, lambda t: _set_payload_byte(t["noise"]["messages"][0], 63, 0x07)))
        yield mut("tcId 2 resealed: host info pathStyle dos (CHAN-6)",
                  resealed(2, lambda t: host_info(t, b'"posix"', b'"dos"  ')))
        yield mut("tcId 4 resealed: host info member repeated (CHAN-6)",
                  resealed(4, lambda t: host_info(t, b'"os":"windows"', b'"name":"windows"')))
        yield mut("tcId 14 resealed: payload version fixed to 0x01 (message accepted)",
                  resealed(14, lambda t: _set_payload_byte(t["noise"]["messages"][0], 0, 0x01)))
        yield mut("tcId 1: prologue session id",
                  lambda d: tc(d, 1)["prologue"]["initiator"].update(sessionId="33009e5b71c35dd8"))
        yield mut("tcId 2: flags Session instead of Pair", lambda d: tc(d, 2).update(flags=["Session"]))
        yield mut("tcId 14: BadPayload renamed BadTimestamp",
                  lambda d: tc(d, 14)["error"].update(name="BadTimestamp"))
        yield mut("tcId 16: requirement CHAN-3", lambda d: tc(d, 16)["error"].update(requirement="CHAN-3"))
        yield mut("tcId 17: BadHostInfo renamed BadPayload",
                  lambda d: tc(d, 17)["error"].update(name="BadPayload"))
        yield mut("tcId 10: LowOrderKey renamed HandshakeFailed",
                  lambda d: tc(d, 10)["error"].update(name="HandshakeFailed", requirement="CHAN-8"))
        yield mut("tcId 5: deliver.to initiator", lambda d: tc(d, 5)["deliver"].update(to="initiator"))
        yield mut("tcId 12: replay delivered after 3 messages (is then the fresh message)",
                  lambda d: tc(d, 12)["deliver"].update(afterMessages=2))
        yield mut("transport ciphertext byte (tcId 1 message 5)",
                  lambda d: tc(d, 1)["noise"]["messages"][4].update(
                      ciphertext=flip_hex(tc(d, 1)["noise"]["messages"][4]["ciphertext"], 3)))
        yield mut("numberOfTests", lambda d: d.update(numberOfTests=16))
    else:
        def t0(d):
            return d["tests"][0]

        def resealed_session(change):
            def fn(d):
                change(t0(d))
                _reseal_session(t0(d))
            return fn

        def plaintext(t, idx, old, new):
            """Replaces `old` in transport message `idx`, or (idx None) in the first
            transport message that holds it."""
            if idx is None:
                idx = next((i for i, m in enumerate(t["transport"]) if old in m["plaintext"]), None)
                if idx is None:
                    raise AssertionError(f"no transport message holds {old}")
            m = t["transport"][idx]
            if old not in m["plaintext"]:
                raise AssertionError(old)
            m["plaintext"] = m["plaintext"].replace(old, new)

        def host_info_protocol(t):
            t["inputs"]["hostInfo"]["protocol"] = "tether/2"
            m = t["noise"]["messages"][1]
            m["payload"] = unhex(m["payload"]).replace(b"tether/1", b"tether/2").hex()

        def future_timestamp(t):
            m = t["noise"]["messages"][0]
            b = bytearray(unhex(m["payload"]))
            b[2:14] = encode_timestamp(t["inputs"]["now"] + 601, 0)
            m["payload"] = b.hex()

        yield mut("confirmationCode", lambda d: t0(d).update(confirmationCode="256383"))
        yield mut("inputs.tokenSecret byte",
                  lambda d: t0(d)["inputs"].update(tokenSecret=flip_hex(t0(d)["inputs"]["tokenSecret"], 0)))
        yield mut("inputs.deviceName", lambda d: t0(d)["inputs"].update(deviceName="Ana's tablet"))
        yield mut("inputs.hostInfo.shell", lambda d: t0(d)["inputs"]["hostInfo"].update(shell="zsh"))
        yield mut("inputs.now 2000 s before the timestamp (CHAN-11)",
                  lambda d: t0(d)["inputs"].update(now=t0(d)["inputs"]["now"] - 2000))
        yield mut("resealed: message-1 timestamp 601 s ahead of now (CHAN-11)",
                  resealed_session(future_timestamp))
        yield mut("resealed: host info protocol tether/2 in payload and inputs (CHAN-6)",
                  resealed_session(host_info_protocol))
        yield mut("tokenText last character",
                  lambda d: t0(d).update(tokenText=t0(d)["tokenText"][:-1] + ("A" if t0(d)["tokenText"][-1] != "A" else "B")))
        yield mut("OPEN frame session id byte",
                  lambda d: t0(d)["frames"][6].update(hex=flip_hex(t0(d)["frames"][6]["hex"], 1)))
        yield mut("a DATA frame delivered before it was sent (frames 11-13 reordered)",
                  lambda d: t0(d)["frames"].__setitem__(
                      slice(11, 14), [t0(d)["frames"][13], t0(d)["frames"][12], t0(d)["frames"][11]]))
        yield mut("resealed: host response id 1 -> 7 answers no request (CMD-14)",
                  resealed_session(lambda t: plaintext(t, 1, '"id":1,', '"id":7,')))
        yield mut("resealed: initialized replaced by a cancellation (CMD-15)",
                  resealed_session(lambda t: plaintext(
                      t, 2, '"method":"initialized"}',
                      '"method":"tether/cancelled","params":{"requestId":99}}')))
        yield mut("resealed: approval answer with an unknown decision (BadResult, CMD-13)",
                  resealed_session(lambda t: plaintext(
                      t, None, '"result":{"decision":"accept"}', '"result":{"decision":"maybe"}')))
        def turn_completed_without_items(t):
            m = next(m for m in t["transport"] if '"method":"turn/completed"' in m["plaintext"])
            msg = json.loads(m["plaintext"])
            msg["params"]["turn"]["items"] = []
            m["plaintext"] = json.dumps(msg, separators=(",", ":"), ensure_ascii=False)

        yield mut("resealed: resolvedBy is not the answering device's name (CMD-30)",
                  resealed_session(lambda t: plaintext(
                      t, None, '"resolvedBy":"Ana\'s phone"', '"resolvedBy":"phone"')))
        yield mut("resealed: turn/completed without its items (CMD-25)",
                  resealed_session(turn_completed_without_items))
        yield mut("controllerStaticPublic byte",
                  lambda d: t0(d).update(controllerStaticPublic=flip_hex(t0(d)["controllerStaticPublic"], 5)))
        yield mut("handshake_hash byte",
                  lambda d: t0(d)["noise"].update(handshake_hash=flip_hex(t0(d)["noise"]["handshake_hash"], 9)))
