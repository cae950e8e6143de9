"""Dunning configuration as data: policies, reference rates, customer settings, payer profiles.

Everything lives in settings documents of the ledger table (one read each, cached by the
sweep for its run):

- ``dunning.policies``: every policy by id (the shipped :data:`DEFAULT_POLICY` when absent),
  edited by admins through the API, validated with errors naming the field;
- ``dunning.rates``: the late-payment reference rates (ECB MRO and legal rate per half-year).
  Default: the shipped tables with ``carry_forward`` on, so a half-year missing from the table
  (2026-H2 today) uses the last known rate and every amount computed with it is flagged
  ``provisional`` until an admin adds the half-year;
- ``dunning.customer.<id>``: a customer's overrides of the defaults taken from the customer
  (policy, channels, contact, language, quiet hours, opt-out) and the cached payer profile.

A *snapshot* (settings + profile) is copied onto each of the customer's open dunning records so
the sweep reads one item per due step; it is refreshed (fan-out) when the settings, the
customer's contact details or the profile change.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from ..domain.auth import Actor
from ..domain.dunning import (DEFAULT_POLICY, CustomerDunningSettings, DunningPolicy)
from ..domain.dunning_record import DunningRecord
from ..domain.errors import Conflict, NotFound, ValidationError
from ..domain.invoice import PAID
from ..domain.parties import Customer
from ..domain.payer_profile import BROKEN, KEPT, PaidInvoiceRecord, PayerProfile, PromiseRecord, derive_profile
from ..domain.penalties import DEFAULT_REFERENCE_RATES, ReferenceRates
from .common import diff, with_retries
from .ports import Clock, InvoiceQuery, Ledger, SettingsDoc, UnitOfWork

POLICIES = "dunning.policies"
RATES = "dunning.rates"
PROFILE_MAX_AGE = timedelta(days=7)     # a cached profile older than this is recomputed on first use
HISTORY_LIMIT = 500                     # paid invoices read to derive a profile (the most recent)
TOUCHES_PER_COMMIT = 100


def customer_doc(customer_id: str) -> str:
    return f"dunning.customer.{customer_id}"


# Shipped rates: the compiled tables, carried forward (flagged provisional) past their last half-year.
SHIPPED_RATES = dataclasses.replace(DEFAULT_REFERENCE_RATES, carry_forward=True)


class DunningConfig:
    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock

    # -- policies -------------------------------------------------------------------------------
    def policies(self) -> dict[str, DunningPolicy]:
        doc = self._ledger.get_settings(POLICIES)
        out = {DEFAULT_POLICY.id: DEFAULT_POLICY}
        if doc is not None:
            for pid, raw in (doc.data.get("policies") or {}).items():
                out[pid] = DunningPolicy.from_dict(raw)
        return out

    def policy(self, policy_id: str) -> DunningPolicy:
        try:
            return self.policies()[policy_id]
        except KeyError:
            raise NotFound(f"dunning policy {policy_id} does not exist", code="policy_not_found") from None

    def put_policy(self, policy_id: str, data: Mapping[str, Any], actor: Actor) -> DunningPolicy:
        """Create or replace a policy; refuses an unknown template with the field that names it.
        Every open invoice is re-decided afterwards (a ``dunning.rewake`` outbox message)."""
        from ..adapters.dunning_templates import LANGUAGES, resolve_template

        if not isinstance(data, Mapping):
            raise ValidationError("a dunning policy must be a JSON object")
        if "id" in data and data["id"] != policy_id:
            raise ValidationError(f"id {data['id']!r} differs from the policy in the path ({policy_id})", field="id")
        expected = _expected_version(data)
        policy = DunningPolicy.from_dict({**data, "id": policy_id})
        for i, step in enumerate(policy.steps):
            if set(step.channels) & {"email", "sms", "letter"}:
                for lang in LANGUAGES:
                    try:
                        resolve_template(step.template, step.tone, lang)
                    except LookupError:
                        raise ValidationError(f"steps[{i}].template {step.template!r} has no {lang} template: use "
                                              "courtesy_notice, friendly_reminder, firm_reminder or formal_notice, "
                                              "or add the template files", field=f"steps[{i}].template") from None

        def run() -> DunningPolicy:
            doc = self._ledger.get_settings(POLICIES)
            stored = dict((doc.data.get("policies") or {}) if doc else {})
            previous = stored.get(policy_id)
            version = int(previous.get("version", 0)) + 1 if previous else 1
            saved = dataclasses.replace(policy, version=version)
            if expected is not None and previous and expected != int(previous.get("version", 0)):
                raise Conflict(f"policy {policy_id} is at version {previous.get('version')}, not {data['version']}: "
                               "read it again and reapply your change", code="version_mismatch")
            stored[policy_id] = saved.to_dict()
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            new_doc = SettingsDoc(name=POLICIES, data={"policies": stored}, updated_at=uow.now,
                                  version=doc.version if doc else 0)
            uow.save(new_doc) if doc else uow.create(new_doc)
            b, a = diff(previous, saved.to_dict())
            uow.audit("dunning.policy.put", "dunning_policy", policy_id, b, a)
            uow.emit("dunning.rewake", {"reason": f"policy {policy_id} changed"})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    def delete_policy(self, policy_id: str, actor: Actor) -> None:
        if policy_id == DEFAULT_POLICY.id:
            raise Conflict("the default policy cannot be deleted (customers without a policy use it): "
                           "change it with PUT instead", code="default_policy")

        def run() -> None:
            doc = self._ledger.get_settings(POLICIES)
            stored = dict((doc.data.get("policies") or {}) if doc else {})
            if doc is None or policy_id not in stored:
                raise NotFound(f"dunning policy {policy_id} does not exist", code="policy_not_found")
            previous = stored.pop(policy_id)
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            uow.save(SettingsDoc(name=POLICIES, data={"policies": stored}, updated_at=uow.now, version=doc.version))
            uow.audit("dunning.policy.delete", "dunning_policy", policy_id, previous, None)
            uow.emit("dunning.rewake", {"reason": f"policy {policy_id} deleted"})
            self._ledger.commit(uow)

        with_retries(run)

    # -- reference rates --------------------------------------------------------------------------
    def rates(self) -> ReferenceRates:
        doc = self._ledger.get_settings(RATES)
        return ReferenceRates.from_dict(doc.data) if doc is not None else SHIPPED_RATES

    def rates_view(self) -> dict[str, Any]:
        doc = self._ledger.get_settings(RATES)
        rates = self.rates()
        today = self._clock.now().date()
        from ..domain.penalties import half_year

        current = half_year(today)
        missing = [name for name, table in (("ecb_mro", rates.ecb_mro), ("legal_rate", rates.legal_rate))
                   if current not in dict(table)]
        return {**rates.to_dict(), "configured": doc is not None, "version": doc.version if doc else 0,
                "current_half_year": current, "missing_for_current_half_year": missing,
                "provisional": bool(missing) and rates.carry_forward,
                "note": (f"{current} is not in the table: the last known rate is carried forward and amounts are "
                         f"flagged provisional until an admin adds {current} (PUT /dunning/rates)")
                if missing and rates.carry_forward else None}

    def put_rates(self, data: Mapping[str, Any], actor: Actor) -> ReferenceRates:
        if not isinstance(data, Mapping):
            raise ValidationError("the reference rates must be a JSON object")
        expected = _expected_version(data)
        payload = {k: v for k, v in data.items() if k != "version"}
        rates = ReferenceRates.from_dict(payload)

        def run() -> ReferenceRates:
            doc = self._ledger.get_settings(RATES)
            if expected is not None and expected != (doc.version if doc else 0):
                raise Conflict("the reference rates changed since you read them: read them again",
                               code="version_mismatch")
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            new_doc = SettingsDoc(name=RATES, data=rates.to_dict(), updated_at=uow.now, version=doc.version if doc else 0)
            uow.save(new_doc) if doc else uow.create(new_doc)
            b, a = diff(doc.data if doc else None, rates.to_dict())
            uow.audit("dunning.rates.put", "settings", RATES, b, a)
            self._ledger.commit(uow)
            return rates

        return with_retries(run)

    # -- customer settings ----------------------------------------------------------------------
    def customer_settings(self, customer: Customer, doc: SettingsDoc | None = None,
                          *, load: bool = True) -> CustomerDunningSettings:
        if load and doc is None:
            doc = self._ledger.get_settings(customer_doc(customer.id))
        overrides = (doc.data.get("settings") or {}) if doc else {}
        return CustomerDunningSettings.from_dict(overrides, base=CustomerDunningSettings.from_customer(customer))

    def put_customer_settings(self, customer_id: str, data: Mapping[str, Any], actor: Actor) -> CustomerDunningSettings:
        """Merge-patch the customer's overrides (``null`` resets a field to the customer's default)."""
        customer = self._ledger.get_customer(customer_id)
        if not isinstance(data, Mapping):
            raise ValidationError("dunning settings must be a JSON object")
        policy_id = data.get("policy_id")
        if policy_id is not None and (not isinstance(policy_id, str) or not policy_id):
            raise ValidationError("policy_id must be the id of a dunning policy (a string such as \"default\"), or "
                                  "null to use the default", field="policy_id")
        if policy_id is not None and policy_id not in self.policies():
            raise ValidationError(f"policy_id {data['policy_id']!r} is not a dunning policy: create it first "
                                  "(PUT /dunning/policies/{id}) or use \"default\"", field="policy_id")
        for name in ("contact_phone", "contact_email"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ValidationError(f"{name} must be a string, or null to use the customer's", field=name)
        if data.get("contact_phone"):
            from ..domain.identifiers import phone

            data = {**data, "contact_phone": phone(str(data["contact_phone"]), customer.country, "contact_phone")}
        if data.get("contact_email"):
            from ..domain.identifiers import email

            data = {**data, "contact_email": email(str(data["contact_email"]))}

        def run() -> CustomerDunningSettings:
            doc = self._ledger.get_settings(customer_doc(customer_id))
            current = dict((doc.data.get("settings") or {}) if doc else {})
            merged = {**current, **{k: v for k, v in data.items() if v is not None}}
            for k, v in data.items():
                if v is None:
                    merged.pop(k, None)
            merged.pop("customer_id", None)
            settings = CustomerDunningSettings.from_dict(merged, base=CustomerDunningSettings.from_customer(customer))
            # Store the overrides in their canonical form (lists, "HH:MM").
            canonical = {k: settings.to_dict()[k] for k in merged}
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            data_out = {**(doc.data if doc else {}), "settings": canonical}
            new_doc = SettingsDoc(name=customer_doc(customer_id), data=data_out, updated_at=uow.now,
                                  version=doc.version if doc else 0)
            uow.save(new_doc) if doc else uow.create(new_doc)
            b, a = diff({"settings": current}, {"settings": canonical})
            uow.audit("dunning.customer_settings", "customer", customer_id, b, a)
            uow.activity(customer_id, "settings", "dunning settings changed", data={"changed": sorted(a or {})})
            self._ledger.commit(uow)
            return settings

        return with_retries(run)

    # -- payer profile ----------------------------------------------------------------------------
    def compute_profile(self, customer_id: str, today: date, policy: DunningPolicy, tz: str) -> PayerProfile:
        """Derive the profile from the customer's paid invoices and resolved promises (reads their history)."""
        zone = ZoneInfo(tz)
        paid: list[PaidInvoiceRecord] = []
        cursor = None
        while len(paid) < HISTORY_LIMIT:
            page = self._ledger.query_invoices(InvoiceQuery(customer_id=customer_id, status=PAID, limit=200,
                                                            cursor=cursor), today)
            for inv in page.items:
                if inv.due_date is None or inv.paid_at is None or inv.kind == "credit_note":
                    continue
                paid.append(PaidInvoiceRecord(due_date=inv.due_date, paid_on=inv.paid_at.astimezone(zone).date(),
                                              amount=inv.totals.payable, invoice_id=inv.id))
            cursor = page.next_cursor
            if not cursor:
                break
        promises = []
        for p in self._ledger.list_promises(customer_id=customer_id, limit=200).items:
            if p.status in (KEPT, BROKEN):
                promises.append(PromiseRecord(promised_date=p.promised_on, outcome=p.status))
        return derive_profile(paid, promises, today=today, rule=policy.profile_rule)

    def snapshot(self, customer_id: str, today: date, tz: str, *, refresh_profile: bool = False,
                 actor: Actor | None = None) -> dict[str, Any]:
        """Settings + profile of a customer, as copied onto its dunning records.

        Reads the customer and its settings document; derives the profile from history only
        when the cached one is missing, older than a week, or ``refresh_profile``.
        """
        customer = self._ledger.get_customer(customer_id)
        doc = self._ledger.get_settings(customer_doc(customer_id))
        settings = self.customer_settings(customer, doc, load=False)
        policies = self.policies()
        policy = policies.get(settings.policy_id, DEFAULT_POLICY)
        cached = (doc.data.get("profile") if doc else None) or None
        fresh = (cached is not None and not refresh_profile
                 and date.fromisoformat(cached["on"]) >= today - PROFILE_MAX_AGE
                 and date.fromisoformat(cached["on"]) <= today)
        if fresh:
            profile = cached
        else:
            derived = self.compute_profile(customer_id, today, policy, tz)
            profile = {"profile": derived.profile, "reasons": list(derived.reasons), "on": today.isoformat(),
                       "metrics": derived.metrics.to_dict()}
            self._store_profile(customer_id, profile, actor or Actor.system("dunning"))
        return {"settings": settings.to_dict(), "profile": profile["profile"],
                "profile_reasons": list(profile.get("reasons") or ()), "profile_on": profile["on"],
                "customer_name": customer.name,
                "policy_id": settings.policy_id if settings.policy_id in policies else DEFAULT_POLICY.id}

    def _store_profile(self, customer_id: str, profile: dict[str, Any], actor: Actor) -> None:
        def run() -> None:
            doc = self._ledger.get_settings(customer_doc(customer_id))
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            new_doc = SettingsDoc(name=customer_doc(customer_id), data={**(doc.data if doc else {}), "profile": profile},
                                  updated_at=uow.now, version=doc.version if doc else 0)
            uow.save(new_doc) if doc else uow.create(new_doc)
            self._ledger.commit(uow)

        try:
            with_retries(run, max_attempts=5)
        except Exception:  # noqa: BLE001 - a cache write: the profile was computed and is used anyway
            pass

    def resync_customer(self, customer_id: str, today: date, tz: str, *, refresh_profile: bool = False,
                        actor: Actor | None = None) -> int:
        """Copy the current snapshot onto the customer's open records whose copy differs, waking them
        (their next action is re-decided by the next sweep). Returns how many records changed."""
        actor = actor or Actor.system("dunning")
        snap = self.snapshot(customer_id, today, tz, refresh_profile=refresh_profile, actor=actor)
        changed = 0
        cursor = None
        while True:
            page = self._ledger.dunning_for_customer(customer_id, active_only=True, limit=200, cursor=cursor)
            stale = [r for r in page.items if not same_snapshot(r, snap)]
            for start in range(0, len(stale), TOUCHES_PER_COMMIT):
                uow = UnitOfWork(actor=actor, now=self._clock.now())
                for r in stale[start:start + TOUCHES_PER_COMMIT]:
                    uow.touch_dunning(r.invoice_id, r.customer_id, customer=snap, wake=True)
                self._ledger.commit(uow)  # touches carry no condition: they never conflict
                changed += len(stale[start:start + TOUCHES_PER_COMMIT])
            cursor = page.next_cursor
            if not cursor:
                return changed


def same_snapshot(record: DunningRecord, snap: Mapping[str, Any]) -> bool:
    """Whether the record's copy says the same (the profile's computation date does not matter)."""
    mine = record.customer or {}
    keys = ("settings", "profile", "policy_id", "customer_name")
    return all(mine.get(k) == snap.get(k) for k in keys)


def local_now(now: datetime, tz: str) -> datetime:
    return now.astimezone(ZoneInfo(tz))


def _expected_version(data: Mapping[str, Any]) -> int | None:
    """The ``version`` a client read (optimistic locking); absent or null: no check."""
    value = data.get("version")
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10 ** 12:
        raise ValidationError("version must be the whole number you read (e.g. 3), or left out to overwrite",
                              field="version")
    return value
