"""Every variable a template may use, with sample data; and the check of a template folder.

One place documents what templates can say (``VARIABLES``): the admin who
overrides a template reads it here (and ``casegate templates check`` holds
their folder against it). The check renders every template in every
language twice under StrictUndefined: with sample data, and with every
optional value missing (no customer name, no progress yet). A name no mail
provides, a syntax error or an empty result is reported as ``file:line``.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2

from .compose import LANGUAGES, TEMPLATES_DIR, Renderer
from .wording import local_time

_AT = datetime(2026, 10, 9, 12, 0, tzinfo=timezone.utc)
_SAMPLE_CASE = SimpleNamespace(
    number="SR-2026-000042", subject="核心交换机宕机 / core switch down", status="open", priority="P1",
    queue="support", category="outage", assignee="wang.wei@desk.example.cn", language="zh",
)
_MEMBER = SimpleNamespace(name="王伟 Wang Wei", email="wang.wei@desk.example.cn", role="service-engineer", language="zh")
_VENDOR = SimpleNamespace(name="Huawei", address="support@huawei.example", customer_number="CN-88-1234")
_WHEN = local_time(_AT, "Asia/Shanghai", "zh")


@dataclass(frozen=True)
class Variable:
    meaning: str
    sample: Any
    missing: Any = ""  # the value when the mail has nothing to say


VARIABLES: dict[str, Variable] = {
    "case": Variable("the case: .number .subject .status .priority .queue .category .assignee", _SAMPLE_CASE,
                     _SAMPLE_CASE),
    "subject": Variable("the case's or message's subject", _SAMPLE_CASE.subject, "(无主题)"),
    "customer_name": Variable("the customer's name (empty when unknown)", "张三"),
    "customer_company": Variable("the customer's company", "ACME 科技"),
    "customer_email": Variable("the customer's e-mail address", "zhangsan@customer.cn"),
    "recipient_name": Variable("the name of the person this mail goes to", "张三"),
    "contract_id": Variable("the customer's contract ID", "HT-2026-007"),
    "product": Variable("the product model", "S5720-28X"),
    "serial_number": Variable("the product's serial number", "2102351931P0K8000123"),
    "warranty_end": Variable("the warranty's end date", "2027-03-31"),
    "priority_label": Variable("what the priority means, in words", "紧急：系统停机或核心业务中断"),
    "priority_label_zh": Variable("the priority in Chinese words", "紧急：系统停机或核心业务中断"),
    "priority_label_en": Variable("the priority in English words", "critical: system down"),
    "status_label": Variable("the case status in words", "处理中"),
    "first_response": Variable("the promised first-response time", "30 分钟"),
    "first_response_due": Variable("when the first response is due", _WHEN),
    "first_response_at": Variable("when the first response was given", _WHEN, None),
    "first_response_breached": Variable("whether the first response came late", False, False),
    "resolution_due": Variable("resolution targets: name -> time", {"fix": _WHEN}, {}),
    "working_time": Variable("whether the clock counts working time only", False, False),
    "opened": Variable("when the case was opened", _WHEN),
    "resolved": Variable("when the case was resolved", _WHEN),
    "close_at": Variable("when silence closes a resolved case", _WHEN),
    "progress": Variable("the latest progress an engineer wrote", "已更换电源模块，正在观察。"),
    "progress_at": Variable("when that progress was written", _WHEN),
    "next_step": Variable("what happens next, in words", "工程师正在继续处理您的问题。"),
    "next_update": Variable("when the next status update is due", _WHEN),
    "eta": Variable("status update: when the engineer expects to resolve the case (#eta); empty when not set",
                    _WHEN),
    "ask_score": Variable("survey and follow-up: whether to ask for a 1-5 score (only once the case is closed, "
                          "and not again after a score came)", True, False),
    "step": Variable("the number of this escalation or follow-up", 1, 1),
    "steps": Variable("how many there are in all", 3, 3),
    "by_fax": Variable("the customer reads this by fax (answers by fax)", False, False),
    "text": Variable("the message text (an engineer's reply, a customer's mail)", "我们已定位问题。"),
    "entries": Variable("the case history: .at .who .text", [{"at": _WHEN, "who": "customer", "text": "查询进度"}], []),
    "member": Variable("the staff member this mail goes to: .name .email .role", _MEMBER, _MEMBER),
    "role": Variable("the escalation role", "support-supervisor"),
    "role_label": Variable("that role in words", "技术支持主管"),
    "kind": Variable("what the staff notice is about: new, reply, assigned, vendor, third-party", "new", "new"),
    "reasons": Variable("the rules that set the priority", ["outage (body: 宕机)"], []),
    "attachments": Variable("attachment names", ["log.txt"], []),
    "skipped": Variable("attachments too large to attach", [], []),
    "sender_email": Variable("who wrote the message", "lisi@customer.cn"),
    "sender_role": Variable("that sender's role towards the case", "customer"),
    "failing": Variable("the customer's addresses that bounce", [], []),
    "errors": Variable("command errors: .line .reason_en .reason_zh", [], []),
    "refused": Variable("why commands were refused", None, None),
    "not_sent": Variable("why an engineer's reply could not be sent", None, None),
    "count": Variable("how many new cases one sender opened", 6, 6),
    "limit": Variable("the notices-per-hour limit", 5, 5),
    "elapsed_zh": Variable("time since opening, Chinese", "2 小时"),
    "elapsed_en": Variable("time since opening, English", "2 hours"),
    "target_zh": Variable("the response target, Chinese", "30 分钟"),
    "target_en": Variable("the response target, English", "30 minutes"),
    "requester": Variable("the customer's address on the case", "zhangsan@customer.cn"),
    "symptoms": Variable("the symptoms as first written", "核心交换机宕机，业务全部中断。"),
    "deadline": Variable("which complaint deadline passed", "respond"),
    "due": Variable("when it was due", _WHEN),
    "vendor": Variable("the vendor: .name .address .customer_number", _VENDOR, _VENDOR),
    "vendor_case": Variable("our case with the vendor: .vendor_case_no", SimpleNamespace(vendor_case_no="20261130001"),
                            SimpleNamespace(vendor_case_no=None)),
    "vendor_name": Variable("the vendor's name", "Huawei"),
    "vendor_case_no": Variable("the vendor's case number", "20261130001"),
    "escalated": Variable("when the case went to the vendor", _WHEN),
    "attached": Variable("files attached to the vendor notice", ["log.txt"], []),
    "too_large": Variable("files too large to attach", [], []),
    "month": Variable("monthly report: the month it covers (YYYY-MM)", "2026-10"),
    "report_text": Variable("monthly report, customer statistics: the report as text", "casegate monthly report 2026-10\n..."),
    "period": Variable("customer statistics: the quarter or month they cover", "2026Q4"),
    "product_version": Variable("the product's software/firmware version", "V200R022"),
    "product_site": Variable("where the product is installed", "广州机房"),
    "contract_level": Variable("the level of the contract covering the case", "gold"),
    "subject_line": Variable("HTML layout only: the mail's subject", "[SR-2026-000042] 核心交换机宕机"),
    "body_text": Variable("HTML layout only: the rendered text part", "您好，\n\n正文。"),
    "service_name": Variable("the service desk's name ([service] display_name)", "Service Desk / 客户服务中心"),
    "service": Variable("global: .name .hotline .address .signature ([templates])",
                        {"name": "Service Desk / 客户服务中心", "hotline": "400-800-1234", "address": "广州市天河区",
                         "signature": "客户服务中心"},
                        {"name": "Service Desk", "hotline": "", "address": "", "signature": ""}),
}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def sample_context(missing: bool = False) -> dict[str, Any]:
    return {name: (v.missing if missing else v.sample) for name, v in VARIABLES.items()}


def template_names(folders: list[Path]) -> list[str]:
    """Mail names (``ack``, ``status_update``...) found in any of the folders."""
    names = set()
    for folder in folders:
        for lang in LANGUAGES:
            names |= {p.name[: -len(".txt.j2")] for p in (folder / lang).glob("*.txt.j2")}
    return sorted(names)


def _line_of(exc: BaseException) -> tuple[str, int]:
    """The template file and line a rendering error happened at (Jinja2 maps
    template frames onto the .j2 file in the traceback)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return frame.filename, frame.lineno or 0
    return "?", 0


