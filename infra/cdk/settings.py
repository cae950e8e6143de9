"""Per-stage settings of the stacks: defaults here, overrides from CDK context.

Override any field for one stage with ``-c <stage>:<field>=<value>`` (for example
``-c prod:mail_from=factures@acme.fr``) or for every stage with ``-c <field>=<value>``
(for example ``-c waf=true``). Nothing here is a secret: the Stripe keys live in
Secrets Manager and are set out of band (docs/deploy.md).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable

STAGES = ("dev", "prod")
DEFAULT_REGION = "eu-west-3"  # Paris: French e-invoicing, EU data residency
APP_NAME = "ar-backend"


@dataclass(frozen=True)
class StageSettings:
    stage: str
    region: str = DEFAULT_REGION
    account: str | None = None           # None: environment-agnostic (offline synth); set by `cdk deploy`
    production: bool = False             # retain data, deletion protection, object lock, termination protection
    mail_from: str = "factures@example.com"
    create_mail_identity: bool = True    # SES domain identity for mail_from's domain (DKIM records as outputs)
    public_base_url: str = ""            # "" = the API Gateway URL; set it when a custom domain fronts the API
    log_level: str = "INFO"
    log_retention_days: int = 30
    throttle_rate: float = 50.0          # steady requests/s for the whole stage
    throttle_burst: int = 100
    waf: bool = False                    # optional WAF web ACL (priced apart: docs/cost.md)
    waf_public_rate_limit: int = 300     # requests per 5 minutes per IP on the public routes
    alarm_email: str = ""                # subscribed to the alarm topic when set
    api_5xx_rate_percent: float = 1.0    # alarm threshold on the share of 5xx answers

    @property
    def prefix(self) -> str:
        """Name prefix of every named resource of the stage (``ar-backend-dev``)."""
        return f"{APP_NAME}-{self.stage}"

    @property
    def mail_domain(self) -> str:
        return self.mail_from.rpartition("@")[2]


DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {"log_level": "DEBUG", "log_retention_days": 14, "throttle_rate": 20.0, "throttle_burst": 40,
            "mail_from": "factures@dev.example.com"},
    "prod": {"production": True, "log_retention_days": 90, "throttle_rate": 100.0, "throttle_burst": 200,
             "mail_from": "factures@example.com"},
}


def _coerce(kind: Any, raw: Any) -> Any:
    if raw is None or not isinstance(raw, str):
        return raw
    if kind in (bool, "bool"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    return raw


def stage_settings(stage: str, context: Callable[[str], Any]) -> StageSettings:
    """Settings of ``stage``: code defaults < ``-c field=...`` < ``-c stage:field=...``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: expected one of {STAGES}")
    values: dict[str, Any] = {"stage": stage, **DEFAULTS[stage]}
    # The region is chosen here, not by whatever profile deploys: eu-west-3 unless told.
    values["region"] = context(f"{stage}:region") or context("region") or DEFAULT_REGION
    values["account"] = context(f"{stage}:account") or context("account") or os.environ.get("CDK_DEFAULT_ACCOUNT")
    for f in dataclasses.fields(StageSettings):
        if f.name in ("stage", "region", "account"):
            continue
        for key in (f.name, f"{stage}:{f.name}"):
            raw = context(key)
            if raw is not None:
                values[f.name] = _coerce(f.type, raw)
    return StageSettings(**values)
