"""Builders of real-shaped ISO 20022 camt.053 / camt.054 files for tests.

The element order, nesting and version differences follow the published
schemas (001.02 to 001.08): ``Sts`` is a plain code up to 07 and ``Sts/Cd`` from
08; related parties are ``Dbtr/Nm`` up to 07 and ``Dbtr/Pty/Nm`` from 08;
``TxDtls/Amt`` exists from 03 (02 has ``AmtDtls/TxAmt/Amt``). The closing
balance is computed from the opening one and the booked entries, as a bank does.

    doc = camt053([ntry("1200.00", details=[tx(debtor="BOULANGERIE MARTIN", ustrd="F2026-000001")])])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from xml.sax.saxutils import escape

SELLER_IBAN = "FR7630006000011234567890189"
SELLER_BIC = "AGRIFRPP882"
OTHER_IBAN = "DE89370400440532013000"
CUSTOMER_IBAN = "FR1420041010050500013M02606"
CUSTOMER2_IBAN = "BE68539007547034"


def _e(value: object) -> str:
    return escape(str(value))


@dataclass
class Tx:
    amount: str | None = None
    currency: str = "EUR"
    end_to_end_id: str | None = "NOTPROVIDED"
    acct_svcr_ref: str | None = None
    debtor: str | None = None
    debtor_iban: str | None = None
    ultimate_debtor: str | None = None
    creditor: str | None = None
    creditor_iban: str | None = None
    ustrd: list[str] = field(default_factory=list)
    strd_ref: str | None = None
    referred_doc: str | None = None
    return_reason: str | None = None
    additional: str | None = None

    def render(self, version: int) -> str:
        refs = ""
        if self.acct_svcr_ref or self.end_to_end_id:
            refs = "<Refs>" + (f"<AcctSvcrRef>{_e(self.acct_svcr_ref)}</AcctSvcrRef>" if self.acct_svcr_ref else "")
            refs += (f"<EndToEndId>{_e(self.end_to_end_id)}</EndToEndId>" if self.end_to_end_id else "") + "</Refs>"
        amt = ""
        if self.amount is not None:
            if version >= 3:
                amt = f'<Amt Ccy="{self.currency}">{self.amount}</Amt>'
            else:
                amt = f'<AmtDtls><TxAmt><Amt Ccy="{self.currency}">{self.amount}</Amt></TxAmt></AmtDtls>'

        def party(role: str, name: str | None) -> str:
            if not name:
                return ""
            inner = f"<Nm>{_e(name)}</Nm><PstlAdr><Ctry>FR</Ctry></PstlAdr>"
            return f"<{role}>" + (f"<Pty>{inner}</Pty>" if version >= 8 else inner) + f"</{role}>"

        def account(role: str, iban: str | None) -> str:
            return f"<{role}><Id><IBAN>{iban}</IBAN></Id></{role}>" if iban else ""

        parties = (party("Dbtr", self.debtor) + account("DbtrAcct", self.debtor_iban)
                   + party("UltmtDbtr", self.ultimate_debtor) + party("Cdtr", self.creditor)
                   + account("CdtrAcct", self.creditor_iban))
        rltd = f"<RltdPties>{parties}</RltdPties>" if parties else ""
        rmt = "".join(f"<Ustrd>{_e(u)}</Ustrd>" for u in self.ustrd)
        if self.strd_ref or self.referred_doc:
            rmt += "<Strd>"
            if self.referred_doc:
                rmt += ("<RfrdDocInf><Tp><CdOrPrtry><Cd>CINV</Cd></CdOrPrtry></Tp>"
                        f"<Nb>{_e(self.referred_doc)}</Nb></RfrdDocInf>")
            if self.strd_ref:
                rmt += ("<CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry><Issr>ISO</Issr></Tp>"
                        f"<Ref>{_e(self.strd_ref)}</Ref></CdtrRefInf>")
            rmt += "</Strd>"
        rmt = f"<RmtInf>{rmt}</RmtInf>" if rmt else ""
        rtr = (f"<RtrInf><Rsn><Cd>{self.return_reason}</Cd></Rsn><AddtlInf>RETOUR</AddtlInf></RtrInf>"
               if self.return_reason else "")
        addtl = f"<AddtlTxInf>{_e(self.additional)}</AddtlTxInf>" if self.additional else ""
        return f"<TxDtls>{refs}{amt}{rltd}{rmt}{rtr}{addtl}</TxDtls>"


def tx(amount: str | None = None, **kw: object) -> Tx:
    ustrd = kw.pop("ustrd", None)
    if isinstance(ustrd, str):
        kw["ustrd"] = [ustrd]
    elif ustrd is not None:
        kw["ustrd"] = list(ustrd)  # type: ignore[call-overload]
    return Tx(amount=amount, **kw)  # type: ignore[arg-type]


@dataclass
class Ntry:
    amount: str
    credit: bool = True
    currency: str = "EUR"
    status: str = "BOOK"
    booking: date | None = date(2026, 3, 12)
    value: date | None = None
    acct_svcr_ref: str | None = None
    ntry_ref: str | None = None
    reversal: bool | None = None
    btc: tuple[str, str, str] | None = ("PMNT", "RCDT", "ESCT")
    proprietary_btc: str | None = None
    details: list[Tx] = field(default_factory=list)
    batch: bool = False
    additional: str | None = None

    def render(self, version: int) -> str:
        out = "<Ntry>"
        if self.ntry_ref:
            out += f"<NtryRef>{_e(self.ntry_ref)}</NtryRef>"
        out += f'<Amt Ccy="{self.currency}">{self.amount}</Amt><CdtDbtInd>{"CRDT" if self.credit else "DBIT"}</CdtDbtInd>'
        if self.reversal is not None:
            out += f"<RvslInd>{'true' if self.reversal else 'false'}</RvslInd>"
        out += f"<Sts><Cd>{self.status}</Cd></Sts>" if version >= 8 else f"<Sts>{self.status}</Sts>"
        if self.booking:
            out += f"<BookgDt><Dt>{self.booking.isoformat()}</Dt></BookgDt>"
        value = self.value or self.booking
        if value:
            out += f"<ValDt><Dt>{value.isoformat()}</Dt></ValDt>"
        if self.acct_svcr_ref:
            out += f"<AcctSvcrRef>{_e(self.acct_svcr_ref)}</AcctSvcrRef>"
        if self.btc or self.proprietary_btc:
            out += "<BkTxCd>"
            if self.btc:
                d, f, s = self.btc
                out += f"<Domn><Cd>{d}</Cd><Fmly><Cd>{f}</Cd><SubFmlyCd>{s}</SubFmlyCd></Fmly></Domn>"
            if self.proprietary_btc:
                out += f"<Prtry><Cd>{self.proprietary_btc}</Cd><Issr>CFONB</Issr></Prtry>"
            out += "</BkTxCd>"
        if self.details or self.batch:
            out += "<NtryDtls>"
            if self.batch:
                out += (f"<Btch><NbOfTxs>{len(self.details)}</NbOfTxs>"
                        f'<TtlAmt Ccy="{self.currency}">{self.amount}</TtlAmt>'
                        f"<CdtDbtInd>{'CRDT' if self.credit else 'DBIT'}</CdtDbtInd></Btch>")
            out += "".join(t.render(version) for t in self.details) + "</NtryDtls>"
        if self.additional:
            out += f"<AddtlNtryInf>{_e(self.additional)}</AddtlNtryInf>"
        return out + "</Ntry>"


def ntry(amount: str, *, details: list[Tx] | None = None, **kw: object) -> Ntry:
    """An entry; without an explicit ``acct_svcr_ref`` the bank reference is derived from its content,
    so building the same entry twice (an overlapping statement) gives the same reference."""
    entry = Ntry(amount=amount, details=list(details or []), **kw)  # type: ignore[arg-type]
    if "acct_svcr_ref" not in kw:
        digest = hashlib.sha1(repr(entry).encode()).hexdigest()[:10].upper()
        entry.acct_svcr_ref = f"2026{digest}"
    return entry


def _balance(code: str, amount: Decimal, currency: str, day: date) -> str:
    sign = "CRDT" if amount >= 0 else "DBIT"
    return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{currency}\">{abs(amount):.2f}</Amt>"
            f"<CdtDbtInd>{sign}</CdtDbtInd><Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>")


def _account(iban: str, currency: str, version: int) -> str:
    bic = "BICFI" if version >= 4 else "BIC"
    return (f"<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>{currency}</Ccy><Ownr><Nm>ATELIER LUMIERE SAS</Nm></Ownr>"
            f"<Svcr><FinInstnId><{bic}>{SELLER_BIC}</{bic}></FinInstnId></Svcr></Acct>")


def camt053(entries: list[Ntry], *, version: int = 8, iban: str = SELLER_IBAN, currency: str = "EUR",
            message_id: str = "STMT-20260312-0001", opening: str = "15000.00", day: date = date(2026, 3, 12),
            statements: int = 1) -> bytes:
    """A camt.053 statement (optionally several Stmt of the same entries for multi-statement files)."""
    ns = f"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version:02d}"
    opening_dec = Decimal(opening)
    movement = sum((Decimal(e.amount) * (1 if e.credit else -1) for e in entries if e.status == "BOOK"),
                   Decimal(0))
    closing = opening_dec + movement
    stmts = ""
    for n in range(1, statements + 1):
        stmts += (f"<Stmt><Id>{message_id}-{n}</Id><ElctrncSeqNb>{70 + n}</ElctrncSeqNb>"
                  f"<CreDtTm>{day.isoformat()}T22:00:00</CreDtTm>"
                  f"<FrToDt><FrDtTm>{day.isoformat()}T00:00:00</FrDtTm><ToDtTm>{day.isoformat()}T23:59:59</ToDtTm>"
                  f"</FrToDt>{_account(iban, currency, version)}"
                  f"{_balance('OPBD', opening_dec, currency, day)}{_balance('CLBD', closing, currency, day)}"
                  f"<TxsSummry><TtlNtries><NbOfNtries>{len(entries)}</NbOfNtries></TtlNtries></TxsSummry>"
                  + "".join(e.render(version) for e in entries) + "</Stmt>")
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns}" '
           f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
           f"<BkToCstmrStmt><GrpHdr><MsgId>{_e(message_id)}</MsgId><CreDtTm>{day.isoformat()}T22:00:00</CreDtTm>"
           f"<MsgPgntn><PgNb>1</PgNb><LastPgInd>true</LastPgInd></MsgPgntn></GrpHdr>{stmts}</BkToCstmrStmt>"
           "</Document>\n")
    return xml.encode("utf-8")


def camt054(entries: list[Ntry], *, version: int = 8, iban: str = SELLER_IBAN, currency: str = "EUR",
            message_id: str = "NTFCTN-20260312-0001", day: date = date(2026, 3, 12)) -> bytes:
    """A camt.054 debit/credit notification (no balances)."""
    ns = f"urn:iso:std:iso:20022:tech:xsd:camt.054.001.{version:02d}"
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{ns}">'
           f"<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>{_e(message_id)}</MsgId>"
           f"<CreDtTm>{day.isoformat()}T10:15:00</CreDtTm></GrpHdr>"
           f"<Ntfctn><Id>{_e(message_id)}-1</Id><CreDtTm>{day.isoformat()}T10:15:00</CreDtTm>"
           f"{_account(iban, currency, version)}"
           + "".join(e.render(version) for e in entries) + "</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n")
    return xml.encode("utf-8")


def realistic_day(version: int = 8) -> bytes:
    """A day on a French SME's account: transfers with references, a batch, a return, a debit, a payout."""
    return camt053([
        ntry("1440.00", details=[tx(debtor="BOULANGERIE MARTIN", debtor_iban=CUSTOMER_IBAN,
                                    ustrd="VIR FACTURE F2026-000001", end_to_end_id="E2E-BM-0001")]),
        ntry("2160.00", batch=True, details=[
            tx("1200.00", debtor="TRANSPORTS DUPONT SAS", debtor_iban=CUSTOMER2_IBAN,
               strd_ref="RF82F2026000001", end_to_end_id="E2E-TD-1"),
            tx("960.00", debtor="CAFE DE LA GARE", ustrd=["REGLEMENT FACT F2026 000003", "MERCI"])]),
        ntry("350.00", credit=False, reversal=True, btc=("PMNT", "RCDT", "RRTN"),
             details=[tx(debtor="SARL INCONNUE", return_reason="AC04", ustrd="RETOUR VIREMENT")]),
        ntry("89.90", credit=False, btc=("PMNT", "ICDT", "ESCT"),
             details=[tx(creditor="OVH SAS", creditor_iban=OTHER_IBAN, ustrd="FACTURE OVH 2026-03")]),
        ntry("4821.37", btc=("PMNT", "RCDT", "ESCT"), details=[
            tx(debtor="STRIPE TECHNOLOGY EUROPE LTD", ustrd="STRIPE PAYOUT po_1OxYz2AbCdEfGhIj")]),
        ntry("75.00", status="PDNG", booking=None, details=[tx(debtor="PENDING SARL", ustrd="F2026-000009")]),
    ], version=version)
