"""Text messages through Amazon SNS (transactional SMS)."""

from __future__ import annotations

from typing import Any, Callable

from ..services.ports import SmsSender


class SnsSms(SmsSender):
    def __init__(self, client: Callable[[], Any], sender_id: str | None = None) -> None:
        self._client = client
        self._sender_id = sender_id

    def send(self, phone_e164: str, text: str, *, tags: dict[str, str] | None = None) -> str:
        attributes: dict[str, Any] = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}}
        if self._sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": self._sender_id}
        return str(self._client().publish(PhoneNumber=phone_e164, Message=text,
                                          MessageAttributes=attributes)["MessageId"])
