"""Configuration: the only module that reads ``os.environ``.

The same code runs locally (moto, the Stripe emulator) and on AWS (real
services, Stripe test or live keys): only these values change. Secrets are not
read here; ``secrets`` fetches them lazily from Secrets Manager or, locally,
from environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Config:
    stage: str
    region: str
    table_name: str
    aws_endpoint_url: str | None      # set locally (moto); None on AWS
    documents_bucket: str
    event_bus_name: str
    mail_from: str
    public_base_url: str              # where /pay and /portal links point
    secrets_name: str                 # Secrets Manager secret holding the provider keys
    log_level: str
    max_body_bytes: int
    ses_configuration_set: str | None  # SES events (bounces, complaints) on AWS
    sms_sender_id: str | None
    stripe_api_base: str | None       # the local Stripe emulator; None = api.stripe.com
    # Secrets may come from the environment (local stack, CI); otherwise they are
    # read lazily from Secrets Manager (SECRETS_NAME) by adapters/secrets.py.
    stripe_secret_key: str | None
    stripe_webhook_secret: str | None
    # Object Lock retention (COMPLIANCE) of stored business records, in days; 0 = none (dev, local).
    documents_retention_days: int = 0

    @property
    def is_local(self) -> bool:
        return self.aws_endpoint_url is not None


def _retention_days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"DOCUMENTS_RETENTION_DAYS={raw!r} must be a whole number of days (e.g. 3653)") from None
    if days < 0:
        raise ValueError("DOCUMENTS_RETENTION_DAYS must be 0 (no lock) or a positive number of days")
    return days


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return value if value else default


@lru_cache(maxsize=1)
def get_config() -> Config:
    stage = _env("STAGE", "local")
    return Config(
        stage=stage,
        region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", "eu-west-3")),
        table_name=_env("TABLE_NAME", "ar-ledger"),
        aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        documents_bucket=_env("DOCUMENTS_BUCKET", "ar-documents"),
        documents_retention_days=_retention_days(_env("DOCUMENTS_RETENTION_DAYS", "0")),
        event_bus_name=_env("EVENT_BUS_NAME", "ar-events"),
        mail_from=_env("MAIL_FROM", "factures@example.com"),
        public_base_url=_env("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/"),
        secrets_name=_env("SECRETS_NAME", f"ar-backend/{stage}"),
        log_level=_env("LOG_LEVEL", "INFO"),
        max_body_bytes=int(_env("MAX_BODY_BYTES", str(1024 * 1024))),
        ses_configuration_set=os.environ.get("SES_CONFIGURATION_SET") or None,
        sms_sender_id=os.environ.get("SMS_SENDER_ID") or None,
        stripe_api_base=os.environ.get("STRIPE_API_BASE") or None,
        stripe_secret_key=os.environ.get("STRIPE_SECRET_KEY") or None,
        stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET") or None,
    )
