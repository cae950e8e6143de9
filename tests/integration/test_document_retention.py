"""Object Lock retention on AWS: business records are locked per object (COMPLIANCE, 10 years in prod),
evidence packs are not; with no retention configured (dev, local) nothing is locked. Against moto's S3."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest

from chalicelib.adapters.storage import S3DocumentStore

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def s3(moto_endpoint: str):
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-3",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return client


def _bucket(s3, name: str, *, locked: bool) -> str:
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"},
                     ObjectLockEnabledForBucket=locked)
    return name


def test_records_are_locked_for_the_configured_days_and_evidence_packs_are_not(s3) -> None:
    bucket = _bucket(s3, "docs-locked-test", locked=True)
    store = S3DocumentStore(lambda: s3, bucket, retention_days=3653, now=lambda: NOW)
    store.put("invoices/2026/F2026-000001.pdf", b"%PDF-1.7 ...", "application/pdf")
    store.put("dunning/evidence/cus_1/pack.zip", b"PK...", "application/zip")

    head = s3.head_object(Bucket=bucket, Key="invoices/2026/F2026-000001.pdf")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].date() == (NOW + timedelta(days=3653)).date()
    assert "ObjectLockMode" not in s3.head_object(Bucket=bucket, Key="dunning/evidence/cus_1/pack.zip")
    assert store.get("invoices/2026/F2026-000001.pdf") == b"%PDF-1.7 ..."


def test_no_retention_configured_locks_nothing(s3) -> None:
    bucket = _bucket(s3, "docs-plain-test", locked=False)
    store = S3DocumentStore(lambda: s3, bucket)
    store.put("invoices/2026/F2026-000002.pdf", b"%PDF", "application/pdf")
    assert s3.head_object(Bucket=bucket, Key="invoices/2026/F2026-000002.pdf").get("ObjectLockMode") is None
    with pytest.raises(ValueError, match="DOCUMENTS_RETENTION_DAYS"):
        from chalicelib.config import _retention_days

        _retention_days("ten years")
