"""Seller profile: the identity, bank details and legal terms printed on every invoice."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any, Mapping

from ..domain.auth import Actor
from ..domain.errors import Conflict, NotFound
from ..domain.parties import SellerProfile, seller_from_input
from .common import diff
from .ports import Clock, Ledger, SettingsDoc, UnitOfWork

SELLER = "seller"
NO_SELLER_MESSAGE = ("the seller profile is not configured: an admin must PUT /settings/seller with the legal "
                     "name, SIREN, VAT number, address and bank details first")


class SettingsService:
    """Reads and replaces the seller profile.

    The profile is cached in memory for ``ttl_s`` seconds: it is read by every
    invoice view (time zone) and issue, and changes a few times a year. A
    change reaches other running functions within that delay.
    """

    def __init__(self, ledger: Ledger, clock: Clock, ttl_s: float = 30.0) -> None:
        self._ledger = ledger
        self._clock = clock
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, SellerProfile] | None = None

    def seller(self) -> SellerProfile:
        """The current profile; raises ``NotFound`` (code seller_not_configured) if never set."""
        with self._lock:
            cached = self._cached
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        doc = self._ledger.get_settings(SELLER)
        if doc is None:
            raise NotFound(NO_SELLER_MESSAGE, code="seller_not_configured")
        profile = seller_from_input(doc.data, version=doc.version)
        with self._lock:
            self._cached = (time.monotonic(), profile)
        return profile

    def seller_or_none(self) -> SellerProfile | None:
        try:
            return self.seller()
        except NotFound:
            return None

    def put_seller(self, data: Mapping[str, Any], actor: Actor, expected_version: int | None = None) -> SellerProfile:
        """Replace the profile as a whole (validated); optimistic on ``expected_version`` when given."""
        profile = seller_from_input(data)
        now = self._clock.now()
        current = self._ledger.get_settings(SELLER)
        if expected_version is not None and (current.version if current else 0) != expected_version:
            raise Conflict(f"the seller profile is at version {current.version if current else 0}, not "
                           f"{expected_version}: read it again and reapply your change", code="version_mismatch")
        stored = profile.to_dict()
        stored.pop("version")
        uow = UnitOfWork(actor=actor, now=now)
        doc = SettingsDoc(name=SELLER, data=stored, updated_at=now, version=current.version if current else 0)
        saved = uow.save(doc) if current else uow.create(doc)
        before, after = diff(current.data if current else None, stored)
        uow.audit("settings.seller.update", "settings", SELLER, before, after)
        self._ledger.commit(uow)
        profile = replace(profile, version=saved.version)
        with self._lock:
            self._cached = (time.monotonic(), profile)
        return profile

    def timezone(self) -> str:
        profile = self.seller_or_none()
        return profile.timezone if profile else "Europe/Paris"
