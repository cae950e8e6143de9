"""ISO 20022 bank statements: camt.053 (BkToCstmrStmt) and camt.054 (BkToCstmrDbtCdtNtfctn).

Versions 001.02 to 001.08 are read. The file is parsed with lxml with every
dangerous feature off (no DTD, no entities, no network, no huge trees) and then
checked against the parts of the message structure we rely on:

- the root is ``Document`` in a supported camt.053 / camt.054 namespace, with the
  matching message element;
- ``GrpHdr/MsgId``;
- per statement / notification: ``Acct/Id/IBAN`` (a valid IBAN); for camt.053 an
  opening (``OPBD`` or ``PRCD``) and a closing (``CLBD``) balance;
- per entry (``Ntry``): ``Amt`` with its ``Ccy``, ``CdtDbtInd``, ``Sts`` (``BOOK``,
  ``PDNG``, ``INFO``, ``FUTR``; a plain code up to version 07, ``Sts/Cd`` from 08),
  ``BookgDt`` when booked; the transaction details of a batch booking must add up
  to the entry amount.

Version differences handled: ``Sts`` vs ``Sts/Cd``; ``RltdPties/Dbtr/Nm`` vs
``Dbtr/Pty/Nm`` (08); ``TxDtls/Amt`` (03+) vs ``AmtDtls/TxAmt/Amt`` (02).

Anything else is refused with :class:`~chalicelib.domain.errors.ValidationError`
whose message names the element (``Stmt[1]/Ntry[3]/Amt``) and what is wrong; the
parser raises nothing else. Amounts become integer minor units, never floats.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable

from chalicelib.domain import identifiers
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.money import Money, check_currency, money_sum

from .model import (BOOKED, CREDIT, DEBIT, STATUSES, BankEntry, BankTransactionCode, Statement,
                    TransactionDetail, compact_iban, transaction_key)

MAX_BYTES = 20 * 1024 * 1024
MAX_TEXT = 1000
_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
SUPPORTED_VERSIONS = tuple(range(2, 9))
_MESSAGES = {"camt.053": "BkToCstmrStmt", "camt.054": "BkToCstmrDbtCdtNtfctn"}
_REPORTS = {"camt.053": "Stmt", "camt.054": "Ntfctn"}
OPENING_CODES = ("OPBD", "PRCD")
CLOSING_CODES = ("CLBD",)


def _fail(message: str, where: str | None = None) -> ValidationError:
    text = f"{where}: {message}" if where else message
    return ValidationError(f"invalid bank statement: {text}", field="file", code="invalid_bank_statement",
                           details={"path": where} if where else None)


class _Reader:
    """Namespace-aware access to the message with paths for error messages."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def tag(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    def child(self, el: Any, path: str) -> Any:
        for name in path.split("/"):
            if el is None:
                return None
            el = el.find(self.tag(name))
        return el

    def children(self, el: Any, name: str) -> list[Any]:
        return el.findall(self.tag(name))

    def text(self, el: Any, path: str) -> str | None:
        node = self.child(el, path)
        if node is None or node.text is None:
            return None
        value = " ".join(node.text.split())
        return value[:MAX_TEXT] if value else None

    def required(self, el: Any, path: str, where: str, what: str = "") -> str:
        value = self.text(el, path)
        if value is None:
            raise _fail(f"{path} is missing{' (' + what + ')' if what else ''}", where)
        return value


def _identify(root: Any) -> tuple[str, int, str]:
    from lxml import etree

    qname = etree.QName(root)
    ns = qname.namespace or ""
    if qname.localname != "Document":
        raise _fail(f"the root element is <{qname.localname}>, expected <Document> of a camt.053 or camt.054 "
                    "message")
    if not ns.startswith(_PREFIX):
        raise _fail(f"unknown namespace {ns or '(none)'!r}: expected {_PREFIX}camt.053.001.0N or camt.054.001.0N")
    name = ns[len(_PREFIX):]
    parts = name.split(".")
    kind = ".".join(parts[:2])
    if kind not in _MESSAGES:
        raise _fail(f"this is a {kind} message, not a bank statement: import a camt.053 statement or a camt.054 "
                    "notification")
    try:
        version = int(parts[3]) if len(parts) == 4 and parts[2] == "001" else -1
    except ValueError:
        version = -1
    if version not in SUPPORTED_VERSIONS:
        raise _fail(f"{name} is not a supported version: {kind}.001.02 to {kind}.001.08 are read")
    return kind, version, ns


