"""What the Chalice app registers, read from the app itself (never a hand-kept list).

The stack gives every Lambda function chalice packages its own role, log group,
alarms and limits; it learns which functions exist here, so a scheduled job or an
event handler added to the app is picked up by the next synth without touching infra/.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_HANDLER = "api_handler"           # chalice's name for the function serving every route
API_HANDLER_LOGICAL_ID = "APIHandler"  # ... and its logical id in the packaged template


@dataclass(frozen=True)
class AppFunction:
    """One Lambda function of the app, as chalice will package it."""

    name: str          # chalice's name (the key of ``lambda_functions`` in .chalice/config.json)
    logical_id: str    # its logical id in the template chalice packages
    kind: str          # "api" | "authorizer" | "schedule" | "event" (async) | "poller" (SQS, streams) | "lambda"
    handler: str       # module.function inside the deployment package
    schedule: str | None = None  # "rate(1 minute)", "cron(...)" for kind == "schedule"

    @property
    def is_async(self) -> bool:
        """Invoked asynchronously by AWS (EventBridge, SNS, S3): failures go to the on-failure queue."""
        return self.kind in ("schedule", "event")


@dataclass(frozen=True)
class AppRoute:
    path: str
    method: str
    authorizer: str | None


@dataclass(frozen=True)
class AppModel:
    app_name: str
    functions: tuple[AppFunction, ...]
    routes: tuple[AppRoute, ...] = field(default=())

    def function(self, name: str) -> AppFunction | None:
        return next((f for f in self.functions if f.name == name), None)

    @property
    def scheduled(self) -> tuple[AppFunction, ...]:
        return tuple(f for f in self.functions if f.kind == "schedule")

    @property
    def public_routes(self) -> tuple[AppRoute, ...]:
        return tuple(r for r in self.routes if r.authorizer is None)


def load_chalice_app(project_dir: Path) -> Any:
    """Import ``app.app`` from ``project_dir`` (the same import ``chalice package`` does)."""
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    return importlib.import_module("app").app


def _schedule_expression(value: Any) -> str:
    return value if isinstance(value, str) else value.to_string()


def describe_app(project_dir: Path) -> AppModel:
    """Every function and route the Chalice app in ``project_dir`` registers."""
    from chalice.app import DynamoDBEventConfig, KinesisEventConfig, ScheduledEventConfig, SQSEventConfig
    from chalice.utils import to_cfn_resource_name

    app = load_chalice_app(project_dir)
    functions: list[AppFunction] = []
    if app.routes:
        functions.append(AppFunction(API_HANDLER, API_HANDLER_LOGICAL_ID, "api", "app.app"))
    for auth in app.builtin_auth_handlers:
        functions.append(AppFunction(auth.name, to_cfn_resource_name(auth.name), "authorizer", auth.handler_string))
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig):
            functions.append(AppFunction(source.name, to_cfn_resource_name(source.name), "schedule",
                                         source.handler_string, _schedule_expression(source.schedule_expression)))
        else:  # SNS, S3, CloudWatch events are pushed (async); SQS and streams are polled
            polled = isinstance(source, (SQSEventConfig, KinesisEventConfig, DynamoDBEventConfig))
            functions.append(AppFunction(source.name, to_cfn_resource_name(source.name),
                                         "poller" if polled else "event", source.handler_string))
    for fn in app.pure_lambda_functions:
        functions.append(AppFunction(fn.name, to_cfn_resource_name(fn.name), "lambda", fn.handler_string))
    routes = tuple(AppRoute(path, method, route.authorizer.name if route.authorizer else None)
                   for path, methods in app.routes.items() for method, route in methods.items())
    return AppModel(app_name=app.app_name, functions=tuple(functions), routes=routes)
