#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) that keeps what it receives, for tests.

    smtp_sink.py --port PORT --out FILE [--no-fsync]

Every accepted message is appended to FILE as one JSON line:
{"mail_from", "rcpt_tos", "message_id", "subject", "data"} — the test reads
the file, so what the sink received is the sink's own record. Each message is
fsynced before the 250 reply, as a real relay makes it durable; --no-fsync
(benchmarks) skips that, so that the disk does not set the pace.

Recipients answer like a real relay would, chosen by the local part:
  reject...@  550 5.1.1 (a permanent refusal: the sender must not retry)
  busy...@    451 4.3.0 every time (a temporary refusal: retry, then give up)
  flaky...@   451 4.3.0 the first time for that address, then accepted
anything else is accepted.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, fsync):
        self.out = out
        self.fsync = fsync
        self.seen_flaky = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("busy"):
            return "451 4.3.0 mailbox busy, try again later"
        if local.startswith("flaky") and address not in self.seen_flaky:
            self.seen_flaky.add(address)
            return "451 4.3.0 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.content.decode("utf8", errors="replace")
        message = email.message_from_string(raw, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "message_id": str(message.get("Message-ID", "")),
            "subject": str(message.get("Subject", "")),
            "data": raw,
        }
        with open(self.out, "a", encoding="utf8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        return "250 2.0.0 queued"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-fsync", action="store_true")
    args = parser.parse_args()
    controller = Controller(Sink(args.out, not args.no_fsync), hostname="127.0.0.1", port=args.port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
