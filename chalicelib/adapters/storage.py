"""Issued documents in S3 (versioned bucket; Object Lock for the 10-year retention on AWS)."""

from __future__ import annotations

from typing import Any, Callable

from ..domain.errors import NotFound
from ..services.ports import DocumentStore


class S3DocumentStore(DocumentStore):
    def __init__(self, client: Callable[[], Any], bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, key: str, content: bytes, content_type: str) -> None:
        self._client().put_object(Bucket=self._bucket, Key=key, Body=content, ContentType=content_type)

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
