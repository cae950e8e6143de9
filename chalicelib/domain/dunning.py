"""Dunning: the reminder ladder as data, and the pure decision "what to do for this invoice now".

Three pieces, all pure (no I/O, no clock: ``now`` is an argument):

- :class:`DunningPolicy`: ordered steps (key, offset from the due date, channels,
  template, tone), per-profile adjustments (steps skipped, offsets shifted, tone and
  channels overridden) and the payer-profile rule. JSON in and out
  (``from_dict`` / ``to_dict``), validated with errors naming the field
  (``steps[2].offset_days``), so it can live in DynamoDB and be edited through the API.
- :func:`decide`: given one invoice's dunning state, the customer's settings, the
  policy, the payer profile and ``now``, say which step is due now and on which
  channels (SMS deferred out of quiet hours and weekends in the customer's time zone),
  or why nothing is sent (paused, stopped, waiting), when to look again
  (``next_action_at``, for a sparse index the sweep queries), and why, in words.
- :func:`plan_messages`: one message per customer and step listing every invoice due
  for that step, instead of one message per invoice.

Calendar: step dates are ``due_date + offset_days`` in the **seller's** time zone, and a
step becomes due at ``policy.send_time`` (local seller time) on that date. SMS are
additionally held back to the customer's allowed hours in the **customer's** zone.

Catch-up and "never twice": a step is identified by its key and each of its channels
is sent at most once (:class:`SentRecord`). The ladder only moves forward: steps at or
before the furthest step already started are never sent again; when several unsent
steps are due at once (after downtime, or when a pause ends), only the latest one is
sent and the older ones are skipped, and a pre-due step (courtesy notice) is never
sent once the invoice is late.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ValidationError
from .fields import reject_unknown
from .money import Money
from .payer_profile import (CHRONIC_LATE, DEFAULT_PROFILE_RULE, NEW, OCCASIONAL_LATE, PROFILES, RELIABLE,
                            PayerProfile, ProfileRule, PromiseToPay, ladder_profile)

# -- vocabulary ---------------------------------------------------------------------------------
EMAIL, SMS, CALL_TASK, LETTER = "email", "sms", "call_task", "letter"
CHANNELS = (EMAIL, SMS, CALL_TASK, LETTER)
# What an opt-out of automatic reminders keeps: work for a collector, nothing sent to the customer.
INTERNAL_CHANNELS = (CALL_TASK,)

COURTESY, FRIENDLY, FIRM, FORMAL = "courtesy", "friendly", "firm", "formal"
TONES = (COURTESY, FRIENDLY, FIRM, FORMAL)  # from softest to hardest

ADJUSTABLE_PROFILES = (RELIABLE, OCCASIONAL_LATE, CHRONIC_LATE)  # "new" uses the occasional ladder

# Decision outcomes.
SEND, DEFERRED, WAIT, PAUSED, STOPPED, COMPLETED = "send", "deferred", "wait", "paused", "stopped", "completed"
OUTCOMES = (SEND, DEFERRED, WAIT, PAUSED, STOPPED, COMPLETED)

# Pause reasons (the invoice stays open, nothing is sent while any holds).
DISPUTE_OPEN, CHARGEBACK_OPEN, PROMISE_ACTIVE, COLLECTION_PENDING = (
    "dispute_open", "chargeback_open", "promise_to_pay_active", "collection_pending")
# Stop reasons (nothing more will ever be sent for this invoice unless it reopens).
STOP_PAID, STOP_VOID, STOP_UNCOLLECTIBLE, STOP_NOT_ISSUED, STOP_NO_DUE_DATE = (
    "paid", "void", "uncollectible", "not_issued", "no_due_date")

# Invoice side fields (Invoice.dispute_status / Invoice.collection_status) this module reads.
DISPUTE_STATUSES = ("none", "open", "accepted", "rejected")
# A SEPA debit scheduled or in flight replaces reminders (its pre-notification already told
# the customer); "failed" / "canceled" / "none" let dunning run.
PAUSING_COLLECTION_STATUSES = ("scheduled", "pending", "processing")

MIN_OFFSET, MAX_OFFSET = -90, 365
MAX_SHIFT = 60
MAX_STEPS = 12
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TEMPLATE = re.compile(r"^[a-z0-9][a-z0-9_./-]{0,99}$")
_UTC = timezone.utc


# -- small parsers ------------------------------------------------------------------------------

def _int(value: Any, name: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number", field=name)
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}", field=name)
    return value


def _slug(value: Any, name: str, what: str = "a key") -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise ValidationError(f"{name} must be {what} of lowercase letters, digits, '_' or '-' (at most 64), such "
                              "as \"firm_reminder\"", field=name)
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false", field=name)
    return value


def _channels(value: Any, name: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise ValidationError(f"{name} must be a{'' if allow_empty else ' non-empty'} list of channels among "
                              f"{', '.join(CHANNELS)}", field=name)
    out: list[str] = []
    for i, c in enumerate(value):
        if c not in CHANNELS:
            raise ValidationError(f"{name}[{i}] {c!r} is not a known channel: use one of {', '.join(CHANNELS)}",
                                  field=f"{name}[{i}]")
        if c in out:
            raise ValidationError(f"{name}[{i}]: channel {c} is listed twice", field=f"{name}[{i}]")
        out.append(c)
    return tuple(out)


def _hhmm(value: Any, name: str) -> time:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not re.match(r"^\d{2}:\d{2}$", value):
        raise ValidationError(f"{name} must be a local time \"HH:MM\" such as \"09:00\"", field=name)
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{name} {value!r} is not a valid time \"HH:MM\"", field=name) from None


def _tz(value: Any, name: str) -> str:
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a name too long for a file
        raise ValidationError(f"{name} {str(value)[:64]!r} is not an IANA time zone such as \"Europe/Paris\"",
                              field=name) from None
    return value


def _text(value: Any, name: str, *, max_len: int) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    if len(value) > max_len:
        raise ValidationError(f"{name} must be at most {max_len} characters", field=name)
    return value.strip()


def _signed(n: int) -> str:
    return f"+{n}" if n >= 0 else str(n)


# -- the policy ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DunningStep:
    key: str
    offset_days: int                 # from the due date; negative = before
    channels: tuple[str, ...]
    template: str
    tone: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "offset_days": self.offset_days, "channels": list(self.channels),
                "template": self.template, "tone": self.tone}

    @classmethod
    def from_dict(cls, data: Any, prefix: str) -> DunningStep:
        if not isinstance(data, Mapping):
            raise ValidationError(f"{prefix.rstrip('.')} must be an object", field=prefix.rstrip("."))
        reject_unknown(data, ("key", "offset_days", "channels", "template", "tone"), prefix)
        template = data.get("template")
        if not isinstance(template, str) or not _TEMPLATE.match(template):
            raise ValidationError(f"{prefix}template must name a template (lowercase letters, digits, '_', '-', "
                                  "'.', '/'), such as \"firm_reminder\"", field=prefix + "template")
        tone = data.get("tone")
        if tone not in TONES:
            raise ValidationError(f"{prefix}tone must be one of {', '.join(TONES)}", field=prefix + "tone")
        return cls(key=_slug(data.get("key"), prefix + "key"),
                   offset_days=_int(data.get("offset_days"), prefix + "offset_days", minimum=MIN_OFFSET,
                                    maximum=MAX_OFFSET),
                   channels=_channels(data.get("channels"), prefix + "channels"), template=template, tone=tone)


@dataclass(frozen=True, slots=True)
class ProfileAdjustment:
    """How one payer profile's ladder differs from the policy's steps."""

    skip: tuple[str, ...] = ()
    shift_days: tuple[tuple[str, int], ...] = ()
    tones: tuple[tuple[str, str], ...] = ()
    channels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def shift_for(self, key: str) -> int:
        return dict(self.shift_days).get(key, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"skip": list(self.skip), "shift_days": dict(self.shift_days), "tone": dict(self.tones),
                "channels": {k: list(v) for k, v in self.channels}}

    @classmethod
    def from_dict(cls, data: Any, prefix: str) -> ProfileAdjustment:
        if not isinstance(data, Mapping):
            raise ValidationError(f"{prefix.rstrip('.')} must be an object", field=prefix.rstrip("."))
        reject_unknown(data, ("skip", "shift_days", "tone", "channels"), prefix)
        skip = data.get("skip") or []
        if not isinstance(skip, list):
            raise ValidationError(f"{prefix}skip must be a list of step keys", field=prefix + "skip")
        shifts = data.get("shift_days") or {}
        tones = data.get("tone") or {}
        chans = data.get("channels") or {}
        for name, value in (("shift_days", shifts), ("tone", tones), ("channels", chans)):
            if not isinstance(value, Mapping):
                raise ValidationError(f"{prefix}{name} must be an object keyed by step key", field=prefix + name)
        for key, tone in tones.items():
            if tone not in TONES:
                raise ValidationError(f"{prefix}tone.{key} must be one of {', '.join(TONES)}",
                                      field=f"{prefix}tone.{key}")
        return cls(
            skip=tuple(_slug(k, f"{prefix}skip[{i}]") for i, k in enumerate(skip)),
            shift_days=tuple((k, _int(v, f"{prefix}shift_days.{k}", minimum=-MAX_SHIFT, maximum=MAX_SHIFT))
                             for k, v in shifts.items()),
            tones=tuple(tones.items()),
            channels=tuple((k, _channels(v, f"{prefix}channels.{k}")) for k, v in chans.items()),
        )


@dataclass(frozen=True, slots=True)
class EffectiveStep:
    """A step as it applies to one profile (and, through :func:`customer_ladder`, one customer)."""

    key: str
    index: int                       # position in the policy's steps
    offset_days: int
    base_offset_days: int
    shift_days: int
    channels: tuple[str, ...]
    template: str
    tone: str
    base_tone: str
    notes: tuple[str, ...] = ()      # why channels/tone/offset differ from the policy's step

    def date_for(self, due_date: date) -> date:
        return due_date + timedelta(days=self.offset_days)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "offset_days": self.offset_days, "base_offset_days": self.base_offset_days,
                "shift_days": self.shift_days, "channels": list(self.channels), "template": self.template,
                "tone": self.tone, "base_tone": self.base_tone, "notes": list(self.notes)}


@dataclass(frozen=True, slots=True)
class DunningPolicy:
    id: str
    name: str
    steps: tuple[DunningStep, ...]
    adjustments: tuple[tuple[str, ProfileAdjustment], ...] = ()
    profile_rule: ProfileRule = DEFAULT_PROFILE_RULE
    send_time: time = time(9, 0)     # seller-local time a step becomes due on its date
    version: int = 0

    def __post_init__(self) -> None:
        self._check()

    # -- validation (runs for every construction: from JSON or in code) --------------------------
    def _check(self) -> None:
        _slug(self.id, "id", "an id")
        if not isinstance(self.name, str) or not 1 <= len(self.name.strip()) <= 100:
            raise ValidationError("name must be a text of 1 to 100 characters", field="name")
        if not self.steps:
            raise ValidationError("steps must list at least one step", field="steps")
        if len(self.steps) > MAX_STEPS:
            raise ValidationError(f"a policy has at most {MAX_STEPS} steps", field="steps")
        seen: set[str] = set()
        for i, step in enumerate(self.steps):
            p = f"steps[{i}]."
            if step.key in seen:
                raise ValidationError(f"{p}key {step.key!r} is used twice: step keys must be unique", field=p + "key")
            seen.add(step.key)
            if not MIN_OFFSET <= step.offset_days <= MAX_OFFSET:
                raise ValidationError(f"{p}offset_days must be between {MIN_OFFSET} and {MAX_OFFSET}",
                                      field=p + "offset_days")
            if i and step.offset_days <= self.steps[i - 1].offset_days:
                raise ValidationError(
                    f"{p}offset_days ({step.offset_days}) must be greater than the previous step's "
                    f"({self.steps[i - 1].key}: {self.steps[i - 1].offset_days}): steps are listed in order, "
                    "one per day at most", field=p + "offset_days")
            if not step.channels:
                raise ValidationError(f"{p}channels must not be empty", field=p + "channels")
        profiles = [p for p, _ in self.adjustments]
        for profile in profiles:
            if profile == NEW:
                raise ValidationError("profile_adjustments.new is not allowed: new customers use the "
                                      f"{OCCASIONAL_LATE} ladder", field="profile_adjustments.new")
            if profile not in ADJUSTABLE_PROFILES:
                raise ValidationError(f"profile_adjustments.{profile}: unknown profile, use one of "
                                      f"{', '.join(ADJUSTABLE_PROFILES)}", field=f"profile_adjustments.{profile}")
        if len(set(profiles)) != len(profiles):
            raise ValidationError("profile_adjustments lists a profile twice", field="profile_adjustments")
        for profile, adj in self.adjustments:
            p = f"profile_adjustments.{profile}."
            for i, key in enumerate(adj.skip):
                if key not in seen:
                    raise ValidationError(f"{p}skip[{i}]: no step {key!r} in this policy", field=f"{p}skip[{i}]")
            for name, pairs in (("shift_days", adj.shift_days), ("tone", adj.tones), ("channels", adj.channels)):
                for key, value in pairs:
                    if key not in seen:
                        raise ValidationError(f"{p}{name}.{key}: no step {key!r} in this policy",
                                              field=f"{p}{name}.{key}")
                    if key in adj.skip:
                        raise ValidationError(f"{p}{name}.{key}: step {key!r} is skipped for {profile}, "
                                              "adjusting it has no effect", field=f"{p}{name}.{key}")
            ladder = self.ladder(profile)
            if not ladder:
                raise ValidationError(f"{p}skip removes every step: keep at least one", field=p + "skip")
            for prev, eff in zip(ladder, ladder[1:]):
                if eff.offset_days <= prev.offset_days:
                    raise ValidationError(
                        f"{p}shift_days.{eff.key}: for {profile}, {eff.key} would fall on day "
                        f"{_signed(eff.offset_days)}, not after {prev.key} (day {_signed(prev.offset_days)}): "
                        "shifts must keep the steps in order", field=f"{p}shift_days.{eff.key}")
            for eff in ladder:
                if not MIN_OFFSET <= eff.offset_days <= MAX_OFFSET:
                    raise ValidationError(f"{p}shift_days.{eff.key}: the shifted offset {eff.offset_days} is out of "
                                          f"range {MIN_OFFSET}..{MAX_OFFSET}", field=f"{p}shift_days.{eff.key}")

    # -- derived ----------------------------------------------------------------------------------
    def adjustment(self, profile: str) -> ProfileAdjustment:
        return dict(self.adjustments).get(ladder_profile(profile), ProfileAdjustment())

    def ladder(self, profile: str) -> tuple[EffectiveStep, ...]:
        """The steps of ``profile`` (``new`` -> occasional_late), with its skips, shifts and overrides."""
        lp = ladder_profile(profile)
        adj = dict(self.adjustments).get(lp, ProfileAdjustment())
        tones, chans = dict(adj.tones), dict(adj.channels)
        out = []
        for i, s in enumerate(self.steps):
            if s.key in adj.skip:
                continue
            shift = adj.shift_for(s.key)
            notes = []
            if shift:
                notes.append(f"offset shifted {_signed(shift)} days for {lp} payers "
                             f"(day {_signed(s.offset_days)} -> {_signed(s.offset_days + shift)})")
            tone = tones.get(s.key, s.tone)
            if tone != s.tone:
                notes.append(f"tone {s.tone} -> {tone} for {lp} payers")
            channels = chans.get(s.key, s.channels)
            if channels != s.channels:
                notes.append(f"channels {', '.join(s.channels)} -> {', '.join(channels)} for {lp} payers")
            out.append(EffectiveStep(key=s.key, index=i, offset_days=s.offset_days + shift,
                                     base_offset_days=s.offset_days, shift_days=shift, channels=channels,
                                     template=s.template, tone=tone, base_tone=s.tone, notes=tuple(notes)))
        return tuple(out)

    def skipped_for(self, profile: str) -> tuple[str, ...]:
        return self.adjustment(profile).skip

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "send_time": self.send_time.strftime("%H:%M"),
                "steps": [s.to_dict() for s in self.steps],
                "profile_adjustments": {p: a.to_dict() for p, a in self.adjustments},
                "profile_rule": self.profile_rule.to_dict(), "version": self.version}

    @classmethod
    def from_dict(cls, data: Any) -> DunningPolicy:
        """Validate a policy from JSON (API body or stored item). Raises ValidationError naming the field."""
        if not isinstance(data, Mapping):
            raise ValidationError("a dunning policy must be a JSON object", field=None)
        reject_unknown(data, ("id", "name", "send_time", "steps", "profile_adjustments", "profile_rule", "version"))
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            raise ValidationError("steps must be a non-empty list of {key, offset_days, channels, template, tone}",
                                  field="steps")
        if len(steps) > MAX_STEPS:
            raise ValidationError(f"a policy has at most {MAX_STEPS} steps", field="steps")
        adjustments = data.get("profile_adjustments") or {}
        if not isinstance(adjustments, Mapping):
            raise ValidationError("profile_adjustments must be an object keyed by profile "
                                  f"({', '.join(ADJUSTABLE_PROFILES)})", field="profile_adjustments")
        version = data.get("version", 0)
        name = data.get("name")
        if not isinstance(name, str):
            raise ValidationError("name is required (a text of 1 to 100 characters)", field="name")
        return cls(
            id=_slug(data.get("id"), "id", "an id"), name=name.strip(),
            steps=tuple(DunningStep.from_dict(s, f"steps[{i}].") for i, s in enumerate(steps)),
            adjustments=tuple((str(p), ProfileAdjustment.from_dict(a, f"profile_adjustments.{p}."))
                              for p, a in adjustments.items()),
            profile_rule=ProfileRule.from_dict(data.get("profile_rule")),
            send_time=_hhmm(data.get("send_time", "09:00"), "send_time"),
            version=_int(version, "version", minimum=0, maximum=2**31),
        )


DEFAULT_POLICY = DunningPolicy(
    id="default",
    name="Default (courtesy -5, friendly +1, firm +10, call +20, formal notice +30)",
    steps=(
        DunningStep("courtesy_notice", -5, (EMAIL,), "courtesy_notice", COURTESY),
        DunningStep("friendly_reminder", 1, (EMAIL,), "friendly_reminder", FRIENDLY),
        DunningStep("firm_reminder", 10, (EMAIL, SMS), "firm_reminder", FIRM),
        DunningStep("call_task", 20, (CALL_TASK,), "call_task", FIRM),
        # The letter is the PDF "mise en demeure" (principal, penalties to date, 40 EUR indemnity
        # per invoice), attached to the email; posted instead where email is not allowed.
        DunningStep("formal_notice", 30, (EMAIL, LETTER), "formal_notice", FORMAL),
    ),
    adjustments=(
        # Fewer, softer touches: no pre-due nudge, the firm step later, friendlier and by email only.
        (RELIABLE, ProfileAdjustment(skip=("courtesy_notice",),
                                     shift_days=(("firm_reminder", 5), ("call_task", 5)),
                                     tones=(("firm_reminder", FRIENDLY),),
                                     channels=(("firm_reminder", (EMAIL,)),))),
        # Firm step earlier (day 5) and the phone call sooner (day 12).
        (CHRONIC_LATE, ProfileAdjustment(shift_days=(("firm_reminder", -5), ("call_task", -8)))),
    ),
)


# -- customer settings --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CustomerDunningSettings:
    """Per-customer dunning settings. Quiet hours are local times in ``timezone``.

    SMS are sent only from ``quiet_end`` to ``quiet_start`` (e.g. 08:00-20:00), and not on
    Saturdays and Sundays unless ``sms_on_weekends``. ``opt_out`` stops every automatic
    message (email, SMS, letter) but keeps call tasks, so the invoice stays on the
    collectors' list.
    """

    customer_id: str
    policy_id: str = "default"
    channels_allowed: tuple[str, ...] = CHANNELS
    timezone: str = "Europe/Paris"
    language: str = "fr"
    contact_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    quiet_start: time = time(20, 0)
    quiet_end: time = time(8, 0)
    sms_on_weekends: bool = False
    opt_out: bool = False

    EDITABLE = ("policy_id", "channels_allowed", "timezone", "language", "contact_name", "contact_email",
                "contact_phone", "quiet_start", "quiet_end", "sms_on_weekends", "opt_out")

    @classmethod
    def from_customer(cls, customer: Any, **overrides: Any) -> CustomerDunningSettings:
        """Defaults from a :class:`~chalicelib.domain.parties.Customer` (email, phone, zone, language)."""
        base: dict[str, Any] = {"customer_id": customer.id, "timezone": customer.timezone,
                                "language": customer.language, "contact_name": customer.name,
                                "contact_email": customer.email, "contact_phone": customer.phone}
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "policy_id": self.policy_id,
                "channels_allowed": list(self.channels_allowed), "timezone": self.timezone,
                "language": self.language, "contact_name": self.contact_name, "contact_email": self.contact_email,
                "contact_phone": self.contact_phone, "quiet_start": self.quiet_start.strftime("%H:%M"),
                "quiet_end": self.quiet_end.strftime("%H:%M"), "sms_on_weekends": self.sms_on_weekends,
                "opt_out": self.opt_out}

    @classmethod
    def from_dict(cls, data: Any, *, customer_id: str | None = None,
                  base: CustomerDunningSettings | None = None) -> CustomerDunningSettings:
        """Validate settings from JSON; fields absent from ``data`` keep ``base``'s values (merge-patch)."""
        if not isinstance(data, Mapping):
            raise ValidationError("dunning settings must be a JSON object", field=None)
        reject_unknown(data, (*cls.EDITABLE, "customer_id"))
        cid = customer_id or data.get("customer_id") or (base.customer_id if base else None)
        if not isinstance(cid, str) or not cid:
            raise ValidationError("customer_id is required", field="customer_id")
        current = base or cls(customer_id=cid)

        def get(key: str) -> Any:
            return data[key] if key in data else getattr(current, key)

        language = get("language")
        if language not in ("fr", "en"):
            raise ValidationError("language must be one of fr, en", field="language")
        return cls(
            customer_id=cid,
            policy_id=_slug(get("policy_id"), "policy_id", "a policy id"),
            channels_allowed=_channels(get("channels_allowed"), "channels_allowed", allow_empty=True),
            timezone=_tz(get("timezone"), "timezone"), language=language,
            contact_name=_text(get("contact_name"), "contact_name", max_len=200),
            contact_email=_text(get("contact_email"), "contact_email", max_len=254),
            contact_phone=_text(get("contact_phone"), "contact_phone", max_len=40),
            quiet_start=_hhmm(get("quiet_start"), "quiet_start"), quiet_end=_hhmm(get("quiet_end"), "quiet_end"),
            sms_on_weekends=_bool(get("sms_on_weekends"), "sms_on_weekends"),
            opt_out=_bool(get("opt_out"), "opt_out"),
        )


