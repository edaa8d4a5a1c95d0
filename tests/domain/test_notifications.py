"""Notification channels and messages, pure (issue 19): the one validator, the
masking of secrets, the mail target, the batch of bans, each template's shape."""

from __future__ import annotations

import pytest

from pbxfw.domain.addresses import parse_subnet
from pbxfw.domain.bans import Ban
from pbxfw.domain.notifications import (
    Channel,
    email_url,
    mail_target,
    masked,
    validate_channel,
)
from pbxfw.domain.notify_messages import (
    BanBatch,
    failure_message,
    mail_text,
    stale_message,
    webhook_body,
)
from pbxfw.errors import ConflictError, ValidationError


def ban(address: str, jail: str = "asterisk", failures: int = 10) -> Ban:
    return Ban(parse_subnet(address), jail, frozenset({"sip"}), "r", 0.0, 9e9, failures=failures)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdEFGHijklMNOPqrst1234",
            "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/****",
        ),
        (
            "https://chat.example.com/hooks/xq8rm3k1obfxbxw7s4k9t5m2he",
            "https://chat.example.com/hooks/****",
        ),
        (
            "https://user:pw@example.com/x?token=abc&a=1",
            "https://user:****@example.com/x?token=****&a=****",
        ),
        ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
        (
            "hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdEFGHijklMNOPqrst1234",
            "hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/****",
        ),
        (
            "smtp://bob:s3cret@mail.example.com:587?to=a@b.c&from=p@b.c&cafile=/etc/ca.pem",
            "smtp://bob:****@mail.example.com:587?to=a@b.c&from=p@b.c&cafile=/etc/ca.pem",
        ),
    ],
)
def test_masked_hides_every_secret(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_mail_targets() -> None:
    target = mail_target("smtp://a%40b:p%3Aw@mail.example.com?to=x@y.z,w@y.z")
    assert (target.host, target.port, target.tls) == ("mail.example.com", 587, "starttls")
    assert (target.user, target.password) == ("a@b", "p:w")
    assert target.recipients == ("x@y.z", "w@y.z") and target.sender == "pbxfw@mail.example.com"
    assert mail_target("smtps://h?to=x@y.z").port == 465
    assert mail_target("smtp://h:465?to=x@y.z").tls == "ssl"
    assert mail_target("smtp://localhost:25?to=x@y.z&tls=none").tls == "none"
    url = email_url("h", ["x@y.z"], user="u", password="p@ss/w:rd", tls="ssl")
    assert mail_target(url).password == "p@ss/w:rd" and url.startswith("smtps://")


def test_validate_channel() -> None:
    assert validate_channel(" team ", "https://e.com/h", None, []) == Channel(
        "team", "https://e.com/h", "generic"
    )
    assert validate_channel("m", "smtp://h?to=a@b.c", None, []).template == "email"
    with pytest.raises(ConflictError):
        validate_channel(
            "TEAM", "https://e.com/", None, [Channel("team", "https://e.com", "generic")]
        )
    with pytest.raises(ValidationError) as many:
        validate_channel("", "https://e.com/\n", "teams", [])
    assert {e.field for e in many.value.errors} == {"name", "url"}
    with pytest.raises(ValidationError) as bad_template:
        validate_channel("x", "https://e.com/", "teams", [])
    assert bad_template.value.errors[0].field == "template"
    # The e-mail template fits an e-mail target only: with a webhook's URL it
    # is refused, not stored as a generic webhook.
    assert validate_channel("m", "smtp://h?to=a@b.c", "email", []).template == "email"
    with pytest.raises(ValidationError, match="smtp://") as email_hook:
        validate_channel("x", "https://e.com/", "email", [])
    assert [e.field for e in email_hook.value.errors] == ["template"]
    # A bad target and a bad template are told together.
    with pytest.raises(ValidationError) as both:
        validate_channel("x", "smtp://h?to=nobody", "slack", [])
    assert [e.field for e in both.value.errors] == ["url", "template"]
    # A masked target pasted back (from `notify list`, or the page's refused
    # form) is refused: it would send "****" as the secret.
    for shown in (
        "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/****",
        "smtp://bob:****@mail.example.com?to=a@b.c",
    ):
        with pytest.raises(ValidationError, match=r"in place of \*\*\*\*") as pasted:
            validate_channel("x", shown, None, [])
        assert pasted.value.errors[0].field == "url"


def test_a_batch_counts_and_keeps_the_top_sources_bounded() -> None:
    batch = BanBatch()
    batch.add([ban(f"10.0.{i // 250}.{i % 250}", failures=3) for i in range(3000)])
    batch.add([ban("203.0.113.9", "ssh", failures=40)])
    assert batch.count == 3001 and batch.by_jail == {"asterisk": 3000, "ssh": 1}
    assert len(batch._sources) <= 1000
    message = batch.message(0.0, "default", "pbx")
    assert message.details["top_sources"][0] == {
        "source": "203.0.113.9",
        "failures": 40,
        "jail": "ssh",
    }
    assert message.lines[0] == "3001 new bans (asterisk 3000, ssh 1)."
    assert message.lines[-1] == "… and 2991 more: pbxfw bans list"


def test_templates_and_mail() -> None:
    message = stale_message("pbx-b", 100.0, 160.0, "hq", "pbx-a", 3)
    assert webhook_body("slack", message) == {
        "text": f"*Node pbx-b stopped reporting*\n{message.text}"
    }
    assert webhook_body("mattermost", message)["text"].startswith("#### Node pbx-b")
    generic = webhook_body("generic", message)
    assert generic["id"] == "pbx-a-node_stale-160000-3" and generic["site"] == "hq"
    long = failure_message("apply_failed", "applying", "x" * 3000, 0.0, 1.0, "s", "n")
    assert len(webhook_body("discord", long)["content"]) == 2000
    subject, body = mail_text(message)
    assert subject == "[pbxfw hq/pbx-a] Node pbx-b stopped reporting"
    assert "(60 s ago)" in body and body.endswith("message pbx-a-node_stale-160000-3\n")
