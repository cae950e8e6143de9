"""Fixtures of the document tests: the official EN 16931 validator, compiled once per session."""

from __future__ import annotations

import pytest

from . import en16931


@pytest.fixture(scope="session")
def official_rules() -> en16931.Validator:
    reason = en16931.available()
    if reason:
        pytest.skip(reason)
    return en16931.validator()


@pytest.fixture(scope="session")
def facturx_rules() -> en16931.Validator:
    reason = en16931.available()
    if reason:
        pytest.skip(reason)
    return en16931.facturx_validator()