def customer_ladder(policy: DunningPolicy, profile: str,
                    settings: CustomerDunningSettings) -> tuple[EffectiveStep, ...]:
    """The profile's ladder with the customer's channel rules applied (for the API and :func:`decide`).

    Steps left without any channel stay in the ladder with ``channels == ()`` and a note
    saying why; they are never due.
    """
    out = []
    for step in policy.ladder(profile):
        kept: list[str] = []
        notes = list(step.notes)
        for c in step.channels:
            if settings.opt_out and c not in INTERNAL_CHANNELS:
                notes.append(f"{c} suppressed: the customer opted out of automatic reminders (call tasks kept)")
            elif c not in settings.channels_allowed:
                notes.append(f"{c} not sent: not among the customer's allowed channels")
            elif c == SMS and not settings.contact_phone:
                notes.append("sms not sent: no phone number for the customer")
            elif c == EMAIL and not settings.contact_email:
                notes.append("email not sent: no email address for the customer")
            else:
                kept.append(c)
        out.append(replace(step, channels=tuple(kept), notes=tuple(notes)))
    return tuple(out)


# -- SMS quiet hours ----------------------------------------------------------------------------

def _local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant at wall time ``at`` on ``day`` in ``tz``: the first of the two when the clock goes
    back; when the clock jumps over that wall time (spring forward), the wall time read with the
    offset in force before the jump, i.e. pushed forward by the jump (02:30 -> 03:30 in Paris)."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(_UTC).astimezone(tz)


