r'''The admins' rule engine and the default rule files.

Admins tune classification by editing TOML files in a rule folder (default:
the files shipped in ``rules/default/``); ``RuleStore`` picks up edits
without a restart.  Files are read in NAME ORDER (``10-severity.toml``
before ``20-complaints.toml``), rules in file order.

Rule format::

    [[rule]]
    name = "p1-outage"                 # unique across the folder
    description = "system down"        # optional
    enabled = true                     # optional, false = skip the rule
    # -- conditions (all given parts must hold) --
    fields = ["subject", "body"]       # where any/all/none/regex look (default)
    any  = ["宕机", "system down"]      # at least one keyword
    all  = ["ups", "告警"]              # every keyword
    none = ["已恢复", "resolved"]        # no keyword
    regex = '故障单号\s*\d+'             # string or list; any pattern
    sender_domain.any = ["bank.cn"]    # per-field condition: <field>.any/all/none/regex
    outside_working_hours = true       # only outside (true) / inside (false) hours
    warranty_expired = true            # only when known expired (true) / valid (false)
    # -- reading the clause around each hit of `any` (or `regex`) --
    not_after = ["@negation"]          # a negation before it in its clause: does not count
    near = ["@scope_all"]              # counts only with one of these nearby
    if_question = "P4"                 # a word of list "question" there: counts as P4
    if_past = "skip"                   # ... of list "past": does not count
    # -- actions --
    priority = "P1"                    # P1 (most severe) .. P4
    category = "outage"
    queue = "support"
    tags = ["outage"]
    assignee_group = "network"
    route = "support"                  # support | sales | ignore
    language = "zh"                    # override the detected language

Word lists (any file; merged by name over all files before rules are read):

    [lists.negation]
    zh = ["没有", "并非"]                 # words, grouped by language
    en = ["not", "never"]
    except = ["但是", "but"]             # cancel the list in that clause (negation:
                                       # between it and the keyword)
    not_in = ["无线"]                    # longer words that contain a list word
    with = ["正常"]                      # if set: a list word counts only with one
                                       # of these in its clause (其他 + 正常)
    reach = "clause"                   # or "sentence", or "message" (anywhere)

A word with braces is a vocabulary class: "{登|连|付}不了" stands for 登不了,
连不了 and 付不了 (every combination when there are several braces), in
rules and lists alike.  A keyword a rule finds in both the subject and the
body is read where the body tells it (subject "宕机怎么办", body "万一服务器
宕机了...": a hypothetical).

"@name" stands for a list's words in any/all/none/near/not_after/except/
not_in; ``if_<name>`` works for every list (the least severe wins when
several apply; "skip" = not counted). A clause ends at , ; : 、 and at
the sentence ends 。 ! ? . and line breaks. The list "question" also
matches a clause that ends with '?'.

Fields: subject, body (the NEW text of the message: quoted history and
signature already cut off; or ``text_override``, e.g. fax OCR), sender,
sender_domain, recipient, attachment_names (only when a rule names it),
source, source_kind ("fax", "imap", "smtp", "spool"), customer (company,
name), contract (its ID), contract_level (e.g. "gold": the level of the
customer's valid contract, from the customer master data).

Matching: keywords and text are folded alike (NFKC so ＡＢＣ１２３ = abc123,
casefold, traditional -> simplified Chinese, whitespace runs -> one space,
spaces between CJK characters removed).  Latin keywords match whole words
("down" never matches "download"; a trailing '*' as in "install*" lifts
the end boundary); CJK keywords match as substrings.  Regexes run on the
folded text (compiled case-insensitive).

Resolution: priority = the MOST SEVERE priority of all matching rules (a
discounted match counts at its lowered priority and sets nothing else);
category, queue, assignee_group, route and language = the FIRST matching
rule that sets it (file name order, then file order) — so put specific
rules in earlier files; tags = union of all matching rules.  Unset actions
fall back to the caller's defaults (route "support", language detected).
Severity beats an ignore route: when a match of a rule that sets no route
counts at P1-P3 (a fault), rules with route = "ignore" are set aside.  Each match carries the clause
it was found in; matches that did not count are listed in
``Classification.discounted`` with the reason (negated, question, past...).
'''

from .errors import RuleError, RuleLoadError
from .loader import check_file, check_folder, default_folder, load_rules
from .matcher import RuleSet
from .model import (
    DEFAULT_FIELDS,
    FIELDS,
    PRIORITIES,
    ROUTES,
    Classification,
    ClassifyInput,
    Context,
    Rule,
    RuleMatch,
    WordList,
)
from .normalize import fold, fold_text
from .report import format_result
from .store import RuleStore

__all__ = [
    "Classification",
    "ClassifyInput",
    "Context",
    "DEFAULT_FIELDS",
    "FIELDS",
    "PRIORITIES",
    "ROUTES",
    "Rule",
    "RuleError",
    "RuleLoadError",
    "RuleMatch",
    "RuleSet",
    "RuleStore",
    "WordList",
    "check_file",
    "check_folder",
    "default_folder",
    "fold",
    "fold_text",
    "format_result",
    "load_rules",
]
