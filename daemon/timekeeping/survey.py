"""Reading customers' short answers: satisfaction scores, confirmations, recurrences.

Pure functions on text, no I/O, so every phrasing seen in real mail can be
pinned by a unit test. Callers pass the *new* text of a reply (quotes of our
own mail removed): our survey mail itself lists "1-5" and "非常满意", and
reading the quote back would score every reply.

Customers answer in Chinese or English, with full-width digits ("５分"),
Chinese numerals ("五分"), star ratings or words ("非常满意", "very
satisfied"). Negations come first in every table because the positive word
is inside the negative one ("不满意" contains "满意", "没有再出现" contains
"再出现").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["ReplyReading", "asks_for_new", "is_confirmation", "is_courtesy", "is_recurrence", "normalise", "parse_score",
           "read_reply", "reopens"]

_NUMERALS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
             "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_NUM = r"([1-5]|[一二两三四五]|one|two|three|four|five)"

# "5分", "五星", "4/5", "4 out of 5", "5 points", "3 stars"
_SCORE_UNIT = re.compile(_NUM + r"\s*(?:分|颗星|星|/\s*5|out of 5|points?|stars?)(?![a-z])")
# "评分：4", "打5分", "满意度 5", "score: 4", "rating 5"
_SCORE_LABEL = re.compile(r"(?:评分|打分|打|分数|满意度|评价|score|rating|rate)\s*[:：为是=]?\s*" + _NUM + r"(?![\d.])")
# a reply that is only a digit: "5", "5.", "5！"
_BARE = re.compile(r"^\s*([1-5])\s*[.。!！,，]?\s*$")

# (phrases, score), checked in order: negative forms before the positive
# words they contain, "very"/"非常" forms before the plain ones.
_SCORE_WORDS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("非常不满意", "很不满意", "极不满意", "十分不满意", "特别不满意", "very dissatisfied",
      "very unsatisfied", "extremely dissatisfied", "very unhappy", "terrible", "very poor"), 1),
    (("不太满意", "不是很满意", "不满意", "不大满意", "not very satisfied", "not satisfied", "dissatisfied",
      "unsatisfied", "unhappy", "poor"), 2),
    (("非常满意", "很满意", "十分满意", "特别满意", "超级满意", "very satisfied", "extremely satisfied",
      "very happy", "excellent"), 5),
    (("一般", "还行", "还可以", "凑合", "neutral", "average", "so-so", "so so", "acceptable"), 3),
    (("比较满意", "满意", "satisfied", "happy", "good"), 4),
)

# Negated recurrence ("没有再出现", "hasn't come back") is removed before the
# positive patterns are searched.
_NOT_RECURRED = re.compile(
    r"(?:没有|没|未|不|无|并未|并没有)(?:再|又)?(?:次)?(?:出现|发生|复发|坏|出问题)"
    r"|(?:not|n't|never|no longer)\s+(?:\w+\s+){0,3}?(?:again|come back|came back|recur(?:red)?|return(?:ed)?|broken)"
    r"|no\s+(?:recurrence|more\s+(?:problems?|issues?|faults?))"
)
_RECURRED = re.compile(
    r"又出现|再次出现|再出现|又发生|再次发生|又坏|又出问题|又不行|问题依旧|依旧存在|依然存在|仍然存在|还是存在|"
    r"还是不行|还是有问题|仍然不行|依然不行|故障依旧|复发|没有解决|没解决|未解决|并未解决|还没好|没修好|"
    r"happened again|happening again|occurr?ed again|occurs again|again\b.*\b(?:broken|down|fail)|"
    r"came back|come back|is back|has returned|returned|recurr(?:ed|ing|s)?\b|still broken|still (?:not|n't)|"
    r"still doesn't|still does not|still fail|still down|still happening|same problem|not (?:fixed|resolved|solved)|"
    # "又断网了", "还是不能上网", "再次掉线", "仍然无法登录"
    r"又(?:断|坏|挂|死|停|宕|掉|卡|慢|报错|不能|无法|不通|连不上|上不了|打不开|出现|发生|失败)|"
    r"(?:还是|仍然|依然|依旧|再次)(?:不能|无法|不行|不通|连不上|上不了|打不开|报错|有问题|断|掉|宕|死机|失败|出现)|"
    r"\b(?:down|broken|failing|failed|crash(?:ed|es|ing)?|offline|stopped|not working|dropping|dropped)\b.{0,20}\bagain\b|"
    r"\bagain\b.{0,20}\b(?:down|broken|fail\w*|crash\w*|offline|not working|stopped)\b|"
    r"\bstill\b.{0,15}\b(?:can't|cannot|unable|same|error|broken)\b|\bback again\b"
)
_NOT_CONFIRMED = re.compile(
    r"未|没有|没|尚未|还没|不能确认|无法确认|不确认|不同意|不行|"
    r"\bnot\b|\bno\b|n't|\bstill\b|\bnever\b"
)
_CONFIRMED = re.compile(
    r"确认|已解决|解决了|已经解决|好了|已恢复|恢复正常|正常了|可以关闭|可以结案|同意关闭|同意结案|请关闭|关闭吧|没问题了|"
    r"谢谢.*解决|问题已处理|"
    r"\bconfirm(?:ed)?\b|\byes\b|\bresolved\b|\bfixed\b|\bsolved\b|works now|working now|working again|"
    r"(?:ok|okay|fine) to close|(?:please|you can|you may) close|close (?:it|the case)|all good"
)


def normalise(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII), lower case, one line per paragraph."""
    return unicodedata.normalize("NFKC", text or "").lower().strip()


