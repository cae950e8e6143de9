"""Cash application: which open invoices does a bank credit pay?

Pure and deterministic: the caller gives a bank credit and a :class:`MatchingView`
(the open invoices it loaded, the debtor IBANs seen before, customer names) and
gets a :class:`MatchResult` that says what to allocate, to whom, by which rule,
with what confidence and why. Nothing is stored here.

Rules, in order; the first that applies wins:

``rf_reference`` / ``invoice_number``
    An ISO 11649 RF reference or an invoice number found in the remittance text
    or the structured reference. Spacing, case, a missing dash and O/0, I/1, L/1
    confusions are tolerated. Several invoices named = one transfer for several
    invoices, allocated in due-date order. A partial payment allocates partially;
    an overpayment allocates what is due and leaves the excess unapplied (the
    customer's credit). A mistyped RF reference (wrong check digits) is ignored,
    including the invoice number inside it. An invoice number that belongs to
    another customer than the one the debtor account or name identifies is not
    trusted (a typo is likelier than a third party paying); a checked RF
    reference is.
``customer_exact_amount``
    The customer is identified by the debtor IBAN seen before, else by name
    (legal forms, accents, case and punctuation ignored); their oldest open
    invoice of exactly that amount.
``customer_combination``
    The smallest set of 2 to 5 of that customer's open invoices adding up to the
    amount exactly; fewer invoices first, then older ones. Two equally good sets
    (same size, same issue dates) are ambiguous. The search is bounded
    (:data:`MAX_COMBINATION_INVOICES`, :data:`MAX_SEARCH_STEPS`).
``early_payment_discount``
    The discounted amount of one of that customer's invoices, paid inside its
    discount window: the invoice is settled, the difference recorded as a discount.

What matches nothing, or matches ambiguously, is ``unmatched``: the whole amount
stays unapplied (with the customer when known, as their credit) and the result
lists the candidates a clerk should look at. Nothing is ever allocated across
currencies. A Stripe payout (``STRIPE`` and a ``po_...`` id in the text) is
classified as such, not as customer money; :func:`reconcile_payout` checks it
against the Stripe balance transactions it contains.

Invariants (property-tested): every allocation goes to an invoice of the
customer the result names, never exceeds what remains due, is in the credit's
currency; ``sum(allocations) + unapplied == amount`` for every customer credit.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from difflib import SequenceMatcher
from typing import Iterable, Mapping, Sequence

from . import creditor_reference
from .errors import ValidationError
from .money import Money, money_sum

# -- rules, statuses --------------------------------------------------------------------------
RULE_RF = "rf_reference"
RULE_NUMBER = "invoice_number"
RULE_EXACT = "customer_exact_amount"
RULE_COMBINATION = "customer_combination"
RULE_DISCOUNT = "early_payment_discount"
RULE_PAYOUT = "stripe_payout"
RULES = (RULE_RF, RULE_NUMBER, RULE_EXACT, RULE_COMBINATION, RULE_DISCOUNT, RULE_PAYOUT)

MATCHED, UNMATCHED, PAYOUT = "matched", "unmatched", "stripe_payout"

# Matches below this confidence should still be shown to a clerk (they are applied).
REVIEW_BELOW = 0.75
NAME_THRESHOLD = 0.88
NAME_AMBIGUITY_MARGIN = 0.04
MAX_COMBINATION_SIZE = 5
MAX_COMBINATION_INVOICES = 200  # a customer's open invoices considered for 2 to 4 invoice combinations
MAX_FIVE_INVOICES = 100  # the oldest ones considered for 5-invoice combinations (cubic search)
MAX_SEARCH_STEPS = 1_500_000
MAX_SOLUTIONS = 64
MAX_CANDIDATES = 10
MAX_NAME_CANDIDATES = 50
MIN_NUMBER_LENGTH = 4

_CONFIDENCE = {RULE_RF: 0.99, RULE_NUMBER: 0.95, RULE_EXACT: 0.9, RULE_COMBINATION: 0.75, RULE_DISCOUNT: 0.8}


# -- inputs ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BankCredit:
    """A credit on the seller's account, as the matching sees it."""

    key: str  # the bank transaction key (idempotency)
    amount: Money
    booking_date: date
    debtor_name: str | None = None
    debtor_iban: str | None = None
    remittance: str = ""
    structured_reference: str | None = None

    def __post_init__(self) -> None:
        if not self.amount.is_positive:
            raise ValidationError(f"bank credit {self.key}: amount must be positive", field="amount")

    @property
    def text(self) -> str:
        return " ".join(p for p in (self.structured_reference, self.remittance) if p)


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    """What matching needs of an open invoice (the caller maps its own records)."""

    id: str
    number: str
    customer_id: str
    amount_due: Money
    issue_date: date
    due_date: date
    rf_reference: str | None = None
    discount_until: date | None = None  # last day of the early-payment discount window
    discounted_amount: Money | None = None  # what settles the invoice inside that window

    @property
    def currency(self) -> str:
        return self.amount_due.currency

    @classmethod
    def from_invoice(cls, invoice: object, *, discount_rate: Decimal | None = None,
                     discount_days: int | None = None) -> OpenInvoice:
        """Build from a :class:`chalicelib.domain.invoice.Invoice` (issued, open).

        With the seller's early-payment discount (rate in percent, days from the
        issue date), an invoice on which nothing was settled yet gets its window
        and discounted amount (the discount applies to the total with VAT, whose
        VAT is reduced in proportion).
        """
        from .invoice import Invoice

        if not isinstance(invoice, Invoice) or invoice.number is None or invoice.issue_date is None:
            raise ValidationError("only issued invoices can be matched", field="invoice")
        due = invoice.amount_due
        until = discounted = None
        if discount_rate and discount_days and due == invoice.totals.payable:
            until = invoice.issue_date + timedelta(days=discount_days)
            discounted = due - invoice.totals.payable.multiply(discount_rate / Decimal(100))
        return cls(id=invoice.id, number=invoice.number, customer_id=invoice.customer_id, amount_due=due,
                   issue_date=invoice.issue_date, due_date=invoice.due_date or invoice.issue_date,
                   rf_reference=creditor_reference.for_invoice(invoice.number, invoice.id),
                   discount_until=until, discounted_amount=discounted)


