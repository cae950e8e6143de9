"""The customer's pages: the hosted invoice page (/pay/{token}) and the portal (/portal/{token}).

Public routes (no API key): the random token in the path is the credential. They
answer server-rendered HTML in the customer's language (``?lang=fr|en`` overrides),
forms post ``application/x-www-form-urlencoded`` and the buttons that lead to the
payment provider answer ``303``. Errors are HTML pages, never our JSON: an unknown
or revoked token is a bare 404 that says nothing about what exists, a rotated one
a 410 that says where the new link is.

Every page is ``no-store`` (it shows amounts and bank details), sends no Referer
(the token must not leak to the provider or to links), and carries a CSP that
allows only our inline stylesheet (by hash) and inline SVG.

Templates, Babel and segno load on the first page request only
(``adapters/html.py``), never when the JSON or webhook routes run.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from chalice import Blueprint, Response

from .. import wiring
from ..config import get_config
from ..domain.errors import BadRequest, Conflict, Gone, NotFound, PaymentGatewayError, ValidationError
from ..observability import logger

if TYPE_CHECKING:  # the domain loads with the first page request, not at import (cold start)
    from ..domain.collections import Dispute
    from ..domain.invoice import Invoice
    from ..domain.parties import Customer, SellerProfile
    from ..services.pay import PayView

pages_bp = Blueprint(__name__)

FORM = ["application/x-www-form-urlencoded"]
MAX_FORM_BYTES = 16 * 1024
RETURN_COOKIE = "ar_return"  # which button sent the payer to the provider: "pay" or "mandate"

BASE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store, max-age=0",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}


# -- responses ------------------------------------------------------------------------------------

def _headers() -> dict[str, str]:
    from ..adapters.html import content_security_policy

    return {**BASE_HEADERS, "Content-Security-Policy": content_security_policy()}


def html(body: str, status: int = 200) -> Response:
    return Response(body=body, status_code=status, headers=_headers())


def see_other(url: str, cookie: str | None = None) -> Response:
    headers = {"Location": url, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
               "Content-Type": "text/plain; charset=utf-8"}
    if cookie:
        headers["Set-Cookie"] = cookie
    return Response(body="", status_code=303, headers=headers)


def render(template: str, lang: str, http_status: int = 200, /, **context: Any) -> Response:
    from ..adapters.html import render as render_html

    return html(render_html(template, lang, **context), http_status)


def bare_page(kind: str, status: int) -> Response:
    """The 404 / 410 pages: both languages (we may not know whose link it was), no detail."""
    from ..adapters.html import STRINGS, render as render_html

    body = render_html("bare.html", "fr", fr={"title": STRINGS["fr"][f"{kind}_title"], "text": STRINGS["fr"][kind]},
                       en={"title": STRINGS["en"][f"{kind}_title"], "text": STRINGS["en"][kind]})
    return html(body, status)


def message_page(lang: str, heading: str, paragraphs: list[str], *, status: int = 200,
                 back: dict[str, str] | None = None, seller: SellerProfile | None = None) -> Response:
    seller_name = (seller.trade_name or seller.legal_name) if seller else ""
    return render("message.html", lang, status, heading=heading, paragraphs=paragraphs, back=back,
                  seller_name=seller_name, legal=[], contact=None)


# -- request helpers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    """What a page handler needs from the request."""

    request: Any

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query_params or {}

    @property
    def lang_override(self) -> str | None:
        value = self.query.get("lang")
        return value if value in ("fr", "en") else None

    def prefix(self) -> str:
        """The path prefix before our routes (the API Gateway stage, e.g. ``/api``; empty locally)."""
        ctx = self.request.context or {}
        path, resource = str(ctx.get("path") or ""), str(ctx.get("resourcePath") or "")
        for name, value in (self.request.uri_params or {}).items():
            resource = resource.replace("{" + name + "}", str(value))
        return path[: -len(resource)] if resource and path.endswith(resource) else ""

    def url(self, path: str) -> str:
        """A root-relative URL to one of our pages, keeping an explicit ``?lang=``."""
        query = f"?{urlencode({'lang': self.lang_override})}" if self.lang_override else ""
        return f"{self.prefix()}{path}{query}"

    def form(self) -> dict[str, list[str]]:
        raw = self.request.raw_body or b""
        if len(raw) > MAX_FORM_BYTES:
            raise BadRequest("form too large")
        try:
            return parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=100)
        except ValueError:
            raise BadRequest("too many form fields") from None

    def cookie(self, name: str) -> str | None:
        for part in str((self.request.headers or {}).get("cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def return_cookie(self, action: str, path: str) -> str:
        """Remembers, for an hour and for this page only, which button led to the provider, so that
        the page the provider sends the payer back to (``?done=1``) can say the right thing."""
        secure = "; Secure" if get_config().public_base_url.startswith("https://") else ""
        return f"{RETURN_COOKIE}={action}; Path={self.prefix()}{path}; Max-Age=3600; HttpOnly; SameSite=Lax{secure}"


def first(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[0].strip() if name != "message" else values[0]


def page_route(path: str, methods: list[str], *, form: bool = False) -> Callable[[Callable[..., Response]], Any]:
    """A public HTML route: NotFound -> bare 404, Gone -> 410, provider down -> 502 page,
    anything unexpected -> 500 page with a reference that is logged."""

    def decorate(fn: Callable[..., Response]) -> Any:
        @functools.wraps(fn)
        def view(**params: Any) -> Response:
            page = Page(pages_bp.current_request)
            try:
                return fn(page, **params)
            except NotFound:
                return bare_page("not_found", 404)
            except Gone:
                return bare_page("gone", 410)
            except PaymentGatewayError as exc:
                logger.warning("payment provider error on a customer page", extra={"code": exc.code})
                lang = page.lang_override or "fr"
                from ..adapters.html import Formatter

                f = Formatter(lang)
                return message_page(lang, f.t("error_gateway_title"), [f.t("error_gateway")], status=502)
            except BadRequest:
                from ..adapters.html import Formatter

                f = Formatter(page.lang_override or "fr")
                return message_page(f.lang, f.t("error_title"), [f.t("bad_request")], status=400)
            except Exception:  # noqa: BLE001 - the one place an unexpected error becomes a 500 page
                ref = str(uuid.uuid4())
                logger.exception("unhandled error on a customer page", extra={"error_id": ref, "path": path})
                lang = page.lang_override or "fr"
                from ..adapters.html import Formatter

                f = Formatter(lang)
                return message_page(lang, f.t("error_title"), [f.t("error_text", ref=ref)], status=500)

        kwargs: dict[str, Any] = {"methods": methods}
        if form:
            kwargs["content_types"] = FORM
        pages_bp.route(path, **kwargs)(view)
        return fn

    return decorate


# -- presentation ---------------------------------------------------------------------------------

def seller_identity(invoice: Invoice | None, seller: SellerProfile) -> dict[str, Any]:
    """The seller as printed on the invoice (frozen at issue), else the current profile."""
    return dict(invoice.seller) if invoice is not None and invoice.seller else seller.identity()


def seller_display_name(identity: Mapping[str, Any]) -> str:
    return str(identity.get("trade_name") or identity.get("legal_name") or "")


def legal_mentions(identity: Mapping[str, Any], f: Any) -> list[str]:
    from ..domain.money import Money

    out = [str(identity.get("legal_name") or "")]
    if identity.get("legal_form") and identity.get("share_capital"):
        capital = Money.parse(identity["share_capital"], identity.get("share_capital_currency") or "EUR")
        out.append(f.t("share_capital", form=identity["legal_form"], amount=f.money(capital)))
    elif identity.get("legal_form"):
        out.append(str(identity["legal_form"]))
    address = identity.get("address") or {}
    if address:
        out.append(", ".join(str(address[k]) for k in ("line1", "line2") if address.get(k))
                   + f", {address.get('postal_code', '')} {address.get('city', '')}")
    if identity.get("siren"):
        out.append(f.t("siren", value=identity["siren"]))
    if identity.get("rcs"):
        out.append(str(identity["rcs"]))
    if identity.get("vat_number"):
        out.append(f.t("vat_number", value=identity["vat_number"]))
    return [m for m in out if m]


def group4(value: str) -> str:
    compact = value.replace(" ", "")
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def local_date(moment: datetime | None, tz: str) -> date | None:
    return moment.astimezone(ZoneInfo(tz)).date() if moment else None


def document_title(invoice: Invoice, f: Any) -> str:
    from ..domain.invoice import CREDIT_NOTE, DEPOSIT

    key = {CREDIT_NOTE: "credit_note_title", DEPOSIT: "deposit_title"}.get(invoice.kind, "invoice_title")
    return f.t(key, number=invoice.number or "")


def invoice_status(invoice: Invoice, today: date, tz: str, f: Any, *, short: bool = False) -> dict[str, Any]:
    """A badge (label + style) and the extra lines the page shows about the invoice's state.
    ``short``: the table variant (the due date and the amount have their own columns)."""
    from ..domain.invoice import CREDIT_NOTE, OPEN, PAID, VOID

    notes: list[str] = []
    paid = invoice.amount_paid - invoice.amount_reversed
    partial = f.t("status_partial", amount=f.money(invoice.amount_due))
    if invoice.kind == CREDIT_NOTE:
        return {"label": f.t("status_credit_note"), "css": "void", "notes": notes}
    if invoice.status == PAID:
        paid_on = local_date(invoice.paid_at, tz)
        label = f.t("short_paid") if short or not paid_on else f.t("status_paid_on", date=f.date(paid_on))
        return {"label": label, "css": "paid", "notes": notes}
    if invoice.status == VOID:
        return {"label": f.t("status_void"), "css": "void", "notes": notes}
    if invoice.status != OPEN:
        return {"label": f.t("status_uncollectible"), "css": "void", "notes": notes}
    if invoice.collection_status == "processing":
        label, css = f.t("status_debit_processing"), "debit"
    elif invoice.collection_status == "scheduled":
        label = f.t("short_debit_scheduled") if short else f.t("status_debit_scheduled", date=f.date(invoice.due_date))
        css = "debit"
    elif invoice.dispute_status == "open":
        label, css = f.t("short_disputed" if short else "status_disputed"), "disputed"
    elif invoice.is_overdue(today):
        days = invoice.days_overdue(today)
        label, css = f.plural("status_overdue", days, days=days), "overdue"
    elif paid > 0:
        label, css = (f.t("short_partial") if short else partial), "partial"
    else:
        label = f.t("short_open") if short else f.t("status_open", due=f.date(invoice.due_date))
        css = "open"
    if paid > 0 and label != partial:
        notes.append(partial)
    if invoice.collection_status == "failed":
        notes.append(f.t("debit_failed", reason=invoice.collection_failure or "-"))
    return {"label": label, "css": css, "notes": notes}


def return_notice(page: Page, *, paid: bool, mandate_active: bool, f: Any) -> dict[str, str] | None:
    """What to say when the provider sends the payer back (``?done=pay`` or ``?done=mandate``;
    a bare ``?done=1`` falls back to the cookie set by the button that was pressed)."""
    done = page.query.get("done")
    if done not in ("1", "pay", "mandate"):
        return None
    action = done if done != "1" else page.cookie(RETURN_COOKIE)
    if action == "mandate":
        return ({"kind": "ok", "text": f.t("done_mandate")} if mandate_active
                else {"kind": "info", "text": f.t("done_mandate_pending")})
    if paid:
        return {"kind": "ok", "text": f.t("done_paid")}
    return {"kind": "info", "text": f.t("done_processing")}


def contest_form(page: Page, action: str, f: Any, *, values: Mapping[str, str] | None = None,
                 errors: Mapping[str, str] | None = None, invoices: list[tuple[str, str]] | None = None,
                 form_id: str = "contest") -> dict[str, Any]:
    from ..domain.collections import DISPUTE_REASONS

    values = values or {}
    return {"id": form_id, "action": page.url(action), "errors": dict(errors or {}),
            "reasons": [(r, f.t(f"reason_{r}")) for r in DISPUTE_REASONS],
            "values": {"reason": values.get("reason", ""), "message": values.get("message", ""),
                       "invoice_id": values.get("invoice_id", "")},
            "invoices": invoices}


def contest_errors(fields: Mapping[str, str], f: Any, *, with_invoice: bool = False) -> dict[str, str]:
    """Presence checks only (so both fields are reported at once); the service applies the rules."""
    from ..domain.collections import DISPUTE_REASONS

    errors = {}
    if with_invoice and not fields.get("invoice_id"):
        errors["invoice_id"] = f.t("error_invoice")
    if fields.get("reason") not in DISPUTE_REASONS:
        errors["reason"] = f.t("error_reason")
    if not fields.get("message", "").strip():
        errors["message"] = f.t("error_message")
    return errors


def validation_errors(exc: ValidationError, f: Any) -> dict[str, str]:
    field = exc.field if exc.field in ("reason", "message", "invoice_id") else "message"
    return {field: f.t(f"error_{field}")}


def conflict_text(exc: Conflict, f: Any) -> str:
    key = {"nothing_to_pay": "error_nothing_to_pay", "not_open": "error_not_open",
           "already_disputed": "error_already_disputed"}.get(exc.code)
    return f.t(key) if key else exc.message


def transfer_details(view: PayView, f: Any) -> dict[str, Any]:
    """Bank-transfer details for the amount to pay now, with the EPC QR code when EUR.

    The account is the seller's current one (it may have changed since the invoice was
    issued); the reference is the invoice's ISO 11649 RF creditor reference (the PDF, the EPC QR code and
    the Factur-X payment reference carry the same), which bank matching reads back (docs/cash-application.md).
    """
    from ..adapters.html import epc_payload, qr_svg
    from ..domain.creditor_reference import for_invoice, format_reference

    inv, seller = view.invoice, view.seller
    reference = format_reference(for_invoice(inv.number, inv.id)) if inv.number else ""
    try:
        payload = epc_payload(name=seller.legal_name, iban=seller.iban, amount=view.amount_to_pay,
                              reference=reference, bic=seller.bic)
        label = f.t("qr_label", amount=f.money(view.amount_to_pay), name=seller.legal_name, reference=reference)
        qr = qr_svg(payload, label) if payload else None
    except ValueError:  # something the EPC format cannot carry: the details stay, without the code
        logger.warning("no EPC QR code for this invoice", extra={"invoice_id": inv.id})
        qr = None
    return {"name": seller.legal_name, "iban": group4(seller.iban), "bic": seller.bic, "reference": reference,
            "amount": f.money(view.amount_to_pay), "qr": qr}


def pay_page_context(page: Page, token: str, view: PayView, f: Any, *, error: str | None = None,
                     contest: dict[str, Any] | None = None) -> dict[str, Any]:
    from ..domain.invoice import CREDIT_NOTE, OPEN, PAID

    inv, seller, customer = view.invoice, view.seller, view.customer
    identity = seller_identity(inv, seller)
    is_credit = inv.kind == CREDIT_NOTE
    base = f"/pay/{token}"
    mandate = customer.mandate if customer.mandate and customer.mandate.active else None
    can_pay = view.can_pay and not is_credit
    settled = []
    for key, minor in (("already_paid", inv.amount_paid - inv.amount_reversed), ("credited", inv.amount_credited),
                       ("discounted", inv.amount_discounted)):
        if minor > 0:
            settled.append((f.t(key), f.money(inv.money(minor))))
    transfer = transfer_details(view, f) if can_pay else None
    debit = None
    if inv.currency == "EUR" and not is_credit:
        if mandate:
            debit = {"reference": mandate.reference or mandate.id}
        elif view.can_set_up_debit and inv.status == OPEN and inv.collection_status != "processing":
            debit = {"reference": None}
    offer = None
    if view.discount and view.discount_until and seller.early_payment_discount and can_pay:
        offer = f.t("discount_offer", amount=f.money(view.amount_to_pay), date=f.date(view.discount_until),
                    rate=f.percent(seller.early_payment_discount.rate))
    can_contest = inv.status == OPEN and inv.dispute_status != "open" and not is_credit
    status = invoice_status(inv, view.today, seller.timezone, f)
    if inv.collection_status == "scheduled" and inv.status == OPEN:
        status["notes"].append(f.t("debit_scheduled_note", amount=f.money(inv.amount_due),
                                   date=f.date(inv.due_date)))
    elif inv.collection_status == "processing" and inv.status == OPEN:
        status["notes"].append(f.t("debit_processing_note"))
    lines = [{"description": line.description, "quantity": f.decimal(line.quantity),
              "unit_price": f.price(line.unit_price, inv.currency), "vat": f.percent(line.vat_rate),
              "net": f.money(line.net_amount(inv.currency))} for line in inv.lines]
    return {
        "title": document_title(inv, f), "seller_name": seller_display_name(identity),
        "legal": legal_mentions(identity, f), "contact": identity.get("email"),
        "buyer_name": (inv.buyer or {}).get("name") or customer.name,
        "status": status, "show_amount_due": inv.status == OPEN and inv.amount_due.is_positive and not is_credit,
        "amount_due": f.money(inv.amount_due), "offer": offer, "settled": settled,
        "issue_date": f.date(inv.issue_date), "issue_iso": inv.issue_date.isoformat() if inv.issue_date else "",
        "due_date": f.date(inv.due_date), "due_iso": inv.due_date.isoformat() if inv.due_date else "",
        "total": f.money(inv.totals.payable), "subtotal": f.money(inv.totals.tax_exclusive),
        "vat_total": f.money(inv.totals.vat_total), "lines": lines,
        "pdf_url": page.url(f"{base}/pdf"), "can_pay": can_pay,
        "pay_label": f.t("pay_button", amount=f.money(view.amount_to_pay)),
        "actions": {"checkout": page.url(f"{base}/checkout"), "mandate": page.url(f"{base}/mandate")},
        "transfer": transfer, "debit": debit,
        "contest": (contest or contest_form(page, f"{base}/dispute", f)) if can_contest else None,
        # a promise to pay pauses the reminders (issue 5); offered while the invoice can be paid here
        "promise_url": page.url(f"{base}/promise") if can_pay and can_contest else None,
        "done": return_notice(page, paid=inv.status == PAID, mandate_active=mandate is not None, f=f),
        "error": error,
    }


def _formatter(page: Page, customer: Customer) -> Any:
    from ..adapters.html import Formatter, pick_language

    return Formatter(pick_language(page.lang_override, customer.language))


def render_pay(page: Page, token: str, view: PayView, *, status: int = 200, error: str | None = None,
               contest: dict[str, Any] | None = None) -> Response:
    f = _formatter(page, view.customer)
    return render("pay.html", f.lang, status, **pay_page_context(page, token, view, f, error=error, contest=contest))


# -- the portal -----------------------------------------------------------------------------------

STATEMENT_ORDER = {"invoice": 0, "credit_note": 1, "discount": 2, "write_off": 3, "payment": 4, "reversal": 5,
                   "refund": 6}


def statement_entries(invoices: list[Invoice], payments: list[Any], tz: str) -> dict[str, list[dict[str, Any]]]:
    """Per currency, the account's entries in date order with a running balance (in minor units).

    Debits: invoices, payments given back (invoice reversals: refunds and chargebacks; refunds
    of unapplied cash). Credits: credit notes, payments received, early-payment discounts and
    write-offs. The final balance is what is still due minus the customer's unapplied cash.
    """
    from ..domain.invoice import CREDIT_NOTE, DEPOSIT

    raw: list[tuple[date, int, str, str, dict[str, Any], int]] = []  # date, order, currency, kind, data, signed

    def add(day: date | None, kind: str, currency: str, data: dict[str, Any], signed: int) -> None:
        if day is not None and signed:
            raw.append((day, STATEMENT_ORDER[kind], currency, kind, data, signed))

    for inv in invoices:
        if inv.status == "draft":
            continue
        number = inv.number or inv.id
        payable = inv.totals.payable.amount
        if inv.kind == CREDIT_NOTE:
            add(inv.issue_date, "credit_note", inv.currency, {"number": number}, -payable)
        else:
            add(inv.issue_date, "invoice", inv.currency, {"number": number, "deposit": inv.kind == DEPOSIT}, payable)
        later = local_date(inv.paid_at or inv.updated_at, tz)
        add(later, "discount", inv.currency, {"number": number}, -inv.amount_discounted)
        add(local_date(inv.updated_at, tz), "write_off", inv.currency, {"number": number}, -inv.amount_written_off)
        add(local_date(inv.updated_at, tz), "reversal", inv.currency, {"number": number}, inv.amount_reversed)
    for payment in payments:
        add(payment.received_on, "payment", payment.currency, {"method": payment.method}, -payment.amount.amount)
        add(local_date(payment.updated_at, tz), "refund", payment.currency, {}, payment.refunded_unapplied)
    out: dict[str, list[dict[str, Any]]] = {}
    for day, _, currency, kind, data, signed in sorted(raw, key=lambda r: (r[0], r[1])):
        rows = out.setdefault(currency, [])
        balance = (rows[-1]["balance"] if rows else 0) + signed
        rows.append({"date": day, "kind": kind, "data": data, "amount": signed, "balance": balance})
    return out


def statement_label(row: Mapping[str, Any], f: Any) -> str:
    kind, data = row["kind"], row["data"]
    if kind == "invoice":
        return f.t("entry_deposit" if data.get("deposit") else "entry_invoice", number=data["number"])
    if kind == "payment":
        method = data.get("method") or "other"
        key = f"method_{method}" if f"method_{method}" in _strings(f) else "method_other"
        return f.t("entry_payment", method=f.t(key))
    if kind == "refund":
        return f.t("entry_refund")
    return f.t(f"entry_{kind}", number=data["number"])


def _strings(f: Any) -> Mapping[str, str]:
    from ..adapters.html import STRINGS

    return STRINGS[f.lang]


def portal_context(page: Page, token: str, data: Mapping[str, Any], f: Any, *, error: str | None = None,
                   select_error: str | None = None, selected: tuple[str, ...] = (),
                   contest: dict[str, Any] | None = None) -> dict[str, Any]:
    from ..domain.invoice import CREDIT_NOTE
    from ..domain.money import Money

    customer: Customer = data["customer"]
    seller: SellerProfile = data["seller"]
    today: date = data["today"]
    invoices: list[Invoice] = sorted(data["invoices"], key=lambda i: (i.issue_date or today, i.number or ""),
                                     reverse=True)
    open_ids = {i.id for i in data["open"] if i.kind != CREDIT_NOTE}
    identity = seller.identity()
    base = f"/portal/{token}"
    documents = []
    for inv in invoices:
        page_url = page.url(f"/pay/{inv.pay_token}") if inv.pay_token else None
        selectable = inv.id in open_ids and inv.collection_status != "processing"
        documents.append({
            "id": inv.id, "number": inv.number or inv.id, "kind": f.t(f"kind_{inv.kind}"),
            "issue": f.short_date(inv.issue_date), "issue_iso": inv.issue_date.isoformat() if inv.issue_date else "",
            "due": f.short_date(inv.due_date) if inv.kind != CREDIT_NOTE else "",
            "due_iso": inv.due_date.isoformat() if inv.due_date else "",
            "total": f.money(inv.totals.payable),
            "amount_due": f.money(inv.amount_due) if inv.kind != CREDIT_NOTE else "",
            "status": invoice_status(inv, today, seller.timezone, f, short=True),
            "page_url": page_url, "pdf_url": page.url(f"/pay/{inv.pay_token}/pdf") if inv.pay_token else None,
            "selectable": selectable,
            "select_label": f.t("select_invoice", number=inv.number or inv.id, amount=f.money(inv.amount_due)),
        })
    due: dict[str, int] = {}
    for inv in invoices:
        if inv.id in open_ids:
            due[inv.currency] = due.get(inv.currency, 0) + inv.amount_due.amount
    statements = []
    for currency, rows in statement_entries(invoices, data["payments"], seller.timezone).items():
        statements.append({
            "caption": f"{f.t('statement_caption')} ({currency})",
            "balance": f.money(Money(rows[-1]["balance"], currency)),
            "rows": [{"date": f.short_date(r["date"]), "date_iso": r["date"].isoformat(), "label": statement_label(r, f),
                      "debit": f.money(Money(r["amount"], currency)) if r["amount"] > 0 else "",
                      "credit": f.money(Money(-r["amount"], currency)) if r["amount"] < 0 else "",
                      "balance": f.money(Money(r["balance"], currency))} for r in rows]})
    numbers = {i.id: i.number or i.id for i in invoices}
    disputes = [{"text": f.t("dispute_item", number=numbers.get(d.invoice_id, d.invoice_id),
                             reason=f.t(f"reason_{d.reason}"), date=f.date(local_date(d.created_at, seller.timezone))),
                 "message": d.message} for d in data["disputes"]]
    contestable = [(i.id, f"{i.number} ({f.money(i.amount_due)})") for i in invoices
                   if i.id in open_ids and i.dispute_status != "open"]
    mandate = customer.mandate if customer.mandate and customer.mandate.active else None
    return {
        "wide": True, "seller_name": seller_display_name(identity), "legal": legal_mentions(identity, f),
        "contact": identity.get("email"), "customer_name": customer.name,
        "balances": [f.t("portal_balance", amount=f.money(Money(v, c))) for c, v in sorted(due.items())],
        "documents": documents, "payable": bool(open_ids), "selected": selected, "select_error": select_error,
        "statements": statements, "disputes": disputes,
        "mandate_reference": (mandate.reference or mandate.id) if mandate else None,
        "actions": {"checkout": page.url(f"{base}/checkout"), "copy": page.url(f"{base}/copy"),
                    "mandate": page.url(f"{base}/mandate")},
        "contest": (contest or contest_form(page, f"{base}/dispute", f, invoices=contestable, form_id="contest"))
        if contestable else None,
        "done": return_notice(page, paid=False, mandate_active=mandate is not None, f=f),
        "error": error,
    }


def render_portal(page: Page, token: str, *, status: int = 200, **extra: Any) -> Response:
    data = wiring.pay().portal(token)
    f = _formatter(page, data["customer"])
    return render("portal.html", f.lang, status, **portal_context(page, token, data, f, **extra))


# -- routes: the hosted invoice page --------------------------------------------------------------

@page_route("/pay/{token}", ["GET"])
def pay_page(page: Page, token: str) -> Response:
    return render_pay(page, token, wiring.pay().view(token))


@page_route("/pay/{token}/checkout", ["POST"], form=True)
def pay_checkout(page: Page, token: str) -> Response:
    try:
        url = wiring.pay().checkout_url(token)
    except Conflict as exc:
        view = wiring.pay().view(token)
        return render_pay(page, token, view, status=409, error=conflict_text(exc, _formatter(page, view.customer)))
    return see_other(url, page.return_cookie("pay", f"/pay/{token}"))


@page_route("/pay/{token}/mandate", ["POST"], form=True)
def pay_mandate(page: Page, token: str) -> Response:
    url = wiring.pay().mandate_url(token)
    return see_other(url, page.return_cookie("mandate", f"/pay/{token}"))


@page_route("/pay/{token}/dispute", ["POST"], form=True)
def pay_dispute(page: Page, token: str) -> Response:
    fields = page.form()
    values = {"reason": first(fields, "reason"), "message": first(fields, "message")}
    service = wiring.pay()
    view = service.view(token)
    f = _formatter(page, view.customer)
    errors = contest_errors(values, f)
    dispute: Dispute | None = None
    if not errors:
        try:
            dispute = service.contest(token, values["reason"], values["message"])
        except ValidationError as exc:
            errors = validation_errors(exc, f)
        except Conflict as exc:
            return render_pay(page, token, service.view(token), status=409, error=conflict_text(exc, f))
    if dispute is None:
        form = contest_form(page, f"/pay/{token}/dispute", f, values=values, errors=errors)
        return render_pay(page, token, view, status=422, contest=form)
    logger.info("dispute opened from the hosted page", extra={"dispute_id": dispute.id})
    return message_page(f.lang, f.t("contest_sent_title"), [f.t("contest_sent", number=view.invoice.number)],
                        back={"href": page.url(f"/pay/{token}"), "label": f.t("back_to_invoice")},
                        seller=view.seller)


# -- routes: the portal ---------------------------------------------------------------------------

@page_route("/portal/{token}", ["GET"])
def portal_page(page: Page, token: str) -> Response:
    return render_portal(page, token)


@page_route("/portal/{token}/checkout", ["POST"], form=True)
def portal_checkout(page: Page, token: str) -> Response:
    chosen = tuple(dict.fromkeys(v for v in page.form().get("invoice_ids", []) if v))
    try:
        url = wiring.pay().portal_checkout(token, list(chosen))
    except ValidationError:
        from ..adapters.html import Formatter, pick_language

        data = wiring.pay().portal(token)
        f = Formatter(pick_language(page.lang_override, data["customer"].language))
        text = f.t("error_select") if not chosen else f.t("error_select_invalid")
        return render("portal.html", f.lang, 422,
                      **portal_context(page, token, data, f, select_error=text, selected=chosen))
    return see_other(url, page.return_cookie("pay", f"/portal/{token}"))


@page_route("/portal/{token}/mandate", ["POST"], form=True)
def portal_mandate(page: Page, token: str) -> Response:
    url = wiring.pay().mandate_url(token, portal=True)
    return see_other(url, page.return_cookie("mandate", f"/portal/{token}"))


@page_route("/portal/{token}/copy", ["POST"], form=True)
def portal_copy(page: Page, token: str) -> Response:
    invoice = wiring.pay().request_copy(token, first(page.form(), "invoice_id"))
    data = wiring.pay().portal(token)
    f = _formatter(page, data["customer"])
    return message_page(f.lang, f.t("copy_sent_title"), [f.t("copy_sent", number=invoice.number)],
                        back={"href": page.url(f"/portal/{token}"), "label": f.t("back_to_portal")},
                        seller=data["seller"])


@page_route("/portal/{token}/dispute", ["POST"], form=True)
def portal_dispute(page: Page, token: str) -> Response:
    fields = page.form()
    values = {"invoice_id": first(fields, "invoice_id"), "reason": first(fields, "reason"),
              "message": first(fields, "message")}
    service = wiring.pay()
    data = service.portal(token)
    f = _formatter(page, data["customer"])
    errors = contest_errors(values, f, with_invoice=True)
    if not errors:
        try:
            service.contest(token, values["reason"], values["message"], portal=True, invoice_id=values["invoice_id"])
        except ValidationError as exc:
            errors = validation_errors(exc, f)
        except Conflict as exc:
            return render("portal.html", f.lang, 409,
                          **portal_context(page, token, data, f, error=conflict_text(exc, f)))
    if errors:
        context = portal_context(page, token, data, f)
        if context["contest"] is not None:
            context["contest"] = {**context["contest"], "errors": errors,
                                  "values": {**context["contest"]["values"], **values}}
        return render("portal.html", f.lang, 422, **context)
    number = next((i.number for i in data["invoices"] if i.id == values["invoice_id"]), values["invoice_id"])
    return message_page(f.lang, f.t("contest_sent_title"), [f.t("contest_sent", number=number)],
                        back={"href": page.url(f"/portal/{token}"), "label": f.t("back_to_portal")},
                        seller=data["seller"])


# -- routes: a promise to pay from the hosted page (issue 5, api/dunning_pages.py) -----------------

@page_route("/pay/{token}/promise", ["GET"])
def pay_promise_form(page: Page, token: str) -> Response:
    from .dunning_pages import promise_page

    return promise_page(page, token)


@page_route("/pay/{token}/promise", ["POST"], form=True)
def pay_promise(page: Page, token: str) -> Response:
    from .dunning_pages import promise_submit

    return promise_submit(page, token)
