"""Customer master data (issue 15) at work, through the real pipeline and the SMTP sink:
a fax from a known number, the warranty rule, the vendor notice, a colleague's mail,
the language preference, #customer/#product/#lang, a gold contract's clock, and the
quarterly statistics reaching the customer's contact."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from sla_support import (
    ENGINEER, SERVICE, VENDOR, Clock, body_of, case_of, deliver, events, ingest, mail, make_app, sh,
    staff_reply, sweep_and_send, timers_of,
)
from sqlalchemy import select

from casegate.daemon.cli import main
from casegate.daemon.inbound import Inbound, Source
from casegate.daemon.runtime.app import App
from casegate.daemon.workflow import commands as cmdlib
from casegate.storage import repository as repo
from casegate.storage.models import ContactPerson, Customer, Message
from daemon_proc import to_toml
from fax_support import GATEWAY, FakeOcr
from faxgen import gateway_mail

FAXBOX = Source("faxbox", "fax")
ZHANG = "zhangsan@bank.example.cn"
LI = "lisi@bank.example.cn"
SMITH = "smith@bank.example.cn"
HEADER = ("record,customer,id,name,address,domains,email,phone,fax,language,reports,level,start,end,"
          "serial,model,version,site,warranty_end,vendor,contract\n")
CSV = HEADER + (
    "customer,C001,,广州某银行,广州市天河路1号,bank.example.cn,,,,,,,,,,,,,,,\n"
    f"contact,C001,C001-1,张三,,,{ZHANG},020-87681000,020-87681011,zh,yes,,,,,,,,,,\n"
    f"contact,C001,C001-2,John Smith,,,{SMITH},,,en,yes,,,,,,,,,,\n"
    "contact,C001,C001-3,赵六,,,,,020-87681099,zh,no,,,,,,,,,,\n"
    "contract,C001,HT-2026-001,,,,,,,,,gold,2026-01-01,2027-12-31,,,,,,,\n"
    "product,C001,,,,,,,,,,,,,SN-CORE-01,S5735-L48T4S,V200R022,广州数据中心三楼,2027-06-30,华为,HT-2026-001\n"
    "product,C001,,,,,,,,,,,,,SN-OLD-02,AR6140,V300R019,佛山分行机房,2025-06-30,Huawei,\n"
    "customer,C002,,深圳某商场,,,,,,,,,,,,,,,,,\n"
    "contact,C002,C002-1,王五,,,wangwu@mall.example.cn,,,,no,,,,,,,,,,\n"
)
GOLD = {"contract_levels": {"gold": {"P2": {"working_time": False, "first_response": "1h"}}}}


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def setup(tmp_path: Path, smtp_sink: Any, clock: Clock, csv_text: str = CSV, url: str | None = None,
          **sections: Any) -> tuple[App, Path]:
    """An app on the SMTP sink, and the master data imported by `casegate customers import`."""
    url = url or f"sqlite:///{tmp_path / 'casegate.db'}"
    app = make_app(tmp_path, smtp_sink, clock, url=url, **sections)
    config = tmp_path / "casegate.toml"
    config.write_text(to_toml({"service": {"address": SERVICE}, "database": {"url": url},
                               "vendors": [{"name": "Huawei", "address": VENDOR, "aliases": ["华为"]}]}),
                      encoding="utf-8")
    data = tmp_path / "customers.csv"
    data.write_text(csv_text, encoding="utf-8")
    code, out, err = cli("--config", str(config), "customers", "import", str(data))
    assert code == 0, err
    return app, config


def facts(app: App, number: str) -> dict[str, Any]:
    """What the case records about its customer, person, product and contract."""
    with app.db.session() as s:
        case = repo.case_by_number(s, number)
        return {"customer": case.customer.external_id if case.customer else None,
                "person": case.person.name if case.person else None,
                "product": case.product.serial if case.product else None,
                "contract": case.contract.external_id if case.contract else None,
                "level": case.contract_level, "language": case.language, "category": case.category,
                "priority": case.priority}


def outbox_to(msgs: list[Any], address: str) -> list[Any]:
    return [m for m in msgs if any(a.addr_spec.lower() == address for a in m["To"].addresses)]


# ---------------------------------------------------------------- the import


def test_import_is_idempotent_all_or_nothing_and_exports_what_it_read(tmp_path, smtp_sink) -> None:
    app, config = setup(tmp_path, smtp_sink, Clock(sh(2026, 10, 12, 10, 0)))
    data = tmp_path / "customers.csv"
    assert cli("--config", str(config), "customers", "import", str(data))[1] == "2 customers: no change\n"

    code, out, _ = cli("--config", str(config), "customers", "show", "C001", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["name"] == "广州某银行" and shown["domains"] == ["bank.example.cn"]
    zhang = shown["contacts"][0]
    assert (zhang["phone"], zhang["fax"], zhang["language"]) == (["+862087681000"], ["+862087681011"], "zh")
    assert [(p["serial"], p["vendor"], p["contract"]) for p in shown["products"]] == [
        ("SN-CORE-01", "华为", "HT-2026-001"), ("SN-OLD-02", "Huawei", None)]

    # A broken line: reported with its number, and nothing of the file is imported (not even its good lines).
    broken = tmp_path / "broken.csv"
    broken.write_text(CSV.replace("深圳某商场", "深圳某商场二部") + "customer,C003,,成都某医院,,,,,,,,,,,,,,,,,\n"
                      + "contact,C003,C003-1,赵六,,,not-an-address,,,,,,,,,,,,,,\n", encoding="utf-8")
    code, _, err = cli("--config", str(config), "customers", "import", str(broken))
    assert code == 65
    assert f"{broken}:12: email: not an e-mail address: 'not-an-address'" in err
    assert "nothing imported" in err
    with app.db.session() as s:
        names = sorted(c.company for c in s.execute(select(Customer)).scalars())
    assert names == ["广州某银行", "深圳某商场"]

    # A product naming a vendor no [[vendors]] entry has, and a contract of another customer.
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV + "product,C002,,,,,,,,,,,,,SN-X,,,,,Cisco,HT-2026-001\n", encoding="utf-8")
    code, _, err = cli("--config", str(config), "customers", "import", str(bad))
    assert code == 65 and f"{bad}:11: contract: HT-2026-001 is no contract of customer C002" in err
    assert f"{bad}:11: vendor: 'Cisco' is no configured vendor" in err

    # export -> the same data as JSON -> import: no change; the TOML form imports alike.
    code, out, _ = cli("--config", str(config), "customers", "export", "--format", "json")
    exported = tmp_path / "export.json"
    exported.write_text(out, encoding="utf-8")
    assert cli("--config", str(config), "customers", "import", str(exported))[1] == "2 customers: no change\n"
    toml = tmp_path / "one.toml"
    toml.write_text('[[customer]]\nid = "C004"\nname = "杭州某学校"\ndomains = ["school.example.cn"]\n'
                    '[[customer.contact]]\nid = "C004-1"\nname = "钱七"\nemail = "qian@school.example.cn"\n'
                    'fax = "0571-8888 1234"\nlanguage = "xx"\n', encoding="utf-8")
    code, _, err = cli("--config", str(config), "customers", "import", str(toml))
    assert code == 65 and f"{toml}:2: customer[0].contact[0].language: expected zh or en, got 'xx'" in err
    toml.write_text(toml.read_text(encoding="utf-8").replace('"xx"', '"zh"'), encoding="utf-8")
    code, out, _ = cli("--config", str(config), "customers", "import", str(toml))
    assert code == 0 and "added" in out and "1 customer" in out

    # --dry-run counts what would change and saves nothing.
    moved = tmp_path / "moved.csv"
    moved.write_text(CSV.replace("广州数据中心三楼", "广州数据中心四楼"), encoding="utf-8")
    code, out, _ = cli("--config", str(config), "customers", "import", str(moved), "--dry-run", "--json")
    assert code == 0 and json.loads(out)["changed"] == {"product": 1}
    shown = json.loads(cli("--config", str(config), "customers", "show", "C001", "--json")[1])
    assert shown["products"][0]["site"] == "广州数据中心三楼"

    # One field at a time.
    code, out, _ = cli("--config", str(config), "customers", "set", "product", "SN-OLD-02", "warranty_end", "2028-01-01")
    assert code == 0 and "2025-06-30 -> 2028-01-01" in out
    assert cli("--config", str(config), "customers", "set", "contact", "C001-9", "language", "en")[0] == 1
    code, out, _ = cli("--config", str(config), "customers", "list")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["C001", "C002", "C004"]
    app.close()


def test_a_customer_leaving_the_file_drops_what_it_no_longer_lists(tmp_path, smtp_sink) -> None:
    app, config = setup(tmp_path, smtp_sink, Clock(sh(2026, 10, 12, 10, 0)))
    shorter = tmp_path / "shorter.csv"
    shorter.write_text("\n".join(line for line in CSV.splitlines() if "SN-OLD-02" not in line and "C001-2" not in line)
                       + "\n", encoding="utf-8")
    code, out, _ = cli("--config", str(config), "customers", "import", str(shorter))
    assert code == 0 and "removed 1 address, 1 contact, 1 product" in out
    shown = json.loads(cli("--config", str(config), "customers", "show", "C001", "--json")[1])
    assert [p["serial"] for p in shown["products"]] == ["SN-CORE-01"] and len(shown["contacts"]) == 2
    app.close()


# ---------------------------------------------------------------- the data at work


def test_fax_from_a_known_number_opens_a_case_for_its_contact(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, _ = setup(tmp_path, smtp_sink, clock, fax={"reply_gateway": GATEWAY})
    app.fax.ocr = FakeOcr("SN-CORE-01 核心交换机宕机，全行业务中断，请速派工程师")
    res = app.pipeline.ingest(Inbound(gateway_mail("020-8768 1011", b"II*\x00" + b"\x00" * 64, pages=1), FAXBOX))
    assert res.outcome == "new"
    f = facts(app, res.case_number)
    assert (f["customer"], f["person"], f["product"]) == ("C001", "张三", "SN-CORE-01")
    with app.db.session() as s:  # no anonymous fax customer was made for the number
        assert s.execute(select(Customer).where(Customer.external_id.is_(None))).scalars().all() == []
    msgs = deliver(app, smtp_sink)
    ack = outbox_to(msgs, ZHANG)  # the person's own mailbox: a fax customer with e-mail is answered by e-mail
    assert len(ack) == 1 and "广州某银行 张三，您好" in body_of(ack[0])

    # 赵六 has a fax number only: the answer goes back through the gateway to their number, not to a
    # colleague's mailbox.
    res = app.pipeline.ingest(Inbound(gateway_mail("020-8768 1099", b"II*\x00" + b"\x00" * 64, pages=1), FAXBOX))
    assert facts(app, res.case_number)["person"] == "赵六"
    msgs = deliver(app, smtp_sink)
    assert [a.addr_spec for m in msgs for a in m["To"].addresses if a.addr_spec != ENGINEER] == [
        "862087681099@fax.gateway.example"]
    app.close()


def test_out_of_warranty_product_is_classified_by_the_warranty_rule(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, config = setup(tmp_path, smtp_sink, clock)
    old = ingest(app, mail(ZHANG, "佛山分行路由器故障", "序列号 SN-OLD-02 的路由器无法转发数据，分行业务受影响。"))
    new = ingest(app, mail(ZHANG, "核心交换机告警", "序列号 SN-CORE-01 的交换机端口告警，部分业务变慢。"))
    old_case, new_case = case_of(app, old), case_of(app, new)
    assert (facts(app, old)["category"], facts(app, old)["product"]) == ("out-of-warranty", "SN-OLD-02")
    assert (facts(app, new)["category"], facts(app, new)["product"]) == ("general", "SN-CORE-01")
    classified = json.loads(next(e.detail for e in old_case.events if e.action == "classified"))
    assert "warranty-expired" in [m["rule"] for m in classified["matches"]]
    tags = json.loads(next(e.detail for e in new_case.events if e.action == "classified"))["tags"]
    assert "gold-contract" in tags and "out-of-warranty" not in tags
    # `casegate rules test CASE` sees the product's warranty as the pipeline did.
    code, out, _ = cli("--config", str(config), "rules", "test", old, "--json")
    assert code == 0 and json.loads(out)[0]["category"] == "out-of-warranty"
    app.close()


def test_vendor_notice_lists_the_product_and_the_vendor_comes_from_it(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, _ = setup(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(ZHANG, "核心交换机宕机", "SN-CORE-01 交换机宕机，业务全部中断。"))
    deliver(app, smtp_sink)
    clock.set(sh(2026, 10, 12, 10, 30))
    staff_reply(app, number, "#厂商\n我们已联系设备厂商协助处理。")
    notice = outbox_to(deliver(app, smtp_sink), VENDOR)
    assert len(notice) == 1
    text = body_of(notice[0])
    for fact in ("S5735-L48T4S", "V200R022", "SN-CORE-01", "广州数据中心三楼", "HT-2026-001", "2027-06-30", "广州某银行"):
        assert fact in text, fact
    assert "Product:                -" not in text
    assert ("vendor-escalated", "Huawei") in events(app, number)
    app.close()


def test_a_colleagues_mail_threads_as_the_customer(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, _ = setup(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(ZHANG, "网银系统无法登录", "网银系统无法登录，客户无法办理业务。"))
    first = deliver(app, smtp_sink)
    ack = outbox_to(first, ZHANG)[0]

    # 李四 (never written before, the bank's declared domain) answers on the case: the customer, not a stranger.
    ingest(app, mail(f"李四 <{LI}>", f"Re: {ack['Subject']}", "补充：分行也无法登录。",
                     in_reply_to=str(ack["Message-ID"]).strip("<>")))
    with app.db.session() as s:
        reply = s.execute(select(Message).where(Message.from_addr == LI)).scalars().one()
        assert (reply.role, reply.direction) == ("customer", "in")
    # ... and a new mail of theirs opens a case of the bank, greeted by name and company.
    other = ingest(app, mail(f"李四 <{LI}>", "打印机卡纸", "营业部打印机卡纸。"))
    f = facts(app, other)
    assert (f["customer"], f["person"]) == ("C001", "李四")
    ack2 = outbox_to(deliver(app, smtp_sink), LI)
    assert len(ack2) == 1 and "广州某银行 李四，您好" in body_of(ack2[0])
    bank = case_of(app, other).customer_id
    with app.db.session() as s:  # the colleague is now a person of the bank
        assert s.execute(select(ContactPerson).where(ContactPerson.name == "李四")).scalars().one().customer_id == bank
    app.close()


def test_language_preference_beats_the_guess_and_lang_command_sets_it(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, _ = setup(tmp_path, smtp_sink, clock)
    log = ("ERROR 2026-10-12 09:58:01 kernel: eth0 link down\nERROR 2026-10-12 09:58:03 bonding: "
           "bond0 no active slave\nWARN failover to standby failed, all services stopped")
    number = ingest(app, mail(ZHANG, "Core switch down", log))
    ack = outbox_to(deliver(app, smtp_sink), ZHANG)[0]
    assert facts(app, number)["language"] == "zh" and "您好" in body_of(ack)

    english = ingest(app, mail(SMITH, "核心交换机问题", "交换机宕机。"))
    assert facts(app, english)["language"] == "en"
    assert "Dear John Smith (广州某银行)" in body_of(outbox_to(deliver(app, smtp_sink), SMITH)[0])

    staff_reply(app, number, "#lang en\nWe are on site now.")
    reply = outbox_to(deliver(app, smtp_sink), ZHANG)
    assert facts(app, number)["language"] == "en" and len(reply) == 1
    again = ingest(app, mail(ZHANG, "新问题", "打印机卡纸。"))
    assert facts(app, again)["language"] == "en"  # the preference, for every later case
    app.close()


def test_engineer_links_a_case_to_a_product_and_the_gold_contract_replans(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, config = setup(tmp_path, smtp_sink, clock, policy=GOLD)
    # Someone on free mail, no serial number: no customer of the master data yet.
    number = ingest(app, mail("bank.ops@163.com", "交换机性能严重下降", "核心交换机性能严重下降，部分业务受影响。"))
    assert (facts(app, number)["priority"], facts(app, number)["contract"]) == ("P2", None)
    sweep_and_send(app, smtp_sink, clock, clock.now)  # the sweep plans the new case's timers
    before = [t.due_at for t in timers_of(app, number) if t.kind == "first_response"]
    assert before == [sh(2026, 10, 12, 12, 0)]
    staff_reply(app, number, "#产品 SN-CORE-01\n#备注 已确认设备，尚未答复客户。")
    f = facts(app, number)
    assert (f["customer"], f["product"], f["level"]) == ("C001", "SN-CORE-01", "gold")
    pending = [t.due_at for t in timers_of(app, number) if t.kind == "first_response" and t.done_at is None]
    assert pending == [sh(2026, 10, 12, 11, 0)]  # the gold contract: 1 h on the 7x24 clock
    assert ("product-linked", "SN-CORE-01") in events(app, number)
    shown = json.loads(cli("--config", str(config), "cases", "show", number, "--json")[1])
    assert (shown["customer"]["id"], shown["product"]["model"], shown["contract"]) == (
        "C001", "S5735-L48T4S", {"id": "HT-2026-001", "level": "gold"})
    assert "product SN-CORE-01 S5735-L48T4S V200R022" in cli("--config", str(config), "cases", "show", number)[1]

    # An unknown reference is refused, and the case is not changed.
    staff_reply(app, number, "#customer C999")
    answer = outbox_to(deliver(app, smtp_sink), ENGINEER)
    assert any("C999" in body_of(m) for m in answer)
    assert facts(app, number)["customer"] == "C001"

    # casegate policy plan --contract gold shows the same.
    plan = tmp_path / "plan.toml"
    plan.write_text(to_toml({"service": {"address": SERVICE}, "policy": GOLD}), encoding="utf-8")
    code, out, _ = cli("--config", str(plan), "policy", "plan", "--priority", "P2",
                       "--opened", "2026-10-12T10:00+08:00", "--contract", "gold")
    assert code == 0 and "2026-10-12 11:00 +0800  first_response" in out and "7x24" in out
    code, _, err = cli("--config", str(plan), "policy", "plan", "--priority", "P2",
                       "--opened", "2026-10-12T10:00+08:00", "--contract", "silver")
    assert code == 64 and "gold" in err
    app.close()


def test_quarterly_statistics_reach_the_customers_contacts_in_their_language(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 9, 14, 10, 0))
    app, config = setup(tmp_path, smtp_sink, clock, report={"customer_reports": True})
    number = ingest(app, mail(ZHANG, "网银系统无法登录", "网银系统无法登录，客户无法办理业务。"))
    ingest(app, mail("wangwu@mall.example.cn", "收银机故障", "收银机无法开机。"))  # another customer's
    deliver(app, smtp_sink)
    clock.set(sh(2026, 9, 14, 10, 20))
    staff_reply(app, number, "#status resolved\n已恢复。")
    deliver(app, smtp_sink)

    # Not before the quarter's first working day (1-7 October are holidays; 8 October is the day).
    assert [m for m in sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 7, 9, 0))
            if "统计" in str(m["Subject"]) or "statistics" in str(m["Subject"])] == []
    arrived = [m for m in sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 8, 9, 0))
               if "2026Q3" in str(m["Subject"])]
    zh, en = outbox_to(arrived, ZHANG), outbox_to(arrived, SMITH)
    assert len(zh) == 1 and len(en) == 1
    assert str(zh[0]["Subject"]) == "广州某银行 服务统计 2026Q3"
    assert str(en[0]["Subject"]) == "Service statistics 2026Q3: 广州某银行"
    text = body_of(zh[0])
    assert "广州某银行 张三，您好" in text and number in text and "案例数：1" in text
    assert "收银机" not in text  # only the customer's own cases
    assert zh[0].get_body(("html",)) is not None
    assert not outbox_to(arrived, "wangwu@mall.example.cn")  # reports = no
    # Once per quarter.
    assert not [m for m in sweep_and_send(app, smtp_sink, clock, sh(2026, 10, 8, 15, 0)) if "2026Q3" in str(m["Subject"])]

    code, out, _ = cli("--config", str(config), "report", "--customer", "C001", "--quarter", "2026Q3", "--json")
    data = json.loads(out)
    assert code == 0 and data["total"]["cases"] == 1 and data["cases"][0]["number"] == number
    assert cli("--config", str(config), "report", "--customer", "C001", "--month", "2026-10", "--json")[0] == 0
    code, out, _ = cli("--config", str(config), "report", "--customer", "C001", "--quarter", "2026Q3",
                       "--format", "html", "--lang", "en")
    assert code == 0 and "Service statistics 2026Q3: 广州某银行" in out and number in out
    app.close()


def test_the_linking_commands_in_chinese_and_a_bare_vendor() -> None:
    ctx = cmdlib.CommandContext(case_number="SR-2026-000001", case_status="open",
                                customer_exists=lambda ref: ref == "C001",
                                product_exists=lambda serial: serial == "SN-CORE-01",
                                known_vendor=lambda name: name in ("Huawei", "华为"), product_vendor="华为")
    valid, errors = cmdlib.validate(cmdlib.parse("#客户 C001\n#产品SN-CORE-01\n#语言 英文\n#厂商\n已处理。"), ctx)
    assert errors == [] and [(c.name, c.value) for c in valid] == [
        ("customer", "C001"), ("product", "SN-CORE-01"), ("lang", "en"), ("vendor", "华为")]
    _, errors = cmdlib.validate(cmdlib.parse("#customer C404\n#lang fr"), ctx)
    assert [e.line for e in errors] == ["#customer C404", "#lang fr"]
    ctx.product_vendor = "Cisco"
    _, errors = cmdlib.validate(cmdlib.parse("#vendor"), ctx)
    assert "Cisco" in errors[0].reason_en and "未配置" in errors[0].reason_zh


def test_colleagues_in_one_batch_are_the_customer_and_a_stranger_is_not(tmp_path, smtp_sink) -> None:
    """The batch fast path reads declared domains with one query for all its new senders."""
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, _ = setup(tmp_path, smtp_sink, clock)
    raws = [mail("王五 <wangwu@bank.example.cn>", "柜台打印机卡纸", "营业部打印机卡纸。"),
            mail("赵六 <zhaoliu@BANK.example.cn>", "网银登录慢", "网银登录很慢。"),
            mail("陌生人 <someone@elsewhere.example.com>", "咨询", "请问如何开户？")]
    results = app.pipeline.ingest_batch([Inbound(raw, Source("imap-test", "imap")) for raw in raws])
    assert [r.outcome for r in results] == ["new", "new", "new"]
    customers = [facts(app, r.case_number)["customer"] for r in results]
    assert customers[:2] == ["C001", "C001"] and customers[2] != "C001"
    with app.db.session() as s:
        names = set(s.execute(select(ContactPerson.name).join(Customer, ContactPerson.customer_id == Customer.id)
                              .where(Customer.external_id == "C001")).scalars())
    assert {"王五", "赵六"} <= names
    app.close()


def test_an_address_learned_from_mail_is_taken_over_and_another_customers_is_refused(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, config = setup(tmp_path, smtp_sink, clock)
    # 钱七 wrote before anyone imported them: a customer record learned from mail.
    before = ingest(app, mail("qian@school.example.cn", "投影仪无法开机", "教室投影仪无法开机。"))
    assert facts(app, before)["customer"] is None
    school = tmp_path / "school.csv"
    school.write_text(HEADER + "customer,C005,,杭州某学校,,,,,,,,,,,,,,,,,\n"
                      "contact,C005,C005-1,钱七,,,qian@school.example.cn,,,zh,yes,,,,,,,,,,\n", encoding="utf-8")
    code, out, _ = cli("--config", str(config), "customers", "import", str(school))
    assert code == 0 and "changed 1 address" in out  # taken over, not duplicated
    after = ingest(app, mail("qian@school.example.cn", "投影仪又坏了", "教室投影仪又无法开机。"))
    assert (facts(app, after)["customer"], facts(app, after)["person"]) == ("C005", "钱七")

    # An address of another imported customer is a conflict: reported by line, nothing imported.
    thief = tmp_path / "thief.csv"
    thief.write_text(HEADER + "customer,C006,,某公司,,,,,,,,,,,,,,,,,\n"
                     f"contact,C006,C006-1,假张三,,,{ZHANG},,,,,,,,,,,,,,\n", encoding="utf-8")
    code, _, err = cli("--config", str(config), "customers", "import", str(thief))
    assert code == 65 and f"{thief}:3: email {ZHANG} belongs to another customer" in err
    assert cli("--config", str(config), "customers", "show", "C006")[0] == 1
    app.close()


def test_master_data_commands_from_the_customer_or_a_stranger_change_nothing(tmp_path, smtp_sink) -> None:
    """#customer, #product and #lang are engineers' commands: the customer's own
    reply, or a stranger who knows the case number, cannot relink or relabel the case."""
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app, _ = setup(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(ZHANG, "网银系统无法登录", "网银系统无法登录，客户无法办理业务。"))
    before = facts(app, number)
    assert (before["customer"], before["language"]) == ("C001", "zh")
    commands = "#customer C002\n#product SN-OLD-02\n#lang en\n#客户 C002\n#语言 英文"
    for sender in (ZHANG, "attacker@evil.example.com"):
        ingest(app, mail(sender, f"Re: [{number}] 网银系统无法登录", commands))
        assert facts(app, number) == before, sender
    assert not [e for e in events(app, number) if e[0] in ("product-linked", "customer-linked", "language")]
    app.close()
