"""Issued documents in S3 (versioned bucket; Object Lock for the 10-year retention on AWS).

Retention is set per object, in COMPLIANCE mode, when ``retention_days`` is configured (prod):
issued invoices and credit notes, their XML, formal-notice letters and proofs of sending are
business records kept 10 years (French commercial code, art. L123-22). Evidence packs
(``dunning/evidence/``: copies assembled on request, full of personal data) and accounting exports
(``exports/``: files rebuilt from the ledger on request, and their work parts) are not locked, so a
bucket-wide default retention is not used.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from ..domain.errors import NotFound
from ..services.ports import DocumentStore


UNLOCKED_PREFIXES = ("dunning/evidence/", "exports/")


class S3DocumentStore(DocumentStore):
    def __init__(self, client: Callable[[], Any], bucket: str, *, retention_days: int = 0,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._client = client
        self._bucket = bucket
        self._retention_days = retention_days
        self._now = now

    def put(self, key: str, content: bytes, content_type: str) -> None:
        extra: dict[str, Any] = {}
        if self._retention_days > 0 and not key.startswith(UNLOCKED_PREFIXES):
            extra = {"ObjectLockMode": "COMPLIANCE",
                     "ObjectLockRetainUntilDate": self._now() + timedelta(days=self._retention_days)}
        self._client().put_object(Bucket=self._bucket, Key=key, Body=content, ContentType=content_type, **extra)

    def get(self, key: str) -> bytes:
        client = self._client()
        try:
            return bytes(client.get_object(Bucket=self._bucket, Key=key)["Body"].read())
        except client.exceptions.NoSuchKey:
            raise NotFound(f"document {key} is not stored yet: it is written right after issuing, retry shortly",
                           code="document_not_ready") from None

    def exists(self, key: str) -> bool:
        client = self._client()
        try:
            client.head_object(Bucket=self._bucket, Key=key)
        except client.exceptions.ClientError:
            return False
        return True

    def presigned_url(self, key: str, expires_s: int) -> str:
        """A GET URL signed with this function's credentials: it needs only ``s3:GetObject`` on the key
        (the bucket is S3-managed encrypted, no KMS key to grant) and lasts ``expires_s`` seconds, or
        less if the signing role's session ends first. Locally it points at moto."""
        return str(self._client().generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=int(expires_s)))