def _parse_xml(data: bytes | str) -> Any:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray)):
        raise _fail("expected the XML file content as bytes")
    if not data.strip():
        raise _fail("the file is empty")
    if len(data) > MAX_BYTES:
        raise _fail(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB: split it by statement")
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data:
        raise _fail("DTDs and entity declarations are not allowed in a bank statement")
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False)
    try:
        root = etree.fromstring(bytes(data), parser)
    except etree.XMLSyntaxError as exc:
        line = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        raise _fail(f"the file is not well-formed XML{line}: {exc.msg}") from None
    except (ValueError, etree.LxmlError) as exc:
        raise _fail(f"the file could not be read as XML: {exc}") from None
    if root is None:
        raise _fail("the file is not an XML document")
    if root.getroottree().docinfo.doctype:
        raise _fail("DTDs are not allowed in a bank statement")
    return root


def parse_camt(data: bytes | str) -> tuple[Statement, ...]:
    """Parse a camt.053 / camt.054 file into one :class:`Statement` per Stmt / Ntfctn.

    Raises :class:`ValidationError` (code ``invalid_bank_statement``) naming the
    element at fault for a malformed, unknown or unsupported file.
    """
    root = _parse_xml(data)
    kind, version, ns = _identify(root)
    r = _Reader(ns)
    message = r.child(root, _MESSAGES[kind])
    if message is None:
        raise _fail(f"<{_MESSAGES[kind]}> is missing under <Document>")
    message_id = r.required(message, "GrpHdr/MsgId", _MESSAGES[kind], "the message identification")
    reports = r.children(message, _REPORTS[kind])
    if not reports:
        raise _fail(f"the message contains no <{_REPORTS[kind]}>", _MESSAGES[kind])
    return tuple(_statement(r, report, f"{_REPORTS[kind]}[{i}]", kind, message_id)
                 for i, report in enumerate(reports, start=1))


def _guard(where: str, fn: Callable[[], Any]) -> Any:
    """Run a conversion; a ValidationError gets the path prefixed."""
    try:
        return fn()
    except ValidationError as exc:
        raise _fail(exc.message, where) from None


def _money(r: _Reader, el: Any, where: str) -> Money:
    if el is None:
        raise _fail("Amt is missing", where)
    ccy = el.get("Ccy")
    if not ccy:
        raise _fail("the Ccy attribute (ISO 4217 currency) is missing", where)
    text = " ".join((el.text or "").split())
    if not text:
        raise _fail("the amount is empty", where)
    code = _guard(where, lambda: check_currency(ccy, "Ccy"))
    amount = _guard(where, lambda: Money.parse(text, code, field="amount"))
    if amount.is_negative:
        raise _fail(f"amount {text} is negative: ISO 20022 amounts are positive with CdtDbtInd giving the "
                    "direction", where)
    return amount


def _direction(r: _Reader, el: Any, where: str) -> str:
    value = r.required(el, "CdtDbtInd", where)
    if value not in (CREDIT, DEBIT):
        raise _fail(f"CdtDbtInd is {value!r}, expected CRDT or DBIT", where)
    return value


def _date(r: _Reader, el: Any, where: str) -> date | None:
    """A DateAndDateTimeChoice (``Dt`` or ``DtTm``)."""
    if el is None:
        return None
    dt = r.text(el, "Dt")
    dttm = r.text(el, "DtTm")
    try:
        if dt:
            return date.fromisoformat(dt[:10])
        if dttm:
            return datetime.fromisoformat(dttm).date()
    except ValueError:
        raise _fail(f"{(dt or dttm)!r} is not an ISO 8601 date", where) from None
    raise _fail("expected a Dt or DtTm element", where)


