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
import os
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


def _copy_each_table_once_per_transaction() -> None:
    """moto backs up the whole table once *per item* of a TransactWriteItems
    (4 deep copies for a 4-item transaction). One backup per table is the same
    rollback state; this keeps local transactions ~4x cheaper. Safe here
    because requests are serialized."""
    import copy as _copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models.table import Table

    class _OnceCopy:
        cache: dict[int, Any] | None = None

        def deepcopy(self, obj: Any, memo: Any = None) -> Any:
            if self.cache is not None and isinstance(obj, Table):
                if id(obj) not in self.cache:
                    self.cache[id(obj)] = _copy.deepcopy(obj)
                return self.cache[id(obj)]
            return _copy.deepcopy(obj, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(_copy, name)

    shim = _OnceCopy()
    dynamodb_models.copy = shim  # type: ignore[attr-defined]
    original = dynamodb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> Any:
        shim.cache = {}
        try:
            return original(self, transact_items)
        finally:
            shim.cache = None

    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def build_server(host: str, port: int) -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    _copy_each_table_once_per_transaction()
    app = SerializedApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    # Idle keep-alive connections must not hold up a stop.
    server.daemon_threads = True
    server.block_on_close = False
    return server


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
        # moto keeps non-daemon helper threads; nothing is left to flush (state is in memory).
        os._exit(0)


if __name__ == "__main__":
    main()
