"""moto in server mode, one request at a time.

moto's TransactWriteItems copies the whole table and fails with HTTP 500
("dictionary changed size during iteration") when another write lands during
that copy; real DynamoDB has no such problem. Each DynamoDB request is atomic,
so running them one after another is a valid order: this wraps moto's own
server application (the one ``moto_server`` runs) in a lock instead of
weakening the application's use of transactions.

    python -m infra.local.moto_serial --port 5000
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Callable, Iterable

from werkzeug.serving import make_server


class SerializedApp:
    """WSGI middleware: the wrapped app serves one request at a time."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            result = self._app(environ, start_response)
            try:
                return list(result)  # finish the whole response while holding the lock
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()


def build_server(host: str, port: int) -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    app = SerializedApp(DomainDispatcherApplication(create_backend_app))
    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    server = build_server(args.host, args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"moto (serialized) on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
