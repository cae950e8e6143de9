"""Fixtures of tests/infra: the stacks are synthesized once per session (see infra_synth.py)."""

from __future__ import annotations

from typing import Any

import pytest
from infra_synth import PROJECT_DIR, Synth, synthesize


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    """The dev and prod stacks with the default settings."""
    return synthesize(tmp_path_factory.mktemp("cdk"), {})


@pytest.fixture(scope="session")
def with_waf(tmp_path_factory: pytest.TempPathFactory, synthesized: dict[str, Synth]) -> Synth:
    """The prod stack with the WAF, an alarm email and a custom public URL (the package is reused)."""
    return synthesize(tmp_path_factory.mktemp("cdk-waf"), {
        "stages": "prod", "waf": "true", "alarm_email": "ops@example.com",
        "prod:public_base_url": "https://pay.example.com/"})["prod"]


@pytest.fixture(params=["dev", "prod"])
def stage(request: pytest.FixtureRequest, synthesized: dict[str, Synth]) -> Synth:
    return synthesized[request.param]


@pytest.fixture(scope="session")
def app_model() -> Any:
    from infra.cdk.app_model import describe_app

    return describe_app(PROJECT_DIR)


@pytest.fixture(scope="session")
def chalice_app() -> Any:
    from infra.cdk.app_model import load_chalice_app

    return load_chalice_app(PROJECT_DIR)
