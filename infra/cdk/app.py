#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` / ``cdk deploy <stage>`` run this (see cdk.json and the Makefile).

Synthesizes one stack per stage (``dev``, ``prod``), offline: chalice packages the
app with ``pip download`` (package registry only), nothing calls AWS. ``-c stages=dev``
limits the stacks built (``make deploy`` uses it so only the deployed stage is packaged).
"""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

PROJECT_DIR = Path(__file__).resolve().parents[2]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

import aws_cdk as cdk  # noqa: E402

from infra.cdk.app_model import describe_app  # noqa: E402
from infra.cdk.settings import DEFAULT_REGION, STAGES, stage_settings  # noqa: E402

# Feature flags this app relies on (context from the CLI wins).
FEATURE_FLAGS: dict[str, Any] = {
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/core:validateSnapshotRemovalPolicy": True,
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
}


@contextmanager
def packaging_lock() -> Iterator[None]:
    """One chalice packaging at a time per checkout: chalice writes its cached zips in place."""
    cache = PROJECT_DIR / ".chalice" / "deployments"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    """The CDK app with its stage stacks (tests call this in-process; the CLI runs this file)."""
    # chalice package needs a region to build its (unused here) AWS session.
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("CDK_DEFAULT_REGION", DEFAULT_REGION))
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir)
    from infra.cdk.stack import ArBackendStack

    wanted = app.node.try_get_context("stages")
    stages = [s for s in (wanted.split(",") if isinstance(wanted, str) else STAGES) if s]
    model = describe_app(PROJECT_DIR)
    with packaging_lock():  # the stacks package the app when they are built
        for stage in stages:
            ArBackendStack(app, stage_settings(stage, app.node.try_get_context), model, PROJECT_DIR)
    return app


if __name__ == "__main__":
    build_app().synth()
