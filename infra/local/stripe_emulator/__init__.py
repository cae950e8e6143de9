"""A local Stripe emulator for tests and ``make run``: the real ``stripe`` library talks to it.

    handle = start_emulator(port=0, webhook_url="http://127.0.0.1:9000/webhooks/stripe")
    client = stripe.StripeClient("sk_test_local", base_addresses={"api": handle.url}, max_network_retries=0)
    ...
    handle.stop()

See README.md in this folder for the API surface, the hosted pages and the ``/_emulator`` helpers.
"""

from __future__ import annotations

from typing import Any

from .core import Emulator, RequestContext
from .errors import StripeApiError
from .server import EmulatorServer
from .webhooks import DEFAULT_RETRY_DELAYS

__all__ = ["Emulator", "EmulatorHandle", "RequestContext", "StripeApiError", "start_emulator"]


class EmulatorHandle:
    """A running emulator. Thin conveniences over ``emulator`` (the state) and the server."""

    def __init__(self, server: EmulatorServer) -> None:
        self._server = server
        self.emulator: Emulator = server.emulator
        self.url: str = server.url
        self.host: str = server.host
        self.port: int = server.port
        self.webhook_secret: str | None = None

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "EmulatorHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def set_webhook(self, url: str | None, secret: str | None = None,
                    enabled_events: list[str] | None = None) -> str | None:
        """Send events to ``url`` signed with ``secret`` (generated when None); return the secret."""
        self.webhook_secret = self.emulator.set_webhook(url, secret, enabled_events)
        return self.webhook_secret

    def events(self, type: str | None = None, object_id: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        return self.emulator.list_events(type, object_id)

    def deliveries(self, event_id: str | None = None) -> list[dict[str, Any]]:
        with self.emulator.dispatcher._cond:
            records = list(self.emulator.dispatcher.deliveries)
        return [r for r in records if event_id is None or r["event_id"] == event_id]

    def wait_for_deliveries(self, timeout_s: float = 10.0) -> bool:
        return self.emulator.dispatcher.wait_idle(timeout_s)

    def checkout(self, session_id: str, action: str = "card_success", **form: Any) -> dict[str, Any]:
        """Press a button of the hosted Checkout page (``card_success``, ``sepa_fail``, ``setup_sepa``...)."""
        return self.emulator.checkout_action(session_id, action, form.get("email"), form.get("name"),
                                             form.get("iban"))

    def settle(self, payment_intent_id: str, outcome: str = "succeed",
               failure_code: str = "insufficient_funds") -> dict[str, Any]:
        return self.emulator.render(self.emulator.settle_payment_intent(payment_intent_id, outcome, failure_code))

    def reset(self) -> None:
        self.emulator.reset()


def start_emulator(port: int = 0, webhook_url: str | None = None, webhook_secret: str | None = None, *,
                   host: str = "127.0.0.1", sepa_settle_after: float | None = None,
                   retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS, webhook_timeout_s: float = 5.0,
                   verbose: bool = False) -> EmulatorHandle:
    """Start the emulator in background threads on ``host:port`` (0 = a free port).

    ``sepa_settle_after``: seconds after which processing SEPA debits settle by themselves
    (None = only through the settle helper). ``retry_delays``: waits between webhook attempts.
    """
    server = EmulatorServer(host, port, verbose=verbose, sepa_settle_after=sepa_settle_after,
                            retry_delays=tuple(retry_delays), webhook_timeout_s=webhook_timeout_s)
    handle = EmulatorHandle(server)
    if webhook_url:
        handle.set_webhook(webhook_url, webhook_secret)
    return handle
