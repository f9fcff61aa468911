"""`casegate users add NAME`: a user of the SMTP listener's AUTH, with a hashed password.

The users file is the ``auth_users_file`` of the SMTP/LMTP source (``--source``
picks one when several have a file), or ``--file``. The password is read
from stdin when it is not a terminal (one line), else asked twice. The file
is written 0600, one ``NAME:$scrypt$...`` line a user (format in
daemon/sources/smtp_auth.py).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..config import SmtpSourceConfig
from ..sources.smtp_auth import add_user
from .common import EX_DATAERR, EX_OK, EX_USAGE, AddCommand, config_of


def users_file(args: argparse.Namespace) -> Path | None:
    if args.file:
        return Path(args.file)
    files = [(s.name, s.auth_users_file) for s in config_of(args).sources
             if isinstance(s, SmtpSourceConfig) and s.auth_users_file
             and (args.source is None or s.name == args.source)]
    return Path(files[0][1]) if len(files) == 1 else None


def read_password() -> str | None:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        return None
    return first


def cmd_users_add(args: argparse.Namespace) -> int:
    path = users_file(args)
    if path is None:
        print("casegate: name the users file with --file, or --source for an SMTP source with auth_users_file",
              file=sys.stderr)
        return EX_USAGE
    password = read_password()
    if not password:
        print("casegate: no password given (or the two did not match)", file=sys.stderr)
        return EX_DATAERR
    try:
        replaced = add_user(path, args.name, password)
    except ValueError as exc:
        print(f"casegate: user name: expected {exc}", file=sys.stderr)
        return EX_DATAERR
    print(f"{'replaced' if replaced else 'added'} {args.name} in {path}")
    return EX_OK


def register(add: AddCommand) -> None:
    users = add("users", help="users of the SMTP listener's AUTH").add_subparsers(dest="users_cmd", required=True)
    ua = users.add_parser("add", help="add a user (or set a new password), password from stdin or asked")
    ua.add_argument("name")
    ua.add_argument("--file", help="the users file (default: the SMTP source's auth_users_file)")
    ua.add_argument("--source", help="the SMTP source whose auth_users_file to write")
    ua.set_defaults(func=cmd_users_add)
