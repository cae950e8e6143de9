"""The customer promises to pay from the hosted invoice page (``/pay/{token}/promise``), issue 5.

A small form (amount, date) under the invoice's own token. The promise pauses the reminders of that
invoice until its date; it is checked the day after (kept, or broken and the reminders resume).
Reminder emails link to this page. Routes are registered in pages.py (same page conventions).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from chalice import Response

from .. import wiring
from ..domain.errors import Conflict, ValidationError
from ..observability import logger
from ..services.pay import CUSTOMER
from ..services.promises import CUSTOMER_HORIZON_DAYS

STRINGS = {
    "fr": {"title": "Convenir d'une date de paiement", "invoice": "Facture",
           "intro": "Vous ne pouvez pas régler tout de suite ? Indiquez-nous quand vous paierez : nous suspendons "
                    "nos relances jusqu'à cette date.",
           "due_label": "Reste à payer :", "amount": "Montant que vous réglerez (€)", "date": "Date de paiement",
           "submit": "Enregistrer mon engagement", "back": "Retour à la facture",
           "done_title": "Merci, c'est noté",
           "done": "Nous attendons votre règlement de {amount} au plus tard le {date}. Nos relances sont "
                   "suspendues jusque-là.",
           "amount_invalid": "Indiquez un montant entre 0,01 et le reste à payer, par exemple 250,00.",
           "date_invalid": "Choisissez une date entre aujourd'hui et le {max}.",
           "nothing": "Cette facture n'a rien à régler."},
    "en": {"title": "Agree on a payment date", "invoice": "Invoice",
           "intro": "Cannot pay right now? Tell us when you will: we hold our reminders until that date.",
           "due_label": "Amount due:", "amount": "Amount you will pay", "date": "Payment date",
           "submit": "Record my commitment", "back": "Back to the invoice", "done_title": "Thank you, noted",
           "done": "We expect your payment of {amount} by {date}. Our reminders are on hold until then.",
           "amount_invalid": "Enter an amount between 0.01 and the amount due, e.g. 250.00.",
           "date_invalid": "Choose a date between today and {max}.", "nothing": "Nothing is due on this invoice."},
}


def _context(page: Any, token: str, view: Any, f: Any, *, values: Mapping[str, str] | None = None,
             errors: Mapping[str, str] | None = None, error: str | None = None) -> dict[str, Any]:
    s = STRINGS[f.lang]
    seller = view.seller
    return {"s": s, "seller_name": seller.trade_name or seller.legal_name, "number": view.invoice.number,
            "amount_due": f.money(view.invoice.amount_due), "legal": [], "contact": seller.email,
            "action": page.url(f"/pay/{token}/promise"), "back": page.url(f"/pay/{token}"),
            "min_date": view.today.isoformat(),
            "max_date": (view.today + timedelta(days=CUSTOMER_HORIZON_DAYS)).isoformat(),
            "values": values or {"amount": str(view.invoice.amount_due).replace(".", "," if f.lang == "fr" else "."),
                                 "promised_on": ""},
            "errors": errors or {}, "error": error}


def promise_page(page: Any, token: str) -> Response:
    from .pages import _formatter, message_page, render

    view = wiring.pay().view(token)
    f = _formatter(page, view.customer)
    if view.invoice.status != "open" or not view.invoice.amount_due.is_positive:
        return message_page(f.lang, STRINGS[f.lang]["title"], [STRINGS[f.lang]["nothing"]], seller=view.seller,
                            back={"href": page.url(f"/pay/{token}"), "label": STRINGS[f.lang]["back"]})
    return render("dunning/promise.html", f.lang, 200, **_context(page, token, view, f))


def promise_submit(page: Any, token: str) -> Response:
    from .pages import _formatter, first, message_page, render

    service = wiring.pay()
    view = service.view(token)
    f = _formatter(page, view.customer)
    s = STRINGS[f.lang]
    fields = page.form()
    values = {"amount": first(fields, "amount"), "promised_on": first(fields, "promised_on")}
    amount = values["amount"].replace("\u202f", "").replace(" ", "").replace("€", "").replace(",", ".")
    errors: dict[str, str] = {}
    if view.invoice.status != "open" or not view.invoice.amount_due.is_positive:
        return message_page(f.lang, s["title"], [s["nothing"]], seller=view.seller, status=409)
    try:
        promise = wiring.promises().record({"invoice_ids": [view.invoice.id], "amount": amount,
                                            "promised_on": values["promised_on"]}, CUSTOMER, source="hosted_page")
    except ValidationError as exc:
        limit = f.date(view.today + timedelta(days=CUSTOMER_HORIZON_DAYS))
        errors["promised_on" if exc.field == "promised_on" else "amount"] = (
            s["date_invalid"].format(max=limit) if exc.field == "promised_on" else s["amount_invalid"])
        return render("dunning/promise.html", f.lang, 422, **_context(page, token, view, f, values=values,
                                                                       errors=errors))
    except Conflict as exc:
        return render("dunning/promise.html", f.lang, 409, **_context(page, token, view, f, values=values,
                                                                       error=exc.message))
    logger.info("promise to pay from the hosted page", extra={"promise_id": promise.id})
    return message_page(f.lang, s["done_title"],
                        [s["done"].format(amount=f.money(promise.amount), date=f.date(promise.promised_on))],
                        back={"href": page.url(f"/pay/{token}"), "label": s["back"]}, seller=view.seller)
