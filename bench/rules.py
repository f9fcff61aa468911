"""Classification time per message vs. number of keywords.

Usage: python3 bench/rules.py [--repeat N]

Generates synthetic rule folders with 10, 1,000 and 10,000 keywords (mixed
Chinese and Latin, 10 keywords per rule; alone and together with the
shipped rules), and times
``RuleSet.classify`` on a typical ~2 KB Chinese + English message.  Each
iteration uses a fresh message object with a slightly different body, so
the per-run zhconv cache does not flatter the numbers; figures are the
median (and 90th percentile) of the runs, taken round robin over the
configurations.

Chinese keywords are drawn from the whole CJK block, as a real rule set's
are: the cost of an automaton stepped by character grows with the number
of distinct characters keywords start with, so a small alphabet would hide
it.  The load average is printed first: the figures are wall-clock times.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from casegate.parsers.message import Address, Attachment, ParsedMessage
from casegate.rules import ClassifyInput, default_folder, fold, load_rules

_HAN = "".join(chr(c) for c in range(0x4E00, 0x9FA6))  # CJK Unified Ideographs


def _message(i: int) -> ParsedMessage:
    zh = (
        "您好，我们公司的核心交换机从今天上午九点开始出现間歇性丟包，部分业务系统访问非常慢，"
        "财务系统偶尔报错，错误代码为0x8004。请尽快安排工程师到现场处理，谢谢！"
    )
    en = (
        "Hello support team, since 09:00 our core switch shows intermittent packet loss; "
        "the ERP portal is very slow and sometimes returns an error. Please advise. "
    )
    body = (f"工单 {i}\n" + (zh + "\n" + en + "\n") * 10)[:2048]
    return ParsedMessage(
        message_id=f"bench-{i}", in_reply_to=(), references=(),
        from_=Address("李工", "li@customer.com.cn"), reply_to=(),
        to=(Address("", "support@vendor.cn"),), cc=(),
        subject=f"【紧急】核心交换机丢包 / packet loss #{i}", date=None,
        text=body, new_text=body, html=None,
        attachments=(Attachment("switch.log", "text/plain", b""),),
        is_auto_reply=False, is_bounce=False, is_list=False,
    )


def _synthetic_rules(folder: Path, keywords: int, rng: random.Random) -> None:
    per_rule = 10
    lines = []
    for r in range(max(1, keywords // per_rule)):
        kws = []
        for k in range(min(per_rule, keywords)):
            if (r + k) % 2:
                kws.append("".join(rng.choice(_HAN) for _ in range(rng.randint(3, 5))))
            else:
                kws.append(f"kw{r}x{k} term")
        quoted = ", ".join(f'"{w}"' for w in kws)
        lines.append(f'[[rule]]\nname = "syn-{r}"\nany = [{quoted}]\npriority = "P{1 + r % 4}"\n')
    (folder / "50-synthetic.toml").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(4)
    print("load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores")
    sample = _message(0)
    print(
        f"message: body {len(sample.new_text)} chars ({len(sample.new_text.encode())} bytes UTF-8),"
        " subject, 1 attachment"
    )
    started = time.perf_counter()
    for i in range(args.repeat):
        fold(_message(i).new_text)
    print(f"fold() of the body alone: {(time.perf_counter() - started) / args.repeat * 1e6:.0f} µs")
    configs = []
    for count, shipped in ((0, True), (10, False), (1_000, False), (10_000, False), (10_000, True)):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if shipped:
                for path in default_folder().glob("*.toml"):
                    shutil.copy(path, folder / path.name)
            if count:
                _synthetic_rules(folder, count, rng)
            t0 = time.perf_counter()
            rules = load_rules(folder)
            load_ms = (time.perf_counter() - t0) * 1e3
        inputs = [ClassifyInput(message=_message(i), source_kind="imap") for i in range(args.repeat)]
        rules.classify(inputs[0])  # warm-up (zhconv tables, caches)
        configs.append((count, shipped, rules, load_ms, inputs, []))
    # Round robin over the configurations, message by message, so a burst of
    # load on this machine slows all of them alike.
    results = {}
    for i in range(args.repeat):
        for n, (_, _, rules, _, inputs, samples) in enumerate(configs):
            t0 = time.perf_counter()
            results[n] = rules.classify(inputs[i])
            samples.append((time.perf_counter() - t0) * 1e6)
    print(f"{'synthetic':>9} {'shipped':>8} {'keywords':>9} {'rules':>6} {'load ms':>8} {'µs/msg':>8} {'p90':>8} {'matches':>8}")
    for n, (count, shipped, rules, load_ms, _, samples) in enumerate(configs):
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(
            f"{count:>9} {'yes' if shipped else 'no':>8} {rules.keyword_count:>9} {len(rules):>6} "
            f"{load_ms:>8.0f} {statistics.median(samples):>8.0f} {p90:>8.0f} {len(results[n].matches):>8}"
        )


if __name__ == "__main__":
    main()
