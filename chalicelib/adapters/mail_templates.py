"""Emails rendered from Jinja2 files (chalicelib/templates/mail/<lang>/<name>.{subject.txt,txt,html}).

Each message has three files per language: the subject (one line), the plain
text and the HTML alternative. Templates get a ``f`` formatter (Babel money and
dates in the message's language, from ``adapters/html.py``) and the context
the caller passes. Jinja2 and Babel are imported on the first message, never at
import time (the API's cold start).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

MAIL_DIR = Path(__file__).resolve().parents[1] / "templates" / "mail"
LANGUAGES = ("fr", "en")


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(MAIL_DIR)),
                              autoescape=jinja2.select_autoescape(enabled_extensions=("html",),
                                                                  default_for_string=False),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render_mail(name: str, lang: str, **context: Any) -> tuple[str, str, str]:
    """(subject, text, html) of message ``name`` in ``lang`` (French when the language is unknown)."""
    from .html import Formatter

    lang = lang if lang in LANGUAGES else "fr"
    env = environment()
    values = {"f": Formatter(lang), "lang": lang, **context}
    subject = " ".join(env.get_template(f"{lang}/{name}.subject.txt").render(**values).split())
    text = env.get_template(f"{lang}/{name}.txt").render(**values)
    html = env.get_template(f"{lang}/{name}.html").render(**values)
    return subject, text, html