def check_templates(override: Path | None = None) -> list[Problem]:
    """Every problem of the templates in force (``override`` over the shipped set)."""
    renderer = Renderer(TEMPLATES_DIR, override=override, service=VARIABLES["service"].sample)
    folders = [TEMPLATES_DIR] + ([override] if override is not None else [])
    problems: list[Problem] = []
    for name in template_names(folders):
        for lang in LANGUAGES:
            problems += list(_check_one(renderer, name, lang))
    return problems


def _check_one(renderer: Renderer, name: str, lang: str) -> Iterator[Problem]:
    for part in ("subject", "txt"):
        path = f"{lang}/{name}.{part}.j2"
        try:
            renderer.env.get_template(path)
        except jinja2.TemplateSyntaxError as exc:
            yield Problem(exc.filename or path, exc.lineno or 0, f"syntax error: {exc.message}")
            return
        except jinja2.TemplateNotFound:
            yield Problem(path, 0, "missing (each mail needs a subject and a text template in zh and en)")
            return
    for missing in (False, True):
        renderer.env.globals["service"] = VARIABLES["service"].missing if missing else VARIABLES["service"].sample
        try:
            rendered = renderer.render(name, lang, **sample_context(missing))
        except jinja2.UndefinedError as exc:
            file, line = _line_of(exc)
            yield Problem(file, line, f"undefined name: {exc.message}")
            return
        except Exception as exc:  # noqa: BLE001 - any failure of an admin's template is reported, not raised
            file, line = _line_of(exc)
            yield Problem(file, line, f"{type(exc).__name__}: {exc}" + (" (with optional values missing)" if missing else ""))
            return
        if not rendered.text.strip() or not rendered.subject.strip():
            yield Problem(renderer.env.get_template(f"{lang}/{name}.txt.j2").filename or name, 1,
                          "renders empty" + (" when optional values are missing" if missing else ""))
            return
