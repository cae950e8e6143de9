"""The official EN 16931 rules (compiled once per session), as in tests/documents."""

from __future__ import annotations

import pytest

from tests.documents import en16931


@pytest.fixture(scope="session")
def official_rules() -> en16931.Validator:
    reason = en16931.available()
    if reason:
        pytest.skip(reason)
    return en16931.validator()
