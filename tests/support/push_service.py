#!/usr/bin/env python3
"""A small Web Push service for the backend's tests, on loopback over TLS.

It stands in for a browser vendor's push service and, independently of the
code under test, checks what it receives: the VAPID JWT (RFC 8292) is
verified with `cryptography` against the `k=` key, and the aes128gcm payload
(RFC 8291) is decrypted with `http_ece` using the subscriber keys this
script made. Every request is appended to the records file as one JSON line.

    push_service.py --port P --cert C --key K --subscriptions OUT --records R NAME...

For each NAME it makes a subscriber key pair and auth secret and writes
`{NAME: {"p256dh": ..., "auth": ...}}` to OUT (base64url); the endpoint is
`https://localhost:P/push/NAME`. How it answers depends on the name:
`gone*` 410, `flaky*` 503 with `Retry-After: 1` the first time then 201,
anything else 201.
"""

import argparse
import base64
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def verify_vapid(header):
    """Returns (claims, public key b64) of a valid `vapid t=..., k=...`."""
    if not header.startswith("vapid "):
        raise ValueError("not a vapid authorization: %r" % header[:20])
    params = {}
    for part in header[len("vapid "):].split(","):
        k, _, v = part.strip().partition("=")
        params[k] = v
    token, key = params["t"], params["k"]
    head_b64, claims_b64, sig_b64 = token.split(".")
    head = json.loads(b64d(head_b64))
    if head.get("alg") != "ES256":
        raise ValueError("alg is %r" % head.get("alg"))
    point = b64d(key)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    sig = b64d(sig_b64)
    if len(sig) != 64:
        raise ValueError("signature is %d bytes, not r||s" % len(sig))
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    public.verify(der, (head_b64 + "." + claims_b64).encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(b64d(claims_b64)), key


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--subscriptions", required=True)
    ap.add_argument("--records", required=True)
    ap.add_argument("names", nargs="+")
    args = ap.parse_args()

    subs = {}
    out = {}
    for name in args.names:
        private = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        public = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        subs[name] = (private, auth)
        out[name] = {"p256dh": b64e(public), "auth": b64e(auth)}
    tmp = args.subscriptions + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    seen = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            name = self.path.rsplit("/", 1)[-1]
            rec = {
                "name": name,
                "path": self.path,
                "host": self.headers.get("Host"),
                "ttl": self.headers.get("TTL"),
                "urgency": self.headers.get("Urgency"),
                "content_encoding": self.headers.get("Content-Encoding"),
                "time": time.time(),
            }
            try:
                claims, key = verify_vapid(self.headers.get("Authorization", ""))
                rec["jwt_ok"] = True
                rec["claims"] = claims
                rec["k"] = key
            except (ValueError, KeyError, InvalidSignature) as e:
                rec["jwt_ok"] = False
                rec["error"] = "jwt: %r" % (e,)
            if name in subs:
                private, auth = subs[name]
                try:
                    plain = http_ece.decrypt(
                        body, private_key=private, auth_secret=auth, version="aes128gcm"
                    )
                    rec["payload"] = json.loads(plain)
                except Exception as e:  # noqa: BLE001 - recorded for the test
                    rec["error"] = "decrypt: %r" % (e,)
            with lock:
                n = seen.get(name, 0)
                seen[name] = n + 1
            status, headers = 201, {}
            if name.startswith("gone"):
                status = 410
            elif name.startswith("flaky") and n == 0:
                status, headers = 503, {"Retry-After": "1"}
            rec["status"] = status
            with lock:
                with open(args.records, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    # Listening: the subscriptions file appears only now.
    os.rename(tmp, args.subscriptions)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
