"""Vendor escalation end to end: #vendor, notice with facts and attachments,
the vendor's reply threading back, its case number told to the customer, reminders."""

from __future__ import annotations

import pytest
from sla_support import (
    CUSTOMER, ENGINEER, VENDOR, Clock, body_of, deliver, events, ingest, mail, make_app, sh,
    staff_reply, sweep_and_send,
)
from sqlalchemy import select

from casegate.daemon.inbound import Inbound
from casegate.daemon.config import ConfigError, build_config
from casegate.daemon.directory.vendors import VendorDirectory
from casegate.storage.models import Customer, VendorCase


def test_vendor_flow(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail(body="核心交换机宕机，日志见附件。",
                              attachments=[("switch.log", "text/plain", b"%LINK-3-UPDOWN: down\n")]))
    deliver(app, smtp_sink)

    clock.set(sh(2026, 10, 12, 10, 20))
    staff_reply(app, number, "#vendor 华为\n我们已联系设备厂商华为协助处理。")
    msgs = deliver(app, smtp_sink)
    to_vendor = [m for m in msgs if m["To"].addresses[0].addr_spec == VENDOR]
    assert len(to_vendor) == 1
    notice = to_vendor[0]
    assert f"[{number}]" in str(notice["Subject"]) and "HW-CN-0088" in str(notice["Subject"])
    text = body_of(notice)
    assert "核心交换机宕机" in text and "HW-CN-0088" in text
    assert [p.get_filename() for p in notice.iter_attachments()] == ["switch.log"]
    assert "Auto-Submitted" not in notice
    assert ("vendor-escalated", "Huawei") in events(app, number)

    # The vendor answers our notice: threads by In-Reply-To, no ack, no customer record, number captured.
    clock.set(sh(2026, 10, 12, 15, 0))
    reply = mail(VENDOR, f"RE: [{number}] Support request", "Dear partner, we opened SR 1234567890 for you.",
                 in_reply_to=str(notice["Message-ID"]).strip("<>"))
    res = app.pipeline.ingest(Inbound(reply, __import__("sla_support").SOURCE))
    assert (res.outcome, res.case_number) == ("reply", number)
    msgs = deliver(app, smtp_sink)
    to_customer = [m for m in msgs if m["To"].addresses[0].addr_spec == CUSTOMER]
    assert len(to_customer) == 1 and "1234567890" in str(to_customer[0]["Subject"])
    assert "1234567890" in body_of(to_customer[0])
    assert not [m for m in msgs if m["To"].addresses[0].addr_spec == VENDOR]  # no ack to the vendor
    with app.db.session() as s:
        vc = s.execute(select(VendorCase)).scalars().one()
        assert vc.vendor_case_no == "1234567890" and vc.last_reply_at == clock.now
        assert all(c.contacts[0].value != VENDOR for c in s.execute(select(Customer)).scalars())

    # Reminder: a day after the vendor's last word, not before; then daily while silent.
    def reminders(when):
        return [m for m in sweep_and_send(app, smtp_sink, clock, when) if m["To"].addresses[0].addr_spec == VENDOR]

    assert reminders(sh(2026, 10, 13, 14, 59)) == []
    got = reminders(sh(2026, 10, 13, 15, 0))
    assert len(got) == 1 and "1234567890" in str(got[0]["Subject"])
    assert reminders(sh(2026, 10, 13, 15, 0)) == []
    assert len(reminders(sh(2026, 10, 14, 15, 0))) == 1
    assert [n for a, n in events(app, number, "vendor-reminded")] == ["Huawei", "Huawei"]

    # Resolved: no more reminders.
    clock.set(sh(2026, 10, 14, 16, 0))
    staff_reply(app, number, "#status resolved\n厂商更换主板后恢复。")
    deliver(app, smtp_sink)
    assert reminders(sh(2026, 10, 16, 15, 0)) == []


def test_vendor_number_given_in_command_is_told_once(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail())
    deliver(app, smtp_sink)
    staff_reply(app, number, "#vendor Huawei 2026101200001")
    msgs = deliver(app, smtp_sink)
    assert sorted(m["To"].addresses[0].addr_spec for m in msgs) == sorted([VENDOR, CUSTOMER])
    staff_reply(app, number, "#vendor Huawei 2026101200001")
    assert [m["To"].addresses[0].addr_spec for m in deliver(app, smtp_sink)] in ([ENGINEER], [])
    assert len(events(app, number, "vendor-case-number-sent")) == 1


def test_unknown_vendor_is_refused(tmp_path, smtp_sink) -> None:
    clock = Clock(sh(2026, 10, 12, 10, 0))
    app = make_app(tmp_path, smtp_sink, clock)
    number = ingest(app, mail())
    staff_reply(app, number, "#vendor Cisco")
    assert events(app, number, "vendor-escalated") == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"address": "a@b.c"}, "vendors[0].name"),
        ({"name": "X", "address": "not an address"}, "vendors[0].address"),
        ({"name": "X", "address": "a@b.c", "case_number_regex": "("}, "vendors[0].case_number_regex"),
        ({"name": "X", "address": "a@b.c", "reminder_every": "soon"}, "vendors[0].reminder_every"),
        ({"name": "X", "address": "a@b.c", "remind": "1d"}, "vendors[0].remind"),
    ],
)
def test_vendor_config_errors(tmp_path, entry, message) -> None:
    config = build_config({"vendors": [entry]}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        VendorDirectory.from_config(config)
