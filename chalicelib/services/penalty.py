"""Late-payment penalties and what follows the formal notice (issue 5).

- :meth:`PenaltyService.for_invoice`: the penalties accrued on an invoice (GET /invoices/{id}/penalties),
  from the day after the due date, at the configured reference rates (``dunning.rates``), plus the
  recovery indemnity; ``provisional`` when a rate was carried forward past the table's last half-year.
- :func:`formal_notice_figures` / :func:`formal_notice_pdf`: the amounts and the PDF letter of the
  formal notice ("mise en demeure"): principal, penalties to date, 40 EUR indemnity per invoice.
- :meth:`PenaltyService.penalty_invoice`: the penalties claimed on a separate invoice outside the
  scope of VAT (EN 16931 category O: no VAT identifiers on it, BR-O-02), issued through the
  InvoiceService like any invoice and validated by rendering its Factur-X before it gets a number.
- :meth:`PenaltyService.evidence_pack`: one ZIP for a collection agency or an "injonction de payer":
  the invoices, every reminder with its proof of sending, the timeline and the amounts claimed.
- :meth:`PenaltyService.write_off`: an uncollectible invoice: status ``uncollectible``, the balance
  written off (the loss shows in the reports: the change goes through ``save_invoice``) and, in the
  same transaction, a credit note for that balance so the VAT can be recovered (CGI art. 272).

fpdf2, the Factur-X renderer and zipfile are imported inside the functions that use them.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

from ..domain.auth import Actor
from ..domain.errors import Conflict, ValidationError
from ..domain.ids import new_id
from ..domain.invoice import (CREDIT_NOTE, DRAFT, OPEN, OUT_OF_SCOPE, PAID, UNCOLLECTIBLE, VOID, Invoice)
from ..domain.money import Money
from ..domain.penalties import (ECB_PLUS_MARGIN, LEGAL_BASIS, PenaltyBreakdown, ReferenceRates,
                                compute_late_penalties)
from .dunning_config import DunningConfig
from .ports import Clock, Ledger, UnitOfWork

PENALTY_REF = "penalty_invoice"
WRITE_OFF_REF = "write_off"
EUR40 = Money(4000, "EUR")


def _indemnity(seller: Any, currency: str) -> Money:
    indemnity = seller.recovery_indemnity if seller is not None else EUR40
    return indemnity


def breakdown_for(principal: Money, due: date, until: date, rates: ReferenceRates, seller: Any) -> PenaltyBreakdown:
    return compute_late_penalties(principal, due, until, rates=rates,
                                  seller_rate=seller.late_penalty_rate if seller is not None else None,
                                  indemnity=_indemnity(seller, principal.currency))


def _add(totals: dict[str, Money], money: Money | None) -> None:
    if money is None:
        return
    totals[money.currency] = totals.get(money.currency, Money.zero(money.currency)) + money


def rate_text(breakdowns: Sequence[PenaltyBreakdown], seller: Any) -> dict[str, str]:
    """How the rate was set, in words, from the latest period charged."""
    periods = [p for b in breakdowns for p in b.periods]
    if not periods:
        return {"fr": "aucun jour de retard", "en": "no day late"}
    last = max(periods, key=lambda p: p.end)
    rate = f"{last.annual_rate.normalize():f}"
    if last.rate_source == ECB_PLUS_MARGIN:
        ref = f"{last.reference_rate.normalize():f}"
        return {"fr": f"taux de refinancement de la BCE ({ref.replace('.', ',')} %) majoré de 10 points, soit "
                      f"{rate.replace('.', ',')} % l'an",
                "en": f"ECB main refinancing rate ({ref}%) plus 10 points, i.e. {rate}% a year"}
    return {"fr": f"taux convenu de {rate.replace('.', ',')} % l'an", "en": f"agreed rate of {rate}% a year"}


def formal_notice_figures(lines: Sequence[Mapping[str, Any]], today: date, rates: ReferenceRates,
                          seller: Any) -> dict[str, Any]:
    """Per invoice line ``{amount_due, due_date, ...}``: penalties to ``today``, the indemnity and the
    amount claimed; totals per currency. Raises ``PenaltyRateUnavailable`` when a rate is missing and
    the rates are not carried forward."""
    out_lines, breakdowns = [], []
    interest: dict[str, Money] = {}
    indemnity: dict[str, Money] = {}
    principal: dict[str, Money] = {}
    claimed: dict[str, Money] = {}
    for line in lines:
        due = line["due_date"]
        b = breakdown_for(line["amount_due"], due, today, rates, seller)
        breakdowns.append(b)
        row = dict(line)
        row["penalties"] = b.interest
        row["indemnity"] = b.indemnity if b.indemnity is not None else Money.zero(b.interest.currency)
        row["breakdown"] = b
        if b.indemnity is None or b.indemnity.currency == b.interest.currency:
            row["claimed"] = line["amount_due"] + b.interest + row["indemnity"]
            _add(claimed, row["claimed"])
        else:
            _add(claimed, line["amount_due"] + b.interest)
            _add(claimed, b.indemnity)
        _add(principal, line["amount_due"])
        _add(interest, b.interest)
        _add(indemnity, b.indemnity)
        out_lines.append(row)
    return {"lines": out_lines, "principal": principal, "interest": interest, "indemnity": indemnity,
            "claimed": claimed, "indemnity_each": _indemnity(seller, "EUR"),
            "provisional": any(b.provisional for b in breakdowns), "rate_text": rate_text(breakdowns, seller),
            "breakdowns": breakdowns, "as_of": today}


# -- the letter ----------------------------------------------------------------------------------

LETTER_TEXT = {
    "fr": {"title": "MISE EN DEMEURE DE PAYER", "object": "Objet : mise en demeure de payer",
           "by": "Lettre recommandée avec accusé de réception, également adressée par courriel",
           "dear": "Madame, Monsieur,",
           "p1": "Malgré nos relances, les factures ci-dessous restent impayées à ce jour.",
           "p2": "Par la présente, nous vous mettons en demeure de nous régler sous huit jours, soit au plus tard le "
                 "{deadline}, la somme de {claimed}, qui comprend le principal restant dû, les pénalités de retard "
                 "exigibles de plein droit dès le lendemain de l'échéance ({rate}) arrêtées au {today}, et "
                 "l'indemnité forfaitaire pour frais de recouvrement de {indemnity} par facture.",
           "p3": "À défaut de règlement dans ce délai, nous engagerons sans autre avis une procédure de recouvrement "
                 "judiciaire (injonction de payer), les frais restant à votre charge.",
           "basis": "Fondement : " + "articles L441-10 II et D441-5 du Code de commerce.",
           "provisional": "Le taux de référence du semestre en cours n'étant pas encore renseigné, les pénalités sont "
                          "calculées à titre provisoire au dernier taux connu.",
           "cols": ("Facture", "Échéance", "Principal", "Jours", "Pénalités", "Indemnité", "Total"),
           "total": "Total réclamé", "pay": "Règlement par virement : IBAN {iban}, BIC {bic}, en rappelant les "
                                            "numéros de facture.", "regards": "Veuillez agréer, Madame, Monsieur, "
                                                                              "nos salutations distinguées.",
           "date": "le {today}", "period": "du {start} au {end} : {days} jour(s) à {rate} % l'an, base {basis}",
           "provisional_rate": "taux provisoire"},
    "en": {"title": "FORMAL NOTICE TO PAY", "object": "Subject: formal notice to pay",
           "by": "Registered letter with acknowledgement of receipt, also sent by email",
           "dear": "Dear Sir or Madam,",
           "p1": "Despite our reminders, the invoices below remain unpaid to date.",
           "p2": "We hereby give you formal notice to pay within eight days, that is by {deadline} at the latest, "
                 "the sum of {claimed}, made up of the principal outstanding, the late-payment penalties due by law "
                 "from the day after the due date ({rate}) accrued to {today}, and the fixed indemnity for recovery "
                 "costs of {indemnity} per invoice.",
           "p3": "Failing payment within this period, we will start court recovery proceedings (injonction de payer) "
                 "without further notice, at your expense.",
           "basis": "Legal basis: articles L441-10 II and D441-5 of the French Commercial Code.",
           "provisional": "The reference rate of the current half-year is not configured yet: penalties are computed "
                          "provisionally at the last known rate.",
           "cols": ("Invoice", "Due date", "Principal", "Days", "Penalties", "Indemnity", "Total"),
           "total": "Total claimed", "pay": "Payment by transfer: IBAN {iban}, BIC {bic}, quoting the invoice numbers.",
           "regards": "Yours faithfully,", "date": "{today}",
           "period": "{start} to {end}: {days} day(s) at {rate}% a year, basis {basis}",
           "provisional_rate": "provisional rate"},
}


def formal_notice_pdf(seller: Any, figures: Mapping[str, Any], settings: Any, snapshot: Mapping[str, Any],
                      today: date, lang: str, projection: Mapping[str, Any]) -> bytes:
    """The formal notice letter (A4 PDF, fpdf2, fonts embedded)."""
    from fpdf import FPDF

    from ..adapters.documents.pdf import FONT, FONTS_FULL, FONTS_LATIN
    from ..adapters.dunning_templates import date_text, money_text

    lang = lang if lang in LETTER_TEXT else "fr"
    t = LETTER_TEXT[lang]

    def money(m: Mapping[str, Money] | Money) -> str:
        if isinstance(m, Money):
            return money_text(m, lang)
        return ", ".join(money_text(v, lang) for _, v in sorted(m.items())) or money_text(Money.zero("EUR"), lang)

    def build(fonts: Any) -> Any:
        pdf = FPDF(orientation="P", unit="mm", format="A4")
        pdf.set_creation_date(datetime.combine(today, datetime.min.time()).astimezone())
        pdf.add_font(FONT, "", str(fonts[0]))
        pdf.add_font(FONT, "B", str(fonts[1]))
        for font in pdf.fonts.values():
            font.ttfont.recalcBBoxes = False  # as the invoice renderer: no glyph recompilation on subsetting
        pdf.set_margins(18, 18, 18)
        pdf.set_auto_page_break(True, 18)
        pdf.add_page()
        width = pdf.w - 36
        pdf.set_font(FONT, "B", 11)
        name = (seller.legal_name if seller else snapshot.get("seller_name")) or ""
        pdf.multi_cell(width / 2, 5, name, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 9)
        if seller is not None:
            a = seller.address
            lines = [a.line1, a.line2, f"{a.postal_code} {a.city}", f"SIREN {seller.siren}",
                     seller.email, seller.phone]
            pdf.multi_cell(width / 2, 4.5, "\n".join(x for x in lines if x), new_x="LMARGIN", new_y="NEXT")
        # Recipient block (right column)
        pdf.set_xy(18 + width / 2 + 10, 40)
        pdf.set_font(FONT, "B", 10)
        recipient = projection.get("buyer_name") or snapshot.get("customer_name") or ""
        address = projection.get("buyer_address") or {}
        block = [recipient]
        if settings is not None and settings.contact_name and settings.contact_name != recipient:
            block.append(f"{'À l’attention de' if lang == 'fr' else 'Attn.'} {settings.contact_name}")
        block += [x for x in (address.get("line1"), address.get("line2"),
                              f"{address.get('postal_code', '')} {address.get('city', '')}".strip(),
                              address.get("country")) if x]
        pdf.multi_cell(width / 2 - 10, 5, "\n".join(block), new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(max(pdf.get_y(), 75))
        pdf.set_font(FONT, "", 10)
        city = seller.address.city if seller is not None else ""
        pdf.cell(width, 6, (f"{city}, " if city else "") + t["date"].format(today=date_text(today, lang)),
                 align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font(FONT, "B", 12)
        pdf.cell(width, 7, t["title"], new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 9)
        pdf.cell(width, 5, t["by"], new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font(FONT, "", 10)
        deadline = date_text(today + timedelta(days=8), lang)
        for para in (t["dear"], t["p1"]):
            pdf.multi_cell(width, 5, para, align="L", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        # Table of invoices
        cols = (30, 24, 26, 12, 24, 24, width - 140)
        pdf.set_font(FONT, "B", 8.5)
        for w, title in zip(cols, t["cols"]):
            pdf.cell(w, 6, title, border="B", align="L" if title == t["cols"][0] else "R")
        pdf.ln()
        pdf.set_font(FONT, "", 8.5)
        for row in figures["lines"]:
            b = row["breakdown"]
            cells = (str(row.get("number") or row.get("invoice_id")), date_text(row["due_date"], lang),
                     money_text(row["amount_due"], lang), str(b.days_late), money_text(row["penalties"], lang),
                     money_text(row["indemnity"], lang),
                     money_text(row["claimed"], lang) if row.get("claimed") is not None else "")
            for i, (w, value) in enumerate(zip(cols, cells)):
                pdf.cell(w, 5.5, value, align="L" if i == 0 else "R")
            pdf.ln()
        pdf.set_font(FONT, "B", 9)
        pdf.cell(sum(cols[:-1]), 7, t["total"], border="T")
        pdf.cell(cols[-1], 7, money(figures["claimed"]), border="T", align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font(FONT, "", 10)
        p2 = t["p2"].format(deadline=deadline, claimed=money(figures["claimed"]),
                            rate=figures["rate_text"][lang], today=date_text(today, lang),
                            indemnity=money_text(figures["indemnity_each"], lang))
        paragraphs = [p2, t["p3"]]
        if seller is not None:
            paragraphs.append(t["pay"].format(iban=seller.iban, bic=seller.bic))
        if figures["provisional"]:
            paragraphs.append(t["provisional"])
        paragraphs += [t["regards"]]
        for para in paragraphs:
            pdf.multi_cell(width, 5, para, align="L", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        pdf.ln(4)
        pdf.cell(width, 5, name, align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.set_font(FONT, "", 7.5)
        details = []
        for row in figures["lines"]:
            periods = [t["period"].format(start=date_text(p.start, lang), end=date_text(p.end, lang), days=p.days,
                                          rate=(f"{p.annual_rate.normalize():f}".replace(".", ",") if lang == "fr"
                                                else f"{p.annual_rate.normalize():f}"), basis=p.year_basis)
                       + (f" ({t['provisional_rate']})" if p.provisional else "") + f" = {money_text(p.amount, lang)}"
                       for p in row["breakdown"].periods]
            if periods:
                details.append(f"{row.get('number')} : " + " ; ".join(periods) if lang == "fr"
                               else f"{row.get('number')}: " + "; ".join(periods))
        pdf.multi_cell(width, 3.8, t["basis"] + "\n" + "\n".join(details), align="L", new_x="LMARGIN",
                       new_y="NEXT")
        return pdf

    pdf = build(FONTS_LATIN)
    if any(font.missing_glyphs for font in pdf.fonts.values()):
        pdf = build(FONTS_FULL)
    return bytes(pdf.output())


# -- the service ---------------------------------------------------------------------------------

class PenaltyService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: Any, config: DunningConfig,
                 invoices: Callable[[], Any], store: Callable[[], Any] | None = None,
                 timeline: Callable[[], Any] | None = None) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._config = config
        self._invoices = invoices
        self._store = store
        self._timeline = timeline

    def _tz(self) -> str:
        return self._settings.timezone()

    def today(self) -> date:
        return self._clock.today(self._tz())

    # -- penalties ------------------------------------------------------------------------------
    def principal_and_until(self, invoice: Invoice, as_of: date) -> tuple[Money, date]:
        """What the penalties accrue on, and until when (documented simplifications in docs/dunning.md)."""
        if invoice.status == PAID and invoice.paid_at is not None:
            paid_on = invoice.paid_at.astimezone(ZoneInfo(self._tz())).date()
            return invoice.money(invoice.amount_paid - invoice.amount_reversed), min(paid_on, as_of)
        if invoice.status == UNCOLLECTIBLE:
            return invoice.money(invoice.amount_written_off), as_of
        return invoice.amount_due, as_of

    def for_invoice(self, invoice_id: str, as_of: date | None = None) -> dict[str, Any]:
        invoice = self._ledger.get_invoice(invoice_id)
        if invoice.status == DRAFT or invoice.due_date is None:
            raise ValidationError(f"invoice {invoice.number or invoice.id} is a draft: it has no due date yet, no "
                                  "penalties", field="invoice_id", code="not_issued")
        if invoice.kind == CREDIT_NOTE:
            raise ValidationError("a credit note carries no late-payment penalties", field="invoice_id")
        as_of = as_of or self.today()
        seller = self._settings.seller_or_none()
        rates = self._config.rates()
        principal, until = self.principal_and_until(invoice, as_of)
        if invoice.status == VOID:
            principal = Money.zero(invoice.currency)
        b = breakdown_for(principal, invoice.due_date, until, rates, seller)
        body = b.to_dict()
        body.update({"object": "late_payment_penalties", "invoice_id": invoice.id, "number": invoice.number,
                     "status": invoice.status, "as_of": as_of.isoformat(),
                     "rate_text": rate_text([b], seller),
                     "rates": {"source": rates.source, "carry_forward": rates.carry_forward,
                               "as_of": rates.as_of.isoformat() if rates.as_of else None}})
        if b.provisional:
            body["provisional_note"] = ("a half-year charged is missing from the reference rates: the last known "
                                        "rate was carried forward; an admin adds it with PUT /dunning/rates")
        return body

    # -- the penalty invoice --------------------------------------------------------------------
    def penalty_invoice(self, invoice_id: str, actor: Actor, as_of: date | None = None) -> Invoice:
        """Issue the invoice claiming the penalties and the indemnity of ``invoice_id`` (once per invoice)."""
        original = self._ledger.get_invoice(invoice_id)
        existing = self._ledger.get_ref(PENALTY_REF, invoice_id)
        if existing is not None:
            raise Conflict(f"a penalty invoice was already issued for {original.number}: {existing.data.get('number')} "
                           f"({existing.target})", code="penalty_invoice_exists",
                           details={"penalty_invoice_id": existing.target})
        figures = self.for_invoice(invoice_id, as_of)
        if not figures["days_late"]:
            raise ValidationError(f"invoice {original.number} is not late on {figures['as_of']}: no penalties to claim",
                                  field="as_of", code="not_late")
        if original.currency != "EUR":
            raise ValidationError("penalty invoices are issued in EUR (the indemnity is a EUR amount): this invoice "
                                  f"is in {original.currency}", field="invoice_id")
        lang = (original.buyer or {}).get("language") or "fr"
        due = original.due_date.isoformat() if original.due_date else ""
        lines: list[dict[str, Any]] = []
        interest = Decimal(figures["interest"])
        if interest > 0:
            lines.append({"description": (f"Pénalités de retard sur la facture {original.number} échue le {due}, "
                                          f"{figures['days_late']} jours au {figures['until']} (art. L441-10 C. com.)"
                                          if lang == "fr" else
                                          f"Late-payment penalties on invoice {original.number} due {due}, "
                                          f"{figures['days_late']} days to {figures['until']}"),
                          "quantity": "1", "unit_price": figures["interest"], "vat_rate": "0",
                          "vat_category": OUT_OF_SCOPE})
        if figures["indemnity"]:
            lines.append({"description": ("Indemnité forfaitaire pour frais de recouvrement (art. D441-5 C. com.)"
                                          if lang == "fr" else "Fixed indemnity for recovery costs (art. D441-5)"),
                          "quantity": "1", "unit_price": figures["indemnity"], "vat_rate": "0",
                          "vat_category": OUT_OF_SCOPE})
        from ..domain.invoice import new_draft

        note = ((f"Facture de pénalités de retard relative à la facture {original.number}, hors champ de la TVA."
                 if lang == "fr" else f"Late-payment penalties on invoice {original.number}, outside the scope of VAT.")
                + (" Taux provisoire." if figures.get("provisional") and lang == "fr" else
                   " Provisional rate." if figures.get("provisional") else ""))
        draft = new_draft(new_id("inv"), {"customer_id": original.customer_id, "currency": "EUR", "lines": lines,
                                          "note": note, "payment_terms": {"kind": "net", "days": 0},
                                          "purchase_order": original.purchase_order,
                                          "buyer_reference": original.buyer_reference},
                          customer_currency="EUR", now=self._clock.now())
        draft = replace(draft, related_invoice_id=original.id)

        def prepare(issued: Invoice, customer: Any, seller: Any, uow: UnitOfWork) -> Invoice:
            validate_einvoice(issued, seller)
            uow.put_ref(PENALTY_REF, original.id, issued.id, {"number": issued.number, "as_of": figures["as_of"]})
            uow.activity(original.customer_id, "penalty_invoice",
                         f"penalty invoice {issued.number} for {original.number}: {issued.totals.total} EUR",
                         invoice_ids=(original.id, issued.id),
                         data={"penalty_invoice_id": issued.id, "interest": figures["interest"],
                               "indemnity": figures["indemnity"], "provisional": figures["provisional"]})
            return issued

        return self._issue(draft, actor, prepare)

    def _issue(self, draft: Invoice, actor: Actor, prepare: Callable[..., Invoice]) -> Invoice:
        service = self._invoices()
        issue_new = getattr(service, "issue_new", None)
        if issue_new is not None:
            return issue_new(draft, actor, prepare=prepare)
        # Older InvoiceService: save the draft, then issue it with ``prepare`` as an extra hook.
        uow = UnitOfWork(actor=actor, now=self._clock.now())
        uow.create(draft)
        self._ledger.commit(uow)
        service.hooks.on_issue.insert(0, prepare)
        try:
            return service.issue(draft.id, actor)
        finally:
            service.hooks.on_issue.remove(prepare)

    # -- write-off ------------------------------------------------------------------------------
    def write_off(self, invoice_id: str, reason: Any, actor: Actor) -> dict[str, Any]:
        """Write off what is left due: ``uncollectible`` + a credit note of that balance (VAT recovery),
        in one transaction. Raises Conflict when the invoice is not open."""
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
            raise ValidationError("reason is required (at most 1000 characters): why the debt is lost, e.g. "
                                  "\"liquidation judiciaire, créance déclarée le 2026-05-02\"", field="reason")
        original = self._ledger.get_invoice(invoice_id)
        if original.status != OPEN or original.kind == CREDIT_NOTE:
            raise Conflict(f"invoice {original.number or original.id} is {original.status}: only open invoices are "
                           "written off", code="not_open")
        amount = original.amount_due
        lines, allowances = _write_off_lines(original, amount, reason.strip())
        from ..domain.invoice import new_draft

        draft = new_draft(new_id("inv"), {"customer_id": original.customer_id, "currency": original.currency,
                                          "lines": lines, "allowances_charges": allowances,
                                          "note": f"Avoir pour créance irrécouvrable, facture {original.number} : "
                                                  f"{reason.strip()}"[:2000],
                                          "purchase_order": original.purchase_order,
                                          "buyer_reference": original.buyer_reference},
                          customer_currency=original.currency, now=self._clock.now())
        draft = replace(draft, kind=CREDIT_NOTE, related_invoice_id=original.id, payment_terms=original.payment_terms)
        result: dict[str, Any] = {}

        def prepare(credit: Invoice, customer: Any, seller: Any, uow: UnitOfWork) -> Invoice:
            current = self._ledger.get_invoice(original.id)
            if current.status != OPEN or current.amount_due != amount:
                raise Conflict(f"invoice {current.number} changed meanwhile (now {current.status}, "
                               f"{current.amount_due} due): look at it again before writing it off", code="changed")
            validate_einvoice(credit, seller, preceding=current)
            entry = {"id": credit.id, "number": credit.number, "amount": str(credit.totals.payable),
                     "issue_date": credit.issue_date.isoformat() if credit.issue_date else None, "write_off": True,
                     "lines": {}}
            credit_notes = getattr(current, "credit_notes", ())
            extra = {"credit_notes": (*credit_notes, entry)} if hasattr(current, "credit_notes") else {}
            updated = replace(current, status=UNCOLLECTIBLE, amount_written_off=current.amount_written_off + amount.amount,
                              updated_at=uow.now, **extra)
            uow.save_invoice(current, updated, on=credit.issue_date, action="invoice.written_off",
                             note={"reason": reason.strip(), "credit_note_id": credit.id})
            uow.put_ref(WRITE_OFF_REF, original.id, credit.id, {"amount": str(amount), "reason": reason.strip()})
            from .events import envelope

            uow.emit("event", envelope("invoice.written_off", {
                "invoice_id": original.id, "number": original.number, "customer_id": original.customer_id,
                "amount": str(amount), "currency": amount.currency, "credit_note_id": credit.id,
                "credit_note_number": credit.number}, uow.now))
            uow.activity(original.customer_id, "write_off",
                         f"{original.number} written off ({amount} {amount.currency}), credit note {credit.number}",
                         invoice_ids=(original.id,), data={"reason": reason.strip(), "credit_note_id": credit.id})
            result["credit_note_id"] = credit.id
            applied = getattr(credit, "as_applied_credit_note", None)
            return applied(uow.now) if applied else replace(credit, due_date=None)

        credit = self._issue(draft, actor, prepare)
        invoice = self._ledger.get_invoice(invoice_id)
        return {"object": "write_off", "invoice": invoice.to_dict(self.today()), "credit_note": credit.to_dict(),
                "amount": str(amount), "currency": amount.currency,
                "vat_recovered": str(credit.totals.vat_total)}

    # -- evidence pack --------------------------------------------------------------------------
    def evidence_pack(self, customer_id: str, invoice_ids: Sequence[str] | None, actor: Actor) -> tuple[bytes, str]:
        """A ZIP: invoices (PDF), reminders with proofs (JSON copies, letters), timeline, amounts claimed."""
        import csv
        import zipfile

        customer = self._ledger.get_customer(customer_id)
        today = self.today()
        if invoice_ids:
            invoices = self._ledger.get_invoices(invoice_ids)
            missing = [i for i in invoice_ids if i not in invoices or invoices[i].customer_id != customer_id]
            if missing:
                raise ValidationError(f"invoice {missing[0]} is not an invoice of customer {customer_id}",
                                      field="invoice_ids")
            chosen = [invoices[i] for i in invoice_ids]
        else:
            from .ports import InvoiceQuery

            chosen = [i for i in self._ledger.query_invoices(InvoiceQuery(customer_id=customer_id, status=OPEN,
                                                                          limit=200), today).items
                      if i.is_overdue(today)]
        if not chosen:
            raise ValidationError("no overdue open invoice to put in the pack: name the invoices (invoice_ids)",
                                  field="invoice_ids")
        if len(chosen) > 100:
            raise ValidationError("at most 100 invoices per evidence pack", field="invoice_ids")
        seller = self._settings.seller_or_none()
        rates = self._config.rates()
        records = self._ledger.get_dunning([i.id for i in chosen])
        activities: dict[str, Any] = {}
        cursor = None
        while len(activities) < 5000:
            page = self._ledger.list_activity(customer_id, limit=500, cursor=cursor)
            activities.update({a.id: a for a in page.items})
            cursor = page.next_cursor
            if not cursor:
                break
        buf = io.BytesIO()
        claim_rows = []
        claimed: dict[str, Money] = {}
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            reminders = []
            for inv in chosen:
                z.writestr(f"invoices/{inv.number or inv.id}.pdf", self._invoice_pdf(inv, seller))
                principal, until = self.principal_and_until(inv, today)
                b = breakdown_for(principal, inv.due_date or today, until, rates, seller)
                claim_rows.append({"invoice_id": inv.id, "number": inv.number,
                                   "issue_date": inv.issue_date.isoformat() if inv.issue_date else None,
                                   "due_date": inv.due_date.isoformat() if inv.due_date else None,
                                   "total": str(inv.totals.total), "amount_due": str(principal),
                                   "currency": inv.currency, "days_late": b.days_late, "penalties": str(b.interest),
                                   "indemnity": str(b.indemnity) if b.indemnity else "0.00",
                                   "provisional": b.provisional, "explanation": list(b.explanation)})
                _add(claimed, principal + b.interest)
                _add(claimed, b.indemnity)
                record = records.get(inv.id)
                for s in (record.sent if record else ()):
                    proof_name = self._write_proof(z, s, activities)
                    reminders.append({"invoice_number": inv.number, "step": s.step_key, "channel": s.channel,
                                      "template": s.template, "sent_at": s.sent_at.isoformat(),
                                      "provider_message_id": s.message_id, "result": s.result,
                                      "proof_file": proof_name})
            rows = io.StringIO()
            writer = csv.DictWriter(rows, fieldnames=["invoice_number", "step", "channel", "template", "sent_at",
                                                      "provider_message_id", "result", "proof_file"])
            writer.writeheader()
            writer.writerows(sorted(reminders, key=lambda r: r["sent_at"]))
            z.writestr("reminders.csv", rows.getvalue())
            timeline = self._timeline().customer(customer_id, limit=500) if self._timeline else {"data": []}
            ids = {i.id for i in chosen}
            entries = [e for e in timeline["data"] if not e.get("invoice_ids") or ids & set(e["invoice_ids"])]
            z.writestr("timeline.json", json.dumps(entries, ensure_ascii=False, indent=1))
            claim = {"creditor": seller.identity() if seller else None, "debtor": customer.identity(),
                     "as_of": today.isoformat(), "invoices": claim_rows,
                     "total_claimed": {c: str(m) for c, m in claimed.items()}, "legal_basis": LEGAL_BASIS,
                     "generated_at": self._clock.now().isoformat(), "generated_by": actor.name}
            z.writestr("claim.json", json.dumps(claim, ensure_ascii=False, indent=1, default=str))
            z.writestr("README.txt", _readme(customer, chosen, claim_rows, claimed, today))
        content = buf.getvalue()
        name = f"evidence-{customer_id}-{today.isoformat()}.zip"
        if self._store is not None:
            try:
                self._store().put(f"dunning/evidence/{customer_id}/{name}", content, "application/zip")
            except Exception:  # noqa: BLE001 - the pack is returned anyway
                pass
        uow = UnitOfWork(actor=actor, now=self._clock.now())
        uow.activity(customer_id, "evidence_pack", f"evidence pack of {len(chosen)} invoice(s)",
                     invoice_ids=[i.id for i in chosen], data={"file": name, "total_claimed":
                                                                {c: str(m) for c, m in claimed.items()}})
        self._ledger.commit(uow)
        return content, name

    def _write_proof(self, z: Any, sent: Any, activities: Mapping[str, Any]) -> str | None:
        """Put the proof of one send in the ZIP (once per message): the text as sent with its provider id,
        or the letter's PDF. Returns its name in the ZIP."""
        day = sent.sent_at.strftime("%Y%m%d")
        key = sent.proof_key or ""
        if key.startswith("activity:"):
            entry = activities.get(key.removeprefix("activity:"))
            proof = (entry.data.get("proof") if entry is not None else None) or {}
            name = f"reminders/{day}-{sent.step_key}-{sent.channel}.txt"
            if name not in z.namelist():
                head = [f"Channel: {sent.channel}", f"Step: {sent.step_key} (template {sent.template})",
                        f"Sent at: {sent.sent_at.isoformat()}", f"Provider message id: {sent.message_id}",
                        f"To: {proof.get('to')}"]
                if proof.get("subject"):
                    head.append(f"Subject: {proof['subject']}")
                if proof.get("attachment"):
                    head.append(f"Attachment: {proof['attachment'].rsplit('/', 1)[-1]}")
                z.writestr(name, "\n".join(head) + "\n\n" + str(proof.get("text") or ""))
            return name
        if sent.channel == "letter" and sent.message_id and self._store is not None:
            name = f"reminders/{day}-{sent.step_key}-letter.pdf"
            if name not in z.namelist():
                try:
                    z.writestr(name, self._store().get(str(sent.message_id)))  # type: ignore[misc]
                except Exception:  # noqa: BLE001 - listed without its copy
                    return None
            return name
        return None

    def _invoice_pdf(self, invoice: Invoice, seller: Any) -> bytes:
        """The stored PDF when the documents pipeline kept one, else rendered now (same bytes)."""
        stored = (getattr(invoice, "documents", None) or {}).get("pdf_key") if hasattr(invoice, "documents") else None
        if stored and self._store is not None:
            try:
                return self._store().get(stored)  # type: ignore[misc]
            except Exception:  # noqa: BLE001
                pass
        if seller is None:
            return b""
        from ..adapters.documents.context import DocumentContext
        from ..adapters.documents.render import render_invoice

        pay_url = None
        return render_invoice(invoice, DocumentContext.for_seller(seller, operation_category="services",
                                                                  pay_url=pay_url)).pdf


