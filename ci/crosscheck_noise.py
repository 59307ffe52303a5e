#!/usr/bin/env python3
"""Independent cross-check of Tether's Noise vectors with the Python `noiseprotocol` package.

Replays, byte for byte, every handshake and transport message of
  vectors/noise-ik.json, vectors/noise-rekey.json and (if present) vectors/session.json
with an implementation that shares no code with snow or tether-proto.

Every handshake object uses the cacophony field names (protocol_name, init_prologue,
init_static, init_ephemeral, init_remote_static, resp_prologue, resp_static,
resp_ephemeral, handshake_hash, messages[{payload, ciphertext}]): messages[0] is
message 1, messages[1] message 2, then transport messages alternating from the initiator.

noise-ik.json invalid cases: both sides process messages[:deliver.afterMessages], then
deliver.message reaches deliver.to. Noise-level errors (HandshakeFailed, LowOrderKey,
DecryptFailed) must make the Python reader fail too; payload errors (BadPayload,
BadTimestamp, BadHostInfo) are Tether-level, so the Noise read must succeed and yield the
recorded payload.

Exit status: 0 if everything matched, 1 on any mismatch, 2 on a usage problem.
"""

import json
import sys
import warnings
from pathlib import Path

from noise.connection import Keypair, NoiseConnection

NOISE_LEVEL_ERRORS = {"HandshakeFailed", "LowOrderKey", "DecryptFailed"}
PAYLOAD_LEVEL_ERRORS = {"BadPayload", "BadTimestamp", "BadHostInfo"}
REKEY_INTERVAL = 65536


class Mismatch(Exception):
    pass


class Counts:
    def __init__(self):
        self.handshakes = 0
        self.messages = 0
        self.invalid = 0
        self.rekey_messages = 0


def unhex(s):
    return bytes.fromhex(s)


def connection(v, initiator):
    conn = NoiseConnection.from_name(v["protocol_name"].encode("ascii"))
    if initiator:
        conn.set_as_initiator()
        conn.set_prologue(unhex(v["init_prologue"]))
        conn.set_keypair_from_private_bytes(Keypair.STATIC, unhex(v["init_static"]))
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, unhex(v["init_ephemeral"]))
        conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, unhex(v["init_remote_static"]))
    else:
        conn.set_as_responder()
        conn.set_prologue(unhex(v["resp_prologue"]))
        conn.set_keypair_from_private_bytes(Keypair.STATIC, unhex(v["resp_static"]))
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, unhex(v["resp_ephemeral"]))
    with warnings.catch_warnings():
        # noiseprotocol warns that a preset ephemeral is for testing only: it is.
        warnings.simplefilter("ignore")
        conn.start_handshake()
    return conn


def expect(got, want_hex, what):
    if bytes(got).hex() != want_hex:
        raise Mismatch(f"{what}: bytes differ\n    python {bytes(got).hex()}\n    vector {want_hex}")


def replay(v, counts, where, read_limit=None):
    """Replays handshake `v`; returns (initiator, responder) connections."""
    if v["protocol_name"] != "Noise_IK_25519_ChaChaPoly_BLAKE2s":
        raise Mismatch(f"{where}: protocol_name {v['protocol_name']}")
    init = connection(v, True)
    resp = connection(v, False)
    msgs = v["messages"]
    limit = len(msgs) if read_limit is None else read_limit
    for i, m in enumerate(msgs):
        payload, ct = unhex(m["payload"]), m["ciphertext"]
        from_init = i % 2 == 0
        w, r = (init, resp) if from_init else (resp, init)
        what = f"{where}: message {i}"
        if i < 2:
            expect(w.write_message(payload), ct, what)
            if i < limit:
                expect(r.read_message(unhex(ct)), m["payload"], what + " (read)")
        else:
            expect(w.encrypt(payload), ct, what)
            if i < limit:
                expect(r.decrypt(unhex(ct)), m["payload"], what + " (read)")
        counts.messages += 1
    if v.get("handshake_hash") and limit >= 2 and len(msgs) >= 2:
        for side, conn in (("initiator", init), ("responder", resp)):
            expect(conn.get_handshake_hash(), v["handshake_hash"], f"{where}: handshake_hash ({side})")
    counts.handshakes += 1
    return init, resp


