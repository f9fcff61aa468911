"""What every subcommand shares: exit codes, the configuration, the application.

Exit codes follow sysexits(3) where an MTA or a script acts on them:
75 (EX_TEMPFAIL) when the database is unreachable, so a piping MTA retries
and nothing is lost; 78 (EX_CONFIG) for a bad configuration; 65 (EX_DATAERR)
for bad rule files; 1 for "not found".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..config import Config, load_config
from ..runtime.app import App

EX_OK = 0
EX_NOTFOUND = 1
EX_USAGE = 64
EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_CONFIG = 78

#: ``add_parser`` of the main parser's subcommands: how a module adds its commands.
AddCommand = Callable[..., argparse.ArgumentParser]


def config_of(args: argparse.Namespace) -> Config:
    """The configuration ``--config`` names (else $CASEGATE_CONFIG, ./casegate.toml, defaults)."""
    return load_config(args.config)


def app_of(args: argparse.Namespace) -> App:
    return App(config_of(args))
