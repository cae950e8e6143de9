"""boto3 clients, built lazily and once per process, pointed at the configured endpoint."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from ..config import get_config

_lock = threading.Lock()


@lru_cache(maxsize=None)
def client(service: str) -> Any:
    """A boto3 client for ``service`` (moto locally, AWS otherwise). Clients are thread-safe."""
    import boto3
    from botocore.config import Config as BotoConfig

    cfg = get_config()
    with _lock:  # boto3's default session is not thread-safe while creating clients
        session = boto3.session.Session()
        return session.client(service, region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url,
                              config=BotoConfig(retries={"mode": "standard", "max_attempts": 4},
                                                connect_timeout=5, read_timeout=20))