def validate_einvoice(invoice: Invoice, seller: Any, preceding: Invoice | None = None) -> None:
    """Render the Factur-X of an invoice being issued: raises ValidationError (invalid_einvoice) when
    EN 16931 refuses it, before it gets its number."""
    from ..adapters.documents.context import DocumentContext, PrecedingInvoice
    from ..adapters.documents.render import render_invoice

    extra: dict[str, Any] = {}
    if preceding is not None:
        extra["preceding_invoice"] = PrecedingInvoice(number=str(preceding.number), issue_date=preceding.issue_date)
    render_invoice(invoice, DocumentContext.for_seller(seller, operation_category="services", **extra))


def _write_off_lines(invoice: Invoice, amount: Money, reason: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The credit note's lines: the invoice's own when nothing was paid or credited, else one line per
    VAT rate for the share of the balance (VAT recovered on the written-off part only)."""
    untouched = (amount == invoice.totals.payable and not invoice.amount_paid and not invoice.amount_credited
                 and not getattr(invoice, "credit_notes", ()))
    if untouched:
        lines = []
        for line in invoice.lines:
            d = line.to_dict()
            d.pop("net_amount", None)
            lines.append({k: v for k, v in d.items() if v is not None})
        return lines, [ac.to_dict() for ac in invoice.allowances_charges]
    payable = invoice.totals.payable.amount
    lines = []
    for group in invoice.totals.vat_breakdown:
        gross = group.taxable_amount.amount + group.tax_amount.amount
        share = Decimal(gross) * Decimal(amount.amount) / Decimal(payable) if payable else Decimal(0)
        net = share / (1 + group.rate / Decimal(100))
        unit = (net / Decimal(10 ** 2)).quantize(Decimal("0.01"))
        if unit <= 0:
            continue
        line: dict[str, Any] = {"description": f"Créance irrécouvrable, facture {invoice.number} (TVA {group.rate}%)",
                                "quantity": "1", "unit_price": str(unit), "vat_rate": str(group.rate),
                                "vat_category": group.category}
        if group.exemption_reason:
            line["exemption_reason"] = group.exemption_reason
        if group.exemption_code:
            line["exemption_code"] = group.exemption_code
        lines.append(line)
    if not lines:
        raise ValidationError("nothing left to write off", field="invoice_id")
    return lines, []


def _readme(customer: Any, invoices: Sequence[Invoice], rows: Sequence[Mapping[str, Any]],
            claimed: Mapping[str, Money], today: date) -> str:
    out = [f"Dossier de recouvrement / Evidence pack — {customer.name} — {today.isoformat()}", "",
           "invoices/       the invoices (PDF/A-3 Factur-X)",
           "reminders.csv   every reminder: step, channel, date, provider message id, result, proof file",
           "reminders/      proofs of sending (copies of what was sent, formal notice letters)",
           "timeline.json   the activity timeline (reminders, calls, notes, disputes, promises, payments)",
           "claim.json      amounts claimed per invoice: principal, penalties (with their computation), indemnity",
           "", "Amounts claimed:"]
    for r in rows:
        out.append(f"  {r['number']}: due {r['due_date']}, principal {r['amount_due']} {r['currency']}, "
                   f"{r['days_late']} days late, penalties {r['penalties']}, indemnity {r['indemnity']}"
                   + (" (provisional rate)" if r["provisional"] else ""))
    out.append("  total: " + ", ".join(f"{m} {c}" for c, m in sorted(claimed.items())))
    return "\n".join(out) + "\n"
