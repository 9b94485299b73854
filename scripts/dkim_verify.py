"""Checks the DKIM signature of one message (read from stdin) with dkimpy,
the reference implementation, against the public key given as the base64 of
its DER SubjectPublicKeyInfo (what the `p=` tag of the selector's DNS TXT
record holds) — no DNS: the lookup is answered with that record.

Usage: python dkim_verify.py <base64 public key> < message.eml
Prints "pass" and exits 0 when the signature verifies; prints why and exits 1 otherwise.
"""

import sys

import dkim


def main() -> int:
    public_key = sys.argv[1]
    message = sys.stdin.buffer.read()
    record = f"v=DKIM1; k=rsa; p={public_key}".encode()

    def dns(name, timeout=5):  # noqa: ARG001 - dkimpy's dnsfunc signature
        return record

    verifier = dkim.DKIM(message)
    try:
        ok = verifier.verify(dnsfunc=dns)
    except dkim.DKIMException as e:
        print(f"fail: {e}")
        return 1
    print("pass" if ok else "fail: the signature does not match")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
