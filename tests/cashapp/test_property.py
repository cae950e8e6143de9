"""Property: for random ledgers and random statements made from them (typos in references, merged and split
payments, partial and over-payments, strangers), imported through the services, every allocated amount belongs
to the customer who really paid, no invoice is overpaid, and no cash is lost: for every bank credit, allocated +
unapplied = its amount. Run on the in-memory ledger (many examples) and once on DynamoDB (moto)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain import creditor_reference
from chalicelib.domain.bank_transaction import transaction_id
from chalicelib.domain.money import Money
from chalicelib.services.ports import UnitOfWork
from tests.cashapp.world import World
from tests.unit.bank_samples import camt053, ntry, tx

NAMES = ["Boulangerie Martin SARL", "Transports Dupont SAS", "Cafe de la Gare", "Atelier Bernard",
         "Garage Lefebvre SARL", "Pharmacie Moreau", "Imprimerie Laurent SAS", "Fromagerie Girard EURL"]
NETS = ["100.00", "120.00", "250.00", "480.00", "999.99", "1200.00", "35.50"]
DAY = date(2026, 3, 12)


@dataclass
class Scenario:
    customers: list = field(default_factory=list)
    invoices: dict = field(default_factory=dict)  # customer id -> [Invoice]
    entries: list = field(default_factory=list)
    payer_of: dict = field(default_factory=dict)  # bank transaction key prefix -> customer id or None
    total: int = 0


def _typo(text: str, rnd: random.Random) -> str:
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    if not digits:
        return text
    i = rnd.choice(digits)
    return text[:i] + str((int(text[i]) + rnd.randint(1, 9)) % 10) + text[i + 1:]


def _reference(inv, rnd: random.Random) -> str:
    style = rnd.choice(["number", "rf", "lower", "spaced", "typo", "rf_typo", "none"])
    rf = creditor_reference.for_invoice(inv.number, inv.id)
    return {"number": f"FACT {inv.number}", "rf": rf, "lower": inv.number.lower(),
            "spaced": inv.number.replace("-", " "), "typo": _typo(inv.number, rnd), "rf_typo": _typo(rf, rnd),
            "none": "VIREMENT"}[style]


def _debtor(name: str, rnd: random.Random) -> str:
    return rnd.choice([name.upper(), name.upper().replace(" SARL", "").replace(" SAS", "").replace(" EURL", ""),
                       name, name.upper()[:20]])


def build(world: World, rnd: random.Random) -> Scenario:
    s = Scenario()
    for i, name in enumerate(rnd.sample(NAMES, rnd.randint(2, 6))):
        c = world.customer(name)
        s.customers.append(c)
        s.invoices[c.id] = [world.issued(c.id, rnd.choice(NETS), on=DAY - timedelta(days=rnd.randint(1, 60)))
                            for _ in range(rnd.randint(1, 5))]
        if rnd.random() < 0.4:  # an account seen before
            iban = f"FR76TEST{i:019d}"
            world.ledger.commit(_ref_uow(world, iban, c.id))
            s.invoices[c.id + ":iban"] = iban
    n = 0
    for _ in range(rnd.randint(1, 12)):
        n += 1
        kind = rnd.choice(["single", "single", "merged", "split", "noref", "partial", "over", "stranger"])
        if kind == "stranger":
            amount = Money(rnd.randint(100, 500_000), "EUR")
            s.entries.append(ntry(str(amount), booking=DAY, ntry_ref=f"E{n}", acct_svcr_ref=f"REF{n}",
                                  details=[tx(debtor=f"INCONNU {n}", ustrd=rnd.choice(["DON", "F2026-999999", ""]))]))
            s.payer_of[f"REF{n}"] = None
            s.total += amount.amount
            continue
        customer = rnd.choice(s.customers)
        invs = s.invoices[customer.id]
        iban = s.invoices.get(customer.id + ":iban") if rnd.random() < 0.7 else None
        debtor = _debtor(customer.name, rnd)
        if kind == "merged":
            chosen = rnd.sample(invs, min(len(invs), rnd.randint(2, 3)))
            amount = Money(sum(i.totals.total.amount for i in chosen), "EUR")
            text = " ".join(_reference(i, rnd) for i in chosen)
        else:
            inv = rnd.choice(invs)
            total = inv.totals.total.amount
            amount = Money({"partial": max(1, total // 3), "over": total + 1234, "split": total // 2}.get(kind, total),
                           "EUR")
            text = "VIREMENT" if kind == "noref" else _reference(inv, rnd)
        parts = [amount]
        if kind == "split":
            parts = [amount, Money(inv.totals.total.amount - amount.amount, "EUR")]
        for part in parts:
            if not part.is_positive:
                continue
            n += 1
            s.entries.append(ntry(str(part), booking=DAY, acct_svcr_ref=f"REF{n}",
                                  details=[tx(debtor=debtor, debtor_iban=iban, ustrd=text)]))
            s.payer_of[f"REF{n}"] = customer.id
            s.total += part.amount
    return s


def _ref_uow(world: World, iban: str, customer_id: str) -> UnitOfWork:
    from tests.cashapp.world import CLERK_ACTOR

    uow = UnitOfWork(actor=CLERK_ACTOR, now=world.clock.now())
    uow.put_ref("iban", iban, customer_id, must_not_exist=False)
    return uow


def check(world: World, s: Scenario) -> None:
    body = camt053(s.entries, day=DAY, message_id="PROP")
    report = world.import_statement(body)
    assert report.complete
    received = allocated_or_unapplied = 0
    for entry in report.entries:
        assert entry.status in ("matched", "review", "unmatched"), entry
        payer = s.payer_of[entry.key.split(":")[1]]
        payment = world.ledger.get_payment(entry.payment_id)
        received += entry.amount.amount
        # no cash lost: this credit is entirely allocated or unapplied
        assert payment.amount == entry.amount
        assert payment.allocated + payment.unapplied == payment.amount
        allocated_or_unapplied += payment.allocated.amount + payment.unapplied.amount
        # every allocated amount belongs to the customer who paid
        if payment.allocations:
            assert payment.customer_id == payer, (entry.reason, payer)
            for a in payment.allocations:
                assert world.invoice(a.invoice_id).customer_id == payer
        # the stored bank transaction says the same
        stored = world.bank.get(transaction_id(entry.key))
        assert stored.payment_id == payment.id and stored.status == entry.status
    assert received == allocated_or_unapplied == s.total
    for invoices in (v for k, v in s.invoices.items() if not k.endswith(":iban")):
        for inv in invoices:
            assert not world.invoice(inv.id).amount_due.is_negative
    # importing the same statement again changes nothing
    again = world.import_statement(body)
    assert {e.status for e in again.entries} == {"already_imported"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_property_cash_goes_to_its_payer_and_none_is_lost(rnd):
    world = World()
    check(world, build(world, rnd))


def test_property_once_on_dynamodb(stack):
    """The same property on the DynamoDB ledger (moto): a 16-transfer statement over 4 customers (seed 16)."""
    from chalicelib import wiring

    world = World(ledger=wiring.ledger())
    scenario = build(world, random.Random(16))
    assert len(scenario.entries) == 16
    check(world, scenario)
