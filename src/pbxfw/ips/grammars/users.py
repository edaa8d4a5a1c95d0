"""Reading the account a failure tried (``Failure.user``) out of the field the
daemon wrote for it: pure text helpers shared by the grammars.

The user is display data only (the dashboard's top lists): it never decides
anything, so where a message's grammar cannot say for sure which text is the
account, the helpers give "" rather than a guess. The address of a failure
never comes from here. Each result is cut to :data:`USER_MAX` characters.
"""

from __future__ import annotations

from pbxfw.ips.events import USER_MAX

__all__ = ["USER_MAX", "account_id", "cap", "quoted_tail", "sip_user"]


def cap(user: str | None) -> str:
    """``user`` ("" for None) cut to USER_MAX characters."""
    if not user:
        return ""
    return user if len(user) <= USER_MAX else user[:USER_MAX]


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
    for scheme in ("sip:", "sips:"):
        if uri.startswith(scheme):
            at = uri.find("@", len(scheme))
            return cap(uri[len(scheme) : at]) if at >= 0 else ""
    return ""


def quoted_tail(message: str, start: int) -> str:
    """The name of a message that ends with ``'NAME'`` written from ``start``
    on (the text after the opening quote up to the last quote of the
    message): manager.c's and chan_iax2's ``... as '%s'``. "" when the
    message does not end so."""
    text = message.rstrip()
    end = len(text) - 1
    return cap(text[start:end]) if end >= start and text.endswith("'") else ""


def account_id(fields: str) -> str:
    """The AccountID of a SecurityEvent from ``fields``, the text between the
    event's fixed head and its address pair: ``AccountID="A",SessionID="S",``.
    Both values are client text written unescaped, so the split is certain
    only when ``",SessionID="`` occurs once; else "" (and "" for another
    layout)."""
    head, tail = 'AccountID="', '",'
    if not fields.startswith(head) or not fields.endswith(tail):
        return ""
    split = fields.find('",SessionID="', len(head))
    if split < 0 or fields.find('",SessionID="', split + 1) >= 0:
        return ""
    return cap(fields[len(head) : split])
