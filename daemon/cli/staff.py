"""`casegate staff list`: show the staff directory as the daemon reads it.

Loading goes through the same validation as the daemon, so this doubles as
a check of the ``[[staff]]`` entries (errors name the file and key).
"""

from __future__ import annotations

import argparse
import json

from ..directory.staff import StaffDirectory
from .common import EX_OK, AddCommand, config_of


def cmd_staff_list(args: argparse.Namespace) -> int:
    directory = StaffDirectory.from_config(config_of(args))
    members = [m for m in directory if not args.queue or m.takes(args.queue)]
    if args.role:
        members = [m for m in members if m.role == args.role]
    if args.json:
        print(json.dumps([
            {"name": m.name, "email": m.email, "role": m.role, "queues": list(m.queues),
             "on_duty": m.on_duty, "aliases": list(m.aliases), "language": m.language}
            for m in members
        ], ensure_ascii=False, indent=2))
        return EX_OK
    if not members:
        print("no staff configured" if not len(directory) else "no staff member matches")
        return EX_OK
    for m in members:
        duty = "on duty" if m.on_duty else "off duty"
        queues = ",".join(m.queues) or "-"
        aliases = f"  aliases: {', '.join(m.aliases)}" if m.aliases else ""
        print(f"{m.name} <{m.email}>  {m.role}  queues: {queues}  {duty}{aliases}")
    return EX_OK


def register(add: AddCommand) -> None:
    staff = add("staff", help="show the staff directory").add_subparsers(dest="staff_cmd", required=True)
    sl = staff.add_parser("list", help="list staff members (validates the [[staff]] entries)")
    sl.add_argument("--queue", help="only members who take new cases of this queue")
    sl.add_argument("--role", help="only members with this role (e.g. support-supervisor)")
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func=cmd_staff_list)
