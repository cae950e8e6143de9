"""``chalice local``, plus the gateway responses API Gateway applies on AWS.

Chalice's local gateway answers authorizer denials and unknown routes with its
own bodies (``{"Message": "User is not authorized..."}``, 403 "Missing
Authentication Token"). On AWS, infra/ configures GatewayResponses so those
answers use our ``{"code", "message"}`` shape and the right status (401, 404).
This runs the very same chalice local server (``chalice.local``, the same
config and stage loading as the CLI, no autoreload) with a request handler that
applies that same mapping from ``chalicelib.api.gateway_responses``.

    python -m infra.local.api_server --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from chalice.cli import validate_routes
from chalice.cli.factory import CLIFactory
from chalice.local import (ChaliceRequestHandler, ForbiddenError, InvalidAuthorizerError, LocalDevServer,
                           LocalGatewayException, NotAuthorizedError)

PROJECT_DIR = Path(__file__).resolve().parents[2]


def gateway_response_type(error: LocalGatewayException) -> str:
    body = error.body or b""
    if isinstance(error, NotAuthorizedError):
        return "UNAUTHORIZED"
    if isinstance(error, ForbiddenError):
        return "ACCESS_DENIED" if b"not authorized" in body else "MISSING_AUTHENTICATION_TOKEN"
    if isinstance(error, InvalidAuthorizerError):
        return "DEFAULT_5XX"
    return "DEFAULT_5XX"


class GatewayResponsesHandler(ChaliceRequestHandler):
    def _send_error_response(self, error: LocalGatewayException) -> None:
        from chalicelib.api.gateway_responses import GATEWAY_RESPONSES, body

        kind = gateway_response_type(error)
        status = GATEWAY_RESPONSES[kind][0]
        self._send_http_response(status, {"Content-Type": "application/json"}, body(kind))


def create_server(host: str, port: int, stage: str = "local") -> LocalDevServer:
    factory = CLIFactory(str(PROJECT_DIR), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=stage)
    for name, value in (config.environment_variables or {}).items():
        os.environ.setdefault(name, value)
    app = config.chalice_app
    validate_routes(app.routes)
    return LocalDevServer(app, config, host, port, handler_cls=GatewayResponsesHandler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="chalice local with API Gateway's gateway responses")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    sys.path.insert(0, str(PROJECT_DIR))
    server: Any = create_server(args.host, args.port, args.stage)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
