"""Reminder emails and SMS rendered from Jinja2 templates (chalicelib/templates/dunning/<lang>/).

One template file per step template and language, with four blocks: ``subject``, ``intro``
(before the list of invoices), ``outro`` (after it) and ``sms``. The list of invoices (number,
due date, amount due, pay link) is laid out here, so every template shows it the same way in the
text and the HTML part. Jinja2 is imported on first use only (the API's cold start does not pay
for it); amounts and dates are formatted without Babel (French: ``1 234,50 €``, ``15/03/2026``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..domain.money import Money

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates" / "dunning"
LANGUAGES = ("fr", "en")
# A policy step naming a template we do not ship falls back on the one of its tone.
TONE_TEMPLATES = {"courtesy": "courtesy_notice", "friendly": "friendly_reminder", "firm": "firm_reminder",
                  "formal": "formal_notice"}
SMS_MAX = 459  # three concatenated GSM segments: longer texts are cut (the link stays at the end)

LABELS = {
    "fr": {"number": "Facture", "due": "Échéance", "amount": "Reste dû", "pay": "Payer en ligne",
           "days": "jours de retard", "pay_short": "payer", "penalties": "pénalités", "indemnity": "indemnité"},
    "en": {"number": "Invoice", "due": "Due date", "amount": "Amount due", "pay": "Pay online",
           "days": "days overdue", "pay_short": "pay", "penalties": "penalties", "indemnity": "indemnity"},
}


def money_text(money: Money, lang: str) -> str:
    """``1 234,50 €`` (fr) or ``EUR 1,234.50`` (en); never through floats."""
    text = str(money)  # "1234.50"
    sign = "-" if text.startswith("-") else ""
    whole, _, cents = text.lstrip("-").partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    if lang == "fr":
        body = "\u202f".join(groups) + ("," + cents if cents else "")
        symbol = "€" if money.currency == "EUR" else money.currency
        return f"{sign}{body}\u00a0{symbol}"
    body = ",".join(groups) + ("." + cents if cents else "")
    return f"{sign}{money.currency} {body}"


def date_text(day: date | None, lang: str) -> str:
    if day is None:
        return ""
    return day.strftime("%d/%m/%Y") if lang == "fr" else day.isoformat()


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    sms: str


@lru_cache(maxsize=1)
def _env() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=False,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=1)
def _html_env() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def template_exists(name: str, lang: str) -> bool:
    return (TEMPLATES_DIR / lang / f"{name}.j2").is_file()


def resolve_template(name: str, tone: str | None, lang: str) -> str:
    """The template file to use for a step (its own, else its tone's). Raises LookupError."""
    if template_exists(name, lang):
        return name
    fallback = TONE_TEMPLATES.get(tone or "")
    if fallback and template_exists(fallback, lang):
        return fallback
    raise LookupError(f"no template {name!r} (nor one for tone {tone!r}) in {lang}")


def _block(template: Any, name: str, context: Mapping[str, Any]) -> str:
    ctx = template.new_context(dict(context))
    return "".join(template.blocks[name](ctx)).strip()


def invoice_rows(lines: Sequence[Mapping[str, Any]], lang: str) -> list[dict[str, Any]]:
    """Template rows from plan lines ``{number, due_date, amount_due (Money), days_overdue, pay_link, ...}``."""
    rows = []
    for line in lines:
        row = {"number": line.get("number") or line.get("invoice_id"), "due_date": date_text(line.get("due_date"), lang),
               "amount_due": money_text(line["amount_due"], lang), "days_overdue": line.get("days_overdue", 0),
               "pay_link": line.get("pay_link") or ""}
        for extra in ("penalties", "indemnity", "claimed"):
            if line.get(extra) is not None:
                row[extra] = money_text(line[extra], lang)
        rows.append(row)
    return rows


def render_message(template: str, tone: str | None, lang: str, lines: Sequence[Mapping[str, Any]],
                   context: Mapping[str, Any]) -> RenderedMessage:
    """Subject, text, HTML and SMS of a reminder listing ``lines`` (see :func:`invoice_rows`)."""
    lang = lang if lang in LANGUAGES else "fr"
    name = resolve_template(template, tone, lang)
    rows = invoice_rows(lines, lang)
    labels = LABELS[lang]
    ctx = {"count": len(rows), "first": rows[0] if rows else {}, "invoices": rows,
           "numbers": ", ".join(str(r["number"]) for r in rows), **context}
    tpl = _env().get_template(f"{lang}/{name}.j2")
    subject = " ".join(_block(tpl, "subject", ctx).split())
    intro = _block(tpl, "intro", ctx)
    outro = _block(tpl, "outro", ctx)
    listing = []
    for r in rows:
        parts = [f"{labels['number']} {r['number']}", f"{labels['due']} {r['due_date']}", f"{r['amount_due']}"]
        if r["days_overdue"]:
            parts.append(f"{r['days_overdue']} {labels['days']}")
        if r.get("penalties"):
            parts.append(f"{labels['penalties']} {r['penalties']}, {labels['indemnity']} {r['indemnity']}")
        line = "- " + " · ".join(parts)
        if r["pay_link"]:
            line += f"\n  {labels['pay']} : {r['pay_link']}" if lang == "fr" else f"\n  {labels['pay']}: {r['pay_link']}"
        listing.append(line)
    text = intro + "\n\n" + "\n".join(listing) + "\n\n" + outro + "\n"
    html = _html_env().get_template("_email.html.j2").render(
        lang=lang, subject=subject, intro=intro.split("\n\n"), outro=outro.split("\n\n"), rows=rows,
        headers=[labels["number"], labels["due"], labels["amount"], ""], pay_label=labels["pay"])
    sms = " ".join(_block(tpl, "sms", ctx).split())
    if len(sms) > SMS_MAX:
        link = rows[0]["pay_link"] if rows else ""
        sms = sms[: SMS_MAX - len(link) - 2].rstrip() + "… " + link
    return RenderedMessage(subject=subject, text=text, html=html, sms=sms)
