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


def _transactions_back_up_items_not_tables() -> None:
    """moto backs up the whole table (a deep copy) for *each item* of a
    TransactWriteItems, so a transaction costs O(table size x items): ~80 ms on
    a 10k-item table, ~500 ms at 20k. Rolling back only needs the items the
    transaction touches: this backs those up instead and restores them on
    failure, making local transactions O(items) like DynamoDB's. Safe because
    requests are serialized (nothing else runs during a transaction)."""
    import copy as _copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models.table import Table

    class _NoTableCopy:
        active = False

        def deepcopy(self, obj: Any, memo: Any = None) -> Any:
            if self.active and isinstance(obj, Table):
                return obj  # rollback is done item by item below
            return _copy.deepcopy(obj, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(_copy, name)

    shim = _NoTableCopy()
    dynamodb_models.copy = shim  # type: ignore[attr-defined]
    original = dynamodb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: Any) -> Any:
        backups = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table_name = op.get("TableName")
            if not table_name or table_name not in self.tables:
                continue
            table = self.tables[table_name]
            if "Key" in op:
                key = op["Key"]
            else:
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            existing = self.get_item(table_name, key)
            backups.append((table_name, key, existing.to_json()["Attributes"] if existing else None))
        shim.active = True
        try:
            return original(self, transact_items)
        except Exception:
            for table_name, key, attrs in reversed(backups):
                if attrs is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, _copy.deepcopy(attrs))
            raise
        finally:
            shim.active = False

    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def build_server(host: str, port: int) -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    _transactions_back_up_items_not_tables()
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
