"""`casegate fax test FILE.eml ...`: how a gateway's mail would be read as a fax.

For each file: the sender address, the gateway and the patterns that
recognised it (and what each matched where), the sender's number in E.164
(with what the gateway wrote and where it was found), the pages, which part
is the fax image, and whether it would be a fax in a fax source and in an
ordinary mailbox (there only from ``[fax] gateway_senders``). ``--ocr``
also reads the pages, as the daemon would. Needs no database. Exit 65 when a
file cannot be read or parsed (the others are still shown).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import phonenumbers

from ..config import ConfigError
from ..fax.config import load_fax_config
from ..fax.intake import FaxExplanation, FaxIntake, FaxText, build_fax_intake
from .common import EX_DATAERR, EX_OK, AddCommand, config_of, for_terminal, no_traceback
from ...parsers import ParseError, parse_message
from ...parsers.fax import FaxHit


def _hit_text(hit: FaxHit) -> str:
    return f"{hit.pattern}: {hit.where} {hit.text!r}"


def as_dict(label: str, ex: FaxExplanation, region: str, text: FaxText | None) -> dict[str, Any]:
    rec = ex.recognition
    info = rec.info
    out: dict[str, Any] = {
        "input": label,
        "sender": ex.sender,
        "recognised": info is not None,
        "gateway": info.gateway if info else None,
        "patterns": list(rec.patterns),
        "number": info.sender_number if info else None,
        "raw_number": info.raw_sender if info else None,
        "number_from": (
            {"pattern": rec.number_hit.pattern, "where": rec.number_hit.where, "text": rec.number_hit.text}
            if rec.number_hit else None
        ),
        "default_region": region,
        "sub_address": rec.sub_address,
        "pages": ex.pages,
        "pages_stated": info.pages if info else None,
        "received_at": info.received_at.isoformat() if info and info.received_at else None,
        "fax_documents": [
            {"part": doc.part, "filename": doc.attachment.filename, "content_type": doc.attachment.content_type,
             "size": doc.attachment.size, "pages": pages, "why": doc.why}
            for doc, pages in ex.documents
        ],
        "matched": [{"pattern": h.pattern, "where": h.where, "text": h.text, "values": dict(h.values)}
                    for h in rec.hits],
        "in_fax_source": {"fax": ex.in_fax_source.fax, "why": ex.in_fax_source.why},
        "in_mailbox": {"fax": ex.in_mailbox.fax, "why": ex.in_mailbox.why},
    }
    if text is not None:
        out["ocr"] = {"pages_read": text.pages, "text": text.text, "not_read": text.not_read,
                      "seconds": text.seconds}
    return out


def format_explanation(label: str, ex: FaxExplanation, region: str, text: FaxText | None) -> str:
    rec = ex.recognition
    info = rec.info
    lines = [label, f"  sender:            {ex.sender or '(none)'}"]
    if info is None:
        lines.append("  recognised:        no: no fax pattern matched")
    else:
        lines.append(f"  gateway:           {info.gateway} (patterns: {', '.join(rec.patterns)})")
        if info.sender_number:
            hit = rec.number_hit
            where = f", from the {hit.where}, pattern {hit.pattern}" if hit else ""
            lines.append(f"  number:            {info.sender_number} (written {info.raw_sender!r}{where})")
        elif info.raw_sender:
            lines.append(f"  number:            none: {info.raw_sender!r} is no number in E.164 "
                         f"(default region {region})")
        else:
            lines.append("  number:            none given")
        if rec.sub_address:
            lines.append(f"  sub-address:       {rec.sub_address} (T.33, RFC 3192)")
        if info.received_at:
            lines.append(f"  received:          {info.received_at.isoformat()}")
    if ex.pages is None:
        lines.append("  pages:             unknown")
    else:
        how = "as the gateway states" if info is not None and info.pages is not None else "counted in the documents"
        lines.append(f"  pages:             {ex.pages} ({how})")
    if not ex.documents:
        lines.append("  fax image:         none (no TIFF or PDF part)")
    for i, (doc, pages) in enumerate(ex.documents):
        att = doc.attachment
        part = f"part {doc.part} " if doc.part is not None else ""
        count = f", {pages} page(s)" if pages is not None else ", pages unreadable"
        lines.append(f"  {'fax image:' if i == 0 else '':<19}{part}{att.filename!r} {att.content_type}, "
                     f"{att.size} bytes{count}: {doc.why}")
    for i, hit in enumerate(rec.hits):
        lines.append(f"  {'matched:' if i == 0 else '':<19}{_hit_text(hit)}")
    for name, verdict in (("in a fax source:", ex.in_fax_source), ("in a mailbox:", ex.in_mailbox)):
        lines.append(f"  {name:<19}{'fax' if verdict.fax else 'e-mail'} ({verdict.why})")
    if text is not None:
        state = f"{text.pages} page(s) read in {text.seconds:.1f} s"
        if text.not_read:
            state += f"; not read: {text.not_read}"
        lines.append(f"  OCR:               {state}")
        lines += [f"    | {line}" for line in text.text.splitlines() if line.strip()]
    # Subjects, addresses, file names and OCR text came in with mail.
    return "\n".join(for_terminal(line, keep_tabs=True) for line in lines)


@no_traceback
def cmd_fax_test(args: argparse.Namespace) -> int:
    config = config_of(args)
    cfg = load_fax_config(config)
    if args.region:
        region = args.region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"--region: unknown region {args.region!r} (e.g. \"CN\")")
        cfg = replace(cfg, default_region=region)
    intake: FaxIntake = build_fax_intake(config, cfg)
    status = EX_OK
    outputs = []
    for item in args.files:
        path = Path(item)
        try:
            raw = sys.stdin.buffer.read() if item == "-" else path.read_bytes()
        except OSError as exc:  # bad input: said, and the other files go on
            print(f"casegate: {for_terminal(item)}: {for_terminal(exc.strerror or exc)}", file=sys.stderr)
            status = EX_DATAERR
            continue
        try:
            parsed = parse_message(raw)
        except ParseError as exc:
            print(f"casegate: {for_terminal(item)}: cannot parse: {for_terminal(exc.reason)}", file=sys.stderr)
            status = EX_DATAERR
            continue
        explanation = intake.explain(parsed, raw)
        text = intake.read([doc.attachment for doc, _ in explanation.documents]) if args.ocr else None
        if args.json:
            outputs.append(as_dict(item, explanation, cfg.default_region, text))
        else:
            print(format_explanation(item, explanation, cfg.default_region, text))
    if args.json:
        print(json.dumps(outputs, ensure_ascii=False, indent=2))
    return status


def register(add: AddCommand) -> None:
    fax = add("fax", help="try fax recognition on gateway mails").add_subparsers(dest="fax_cmd", required=True)
    ft = fax.add_parser("test", help="what a gateway mail is read as: gateway, number, pages, the fax image")
    ft.add_argument("files", nargs="+", help="message files (.eml), or - for standard input")
    ft.add_argument("--json", action="store_true")
    ft.add_argument("--ocr", action="store_true", help="also read the pages (tesseract), as the daemon would")
    ft.add_argument("--region", help="default region for numbers without a country code (default: [fax] default_region)")
    ft.set_defaults(func=cmd_fax_test)