def canonical_iban(value: str | None) -> str | None:
    if not value:
        return None
    out = "".join(value.split()).upper()
    return out or None


@dataclass(frozen=True)
class MatchingView:
    """The part of the ledger one matching run looks at, with its lookup indexes.

    ``known_ibans`` maps a debtor IBAN seen before to its customer id;
    ``customer_names`` maps customer id to name (for name matching). Build it
    once per statement: indexes are computed here, matching a credit is then
    proportional to its text and to its customer's open invoices.
    """

    invoices: tuple[OpenInvoice, ...]
    known_ibans: Mapping[str, str] = field(default_factory=dict)
    customer_names: Mapping[str, str] = field(default_factory=dict)
    # indexes, computed once
    by_id: dict[str, OpenInvoice] = field(init=False, repr=False, compare=False)
    by_rf: dict[str, list[OpenInvoice]] = field(init=False, repr=False, compare=False)
    by_number: dict[str, list[OpenInvoice]] = field(init=False, repr=False, compare=False)
    number_lengths: list[int] = field(init=False, repr=False, compare=False)
    by_customer: dict[str, list[OpenInvoice]] = field(init=False, repr=False, compare=False)
    by_amount: dict[tuple[int, str], list[OpenInvoice]] = field(init=False, repr=False, compare=False)
    ibans: dict[str, str] = field(init=False, repr=False, compare=False)
    names: dict[str, list[str]] = field(init=False, repr=False, compare=False)
    name_tokens: dict[str, set[str]] = field(init=False, repr=False, compare=False)
    normalized_names: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, OpenInvoice] = {}
        by_rf: dict[str, list[OpenInvoice]] = {}
        by_number: dict[str, list[OpenInvoice]] = {}
        by_customer: dict[str, list[OpenInvoice]] = {}
        by_amount: dict[tuple[int, str], list[OpenInvoice]] = {}
        for inv in self.invoices:
            if inv.id in by_id:
                raise ValidationError(f"invoice {inv.id} is listed twice in the matching view", field="invoices")
            by_id[inv.id] = inv
            if inv.rf_reference:
                by_rf.setdefault(creditor_reference.compact(inv.rf_reference), []).append(inv)
            key = canonical_number(inv.number)
            if len(key) >= MIN_NUMBER_LENGTH and any(c.isdigit() for c in key):
                by_number.setdefault(key, []).append(inv)
            by_customer.setdefault(inv.customer_id, []).append(inv)
            by_amount.setdefault((inv.amount_due.amount, inv.currency), []).append(inv)
        for invs in by_customer.values():
            invs.sort(key=_age)
        ibans = {}
        for iban, customer in self.known_ibans.items():
            c = canonical_iban(iban)
            if c:
                ibans[c] = customer
        names: dict[str, list[str]] = {}
        tokens: dict[str, set[str]] = {}
        normalized: dict[str, str] = {}
        for cid, name in self.customer_names.items():
            norm = normalize_name(name)
            if not norm:
                continue
            normalized[cid] = norm
            names.setdefault(norm, []).append(cid)
            for tok in norm.split():
                if len(tok) >= 3:
                    tokens.setdefault(tok, set()).add(cid)
        object.__setattr__(self, "by_id", by_id)
        object.__setattr__(self, "by_rf", by_rf)
        object.__setattr__(self, "by_number", by_number)
        object.__setattr__(self, "number_lengths", sorted({len(k) for k in by_number}, reverse=True))
        object.__setattr__(self, "by_customer", by_customer)
        object.__setattr__(self, "by_amount", by_amount)
        object.__setattr__(self, "ibans", ibans)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "name_tokens", tokens)
        object.__setattr__(self, "normalized_names", normalized)


# -- outputs ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProposedAllocation:
    invoice_id: str
    invoice_number: str
    amount: Money


@dataclass(frozen=True, slots=True)
class ProposedDiscount:
    """An early-payment discount granted on an invoice settled by a discounted payment."""

    invoice_id: str
    invoice_number: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Candidate:
    """Something a clerk should look at for an unmatched or doubtful credit."""

    kind: str  # "invoice" or "customer"
    id: str
    label: str  # invoice number or customer name
    customer_id: str
    amount_due: Money | None
    why: str