def _statement(r: _Reader, report: Any, where: str, kind: str, message_id: str) -> Statement:
    iban_text = r.required(report, "Acct/Id/IBAN", where, "the account IBAN")
    iban = _guard(f"{where}/Acct/Id/IBAN", lambda: identifiers.iban(iban_text, field="IBAN"))
    account_ccy = r.text(report, "Acct/Ccy")
    if account_ccy:
        account_ccy = _guard(f"{where}/Acct/Ccy", lambda: check_currency(account_ccy, "Ccy"))
    opening = closing = None
    balances = r.children(report, "Bal")
    for i, bal in enumerate(balances, start=1):
        b_where = f"{where}/Bal[{i}]"
        code = r.text(bal, "Tp/CdOrPrtry/Cd") or r.text(bal, "Tp/CdOrPrtry/Prtry")
        if not code:
            raise _fail("Tp/CdOrPrtry/Cd (balance type) is missing", b_where)
        amount = _money(r, r.child(bal, "Amt"), f"{b_where}/Amt")
        signed = amount if _direction(r, bal, b_where) == CREDIT else -amount
        if code in OPENING_CODES and opening is None:
            opening = signed
        elif code in CLOSING_CODES and closing is None:
            closing = signed
    if kind == "camt.053":
        if opening is None:
            raise _fail("the opening balance (Bal with type OPBD or PRCD) is missing", where)
        if closing is None:
            raise _fail("the closing balance (Bal with type CLBD) is missing", where)
    entries = tuple(_entry(r, ntry, f"{where}/Ntry[{i}]", iban)
                    for i, ntry in enumerate(r.children(report, "Ntry"), start=1))
    currency = account_ccy or (closing.currency if closing else None) or (
        entries[0].amount.currency if entries else None)
    if currency is None:
        raise _fail("the account currency is unknown: Acct/Ccy is missing and there is no balance or entry", where)
    return Statement(message_id=message_id, statement_id=r.text(report, "Id"), account_iban=iban,
                     currency=currency, entries=entries, opening_balance=opening, closing_balance=closing,
                     format=kind)


def _status(r: _Reader, ntry: Any, where: str) -> str:
    sts = r.child(ntry, "Sts")
    if sts is None:
        raise _fail("Sts (entry status) is missing", where)
    value = r.text(ntry, "Sts/Cd") or " ".join((sts.text or "").split())
    if value not in STATUSES:
        prtry = r.text(ntry, "Sts/Prtry")
        shown = value or prtry or ""
        raise _fail(f"entry status {shown!r} is not one of {', '.join(STATUSES)}", f"{where}/Sts")
    return value


def _bool(value: str | None, where: str) -> bool:
    if value is None:
        return False
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _fail(f"{value!r} is not a boolean (true or false)", where)


def _party_name(r: _Reader, el: Any, role: str) -> str | None:
    # Up to version 07 the name sits right under the party; from 08 under Pty.
    return r.text(el, f"RltdPties/{role}/Nm") or r.text(el, f"RltdPties/{role}/Pty/Nm")


def _transaction_code(r: _Reader, el: Any) -> BankTransactionCode | None:
    btc = r.child(el, "BkTxCd")
    if btc is None:
        return None
    code = BankTransactionCode(domain=r.text(btc, "Domn/Cd"), family=r.text(btc, "Domn/Fmly/Cd"),
                               subfamily=r.text(btc, "Domn/Fmly/SubFmlyCd"), proprietary=r.text(btc, "Prtry/Cd"))
    return code if any((code.domain, code.family, code.subfamily, code.proprietary)) else None


