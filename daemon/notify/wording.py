"""Words every notice shares: labels for priorities, statuses and roles,
durations and times as a reader says them, in Chinese and English.

One place, so an acknowledgement, an escalation and a status update never
describe the same priority or the same two hours in different words.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..durations import Duration

LANGUAGES = ("zh", "en")

PRIORITY_LABELS = {
    "zh": {"P1": "紧急：系统停机或核心业务中断", "P2": "严重：性能严重下降或重要功能故障",
           "P3": "一般：部分功能受影响", "P4": "咨询：配置、使用或安装问题"},
    "en": {"P1": "critical: system down or core business stopped", "P2": "major: serious degradation",
           "P3": "minor: partial impairment", "P4": "question: configuration, usage or installation"},
}
STATUS_LABELS = {
    "zh": {"new": "新建", "open": "处理中", "pending": "等待您的回复", "pending-vendor": "等待厂商处理",
           "resolved": "已解决", "closed": "已关闭"},
    "en": {"new": "new", "open": "in progress", "pending": "waiting for your reply",
           "pending-vendor": "with the vendor", "resolved": "resolved", "closed": "closed"},
}
ROLE_LABELS = {
    "zh": {"service-engineer": "服务工程师", "support-supervisor": "技术支持主管", "general-manager": "总经理"},
    "en": {"service-engineer": "service engineer", "support-supervisor": "support supervisor",
           "general-manager": "general manager"},
}
NO_SUBJECT = {"zh": "(无主题)", "en": "(no subject)"}


def lang_of(language: str | None, default: str) -> str:
    """``language`` when we write it, else ``default``."""
    return language if language in LANGUAGES else default


def priority_label(priority: str, lang: str) -> str:
    return PRIORITY_LABELS.get(lang, PRIORITY_LABELS["en"]).get(priority, priority)


def say_delta(delta: timedelta, lang: str) -> str:
    """An amount of time as people say it: "2 小时 5 分钟" / "2 hours 5 minutes".

    Used both for promises ("within 30 minutes") and for elapsed time
    ("unresolved for 1 day 2 hours"), so the two always read alike.
    """
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    zh = lang == "zh"
    parts = []
    for n, zh_unit, en_unit in ((days, "天", "day"), (hours, "小时", "hour"), (mins, "分钟", "minute")):
        if n:
            parts.append(f"{n} {zh_unit}" if zh else f"{n} {en_unit}{'s' if n > 1 else ''}")
    if not parts:
        parts.append("0 分钟" if zh else "0 minutes")
    return " ".join(parts)


def say_duration(duration: Duration, lang: str) -> str:
    """A policy duration: working days are named as such, the rest as time."""
    if duration.working_days:
        n = duration.working_days
        return f"{n} 个工作日" if lang == "zh" else f"{n} working day{'s' if n > 1 else ''}"
    return say_delta(duration.delta, lang)


# Zones whose local name readers know; elsewhere the UTC offset says it all
# ("CST" is China Standard Time and US Central Time alike).
ZONE_NAMES = {"Asia/Shanghai": ("北京时间", "Beijing time"), "Asia/Chongqing": ("北京时间", "Beijing time"),
              "Asia/Hong_Kong": ("香港时间", "Hong Kong time"), "Asia/Taipei": ("台北时间", "Taipei time")}


def zone_label(dt: datetime, tz: str, lang: str | None = None) -> str:
    """An unambiguous name for the zone ``dt`` is shown in: 北京时间 / UTC+08:00."""
    local = dt.astimezone(ZoneInfo(tz))
    offset = local.strftime("%z")
    utc = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    names = ZONE_NAMES.get(tz)
    if names is None:
        return utc
    return names[0] if lang == "zh" else f"{names[1]}, {utc}" if lang == "en" else f"{names[0]}, {utc}"


def local_time(dt: datetime, tz: str, lang: str | None = None) -> str:
    """An instant in the service's time zone with an unambiguous zone label:
    "2026-11-30 18:00（北京时间）", "2026-11-30 18:00 (Beijing time, UTC+08:00)"."""
    local = dt.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    label = zone_label(dt, tz, lang)
    return f"{local}（{label}）" if lang == "zh" else f"{local} ({label})"


def say_promise(duration: Duration, working_time: bool, lang: str) -> str:
    """A promise as the customer must read it: which kind of time it counts.

    "2 小时" on the 7x24 clock, "2 个工作小时" / "2 working hours" on working
    time (a 24 h promise on working time is never "1 天"), working days as such.
    """
    if duration.working_days or not working_time:
        return say_duration(duration, lang)
    minutes = max(0, int(duration.delta.total_seconds() // 60))
    hours, mins = divmod(minutes, 60)
    if lang == "zh":
        parts = ([f"{hours} 个工作小时"] if hours else []) + ([f"{mins} 分钟"] if mins else [])
        return " ".join(parts) + ("（按工作时间计）" if not hours else "") if parts else "0 分钟"
    parts = ([f"{hours} working hour{'s' if hours > 1 else ''}"] if hours else []) + (
        [f"{mins} working minute{'s' if mins > 1 else ''}" if not hours else f"{mins} minute{'s' if mins > 1 else ''}"]
        if mins else [])
    return " ".join(parts) or "0 minutes"