@dataclass(frozen=True, slots=True)
class MatchResult:
    credit_key: str
    status: str  # matched / unmatched / stripe_payout
    rule: str | None
    confidence: float
    amount: Money
    allocations: tuple[ProposedAllocation, ...]
    customer_id: str | None
    unapplied: Money
    reason: str
    discounts: tuple[ProposedDiscount, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    payout_id: str | None = None
    identified_by: str | None = None  # how the customer was found: reference / iban / name

    @property
    def allocated(self) -> Money:
        return money_sum((a.amount for a in self.allocations), self.amount.currency)

    @property
    def needs_review(self) -> bool:
        return self.status == UNMATCHED or (self.status == MATCHED and self.confidence < REVIEW_BELOW)


# -- text normalisation ------------------------------------------------------------------------

_OCR = str.maketrans({"O": "0", "I": "1", "L": "1"})


def _fold_char(ch: str) -> str:
    base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
    return base[:1].upper() if base else ""


def canonical_number(value: str) -> str:
    """Letters and digits only, upper case, O->0, I->1, L->1 (the forms an invoice number is typed in)."""
    return "".join(_fold_char(c) for c in value if c.isalnum()).translate(_OCR)


LEGAL_FORMS = frozenset("""
SARL SAS SASU SA EURL SCI SNC SCOP SCA SCS SELARL SELAS SELAFA SEL GIE EI EIRL SEM SPL SCM EARL GAEC
ASSOCIATION ASSO STE SOCIETE STES ETS ETABLISSEMENTS CIE GROUPE
GMBH AG KG OHG UG MBH EK LTD LIMITED PLC LLP LLC INC CORP CORPORATION CO BV NV SPA SRL SL SLU AB AS OY
""".split())
_NAME_STOPWORDS = frozenset("LA LE LES L DE DU DES D ET THE AND OF & M MR MME MLLE".split())


def normalize_name(name: str | None) -> str:
    """Comparable form of a company name: accents, case, punctuation and legal forms removed."""
    if not name:
        return ""
    folded = "".join(_fold_char(c) if c.isalnum() else " " for c in name)
    tokens = folded.split()
    kept = [t for t in tokens if t not in LEGAL_FORMS and t not in _NAME_STOPWORDS]
    return " ".join(kept or tokens)


def name_similarity(a: str | None, b: str | None) -> float:
    """0..1 similarity of two company names after :func:`normalize_name`."""
    na, nb = normalize_name(a), normalize_name(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    if na.replace(" ", "") == nb.replace(" ", ""):
        return 0.98
    ta, tb = na.split(), nb.split()
    if sorted(ta) == sorted(tb):
        return 0.97
    short, long_ = sorted((na, nb), key=len)
    if len(short) >= 10 and long_.startswith(short):
        return 0.92  # bank names are often truncated (35 or 70 characters)
    return round(SequenceMatcher(None, na, nb, autojunk=False).ratio(), 4)


# -- reference extraction ----------------------------------------------------------------------

_PAYOUT_ID = re.compile(r"(?<![A-Za-z0-9_])po_[A-Za-z0-9]{8,}")
_STRIPE = re.compile(r"(?<![A-Za-z])stripe(?![A-Za-z])", re.IGNORECASE)


def stripe_payout_id(text: str, debtor_name: str | None = None) -> str | None:
    """The Stripe payout id (``po_...``) of a bank credit that names Stripe, else None."""
    if not (_STRIPE.search(text or "") or _STRIPE.search(debtor_name or "")):
        return None
    m = _PAYOUT_ID.search(text or "")
    return m.group(0) if m else None


@dataclass(frozen=True, slots=True)
class _Refs:
    by_rf: tuple[OpenInvoice, ...]
    by_number: tuple[OpenInvoice, ...]
    mistyped_rf: tuple[str, ...]
    unknown_rf: tuple[str, ...]


def _canonical_text(text: str, masked: Sequence[tuple[int, int]]) -> tuple[str, list[bool], list[bool]]:
    """Compressed canonical text plus, per character, whether a separator precedes / follows it."""
    chars: list[str] = []
    sep_before: list[bool] = []
    pending_sep = True
    mask_iter = sorted(masked)
    mi = 0
    for i, ch in enumerate(text):
        while mi < len(mask_iter) and i >= mask_iter[mi][1]:
            mi += 1
        if mi < len(mask_iter) and mask_iter[mi][0] <= i < mask_iter[mi][1]:
            if chars and chars[-1] != "|":
                chars.append("|")
                sep_before.append(True)
            pending_sep = True
            continue
        if ch.isalnum():
            folded = _fold_char(ch)
            if not folded:
                pending_sep = True
                continue
            chars.append(folded.translate(_OCR))
            sep_before.append(pending_sep)
            pending_sep = False
        else:
            pending_sep = True
    sep_after = [sep_before[i + 1] if i + 1 < len(chars) else True for i in range(len(chars))]
    return "".join(chars), sep_before, sep_after


def _find_references(view: MatchingView, text: str) -> _Refs:
    by_rf_index: dict[str, list[OpenInvoice]] = view.by_rf
    rf_hits: list[OpenInvoice] = []
    mistyped: list[str] = []
    unknown: list[str] = []
    spans = []
    for found in creditor_reference.scan(text):
        spans.append(found.span)
        hit = next((c for c in found.candidates if c in by_rf_index), None)
        raw = text[found.span[0]:found.span[1]]
        if hit is None:
            (unknown if found.candidates else mistyped).append(raw)
            continue
        for inv in by_rf_index[hit]:
            if inv not in rf_hits:
                rf_hits.append(inv)
    canon, sep_before, sep_after = _canonical_text(text, spans)
    by_number: dict[str, list[OpenInvoice]] = view.by_number
    number_hits: list[OpenInvoice] = []
    for length in view.number_lengths:
        for start in range(0, len(canon) - length + 1):
            window = canon[start:start + length]
            invs = by_number.get(window)
            if not invs:
                continue
            end = start + length - 1
            if window[0].isdigit() and start > 0 and canon[start - 1].isdigit() and not sep_before[start]:
                continue
            if window[-1].isdigit() and end + 1 < len(canon) and canon[end + 1].isdigit() and not sep_after[end]:
                continue
            for inv in invs:
                if inv not in number_hits and inv not in rf_hits:
                    number_hits.append(inv)
    return _Refs(tuple(rf_hits), tuple(number_hits), tuple(mistyped), tuple(unknown))


@dataclass(frozen=True, slots=True)
class LookupKeys:
    """What a service should load before matching a credit (so it never scans the ledger)."""

    rf_references: tuple[str, ...]
    invoice_numbers: tuple[str, ...]
    debtor_iban: str | None
    debtor_name: str


def lookup_keys(credit: BankCredit, prefixes: Iterable[str] = ("F", "AV")) -> LookupKeys:
    """Valid RF references and numbers in the seller's own format (``<prefix><year>-<6 digits>``)
    found in the credit's text, the debtor IBAN and normalized name.

    A service loads the invoices with those numbers / references, the customer of
    that IBAN or name, and that customer's open invoices, and builds the
    :class:`MatchingView` from them. Invoices imported with other number formats
    are found only if the service adds them to the view (e.g. the customer's).
    """
    text = credit.text
    refs = tuple(creditor_reference.find_in_text(text))
    canon, _, _ = _canonical_text(text, [])
    numbers: list[str] = []
    for prefix in prefixes:
        p = canonical_number(prefix)
        for m in re.finditer(re.escape(p) + r"(\d{4})(\d{6})(?!\d)", canon):
            n = f"{prefix.upper()}{m.group(1)}-{m.group(2)}"
            if n not in numbers:
                numbers.append(n)
    for ref in refs:
        m = re.fullmatch(r"RF\d\d([A-Z]{1,6})(\d{4})(\d{6})", ref)
        if m:
            n = f"{m.group(1)}{m.group(2)}-{m.group(3)}"
            if n not in numbers:
                numbers.append(n)
    return LookupKeys(rf_references=refs, invoice_numbers=tuple(numbers),
                      debtor_iban=canonical_iban(credit.debtor_iban), debtor_name=normalize_name(credit.debtor_name))


# -- the matcher -----------------------------------------------------------------------------------

def _age(inv: OpenInvoice) -> tuple[date, date, str, str]:
    return (inv.issue_date, inv.due_date, inv.number, inv.id)


def _due_order(inv: OpenInvoice) -> tuple[date, date, str, str]:
    return (inv.due_date, inv.issue_date, inv.number, inv.id)


@dataclass(frozen=True, slots=True)
class _Identity:
    customer_id: str | None
    how: str | None  # "iban" / "name"
    score: float
    ambiguous: tuple[str, ...] = ()


class _Run:
    """One matching run over a statement: the view plus what earlier credits already took."""

    def __init__(self, view: MatchingView) -> None:
        self.view = view
        self.remaining: dict[str, int] = {}

    def due(self, inv: OpenInvoice) -> int:
        return self.remaining.get(inv.id, inv.amount_due.amount)

    def take(self, inv: OpenInvoice, minor: int) -> None:
        self.remaining[inv.id] = self.due(inv) - minor

    # -- identification ---------------------------------------------------------------------------
    def identify(self, credit: BankCredit) -> _Identity:
        iban = canonical_iban(credit.debtor_iban)
        ibans: dict[str, str] = self.view.ibans
        if iban and iban in ibans:
            return _Identity(ibans[iban], "iban", 1.0)
        norm = normalize_name(credit.debtor_name)
        if not norm:
            return _Identity(None, None, 0.0)
        names: dict[str, list[str]] = self.view.names
        exact = names.get(norm, [])
        if len(exact) == 1:
            return _Identity(exact[0], "name", 1.0)
        if len(exact) > 1:
            return _Identity(None, None, 0.0, tuple(sorted(exact)))
        tokens: dict[str, set[str]] = self.view.name_tokens
        normalized: dict[str, str] = self.view.normalized_names
        shared: dict[str, int] = {}
        for tok in set(norm.split()):
            for cid in tokens.get(tok, ()):
                shared[cid] = shared.get(cid, 0) + 1
        # Common words ("BOULANGERIE") may be shared by many customers: compare the names sharing most words.
        pool = sorted(shared, key=lambda cid: (-shared[cid], cid))[:MAX_NAME_CANDIDATES]
        scored = sorted(((name_similarity(norm, normalized[cid]), cid) for cid in pool), key=lambda x: (-x[0], x[1]))
        if not scored or scored[0][0] < NAME_THRESHOLD:
            return _Identity(None, None, 0.0)
        best_score, best = scored[0]
        rivals = tuple(cid for score, cid in scored[1:] if score >= best_score - NAME_AMBIGUITY_MARGIN
                       and score >= NAME_THRESHOLD - NAME_AMBIGUITY_MARGIN)
        if rivals:
            return _Identity(None, None, 0.0, (best, *rivals))
        return _Identity(best, "name", best_score)

    # -- results -----------------------------------------------------------------------------------
    def _candidate(self, inv: OpenInvoice, why: str) -> Candidate:
        return Candidate("invoice", inv.id, inv.number, inv.customer_id, Money(self.due(inv), inv.currency), why)

    def _customer_candidate(self, cid: str, why: str) -> Candidate:
        return Candidate("customer", cid, self.view.customer_names.get(cid, cid), cid, None, why)

    def unmatched(self, credit: BankCredit, reason: str, *, customer_id: str | None = None,
                  candidates: Sequence[Candidate] = (), identified_by: str | None = None) -> MatchResult:
        if not candidates:
            same_amount = self.view.by_amount.get((credit.amount.amount, credit.amount.currency), [])
            candidates = [self._candidate(inv, "open invoice of exactly this amount")
                          for inv in sorted(same_amount, key=_age) if self.due(inv) == credit.amount.amount
                          and (customer_id is None or inv.customer_id == customer_id)]
        if _STRIPE.search(credit.text) or _STRIPE.search(credit.debtor_name or ""):
            reason = "looks like a Stripe payout but names no payout id (po_...): reconcile it by hand; " + reason
        return MatchResult(credit_key=credit.key, status=UNMATCHED, rule=None, confidence=0.0, amount=credit.amount,
                           allocations=(), customer_id=customer_id, unapplied=credit.amount, reason=reason,
                           candidates=tuple(candidates[:MAX_CANDIDATES]), identified_by=identified_by)

    def matched(self, credit: BankCredit, rule: str, confidence: float, customer_id: str,
                plan: Sequence[tuple[OpenInvoice, int]], reason: str, *, identified_by: str,
                discounts: Sequence[tuple[OpenInvoice, int]] = ()) -> MatchResult:
        allocations = []
        for inv, minor in plan:
            if minor <= 0:
                continue
            if inv.currency != credit.amount.currency or minor > self.due(inv):  # a bug, never a data case
                raise RuntimeError(f"matching would allocate {minor} to {inv.number}: invariant broken")
            self.take(inv, minor)
            allocations.append(ProposedAllocation(inv.id, inv.number, Money(minor, inv.currency)))
        granted = []
        for inv, minor in discounts:
            self.take(inv, minor)
            granted.append(ProposedDiscount(inv.id, inv.number, Money(minor, inv.currency)))
        allocated = sum(a.amount.amount for a in allocations)
        unapplied = Money(credit.amount.amount - allocated, credit.amount.currency)
        if unapplied.is_positive:
            reason += f"; {unapplied} {unapplied.currency} more than due stays unapplied as the customer's credit"
        return MatchResult(credit_key=credit.key, status=MATCHED, rule=rule, confidence=round(confidence, 2),
                           amount=credit.amount, allocations=tuple(allocations), customer_id=customer_id,
                           unapplied=unapplied, reason=reason, discounts=tuple(granted), identified_by=identified_by)

    # -- rule (a): references ------------------------------------------------------------------------
    def by_reference(self, credit: BankCredit, refs: _Refs, who: _Identity) -> MatchResult:
        currency = credit.amount.currency
        named = list(refs.by_rf) + list(refs.by_number)
        usable = [inv for inv in named if inv.currency == currency]
        foreign = [inv for inv in named if inv.currency != currency]
        if not usable:
            owners = {inv.customer_id for inv in foreign}
            owner = next(iter(owners)) if len(owners) == 1 else None
            if owner and who.customer_id and who.customer_id != owner:
                owner = None
            return self.unmatched(
                credit, f"the text names invoice(s) {', '.join(i.number for i in foreign)} in "
                f"{', '.join(sorted({i.currency for i in foreign}))}, but the transfer is in {currency}: "
                "nothing is allocated across currencies", customer_id=owner,
                candidates=[self._candidate(i, "named in the text, other currency") for i in foreign],
                identified_by="reference" if owner else None)
        owners = sorted({inv.customer_id for inv in usable})
        notes = []
        if len(owners) > 1:
            if who.customer_id in owners:
                ignored = [i.number for i in usable if i.customer_id != who.customer_id]
                usable = [i for i in usable if i.customer_id == who.customer_id]
                notes.append(f"ignored {', '.join(ignored)} of another customer (the debtor is identified by "
                             f"{who.how})")
            else:
                return self.unmatched(
                    credit, "the text names invoices of several customers "
                    f"({', '.join(i.number for i in usable)}): allocate by hand",
                    candidates=[self._candidate(i, "named in the text") for i in usable])
        customer = usable[0].customer_id
        via_rf = any(inv in refs.by_rf for inv in usable)
        if who.customer_id and who.customer_id != customer:
            if not via_rf:
                return self.unmatched(
                    credit, f"the text names {', '.join(i.number for i in usable)} of another customer than the one "
                    f"the debtor {who.how} identifies: a mistyped number or a third party paying; check and "
                    "allocate by hand", customer_id=None,
                    candidates=[self._candidate(i, "named in the text") for i in usable]
                    + [self._customer_candidate(who.customer_id, f"identified by debtor {who.how}")])
            notes.append(f"paid from an account of another customer (identified by {who.how}); the RF "
                         "reference is check-digit verified")
        rule = RULE_RF if via_rf else RULE_NUMBER
        confidence = _CONFIDENCE[rule] - (0.1 if notes else 0.0) - (0.05 if len(usable) > 1 else 0.0)
        how = ("RF reference" if via_rf else "invoice number") + ("s" if len(usable) > 1 else "")
        numbers = ", ".join(i.number for i in usable)
        open_refs = sorted((i for i in usable if self.due(i) > 0), key=_due_order)
        if not open_refs:
            return self.unmatched(
                credit, f"{how} {numbers} found, but already settled by earlier transfers in this statement: a "
                "duplicate payment? the amount stays unapplied as the customer's credit", customer_id=customer,
                candidates=[self._candidate(i, "named in the text, already settled") for i in usable],
                identified_by="reference")
        amount = credit.amount.amount
        if len(open_refs) == 1:
            inv = open_refs[0]
            if self._discount_applies(inv, credit):
                discount = self.due(inv) - amount
                return self.matched(
                    credit, rule, confidence, customer, [(inv, amount)],
                    f"{how} {inv.number} found; paid {credit.amount} inside the early-payment discount window "
                    f"(until {inv.discount_until}): the invoice is settled with a "
                    f"{Money(discount, inv.currency)} discount", identified_by="reference",
                    discounts=[(inv, discount)])
        plan = []
        left = amount
        for inv in open_refs:
            part = min(left, self.due(inv))
            plan.append((inv, part))
            left -= part
        reason = f"{how} {numbers} found in the remittance information"
        if len(open_refs) > 1:
            reason += ", allocated in due-date order"
        partial = [inv.number for inv, part in plan if 0 < part < self.due(inv)]
        if partial:
            reason += f"; partial payment of {', '.join(partial)}"
        unpaid = [inv.number for inv, part in plan if part == 0]
        if unpaid:
            reason += f"; nothing left for {', '.join(unpaid)}"
        if notes:
            reason += "; " + "; ".join(notes)
        return self.matched(credit, rule, confidence, customer, plan, reason, identified_by="reference")

    def _discount_applies(self, inv: OpenInvoice, credit: BankCredit) -> bool:
        return (inv.discounted_amount is not None and inv.discount_until is not None
                and inv.discounted_amount.currency == credit.amount.currency
                and credit.booking_date <= inv.discount_until
                and self.due(inv) == inv.amount_due.amount
                and credit.amount.amount == inv.discounted_amount.amount < self.due(inv))

    # -- rules (b), (c), (d): the customer's open invoices -------------------------------------------------
    def by_customer(self, credit: BankCredit, who: _Identity, preamble: str) -> MatchResult:
        cid = who.customer_id
        if cid is None or who.how is None:
            raise RuntimeError("by_customer needs an identified customer")
        base = who.score if who.how == "name" else 1.0
        label = f"customer identified by {'debtor IBAN seen before' if who.how == 'iban' else 'name'}"
        if who.how == "name" and who.score < 1.0:
            label += f" (similarity {who.score:.2f})"
        currency = credit.amount.currency
        amount = credit.amount.amount
        invs = [inv for inv in self.view.by_customer.get(cid, [])
                if inv.currency == currency and self.due(inv) > 0]
        exact = [inv for inv in invs if self.due(inv) == amount]
        if exact:
            inv = exact[0]
            more = f" (the oldest of {len(exact)})" if len(exact) > 1 else ""
            return self.matched(credit, RULE_EXACT, _CONFIDENCE[RULE_EXACT] * base, cid, [(inv, amount)],
                                f"{preamble}{label}; open invoice {inv.number} of exactly {credit.amount} "
                                f"{currency}{more}", identified_by=who.how)
        combo, status, count = _best_combination(
            [(inv, self.due(inv)) for inv in invs if self.due(inv) < amount], amount)
        if combo is not None:
            numbers = ", ".join(inv.number for inv in combo)
            confidence = _CONFIDENCE[RULE_COMBINATION] * base
            others = ""
            if count > 1:
                # Another set of as many invoices adds up too: the oldest is a guess a clerk should confirm.
                confidence = min(confidence, REVIEW_BELOW - 0.15)
                others = f" (the oldest of {count} sets of {len(combo)} invoices with this total)"
            return self.matched(credit, RULE_COMBINATION, confidence, cid,
                                [(inv, self.due(inv)) for inv in combo],
                                f"{preamble}{label}; open invoices {numbers} add up to exactly {credit.amount} "
                                f"{currency}{others}", identified_by=who.how)
        discounted = [inv for inv in invs if self._discount_applies(inv, credit)]
        if discounted:
            inv = discounted[0]
            discount = self.due(inv) - amount
            return self.matched(credit, RULE_DISCOUNT, _CONFIDENCE[RULE_DISCOUNT] * base, cid, [(inv, amount)],
                                f"{preamble}{label}; {credit.amount} is the early-payment discounted amount of "
                                f"{inv.number}, paid by {inv.discount_until}: settled with a "
                                f"{Money(discount, currency)} discount", identified_by=who.how,
                                discounts=[(inv, discount)])
        if status == "ambiguous":
            why = "several equally good combinations of open invoices add up to this amount"
        elif status == "too_large":
            why = "too many open invoices to search all combinations"
        else:
            why = ("no open invoice, combination of up to 5 invoices or discounted amount equals "
                   f"{credit.amount} {currency}")
        return self.unmatched(
            credit, f"{preamble}{label}, but {why}; the amount stays unapplied as the customer's credit",
            customer_id=cid, identified_by=who.how,
            candidates=[self._candidate(inv, "open invoice of the identified customer") for inv in invs])

    def match(self, credit: BankCredit) -> MatchResult:
        payout = stripe_payout_id(credit.text, credit.debtor_name)
        if payout:
            return MatchResult(credit_key=credit.key, status=PAYOUT, rule=RULE_PAYOUT, confidence=0.99,
                               amount=credit.amount, allocations=(), customer_id=None,
                               unapplied=Money.zero(credit.amount.currency),
                               reason=f"Stripe payout {payout}: not customer money; reconcile it with its balance "
                               "transactions and book the Stripe fees", payout_id=payout)
        refs = _find_references(self.view, credit.text)
        who = self.identify(credit)
        if refs.by_rf or refs.by_number:
            return self.by_reference(credit, refs, who)
        preamble = ""
        if refs.mistyped_rf:
            preamble += f"RF reference {refs.mistyped_rf[0]!r} has wrong check digits and was ignored; "
        if refs.unknown_rf:
            preamble += f"RF reference {refs.unknown_rf[0]!r} is not the reference of an open invoice; "
        if who.customer_id is None:
            if who.ambiguous:
                return self.unmatched(
                    credit, preamble + "no invoice reference, and the debtor name matches several customers",
                    candidates=[self._customer_candidate(c, "similar name") for c in who.ambiguous])
            return self.unmatched(credit, preamble + "no invoice reference found, and neither the debtor account "
                                  "nor the debtor name is known")
        return self.by_customer(credit, who, preamble)


def _best_combination(items: Sequence[tuple[OpenInvoice, int]], target: int
                      ) -> tuple[tuple[OpenInvoice, ...] | None, str, int]:
    """The best set of 2..5 invoices whose dues add up to ``target``.

    Returns (invoices in age order, "found", number of sets of that size) or
    (None, "none" / "ambiguous" / "too_large", count). Fewer invoices win; among
    sets of the same size the one whose issue dates, oldest first, are earliest
    wins; equal dates are ambiguous. With many open invoices, many sets of 4 or 5
    add up to the same amount: more than :data:`MAX_SOLUTIONS` is ambiguous.
    """
    ordered = sorted(items, key=lambda x: _age(x[0]))[:MAX_COMBINATION_INVOICES]
    n = len(ordered)
    amounts = [due for _, due in ordered]
    positions: dict[int, list[int]] = {}
    for i, a in enumerate(amounts):
        positions.setdefault(a, []).append(i)
    steps = 0

    def pairs_map(limit: int) -> dict[int, list[tuple[int, int]]]:
        nonlocal steps
        out: dict[int, list[tuple[int, int]]] = {}
        for i in range(limit):
            for j in range(i + 1, limit):
                s = amounts[i] + amounts[j]
                if s < target:
                    out.setdefault(s, []).append((i, j))
                steps += 1
        return out

    for size in range(2, MAX_COMBINATION_SIZE + 1):
        if n < size:
            break
        solutions: list[tuple[int, ...]] = []
        overflow = False
        if size == 2:
            for i in range(n):
                for j in positions.get(target - amounts[i], ()):
                    steps += 1
                    if j > i:
                        solutions.append((i, j))
        elif size == 3:
            for i in range(n):
                for j in range(i + 1, n):
                    rest = target - amounts[i] - amounts[j]
                    steps += 1
                    if rest <= 0:
                        continue
                    for k in positions.get(rest, ()):
                        if k > j:
                            solutions.append((i, j, k))
                if steps > MAX_SEARCH_STEPS:
                    return None, "too_large", 0
        else:
            limit = n if size == 4 else min(n, MAX_FIVE_INVOICES)
            pm = pairs_map(limit)
            if size == 4:
                for s, plist in pm.items():
                    steps += 1
                    others = pm.get(target - s)
                    if not others:
                        continue
                    for (i, j) in plist:
                        for (k, m) in others:
                            steps += 1
                            if k > j:
                                solutions.append((i, j, k, m))
                    if steps > MAX_SEARCH_STEPS:
                        return None, "too_large", 0
                    if len(solutions) > MAX_SOLUTIONS:
                        break
            else:
                for i in range(limit):
                    for s, plist in pm.items():
                        steps += 1
                        others = pm.get(target - amounts[i] - s)
                        if not others:
                            continue
                        for (j, k) in plist:
                            if j <= i:
                                continue
                            for (m, p) in others:
                                steps += 1
                                if m > k:
                                    solutions.append((i, j, k, m, p))
                    if steps > MAX_SEARCH_STEPS:
                        return None, "too_large", 0
                    if len(solutions) > MAX_SOLUTIONS:
                        break
        if len(solutions) > MAX_SOLUTIONS:
            overflow = True
        if solutions:
            if overflow:
                return None, "ambiguous", len(solutions)

            def key(sol: tuple[int, ...]) -> tuple[date, ...]:
                return tuple(sorted(ordered[i][0].issue_date for i in sol))

            unique = sorted(set(solutions))
            best_key = min(key(s) for s in unique)
            best = [s for s in unique if key(s) == best_key]
            if len(best) > 1:
                return None, "ambiguous", len(unique)
            return tuple(ordered[i][0] for i in sorted(best[0])), "found", len(unique)
    return None, "none", 0


def match_statement(credits: Sequence[BankCredit], view: MatchingView) -> tuple[MatchResult, ...]:
    """Match credits in the given order (pass them by booking date); each sees what earlier ones took.

    Pure: the view is not modified; two credits never allocate the same amount due.
    """
    run = _Run(view)
    seen: set[str] = set()
    results = []
    for credit in credits:
        if credit.key in seen:
            raise ValidationError(f"bank credit {credit.key} is listed twice", field="credits")
        seen.add(credit.key)
        results.append(run.match(credit))
    return tuple(results)


def match_credit(credit: BankCredit, view: MatchingView) -> MatchResult:
    return match_statement([credit], view)[0]


def identify_customer(credit: BankCredit, view: MatchingView) -> tuple[str | None, str | None, tuple[str, ...]]:
    """Who paid, as the customer rules see it: ``(customer_id, "iban" | "name" | None, ambiguous ids)``.

    Lets a service load only the identified customers' open invoices before matching
    (the view needs only ``known_ibans`` and ``customer_names`` for this).
    """
    who = _Run(view).identify(credit)
    return who.customer_id, who.how, who.ambiguous


# -- Stripe payouts ------------------------------------------------------------------------------------

CHARGE_TYPES = frozenset({"charge", "payment"})
REFUND_TYPES = frozenset({"refund", "payment_refund"})
IGNORED_TYPES = frozenset({"payout"})


@dataclass(frozen=True, slots=True)
class BalanceTransaction:
    """A Stripe balance transaction included in a payout (amounts as Stripe reports them:
    ``amount`` gross and signed, negative for a refund; ``fee`` positive)."""

    id: str
    type: str
    amount: Money
    fee: Money


@dataclass(frozen=True, slots=True)
class PayoutReconciliation:
    payout_id: str | None
    entry_amount: Money
    charges: Money
    refunds: Money  # positive
    fees: Money  # positive: what to book as Stripe fees (627)
    other: Money  # signed: disputes, adjustments
    expected: Money  # charges - refunds - fees + other
    difference: Money  # entry_amount - expected

    @property
    def balanced(self) -> bool:
        return self.difference.is_zero

    @property
    def reason(self) -> str:
        base = (f"charges {self.charges} - refunds {self.refunds} - fees {self.fees}"
                + (f" + other {self.other}" if not self.other.is_zero else "") + f" = {self.expected}")
        if self.balanced:
            return f"{base}, the amount received"
        return f"{base}, but {self.entry_amount} was received (difference {self.difference}): check the payout"


def reconcile_payout(entry_amount: Money, balance_transactions: Sequence[BalanceTransaction],
                     payout_id: str | None = None) -> PayoutReconciliation:
    """Check that a payout's bank credit equals charges - refunds - fees (+ disputes/adjustments).

    Returns the reconciliation (``balanced`` says whether it adds up, ``fees`` is
    what to book); raises :class:`ValidationError` for a transaction in another
    currency than the bank credit.
    """
    ccy = entry_amount.currency
    charges = refunds = fees = other = 0
    for bt in balance_transactions:
        if bt.amount.currency != ccy or bt.fee.currency != ccy:
            raise ValidationError(f"balance transaction {bt.id} is in {bt.amount.currency}, the payout in {ccy}",
                                  field="balance_transactions", code="currency_mismatch")
        if bt.type in IGNORED_TYPES:
            continue
        fees += bt.fee.amount
        if bt.type in CHARGE_TYPES:
            charges += bt.amount.amount
        elif bt.type in REFUND_TYPES:
            refunds += -bt.amount.amount if bt.amount.is_negative else bt.amount.amount
        else:
            other += bt.amount.amount
    expected = charges - refunds - fees + other
    return PayoutReconciliation(payout_id=payout_id, entry_amount=entry_amount, charges=Money(charges, ccy),
                                refunds=Money(refunds, ccy), fees=Money(fees, ccy), other=Money(other, ccy),
                                expected=Money(expected, ccy), difference=Money(entry_amount.amount - expected, ccy))