def sms_allowed_at(instant: datetime, settings: CustomerDunningSettings) -> bool:
    local = instant.astimezone(ZoneInfo(settings.timezone))
    if not settings.sms_on_weekends and local.weekday() >= 5:
        return False
    start, end, t = settings.quiet_start, settings.quiet_end, local.time().replace(tzinfo=None)
    if start == end:
        return True
    if start > end:   # quiet across midnight, e.g. 20:00-08:00
        return end <= t < start
    return not start <= t < end


def next_sms_time(now: datetime, settings: CustomerDunningSettings) -> datetime:
    """``now`` if an SMS may be sent now, else the first allowed instant after it (aware, UTC)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if sms_allowed_at(now, settings):
        return now.astimezone(_UTC)
    tz = ZoneInfo(settings.timezone)
    local_day = now.astimezone(tz).date()
    candidates = []
    for d in range(0, 9):
        day = local_day + timedelta(days=d)
        for at in (settings.quiet_end, time(0, 0)):
            instant = _local_instant(day, at, tz)
            if instant > now and sms_allowed_at(instant, settings):
                candidates.append(instant)
    if not candidates:  # cannot happen with at least one allowed weekday; refuse loudly rather than loop
        raise ValidationError("the customer's quiet hours leave no time to send an SMS", field="quiet_start")
    return min(candidates).astimezone(_UTC)


def _describe_quiet(settings: CustomerDunningSettings) -> str:
    window = ("" if settings.quiet_start == settings.quiet_end
              else f"quiet hours {settings.quiet_start:%H:%M}-{settings.quiet_end:%H:%M}")
    weekend = "" if settings.sms_on_weekends else "no SMS on weekends"
    return " and ".join(x for x in (window, weekend) if x) + f" ({settings.timezone})"


# -- invoice state ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SentRecord:
    """One channel of one step actually sent (provider message id recorded, or task created)."""

    step_key: str
    channel: str
    sent_at: datetime
    message_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"step_key": self.step_key, "channel": self.channel, "sent_at": self.sent_at.isoformat(),
                "message_id": self.message_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SentRecord:
        return cls(step_key=d["step_key"], channel=d["channel"], sent_at=datetime.fromisoformat(d["sent_at"]),
                   message_id=d.get("message_id"))


@dataclass(frozen=True, slots=True)
class InvoiceDunningState:
    """What :func:`decide` needs to know about one invoice."""

    invoice_id: str
    customer_id: str
    status: str
    due_date: date | None
    amount_due: Money
    number: str | None = None
    issue_date: date | None = None
    sent: tuple[SentRecord, ...] = ()
    dispute_status: str = "none"
    chargeback_open: bool = False
    collection_status: str = "none"
    promises: tuple[PromiseToPay, ...] = ()
    overdue_event_emitted: bool = False

    @classmethod
    def from_invoice(cls, invoice: Any, *, sent: Iterable[SentRecord] = (), promises: Iterable[PromiseToPay] = (),
                     chargeback_open: bool = False, overdue_event_emitted: bool = False) -> InvoiceDunningState:
        """Build from a :class:`~chalicelib.domain.invoice.Invoice` plus the dunning records kept beside it.

        A chargeback counts as open when ``chargeback_open`` is passed or the invoice's
        ``chargeback_status`` (where the invoice carries one) is ``open``.
        """
        chargeback = chargeback_open or getattr(invoice, "chargeback_status", "none") == "open"
        return cls(invoice_id=invoice.id, customer_id=invoice.customer_id, status=invoice.status,
                   due_date=invoice.due_date, amount_due=invoice.amount_due, number=invoice.number,
                   issue_date=invoice.issue_date, sent=tuple(sent), dispute_status=invoice.dispute_status or "none",
                   chargeback_open=chargeback, collection_status=invoice.collection_status or "none",
                   promises=tuple(promises), overdue_event_emitted=overdue_event_emitted)


# -- the decision -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DeferredChannel:
    channel: str
    not_before: datetime     # aware, UTC
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "not_before": self.not_before.isoformat(), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class SkippedStep:
    key: str
    channels: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "channels": list(self.channels), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class DunningDecision:
    """What to do now for one invoice, when to look again, and why.

    ``next_action_at`` assumes the sweep performs ``channels_now`` (and records them);
    None means "nothing scheduled": remove the invoice from the next-action index until
    an event (payment reversed, dispute rejected, collection failed, settings or policy
    changed) makes the caller decide again.
    """

    invoice_id: str
    customer_id: str
    outcome: str
    today: date                              # seller-local date the decision was taken for
    profile: str
    step: EffectiveStep | None = None
    step_date: date | None = None
    channels_now: tuple[str, ...] = ()
    deferred: tuple[DeferredChannel, ...] = ()
    skipped: tuple[SkippedStep, ...] = ()
    pause_reasons: tuple[str, ...] = ()
    stop_reason: str | None = None
    next_action_at: datetime | None = None   # aware, UTC
    next_action_on: date | None = None       # the same, as a seller-local date
    emit_overdue_event: bool = False
    on_collector_list: bool = False
    explanation: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice_id, "customer_id": self.customer_id, "outcome": self.outcome,
                "today": self.today.isoformat(), "profile": self.profile,
                "step": self.step.to_dict() if self.step else None,
                "step_date": self.step_date.isoformat() if self.step_date else None,
                "channels_now": list(self.channels_now), "deferred": [d.to_dict() for d in self.deferred],
                "skipped": [s.to_dict() for s in self.skipped], "pause_reasons": list(self.pause_reasons),
                "stop_reason": self.stop_reason,
                "next_action_at": self.next_action_at.isoformat() if self.next_action_at else None,
                "next_action_on": self.next_action_on.isoformat() if self.next_action_on else None,
                "emit_overdue_event": self.emit_overdue_event, "on_collector_list": self.on_collector_list,
                "explanation": list(self.explanation)}


def _pauses(state: InvoiceDunningState, today: date, now: datetime,
            resume_at: Any) -> tuple[list[str], list[str], date | None]:
    """(pause reasons, explanation lines, last day of an active promise).

    A promise holds the ladder until ``resume_at(promised_date + 1 day)`` (the policy's send
    time on the day after), so a broken promise resumes during business hours, not at midnight.
    """
    reasons, lines = [], []
    if state.dispute_status == "open":
        reasons.append(DISPUTE_OPEN)
        lines.append("paused: a dispute is open on this invoice (resumes if it is rejected)")
    elif state.dispute_status == "rejected":
        lines.append("the dispute on this invoice was rejected: dunning resumed")
    if state.chargeback_open:
        reasons.append(CHARGEBACK_OPEN)
        lines.append("paused: a chargeback is open on a payment of this invoice")
    if state.collection_status in PAUSING_COLLECTION_STATUSES:
        reasons.append(COLLECTION_PENDING)
        lines.append(f"paused: a SEPA collection is {state.collection_status} (its pre-notification replaces "
                     "reminders; resumes if it fails)")
    elif state.collection_status == "failed":
        lines.append("the SEPA collection failed: dunning resumed")
    active = [p for p in state.promises
              if p.made_on <= today and now < resume_at(p.promised_date + timedelta(days=1))]
    promise_end = max((p.promised_date for p in active), default=None)
    if promise_end is not None:
        reasons.append(PROMISE_ACTIVE)
        lines.append(f"paused: promise to pay by {promise_end.isoformat()} (resumes the next day if still unpaid)")
    expired = [p for p in state.promises if p not in active and p.promised_date < today]
    if promise_end is None and expired:
        last = max(expired, key=lambda p: p.promised_date)
        lines.append(f"promise to pay of {last.amount} {last.amount.currency} by {last.promised_date.isoformat()} "
                     f"expired with {state.amount_due} {state.amount_due.currency} still due: dunning resumed")
    return reasons, lines, promise_end


def decide(state: InvoiceDunningState, settings: CustomerDunningSettings, policy: DunningPolicy,
           profile: PayerProfile | str, *, now: datetime, seller_timezone: str = "Europe/Paris") -> DunningDecision:
    """The next dunning action for one invoice at ``now`` (aware datetime).

    Never raises on business states (paid, paused, nothing due): those are outcomes.
    Raises ValueError if ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    stz = ZoneInfo(seller_timezone)
    today = now.astimezone(stz).date()
    prof = profile.profile if isinstance(profile, PayerProfile) else profile
    if prof not in PROFILES:
        raise ValidationError(f"profile must be one of {', '.join(PROFILES)}", field="profile")
    base: dict[str, Any] = {"invoice_id": state.invoice_id, "customer_id": state.customer_id, "today": today,
                            "profile": prof}

    def at(day: date, when: time = policy.send_time) -> datetime:
        return _local_instant(day, when, stz).astimezone(_UTC)

    def stopped(reason: str, line: str) -> DunningDecision:
        return DunningDecision(outcome=STOPPED, stop_reason=reason, explanation=(line,), **base)

    if state.status == "draft":
        return stopped(STOP_NOT_ISSUED, "stopped: the invoice is a draft, nothing to chase")
    if state.status == "void":
        return stopped(STOP_VOID, "stopped: the invoice is void")
    if state.status == "uncollectible":
        return stopped(STOP_UNCOLLECTIBLE, "stopped: the invoice was written off as uncollectible")
    if state.status == "paid" or state.amount_due.amount <= 0:
        return stopped(STOP_PAID, "stopped: the invoice is paid in full")
    if state.due_date is None:
        return stopped(STOP_NO_DUE_DATE, "stopped: the invoice has no due date")

    due = state.due_date
    overdue = today > due
    emit_overdue = overdue and not state.overdue_event_emitted
    # The overdue event is emitted from the start of the first late day (seller time).
    overdue_at = None if (overdue or state.overdue_event_emitted) else at(due + timedelta(days=1), time(0, 0))
    lines: list[str] = []
    if isinstance(profile, PayerProfile):
        lines.append(f"payer profile {prof}: {profile.explanation}")
    else:
        lines.append(f"payer profile {prof}")
    lp = ladder_profile(prof)
    skipped_by_profile = policy.skipped_for(prof)
    lines.append(f"ladder of policy {policy.id!r} for {lp} payers"
                 + (f" (skips {', '.join(skipped_by_profile)})" if skipped_by_profile else "")
                 + ": " + ", ".join(f"{s.key} day {_signed(s.offset_days)}" for s in policy.ladder(prof)))
    if settings.opt_out:
        lines.append("the customer opted out of automatic reminders: only call tasks are created, the invoice "
                     "stays on the collectors' list")

    pause_reasons, pause_lines, promise_end = _pauses(state, today, now, at)
    lines.extend(pause_lines)

    def finish(outcome: str, candidates: list[datetime], **kw: Any) -> DunningDecision:
        nxt = min(candidates) if candidates else None
        if nxt is not None:
            lines.append(f"next action: {nxt.astimezone(stz):%Y-%m-%d %H:%M} ({seller_timezone})")
        else:
            lines.append("no further automatic action scheduled")
        return DunningDecision(outcome=outcome, next_action_at=nxt,
                               next_action_on=nxt.astimezone(stz).date() if nxt else None,
                               emit_overdue_event=emit_overdue, on_collector_list=overdue,
                               explanation=tuple(lines), **kw, **base)

    if pause_reasons:
        wake = [at(promise_end + timedelta(days=1))] if promise_end is not None else []
        if overdue_at:
            wake.append(overdue_at)
        return finish(PAUSED, wake, pause_reasons=tuple(pause_reasons))

    ladder = customer_ladder(policy, prof, settings)
    by_key = {s.key: i for i, s in enumerate(policy.steps)}
    sent_channels: dict[str, set[str]] = {}
    unknown_last: date | None = None
    for r in state.sent:
        if r.step_key in by_key:
            sent_channels.setdefault(r.step_key, set()).add(r.channel)
        else:
            d = r.sent_at.astimezone(stz).date()
            unknown_last = d if unknown_last is None or d > unknown_last else unknown_last
    furthest = max((by_key[k] for k in sent_channels), default=-1)

    skipped: list[SkippedStep] = []
    due_now: list[tuple[EffectiveStep, tuple[str, ...], date]] = []
    future: list[datetime] = []
    for step in ladder:
        remaining = tuple(c for c in step.channels if c not in sent_channels.get(step.key, set()))
        if step.index < furthest or not remaining:
            continue
        step_date = step.date_for(due)
        when = at(step_date)
        if unknown_last is not None and step_date <= unknown_last:
            continue  # a step of an older version of the policy already went out on or after that date
        if when > now:
            future.append(when)
            continue
        if step.offset_days < 0 and overdue:
            skipped.append(SkippedStep(step.key, remaining, f"stale: {step.key} was due before the due date and "
                                                            "the invoice is already late"))
            continue
        if state.issue_date is not None and step_date < state.issue_date:
            skipped.append(SkippedStep(step.key, remaining, f"{step.key} fell on {step_date.isoformat()}, before the "
                                                            f"invoice was issued ({state.issue_date.isoformat()})"))
            continue
        due_now.append((step, remaining, step_date))

    candidates = list(future)
    if overdue_at:
        candidates.append(overdue_at)
    if not due_now:
        for s in skipped:
            lines.append(f"skipped {s.key}: {s.reason}")
        upcoming = next((s for s in ladder if s.channels and at(s.date_for(due)) in future), None)
        if upcoming is not None:
            lines.append(_step_line(upcoming, due, policy, seller_timezone, "next step"))
        return finish(WAIT if future else COMPLETED, candidates, skipped=tuple(skipped))

    step, remaining, step_date = due_now[-1]
    for older, rem, _ in due_now[:-1]:
        skipped.append(SkippedStep(older.key, rem, f"superseded: catching up, {step.key} is the step that applies "
                                                   f"on {today.isoformat()}"))
    for s in skipped:
        lines.append(f"skipped {s.key}: {s.reason}")
    lines.append(_step_line(step, due, policy, seller_timezone, "step due"))
    now_channels: list[str] = []
    deferred: list[DeferredChannel] = []
    for c in remaining:
        if c == SMS:
            when = next_sms_time(now, settings)
            if when > now:
                reason = (f"outside the customer's SMS hours: {_describe_quiet(settings)}; deferred to "
                          f"{when.astimezone(ZoneInfo(settings.timezone)):%a %Y-%m-%d %H:%M} customer time")
                deferred.append(DeferredChannel(SMS, when, reason))
                lines.append(f"sms {reason}")
                candidates.append(when)
                continue
        now_channels.append(c)
    if now_channels:
        lines.append(f"send now: {', '.join(now_channels)}")
    return finish(SEND if now_channels else DEFERRED, candidates, step=step, step_date=step_date,
                  channels_now=tuple(now_channels), deferred=tuple(deferred), skipped=tuple(skipped))


