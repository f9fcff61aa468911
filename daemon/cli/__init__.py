"""The ``casegate`` command line: builds the parser and dispatches.

Each subcommand lives in a module of its own (``register`` adds its
parsers); what they share (exit codes, loading the configuration and the
application) is in ``common``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import (cases, customers, daemon, doctor, fax, ignored, ingest, outbox, quarantine, report, rules, staff,
               templates, timeline, users)
from ..config import ConfigError
from .common import EX_CONFIG, EX_OK, EX_TEMPFAIL
from ...storage.db import DatabaseUnavailable

COMMANDS = (ingest, cases, outbox, quarantine, ignored, daemon, doctor, rules, fax, staff, report, templates, timeline,
            users, customers)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="casegate", description="Support cases from e-mail and fax.")
    p.add_argument("--config", "-c", help="configuration file (default: $CASEGATE_CONFIG, ./casegate.toml, embedded defaults)")
    p.add_argument("--log-level", default=None, help="override logging.level")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub.add_parser)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "run":  # the daemon configures logging from its config
        logging.basicConfig(level=(args.log_level or "WARNING").upper(),
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"casegate: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except DatabaseUnavailable as exc:  # any command, e.g. at App() start-up (migrate)
        print(f"casegate: database unavailable: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