def _num(token: str) -> int:
    return int(token) if token.isdigit() else _NUMERALS[token]


def parse_score(text: str) -> int | None:
    """The 1-5 satisfaction score a reply gives, or None when it gives none.

    Explicit numbers win over words ("一般, 打3分" is 3); a bare digit only
    counts when it is the whole first line, so "SR-2026-000005" or "2 days"
    in a sentence are never read as scores.
    """
    t = normalise(text)
    if not t:
        return None
    for pattern in (_SCORE_UNIT, _SCORE_LABEL):
        m = pattern.search(t)
        if m:
            return _num(m.group(1))
    first_line = next((line for line in t.splitlines() if line.strip()), "")
    m = _BARE.match(first_line)
    if m:
        return int(m.group(1))
    for phrases, score in _SCORE_WORDS:
        for phrase in phrases:
            if phrase.isascii():
                if re.search(r"(?<![a-z])" + re.escape(phrase) + r"(?![a-z])", t):
                    return score
            elif phrase in t:
                return score
    return None


def is_recurrence(text: str) -> bool:
    """True when the reply says the fault is back or was never fixed."""
    t = _NOT_RECURRED.sub(" ", normalise(text))
    return bool(_RECURRED.search(t))


def is_confirmation(text: str) -> bool:
    """True when the reply accepts the fix ("确认", "已解决", "confirm", "yes")."""
    t = normalise(text)
    if not t or is_recurrence(t):
        return False
    m = _CONFIRMED.search(t)
    if not m:
        return False
    # A negation just before the confirming word ("未解决", "not resolved",
    # "no, not yet") turns it around.
    before = t[max(0, m.start() - 6):m.start()]
    if _NOT_CONFIRMED.search(before):
        return False
    return True