def _step_line(step: EffectiveStep, due: date, policy: DunningPolicy, tz: str, label: str) -> str:
    d = step.date_for(due)
    line = (f"{label}: {step.key} ({step.tone}, template {step.template}) on day {_signed(step.offset_days)} "
            f"from the due date {due.isoformat()} = {d.isoformat()} {policy.send_time:%H:%M} ({tz})")
    if step.notes:
        line += "; " + "; ".join(step.notes)
    return line


# -- grouping -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlanLine:
    invoice_id: str
    number: str | None
    due_date: date | None
    amount_due: Money
    days_overdue: int
    pay_link: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice_id, "number": self.number,
                "due_date": self.due_date.isoformat() if self.due_date else None,
                "amount_due": str(self.amount_due), "currency": self.amount_due.currency,
                "days_overdue": self.days_overdue, "pay_link": self.pay_link}


@dataclass(frozen=True, slots=True)
class MessagePlan:
    """One message (or one call task) for one customer and one step, listing every invoice."""

    plan_id: str                     # deterministic: same invoices, step and channels -> same id
    customer_id: str
    step_key: str
    template: str
    tone: str
    language: str
    channels: tuple[str, ...]
    invoices: tuple[PlanLine, ...]
    totals: tuple[Money, ...]        # one per currency, sorted by currency

    def to_dict(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "customer_id": self.customer_id, "step_key": self.step_key,
                "template": self.template, "tone": self.tone, "language": self.language,
                "channels": list(self.channels), "invoices": [i.to_dict() for i in self.invoices],
                "totals": [{"amount": str(m), "currency": m.currency} for m in self.totals]}


