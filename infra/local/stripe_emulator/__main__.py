"""``python -m infra.local.stripe_emulator --port 12111 --webhook-url URL --webhook-secret whsec_...``"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import start_emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.stripe_emulator",
                                     description="Local Stripe emulator (test mode, in memory).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    parser.add_argument("--webhook-url", help="endpoint that receives signed events")
    parser.add_argument("--webhook-secret", help="whsec_... used to sign events (generated if omitted)")
    parser.add_argument("--sepa-settle-after", type=float, default=None,
                        help="seconds after which processing SEPA debits settle by themselves (default: manual)")
    parser.add_argument("--retry-delays", default="0.5,2,8",
                        help="comma-separated seconds between webhook attempts (default 0.5,2,8)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    delays = tuple(float(d) for d in args.retry_delays.split(",") if d.strip())
    handle = start_emulator(args.port, args.webhook_url, args.webhook_secret, host=args.host,
                            sepa_settle_after=args.sepa_settle_after, retry_delays=delays, verbose=args.verbose)
    print(f"Stripe emulator listening on {handle.url}", flush=True)
    if handle.webhook_secret:
        print(f"Webhooks -> {args.webhook_url} (secret {handle.webhook_secret})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
