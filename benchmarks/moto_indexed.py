"""The local stack's serialized moto server, plus a hash-key index for Query (benchmarks only).

moto answers every Query (on the table or on an index) by sorting and filtering the
whole table, in Python: about 35 microseconds per item here, so one Query on a
125,000-item table takes seconds, where DynamoDB reads only the partition it is asked
for. At 50,000 invoices the emulator, not the application, would be what a benchmark
measures. This server keeps, per table and key attribute, the items grouped by key
value, built on the first Query after a write and dropped on every write (requests are
serialized, so no Query ever sees a stale group), and hands moto's own Query code just
that partition: same results, same ordering, same filters and pagination, a
DynamoDB-like cost. Scans and writes are moto's, unchanged.

    python -m benchmarks.moto_indexed --port 5100
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import sys
from typing import Any, Callable, Iterable

READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables", "DescribeTimeToLive",
                   "DescribeContinuousBackups", "ListTagsOfResource"})
_groups: dict[tuple[int, str], dict[tuple[str, str], list[Any]]] = {}


def _value_key(value: Any) -> tuple[str, str]:
    return value.type, json.dumps(value.value, sort_keys=True, default=str)


def _install() -> None:
    from moto.dynamodb.models.table import Table

    original = Table.query
    signature = inspect.signature(original)

    def partition(table: Any, attr: str, value: Any) -> list[Any]:
        key = (id(table), attr)
        groups = _groups.get(key)
        if groups is None:
            groups = {}
            for hash_set in table.items.values():
                for item in (hash_set.values() if table.range_key_attr else [hash_set]):
                    found = item.attrs.get(attr)
                    if found is not None:
                        groups.setdefault(_value_key(found), []).append(item)
            _groups[key] = groups
        return groups.get(_value_key(value), [])

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        params = bound.arguments
        conditions = params.get("hash_key_conditions") or []
        index_name = params.get("index_name")
        if len(conditions) > 1:
            return original(self, *args, **kwargs)
        if conditions:
            attr, value = conditions[0]
        else:
            value = params.get("hash_key")
            if index_name:
                index = {i.name: i for i in self.all_indexes()}.get(index_name)
                if index is None:
                    return original(self, *args, **kwargs)
                attr = next(k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH")
            else:
                attr = self.hash_key_attr
        if value is None:
            return original(self, *args, **kwargs)
        candidates = partition(self, attr, value)
        self.all_items = lambda: sorted(candidates, key=lambda x: (x.hash_key, x.range_key) if x.range_key
                                        else x.hash_key)
        try:
            return original(self, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query  # type: ignore[method-assign]


class ForgetOnWrite:
    """WSGI middleware: any request that may write drops the Query groups (before it runs)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
        if operation not in READS:
            _groups.clear()
        return self._app(environ, start_response)


def build_server(host: str, port: int) -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from infra.local.moto_serial import SerializedApp, _transactions_back_up_items_not_tables

    _transactions_back_up_items_not_tables()
    _install()
    app = SerializedApp(ForgetOnWrite(DomainDispatcherApplication(create_backend_app)))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
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
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        os._exit(0)


if __name__ == "__main__":
    main()
