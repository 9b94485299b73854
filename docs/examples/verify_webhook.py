#!/usr/bin/env python3
"""Verifies a CRM webhook request (Standard Webhooks signatures), standard library only.

Use `verify(secret, headers, body)` in your receiver. As a command it checks a
saved request: verify_webhook.py SECRET HEADERS.json BODY_FILE (exit 0 when valid).
The suite's tests run it against real deliveries.
"""
import base64
import hashlib
import hmac
import json
import sys
import time

TOLERANCE_SECONDS = 5 * 60  # refuse old (replayed) and far-future requests


def verify(secret: str, headers: dict, body: bytes, now: float | None = None) -> bool:
    """True when one of the request's signatures was made with `secret` (whsec_...)."""
    headers = {k.lower(): v for k, v in headers.items()}
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs((now or time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # While the secret is rotated, two signatures are sent: either may match.
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


if __name__ == "__main__":
    secret, headers_file, body_file = sys.argv[1:4]
    with open(headers_file, encoding="utf-8") as f:
        saved_headers = json.load(f)
    with open(body_file, "rb") as f:
        saved_body = f.read()
    ok = verify(secret, saved_headers, saved_body)
    print("valid" if ok else "INVALID")
    sys.exit(0 if ok else 1)
