"""What every subcommand shares: exit codes, the configuration, the application.

Exit codes follow sysexits(3) where an MTA or a script acts on them:
75 (EX_TEMPFAIL) only when the database is unreachable, so a piping MTA
retries and nothing is lost; 78 (EX_CONFIG) for a bad configuration; 65
(EX_DATAERR) for bad input (a rule file, a message file that cannot be
read); 70 (EX_SOFTWARE) for a bug, reported in one line, never a traceback
(``--log-level DEBUG`` shows it); 1 for "not found".

Text that came in with mail (subjects, names, bodies, file names) is shown
on a terminal only through ``for_terminal``: control characters could set
the window title, move the cursor or fill the clipboard (OSC 52). JSON
output is exact; json.dumps escapes them itself.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from ..config import Config, ConfigError, load_config
from ..runtime.app import App
from ...storage import repository as repo
from ...storage.db import DatabaseUnavailable
from ...storage.models import Case

EX_OK = 0
EX_NOTFOUND = 1
EX_USAGE = 64
EX_DATAERR = 65
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_CONFIG = 78

#: ``add_parser`` of the main parser's subcommands: how a module adds its commands.
AddCommand = Callable[..., argparse.ArgumentParser]
#: What a subcommand runs.
Command = Callable[[argparse.Namespace], int]

log = logging.getLogger("casegate.cli")

# C0 and C1 controls, DEL, the bidirectional overrides that reorder what a
# reader sees, and lone surrogates: shown as \xNN / \uNNNN.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_INVISIBLE = [0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = ({c: f"\\x{c:02x}" for c in _CONTROLS} | {c: f"\\u{c:04x}" for c in _INVISIBLE}
            # lone surrogates cannot be printed at all; a file name's undecodable byte shows as \xNN
            | {c: f"\\u{c:04x}" for c in range(0xD800, 0xE000)} | {c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)})
_ESCAPES_KEEP_TABS = {c: e for c, e in _ESCAPES.items() if c != 0x09}


def for_terminal(value: object, keep_tabs: bool = False) -> str:
    """``value`` as one line of text that cannot drive a terminal."""
    return str(value).translate(_ESCAPES_KEEP_TABS if keep_tabs else _ESCAPES)


def emit(text: str, output: str | None) -> None:
    """A command's whole output: to the file ``--output`` names, else standard output."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def config_of(args: argparse.Namespace) -> Config:
    """The configuration ``--config`` names (else $CASEGATE_CONFIG, ./casegate.toml, defaults)."""
    return load_config(args.config)


def app_of(args: argparse.Namespace) -> App:
    return App(config_of(args))


def case_or_say(session: Session, number: str) -> Case | None:
    """The case numbered ``number``, or None after saying on stderr that there is none."""
    case = repo.load_case(session, number)
    if case is None:
        print(f"casegate: no case {for_terminal(number)}", file=sys.stderr)
    return case


def no_traceback(command: Command) -> Command:
    """Run ``command``; a bug becomes one line on stderr and exit 70, never a traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (DatabaseUnavailable, ConfigError, KeyboardInterrupt, BrokenPipeError):
            raise  # the dispatcher's own exit codes: 75, 78, 130, 0
        except Exception as exc:
            log.debug("%s failed", command.__name__, exc_info=True)
            print(f"casegate: internal error: {type(exc).__name__}: {for_terminal(exc)} "
                  "(--log-level DEBUG shows where)", file=sys.stderr)
            return EX_SOFTWARE

    return run