# Replies that only thank or acknowledge: never a reason to reopen a case.
_COURTESY = re.compile(
    r"谢谢|多谢|感谢|非常感谢|辛苦了|辛苦|好的|好|收到|知道了|明白|了解|没问题|不客气|麻烦了|再见|祝好|此致|敬礼|"
    r"的帮助|的支持|你们|您|"
    r"\bthank you\b|\bthanks?\b|\bmany\b|\ba lot\b|\bso much\b|\bfor (?:your|the|all) (?:help|support|work)\b|\ball\b|\bcheers\b|\bok(?:ay)?\b|\bgreat\b|\bgot it\b|\bnoted\b|"
    r"\bregards\b|\bbest\b|\bkind\b|\bvery much\b|\bagain\b|\bmuch\b|\bappreciated?\b|\bperfect\b"
)
_FILLER = re.compile(r"[\s\W_]+|[啊呀哈呢吧啦嗯哦噢的了]")
_QUESTION = re.compile(r"[?？]|请问|如何|怎么|怎样|能否|可否|是否|能不能|可不可以|有没有|\bhow\b|\bcan (?:you|we|i)\b|"
                       r"\bcould (?:you|we)\b|\bis it possible\b|\bwhy\b|\bwhat\b|\bwhen\b")


def is_courtesy(text: str) -> bool:
    """A reply that only thanks or acknowledges ("好的，谢谢！", "Thanks a lot")."""
    t = normalise(text)
    if not t or _QUESTION.search(t):
        return not t
    rest = _FILLER.sub("", _COURTESY.sub("", t))
    return len(rest) <= 1


# "No new needs" (the answer to follow-up question 3) is removed before the
# new-need patterns are searched.
_NO_NEW_NEED = re.compile(
    r"(?:没有|没|暂无|暂时没有|无)(?:其他|其它|新的?|什么)?(?:需求|建议|要求)"
    r"|no\s+(?:other\s+|new\s+|more\s+|further\s+)*(?:needs?|requests?|suggestions?|requirements?)|nothing (?:new|else)"
)
# A new need stated in an answer (follow-up question 3): a request for
# something the product does not do yet, which sales answers (seed 001).
_NEW_NEED = re.compile(
    r"新需求|新功能|功能需求|需求申请|功能建议|定制开发|二次开发|"
    r"(?:希望|建议|能否|能不能|可否|是否可以|可不可以|想要|需要)[^,.;!?。，；！？]{0,12}"
    r"(?:增加|新增|添加|加上|加个|加一个|开发|支持|提供)|"
    r"(?:增加|新增|添加|加一个|加个|开发|定制)[^,.;!?。，；！？]{0,12}(?:功能|报表|界面|接口|按钮|模块|选项)|"
    r"\bfeature request\b|\bnew feature\b|\bplease add\b|\bcould you add\b|\bwould (?:like|love) (?:to have|a|an)\b|"
    r"\bit would be (?:great|nice) if\b|\badd support for\b|\bsuggest adding\b"
)


def asks_for_new(text: str) -> bool:
    """True when an answer states a new need ("希望增加导出功能", "please add an export"):
    not a fault that came back, but a request for sales."""
    t = _NO_NEW_NEED.sub(" ", normalise(text))
    return bool(_NEW_NEED.search(t))


def reopens(text: str) -> bool:
    """Whether a customer's reply to a finished case reopens it: a recurrence
    or a new question does; thanks, scores, confirmations and new needs (they
    open a linked feature request instead) never do."""
    first = "\n".join(line for line in (text or "").splitlines()[:20])
    if is_recurrence(first):
        return True
    if is_courtesy(first) or parse_score(first) is not None or is_confirmation(first) or asks_for_new(first):
        return False
    # "没有新的需求。", "No recurrence, no new needs, thanks": answers to the follow-up, nothing to reopen.
    rest = _NO_NEW_NEED.sub(" ", _NOT_RECURRED.sub(" ", normalise(first)))
    return not is_courtesy(rest)


@dataclass(frozen=True)
class ReplyReading:
    """What a short customer reply says, as far as the service process cares."""

    score: int | None
    confirmed: bool
    recurred: bool


def read_reply(text: str) -> ReplyReading:
    """Score, confirmation and recurrence of one reply, read together."""
    recurred = is_recurrence(text)
    return ReplyReading(
        score=parse_score(text),
        confirmed=not recurred and is_confirmation(text),
        recurred=recurred,
    )
