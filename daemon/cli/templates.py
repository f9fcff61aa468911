"""`casegate templates check [DIR]` and `casegate templates preview NAME`.

``check`` renders every template in every language with sample data and
with every optional value missing (daemon/notify/template_check.py) and
prints ``file:line: problem`` for each; non-zero exit when there is one.
``preview`` prints a mail as its reader would get it, from sample data or
from a real case.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..notify.settings import TemplatesConfig
from ..notify.template_check import VARIABLES, check_templates, sample_context
from .common import EX_DATAERR, EX_NOTFOUND, EX_OK, AddCommand, app_of, case_or_say, config_of


def cmd_templates_check(args: argparse.Namespace) -> int:
    if args.dir:
        folder: Path | None = Path(args.dir)
    else:
        config = config_of(args)
        looks = TemplatesConfig.from_config(config)
        folder = config.resolve(looks.dir) if looks.dir else None
    if folder is not None and not folder.is_dir():
        print(f"casegate: {folder}: not a folder", file=sys.stderr)
        return EX_NOTFOUND
    problems = check_templates(folder)
    for problem in problems:
        print(problem)
    where = f"{folder} over the shipped set" if folder is not None else "the shipped set"
    print(f"{'ok' if not problems else f'{len(problems)} problem(s)'}: templates of {where}", file=sys.stderr)
    return EX_DATAERR if problems else EX_OK


def cmd_templates_preview(args: argparse.Namespace) -> int:
    app = app_of(args)
    context = sample_context()
    lang = args.lang
    if args.case:
        with app.db.session() as s:
            case = case_or_say(s, args.case)
            if case is None:
                return EX_NOTFOUND
            lang = lang or case.language
            context.update(app.notifier.case_fields(case, app.notifier.renderer.language(lang)))
            rendered = app.notifier.renderer.render(args.name, lang, **context)
    else:
        rendered = app.notifier.renderer.render(args.name, lang, **context)
    print(f"Subject: {rendered.subject}\n")
    print(rendered.html if args.html and rendered.html is not None else rendered.text)
    return EX_OK


def register(add: AddCommand) -> None:
    tp = add("templates", help="check or preview the mail templates").add_subparsers(dest="t_cmd", required=True)
    tc = tp.add_parser("check", help="render every template with sample data; file:line for each problem")
    tc.add_argument("dir", nargs="?", help="an override folder (default: [templates] dir)")
    tc.set_defaults(func=cmd_templates_check)
    tpv = tp.add_parser("preview", help="a mail as the customer would get it")
    tpv.add_argument("name", help=f"e.g. ack, status_update (variables: {len(VARIABLES)} documented)")
    tpv.add_argument("--lang", choices=("zh", "en"))
    tpv.add_argument("--case", help="use a real case's facts")
    tpv.add_argument("--html", action="store_true", help="print the HTML part")
    tpv.set_defaults(func=cmd_templates_preview)

