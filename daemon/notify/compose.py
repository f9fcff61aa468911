"""Outgoing mail's words: Jinja2 templates rendered per language.

The rendered subject is cleaned here (``clean_header``); ``wire.py`` writes
the mail around it, so everything a customer wrote that reaches a header
passes through one of those two places.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ... import templates as templates_package
from ..addresses import clean_header

# The shipped templates are package data of ``casegate.templates``.
TEMPLATES_DIR = Path(templates_package.__file__).resolve().parent
LANGUAGES = ("zh", "en")


# Mail a customer reads: it gets an HTML part beside the text (their clients
# show text in a proportional font, which breaks aligned columns).
CUSTOMER_TEMPLATES = frozenset({
    "ack", "status_update", "confirm_request", "survey", "followup", "vendor_case_number", "engineer_reply",
    "history",
})


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None = None


class Renderer:
    """Jinja2 templates per language: ``<lang>/<name>.subject.j2``, ``.txt.j2``
    and, for customer mail, an HTML part from the same data.

    An admin's folder (``[templates] dir``) overrides the shipped templates
    file by file. Edits apply without a restart: the loaded templates (and
    those they include) are checked for a changed file at most once every
    ``RECHECK_SECONDS``, and at the first use after ``refresh`` (the
    pipeline calls it as every batch starts, so the next batch's mail uses
    an edited template). Jinja2's own check, a ``stat`` per template and
    include at every use, was 5% of the cost of storing a message.
    """

    RECHECK_SECONDS = 1.0

    def __init__(self, folder: Path = TEMPLATES_DIR, default_language: str = "zh", *,
                 override: Path | None = None, service: dict[str, str] | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(folder))]
        if override is not None:
            loaders.insert(0, jinja2.FileSystemLoader(str(override)))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,  # plain-text mail; the HTML layout escapes explicitly
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,  # checked here, at most once a second (_check_for_edits)
        )
        self.env.globals["service"] = {"name": "", "hotline": "", "address": "", "signature": "", **(service or {})}
        self.default_language = default_language
        self.override = override
        self._override_seen = self._override_signature()
        self._checked_at = time.monotonic()

    def refresh(self) -> None:
        """Look for edited templates at the next use (not only once a second)."""
        self._checked_at = 0.0

    def _check_for_edits(self) -> None:
        """Drop the loaded templates when a file changed (included ones too)."""
        self._follow_override()
        cache = self.env.cache
        if cache is not None and any(not t.is_up_to_date for t in list(cache.values())):
            cache.clear()

    def _template(self, name: str) -> jinja2.Template:
        now = time.monotonic()
        if now - self._checked_at >= self.RECHECK_SECONDS:
            self._checked_at = now
            self._check_for_edits()
        return self.env.get_template(name)

    def _override_signature(self) -> tuple[int, ...]:
        """When a file appears in or leaves the admin's folder, its folders'
        times change (an edited file is caught by Jinja2 itself)."""
        if self.override is None:
            return ()
        out = []
        for folder in (self.override, *(self.override / lang for lang in LANGUAGES)):
            try:
                out.append(folder.stat().st_mtime_ns)
            except OSError:
                out.append(0)
        return tuple(out)

    def _follow_override(self) -> None:
        seen = self._override_signature()
        if seen != self._override_seen:
            self._override_seen = seen
            self.env.cache.clear()  # the next lookup asks the override folder first again

    def language(self, language: str | None) -> str:
        return language if language in LANGUAGES else self.default_language

    def render(self, name: str, language: str | None, **context: object) -> Rendered:
        lang = self.language(language)
        subject = self._template(f"{lang}/{name}.subject.j2").render(**context)
        body = self._template(f"{lang}/{name}.txt.j2").render(**context)
        html = None
        if name in CUSTOMER_TEMPLATES:
            html = self._template(f"{lang}/_layout.html.j2").render(
                **{**context, "subject_line": clean_header(subject, 250), "body_text": body})
        return Rendered(clean_header(subject, 250), body, html)
