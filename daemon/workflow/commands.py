"""Commands in an engineer's reply: parsing and validation, no I/O.

Commands are lines at the *top* of the new text of a reply (quoted history
and signature already cut off by the parser), one per line, starting with
'#' or the full-width '＃' (Chinese input methods type that one)::

    #status pending            #状态 待定
    #priority P1               #优先级 P1
    #assign Wang Wei           #指派 王伟
    #vendor Huawei 1234-5678   #厂商 华为 1234-5678
    #reopen                    #重开
    #merge SR-2026-000017      #合并 SR-2026-000017
    #eta 2026-10-09 18:00      #预计 2026-10-09 18:00    (expected time, shown in status updates)
    #plan text of the plan     #方案 ...                 (a complaint's plan was given)
    #call 20m what was said    #电话 20分钟 ...          (support activities with time spent:)
    #onsite 2h what was done   #上门 2小时 ...
    #equipment 15m UPS status  #设备 15分钟 ...
    #note the rest of the message is an internal note   #备注 ...
    #customer C001             #客户 C001        (link the case to a customer of the master data)
    #product SN-0001           #产品 SN-0001     (... to an installed product, and so its customer)
    #lang en                   #语言 英文        (the customer's language: the case's mail, and their preference)

``#vendor`` without a name escalates to the vendor of the case's product.

The first line that is not a command ends the block; what follows is the
public text for the customer. ``#note`` makes the rest of the message an
internal note, so nothing of it is sent to the customer.

All commands are validated before any is applied (see ``validate``): one
bad command means none is applied, so a case is never half-changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

# canonical name -> accepted spellings (folded)
COMMAND_NAMES: dict[str, tuple[str, ...]] = {
    "status": ("status", "状态", "狀態"),
    "priority": ("priority", "prio", "优先级", "優先級"),
    "assign": ("assign", "指派", "分配"),
    "note": ("note", "备注", "備註", "内部备注"),
    "vendor": ("vendor", "厂商", "廠商"),
    "reopen": ("reopen", "重开", "重開", "重新打开"),
    "merge": ("merge", "合并", "合併"),
    "eta": ("eta", "预计", "預計", "预计完成"),
    "plan": ("plan", "方案", "处理方案"),
    "call": ("call", "电话", "電話"),
    "onsite": ("onsite", "上门", "上門", "现场"),
    "equipment": ("equipment", "设备", "設備"),
    "customer": ("customer", "客户", "客戶"),
    "product": ("product", "产品", "產品"),
    "lang": ("lang", "language", "语言", "語言"),
}
LANGUAGES: dict[str, str] = {"zh": "zh", "en": "en", "中文": "zh", "英文": "en", "chinese": "zh", "english": "en"}
ACTIVITIES = ("call", "onsite", "equipment")
_ALIAS = {alias: name for name, aliases in COMMAND_NAMES.items() for alias in aliases}

STATUS_VALUES: dict[str, str] = {
    "open": "open", "打开": "open", "处理中": "open", "開啟": "open",
    "pending": "pending", "待定": "pending", "等待客户": "pending", "待客户确认": "pending",
    "pending-vendor": "pending-vendor", "vendor": "pending-vendor", "等待厂商": "pending-vendor",
    "待厂商": "pending-vendor",
    "resolved": "resolved", "已解决": "resolved", "已解決": "resolved", "解决": "resolved",
    "closed": "closed", "已关闭": "closed", "已關閉": "closed", "关闭": "closed",
}
PRIORITIES = ("P1", "P2", "P3", "P4")

_ETA = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2}))?$")
_SPENT = re.compile(r"^(?:(\d+)\s*(?:h|小时|小時))?\s*(?:(\d+)\s*(?:m|min|分钟|分鐘))?$", re.IGNORECASE)


def parse_eta(text: str, tz: str) -> datetime | None:
    """"2026-10-09 18:00" (or a date: end of that day's business, 18:00) in the service zone."""
    m = _ETA.match(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi = (int(x) if x else None for x in m.groups())
    try:
        return datetime(y or 0, mo or 0, d or 0, 18 if h is None else h, mi or 0, tzinfo=ZoneInfo(tz))
    except ValueError:
        return None


def parse_spent(text: str) -> int | None:
    """"2h", "20m", "1h30m", "2小时", "20分钟" -> minutes."""
    m = _SPENT.match(text.strip())
    if m is None or not any(m.groups()):
        return None
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


_COMMAND_LINE = re.compile(r"^\s*[#＃](?P<name>[^\s#＃:：]+)[:：]?(?:[ \t\u3000]+(?P<rest>.*))?$")
_MAX_COMMANDS = 20


@dataclass(frozen=True)
class Command:
    name: str  # canonical name, or the unknown word as written
    args: tuple[str, ...]
    line: str  # the line as written, for error messages
    known: bool = True


@dataclass(frozen=True)
class ParsedCommands:
    commands: tuple[Command, ...]
    public_text: str  # what is left for the customer ("" when #note)
    note: str | None  # internal note text when #note was given

    @property
    def any(self) -> bool:
        return bool(self.commands)


@dataclass(frozen=True)
class CommandError:
    line: str
    reason_en: str
    reason_zh: str


@dataclass(frozen=True)
class ValidCommand:
    """A command whose values were checked and normalised (e.g. 状态 已解决 -> resolved)."""

    name: str
    value: str | None = None  # status, priority, assignee e-mail, merge target, vendor name
    extra: str | None = None  # vendor case number
    line: str = ""


@dataclass
class CommandContext:
    """What validation needs to know about the world, injected by the caller."""

    case_number: str
    case_status: str
    find_staff: Callable[[str], str | None] = lambda name: None  # name -> e-mail
    case_exists: Callable[[str], bool] = lambda number: False
    known_vendor: Callable[[str], bool] | None = None  # None: any vendor name is accepted
    timezone: str = "Asia/Shanghai"  # #eta times are read in the service's zone
    extra_names: dict[str, str] = field(default_factory=dict)
    customer_exists: Callable[[str], bool] = lambda ref: False  # an external customer ID
    product_exists: Callable[[str], bool] = lambda serial: False
    product_vendor: str | None = None  # the vendor of the case's product: what a bare #vendor means


def _split_glued(word: str) -> tuple[str, str] | None:
    """'#状态已解决' (no space, common with Chinese IMEs) -> ('状态', '已解决')."""
    for alias in sorted(_ALIAS, key=len, reverse=True):
        if not alias.isascii() and word.startswith(alias) and len(word) > len(alias):
            return alias, word[len(alias):]
    return None


def parse(text: str) -> ParsedCommands:
    """Split the new text of a reply into commands, public text and note."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    commands: list[Command] = []
    i = 0
    note: str | None = None
    while i < len(lines) and len(commands) < _MAX_COMMANDS:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        m = _COMMAND_LINE.match(line)
        if m is None:
            break
        word, rest = m.group("name"), (m.group("rest") or "").strip()
        name = _ALIAS.get(word.casefold())
        if name is None and (glued := _split_glued(word)) is not None:
            name = _ALIAS[glued[0]]
            rest = (glued[1] + " " + rest).strip()
        i += 1
        if name == "note":
            commands.append(Command("note", (), line.strip()))
            note = "\n".join([rest, *lines[i:]]).strip()
            i = len(lines)
            break
        if name is None:
            commands.append(Command(word, tuple(rest.split()), line.strip(), known=False))
        else:
            commands.append(Command(name, tuple(rest.split()), line.strip()))
    public = "" if note is not None else "\n".join(lines[i:]).strip()
    if not commands:
        public = text.strip()
    return ParsedCommands(tuple(commands), public, note)


def validate(parsed: ParsedCommands, ctx: CommandContext) -> tuple[list[ValidCommand], list[CommandError]]:
    """Check every command; return the normalised commands and every error."""
    valid: list[ValidCommand] = []
    errors: list[CommandError] = []
    seen: set[str] = set()

    def err(cmd: Command, en: str, zh: str) -> None:
        errors.append(CommandError(cmd.line, en, zh))

    for cmd in parsed.commands:
        if not cmd.known:
            names = ", ".join("#" + n for n in COMMAND_NAMES)
            err(cmd, f"unknown command #{cmd.name} (known: {names})", f"未知命令 #{cmd.name}（可用：{names}）")
            continue
        if cmd.name in seen:
            err(cmd, f"#{cmd.name} given twice", f"命令 #{cmd.name} 重复")
            continue
        seen.add(cmd.name)
        args = cmd.args
        if cmd.name == "status":
            value = STATUS_VALUES.get(args[0].casefold()) if len(args) == 1 else None
            if value is None:
                err(cmd, "#status needs one of: open, pending, resolved, closed",
                    "#状态 需要以下之一：处理中、待定、已解决、已关闭")
            else:
                valid.append(ValidCommand("status", value, line=cmd.line))
        elif cmd.name == "priority":
            value = args[0].upper() if len(args) == 1 else ""
            if value.isdigit():
                value = "P" + value
            if value not in PRIORITIES:
                err(cmd, "#priority needs one of: P1, P2, P3, P4", "#优先级 需要以下之一：P1、P2、P3、P4")
            else:
                valid.append(ValidCommand("priority", value, line=cmd.line))
        elif cmd.name == "assign":
            name = " ".join(args)
            email = ctx.find_staff(name) if name else None
            if email is None:
                err(cmd, f"#assign: no staff member called {name!r}" if name else "#assign needs a name",
                    f"#指派：没有名为 {name!r} 的员工" if name else "#指派 需要员工姓名")
            else:
                valid.append(ValidCommand("assign", email, line=cmd.line))
        elif cmd.name == "note":
            valid.append(ValidCommand("note", parsed.note or "", line=cmd.line))
        elif cmd.name == "vendor" and not args and ctx.product_vendor:
            if ctx.known_vendor is not None and not ctx.known_vendor(ctx.product_vendor):
                err(cmd, f"#vendor: the product's vendor {ctx.product_vendor!r} is no configured vendor",
                    f"#厂商：产品的厂商 {ctx.product_vendor!r} 未配置")
            else:
                valid.append(ValidCommand("vendor", ctx.product_vendor, None, line=cmd.line))
        elif cmd.name == "vendor":
            if not 1 <= len(args) <= 2:
                err(cmd, "#vendor needs a vendor name and optionally the vendor's case number",
                    "#厂商 需要厂商名称，可附厂商案例编号")
            elif ctx.known_vendor is not None and not ctx.known_vendor(args[0]):
                err(cmd, f"#vendor: unknown vendor {args[0]!r}", f"#厂商：未知厂商 {args[0]!r}")
            else:
                valid.append(ValidCommand("vendor", args[0], args[1] if len(args) == 2 else None, line=cmd.line))
        elif cmd.name == "reopen":
            if args:
                err(cmd, "#reopen takes no value", "#重开 不需要参数")
            elif ctx.case_status not in ("closed", "resolved"):
                err(cmd, f"#reopen: the case is {ctx.case_status}, not closed or resolved",
                    f"#重开：案例状态为 {ctx.case_status}，并未解决或关闭")
            else:
                valid.append(ValidCommand("reopen", "open", line=cmd.line))
        elif cmd.name == "eta":
            when = parse_eta(" ".join(args), ctx.timezone)
            if when is None:
                err(cmd, "#eta needs a date and time such as 2026-10-09 18:00",
                    "#预计 需要日期和时间，例如 2026-10-09 18:00")
            else:
                valid.append(ValidCommand("eta", when.isoformat(), line=cmd.line))
        elif cmd.name == "plan":
            if not args:
                err(cmd, "#plan needs the plan given to the customer", "#方案 需要写明给客户的处理方案")
            else:
                valid.append(ValidCommand("plan", " ".join(args), line=cmd.line))
        elif cmd.name in ACTIVITIES:
            minutes = parse_spent(args[0]) if args else None
            if minutes is None:
                err(cmd, f"#{cmd.name} needs the time spent first, such as 30m or 1h30m",
                    f"#{cmd.name} 需要先写所用时间，例如 30分钟 或 1h30m")
            else:
                valid.append(ValidCommand(cmd.name, " ".join(args[1:]), str(minutes), line=cmd.line))
        elif cmd.name in ("customer", "product"):
            ref = args[0] if len(args) == 1 else ""
            exists = ctx.customer_exists if cmd.name == "customer" else ctx.product_exists
            zh = "客户" if cmd.name == "customer" else "产品"
            if not ref:
                err(cmd, f"#{cmd.name} needs one {'customer ID' if cmd.name == 'customer' else 'serial number'}",
                    f"#{zh} 需要一个{'客户编号' if cmd.name == 'customer' else '序列号'}")
            elif not exists(ref):
                err(cmd, f"#{cmd.name}: no {cmd.name} {ref!r} in the customer master data",
                    f"#{zh}：客户资料中没有 {ref!r}")
            else:
                valid.append(ValidCommand(cmd.name, ref, line=cmd.line))
        elif cmd.name == "lang":
            value = LANGUAGES.get(args[0].casefold()) if len(args) == 1 else None
            if value is None:
                err(cmd, "#lang needs zh or en", "#语言 需要 zh（中文）或 en（英文）")
            else:
                valid.append(ValidCommand("lang", value, line=cmd.line))
        elif cmd.name == "merge":
            target = args[0].upper() if len(args) == 1 else ""
            if not target:
                err(cmd, "#merge needs the case number to merge into", "#合并 需要目标案例编号")
            elif target == ctx.case_number.upper():
                err(cmd, "#merge: cannot merge a case into itself", "#合并：不能合并到本案例自身")
            elif not ctx.case_exists(target):
                err(cmd, f"#merge: no case {target}", f"#合并：案例 {target} 不存在")
            else:
                valid.append(ValidCommand("merge", target, line=cmd.line))
    names = {c.name for c in valid}
    if "reopen" in names and "status" in names:
        errors.append(CommandError("#reopen / #status", "#reopen and #status together are ambiguous",
                                   "#重开 与 #状态 不能同时使用"))
    return valid, errors
