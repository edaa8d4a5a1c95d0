"""Reading the account a failure tried (``Failure.user``) out of the field the
daemon wrote for it: pure text helpers shared by the grammars.

The user is display data only (the dashboard's top lists): it never decides
anything, so where a message's grammar cannot say for sure which text is the
account, the helpers give "" rather than a guess. The address of a failure
never comes from here. Each result is cut to :data:`USER_MAX` characters.
"""

from __future__ import annotations

import re

from pbxfw.ips.events import USER_MAX

__all__ = [
    "USER_MAX",
    "account_id",
    "cap",
    "quoted_tail",
    "sip_user",
    "uri_user",
    "without_user",
]


def without_user(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """``pattern`` with its group ``user`` made non-capturing: the same
    language, matched faster (a capture inside a part that backtracks costs
    sre a saved mark per step): what a recogniser not asked for users runs."""
    return re.compile(pattern.pattern.replace("(?P<user>", "(?:"), pattern.flags)


def cap(user: str | None) -> str:
    """``user`` ("" for None) cut to USER_MAX characters."""
    if not user:
        return ""
    return user[:USER_MAX]


def sip_user(header: str) -> str:
    """The user part of the SIP URI in a From / To header as Asterisk prints
    it (``["display" ]<sip:USER@host>`` or a bare ``sip:USER@host;...``): the
    extension or number the client named; "" when the URI has no user part
    or is not a sip/sips URI."""
    start = header.rfind("<")
    if start >= 0:
        end = header.find(">", start)
        uri = header[start + 1 : end if end >= 0 else len(header)]
    else:
        uri = header
    return uri_user(uri)


def uri_user(uri: str) -> str:
    """The user part of a bare sip/sips URI (``sip:USER@host;params``), "" without one."""
    at = uri.find("@")
    if at < 0:
        return ""
    if uri.startswith("sip:"):
        user = uri[4:at]
    elif uri.startswith("sips:"):
        user = uri[5:at]
    else:
        return ""
    return user[:USER_MAX]


def quoted_tail(message: str, start: int) -> str:
    """The name of a message that ends with ``'NAME'`` written from ``start``
    on (the text after the opening quote up to the last quote of the
    message): manager.c's and chan_iax2's ``... as '%s'``. "" when the
    message does not end so."""
    text = message.rstrip()
    end = len(text) - 1
    return cap(text[start:end]) if end >= start and text.endswith("'") else ""


def account_id(event: str, start: int, end: int) -> str:
    """The AccountID of a SecurityEvent from ``event[start:end]``, the text
    between the event's fixed head and its address pair (which the caller
    found): ``AccountID="A",SessionID="S",``. Both values are client text
    written unescaped, so the split is certain only when ``",SessionID="``
    occurs there once; else "" (and "" for another layout)."""
    if not event.startswith('AccountID="', start):
        return ""
    split = event.find('",SessionID="', start + 11, end)
    if split < 0 or event.find('",SessionID="', split + 1, end) >= 0:
        return ""
    user = event[start + 11 : split]
    return user[:USER_MAX]