def deliver(init, resp, t, where, counts):
    d, err = t["deliver"], t["error"]["name"]
    conn = resp if d["to"] == "responder" else init
    msg = unhex(d["message"])
    after = d["afterMessages"]
    try:
        out = conn.read_message(msg) if after < 2 else conn.decrypt(msg)
        failed = None
    except Exception as e:  # noqa: BLE001 - any failure of the reader counts
        out, failed = None, e
    if err in NOISE_LEVEL_ERRORS:
        if failed is None:
            raise Mismatch(f"{where}: expected {err}, but noiseprotocol accepted the message")
    elif err in PAYLOAD_LEVEL_ERRORS:
        if failed is not None:
            raise Mismatch(f"{where}: {err} is a payload error, but the Noise read failed: {failed!r}")
        expect(out, t["noise"]["messages"][after]["payload"], f"{where}: delivered payload")
    else:
        raise Mismatch(f"{where}: unknown error name {err}")
    counts.invalid += 1


def check_ik(path, counts):
    data = json.loads(path.read_text())
    for t in data["tests"]:
        where = f"{path.name} tcId {t['tcId']}"
        if t["result"] == "valid":
            replay(t["noise"], counts, where)
        else:
            init, resp = replay(t["noise"], counts, where, t["deliver"]["afterMessages"])
            deliver(init, resp, t, where, counts)


def check_rekey(path, counts):
    data = json.loads(path.read_text())
    for t in data["tests"]:
        where = f"{path.name} tcId {t['tcId']}"
        init, resp = replay(t["noise"], counts, where)
        rekeyed = {"initiatorToResponder": 0, "responderToInitiator": 0}
        for m in t["transport"]:
            direction = m["direction"]
            w, r = (init, resp) if direction == "initiatorToResponder" else (resp, init)
            nonce = m["nonce"]
            while rekeyed[direction] < nonce // REKEY_INTERVAL:
                w.rekey_outbound_cipher()
                r.rekey_inbound_cipher()
                rekeyed[direction] += 1
            if m["rekeyedBefore"] != rekeyed[direction]:
                raise Mismatch(f"{where}: {direction} nonce {nonce}: rekeyedBefore")
            w.noise_protocol.cipher_state_encrypt.n = nonce
            r.noise_protocol.cipher_state_decrypt.n = nonce
            what = f"{where}: {direction} nonce {nonce}"
            expect(w.encrypt(unhex(m["payload"])), m["ciphertext"], what)
            expect(r.decrypt(unhex(m["ciphertext"])), m["payload"], what + " (read)")
            counts.rekey_messages += 1


def handshakes_in(node):
    """Every object with the cacophony shape anywhere inside `node`."""
    if isinstance(node, dict):
        if "protocol_name" in node and "messages" in node:
            yield node
        else:
            for value in node.values():
                yield from handshakes_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from handshakes_in(value)


def check_session(path, counts):
    data = json.loads(path.read_text())
    found = 0
    for i, v in enumerate(handshakes_in(data)):
        replay(v, counts, f"{path.name} handshake {i + 1}")
        found += 1
    if found == 0:
        raise Mismatch(f"{path.name}: no handshake object (protocol_name + messages) found")
    return found


def main(argv):
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    vectors = root / "vectors"
    counts = Counts()
    failures = []
    jobs = [("noise-ik.json", check_ik, True), ("noise-rekey.json", check_rekey, True),
            ("session.json", check_session, False)]
    for name, fn, required in jobs:
        path = vectors / name
        if not path.exists():
            if required:
                failures.append(f"{path}: missing")
            else:
                print(f"skip  {name} (not present)")
            continue
        before = (counts.handshakes, counts.messages, counts.invalid, counts.rekey_messages)
        try:
            fn(path, counts)
        except Mismatch as e:
            failures.append(str(e))
            print(f"FAIL  {name}: {e}")
            continue
        after = (counts.handshakes, counts.messages, counts.invalid, counts.rekey_messages)
        delta = [a - b for a, b in zip(after, before)]
        print(f"ok    {name:<18} {delta[0]:>3} handshakes, {delta[1]:>4} messages, "
              f"{delta[2]:>3} invalid deliveries, {delta[3]:>3} rekey-boundary messages")
    print(f"total: {counts.handshakes} handshakes, {counts.messages} handshake/transport messages, "
          f"{counts.invalid} invalid deliveries, {counts.rekey_messages} rekey-boundary messages, "
          f"{len(failures)} failure(s)")
    if counts.handshakes == 0:
        failures.append("nothing was checked")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