def _entry(r: _Reader, ntry: Any, where: str, iban: str) -> BankEntry:
    amount = _money(r, r.child(ntry, "Amt"), f"{where}/Amt")
    direction = _direction(r, ntry, where)
    reversal = _bool(r.text(ntry, "RvslInd"), f"{where}/RvslInd")
    status = _status(r, ntry, where)
    booking_el = r.child(ntry, "BookgDt")
    booking_date = _date(r, booking_el, f"{where}/BookgDt")
    if booking_date is None and status == BOOKED:
        raise _fail("BookgDt (booking date) is missing on a booked entry", where)
    value_date = _date(r, r.child(ntry, "ValDt"), f"{where}/ValDt")
    acct_ref = r.text(ntry, "AcctSvcrRef")
    ntry_ref = r.text(ntry, "NtryRef")
    entry_ref = acct_ref or ntry_ref
    additional = r.text(ntry, "AddtlNtryInf")
    raw_details = [tx for dtls in r.children(ntry, "NtryDtls") for tx in r.children(dtls, "TxDtls")]
    parsed = [_detail(r, tx, f"{where}/NtryDtls/TxDtls[{i}]") for i, tx in enumerate(raw_details, start=1)]
    if not parsed:
        parsed = [{}]
    if len(parsed) == 1:
        only = parsed[0]
        # The booked amount is the cash that moved (a detail may show the instructed amount
        # before charges or in another currency).
        only["amount"] = amount
        if not only.get("additional_info"):
            only["additional_info"] = additional
    else:
        for i, d in enumerate(parsed, start=1):
            if d.get("amount") is None:
                raise _fail(f"the batch entry has {len(parsed)} transaction details but detail {i} has no "
                            "amount", where)
            if d["amount"].currency != amount.currency:
                raise _fail(f"transaction detail {i} is in {d['amount'].currency}, the entry in "
                            f"{amount.currency}: a batch cannot be split", where)
        total = money_sum((d["amount"] for d in parsed), amount.currency)
        if total != amount:
            raise _fail(f"the {len(parsed)} transaction details add up to {total} {amount.currency}, the entry "
                        f"amount is {amount}", where)
    details = []
    for i, d in enumerate(parsed):
        fallback = (booking_date, value_date, direction, d["amount"].amount, d.get("end_to_end_id"),
                    d.get("debtor_iban"), d.get("creditor_iban"), d.get("remittance_unstructured"),
                    d.get("creditor_reference"), additional)
        key = transaction_key(iban, entry_ref, i, d["amount"], fallback=fallback)
        details.append(TransactionDetail(index=i, key=key, **d))
    return BankEntry(entry_ref=entry_ref, amount=amount, direction=direction, status=status,
                     booking_date=booking_date, value_date=value_date, details=tuple(details), reversal=reversal,
                     bank_transaction_code=_transaction_code(r, ntry), account_servicer_ref=acct_ref,
                     entry_reference=ntry_ref, additional_info=additional)


def _detail(r: _Reader, tx: Any, where: str) -> dict[str, Any]:
    amt_el = r.child(tx, "Amt")
    if amt_el is None:
        amt_el = r.child(tx, "AmtDtls/TxAmt/Amt")
    amount = _money(r, amt_el, f"{where}/Amt") if amt_el is not None else None
    e2e = r.text(tx, "Refs/EndToEndId")
    rmt = r.child(tx, "RmtInf")
    ustrd = strd_ref = None
    referred: list[str] = []
    if rmt is not None:
        lines = [" ".join((u.text or "").split()) for u in r.children(rmt, "Ustrd")]
        ustrd = " ".join(x for x in lines if x)[:MAX_TEXT] or None
        for strd in r.children(rmt, "Strd"):
            strd_ref = strd_ref or r.text(strd, "CdtrRefInf/Ref")
            for doc in r.children(strd, "RfrdDocInf"):
                number = r.text(doc, "Nb")
                if number:
                    referred.append(number)
    additional = " ".join(p for p in (r.text(tx, "AddtlTxInf"), " ".join(referred)) if p) or None
    return {
        "amount": amount,
        "end_to_end_id": None if e2e in (None, "NOTPROVIDED") else e2e,
        "account_servicer_ref": r.text(tx, "Refs/AcctSvcrRef"),
        "debtor_name": _party_name(r, tx, "Dbtr"),
        "debtor_iban": compact_iban(r.text(tx, "RltdPties/DbtrAcct/Id/IBAN")),
        "ultimate_debtor_name": _party_name(r, tx, "UltmtDbtr"),
        "creditor_name": _party_name(r, tx, "Cdtr"),
        "creditor_iban": compact_iban(r.text(tx, "RltdPties/CdtrAcct/Id/IBAN")),
        "remittance_unstructured": ustrd,
        "creditor_reference": strd_ref,
        "return_reason": r.text(tx, "RtrInf/Rsn/Cd") or r.text(tx, "RtrInf/Rsn/Prtry"),
        "additional_info": additional,
    }
