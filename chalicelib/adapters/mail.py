"""Email through Amazon SES (v2), as raw MIME so PDFs can be attached.

SES v2 templates are not used: messages are rendered from Jinja2 files in
chalicelib/templates (they also work on moto, which lacks v2 templates).
Recipients never appear in logs.
"""

from __future__ import annotations

from email.message import EmailMessage as MimeMessage
from email.utils import formataddr, make_msgid
from typing import Any, Callable

from ..services.ports import EmailMessage, Mailer


class SesMailer(Mailer):
    def __init__(self, client: Callable[[], Any], sender: str, sender_name: str | None = None,
                 configuration_set: str | None = None) -> None:
        self._client = client
        self._sender = sender
        self._sender_name = sender_name
        self._configuration_set = configuration_set

    def mime(self, message: EmailMessage) -> bytes:
        mime = MimeMessage()
        mime["From"] = formataddr((self._sender_name or "", self._sender)) if self._sender_name else self._sender
        mime["To"] = ", ".join(message.to)
        mime["Subject"] = message.subject
        mime["Message-ID"] = make_msgid(domain=self._sender.split("@")[-1])
        if message.reply_to:
            mime["Reply-To"] = message.reply_to
        mime.set_content(message.text)
        if message.html:
            mime.add_alternative(message.html, subtype="html")
        for attachment in message.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            mime.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                                filename=attachment.filename)
        return mime.as_bytes()

    def send(self, message: EmailMessage) -> str:
        kwargs: dict[str, Any] = {
            "FromEmailAddress": self._sender,
            "Destination": {"ToAddresses": list(message.to)},
            "Content": {"Raw": {"Data": self.mime(message)}},
        }
        if message.tags:
            kwargs["EmailTags"] = [{"Name": k, "Value": v} for k, v in message.tags.items()]
        if self._configuration_set:
            kwargs["ConfigurationSetName"] = self._configuration_set
        return str(self._client().send_email(**kwargs)["MessageId"])