def plan_messages(settings: CustomerDunningSettings,
                  items: Iterable[tuple[InvoiceDunningState, DunningDecision]], *,
                  pay_links: Mapping[str, str] | None = None,
                  max_invoices_per_message: int = 50) -> list[MessagePlan]:
    """Group one customer's invoices due for the same step (same template, tone and channels
    now) into one plan each, invoices sorted by due date then number. Only ``send`` decisions
    count. Groups larger than ``max_invoices_per_message`` are split (each part keeps its own
    ``plan_id``), which also bounds how many claims one message needs in a transaction.
    """
    if max_invoices_per_message < 1:
        raise ValueError("max_invoices_per_message must be at least 1")
    links = pay_links or {}
    groups: dict[tuple[str, str, str, tuple[str, ...]], list[PlanLine]] = {}
    for state, decision in items:
        if state.customer_id != settings.customer_id or decision.customer_id != settings.customer_id:
            raise ValidationError(f"invoice {state.invoice_id} belongs to customer {state.customer_id}, not "
                                  f"{settings.customer_id}: group one customer at a time", field="customer_id")
        if decision.invoice_id != state.invoice_id:
            raise ValidationError(f"decision for {decision.invoice_id} paired with invoice {state.invoice_id}",
                                  field="invoice_id")
        if decision.outcome != SEND or decision.step is None or not decision.channels_now:
            continue
        key = (decision.step.key, decision.step.template, decision.step.tone, decision.channels_now)
        days = (decision.today - state.due_date).days if state.due_date else 0
        groups.setdefault(key, []).append(PlanLine(
            invoice_id=state.invoice_id, number=state.number, due_date=state.due_date, amount_due=state.amount_due,
            days_overdue=max(0, days), pay_link=links.get(state.invoice_id)))
    plans = []
    for (step_key, template, tone, channels), lines in sorted(groups.items()):
        lines.sort(key=lambda x: (x.due_date or date.min, x.number or "", x.invoice_id))
        for start in range(0, len(lines), max_invoices_per_message):
            part = tuple(lines[start:start + max_invoices_per_message])
            totals: dict[str, int] = {}
            for line in part:
                totals[line.amount_due.currency] = totals.get(line.amount_due.currency, 0) + line.amount_due.amount
            digest = hashlib.sha256("|".join(sorted(x.invoice_id for x in part)).encode()).hexdigest()[:16]
            plans.append(MessagePlan(
                plan_id=f"{settings.customer_id}:{step_key}:{'+'.join(channels)}:{digest}",
                customer_id=settings.customer_id, step_key=step_key, template=template, tone=tone,
                language=settings.language, channels=channels, invoices=part,
                totals=tuple(Money(v, c) for c, v in sorted(totals.items()))))
    return plans
