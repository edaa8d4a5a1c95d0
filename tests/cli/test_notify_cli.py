"""``pbxfw notify add|list|rm|test`` through the real CLI, against real receivers
(issue 19): secrets never shown back, bad input refused with the field named
and nothing stored, ``notify test`` through a webhook and through SMTP with
STARTTLS and AUTH."""

from __future__ import annotations

import json

from tests.helpers import Cli
from tests.notify_servers import (
    MAIL_PASSWORD,
    MAIL_USER,
    Certs,
    Mailbox,
    Receiver,
    certs,
    receiver,
    smtp_starttls,
)

__all__ = ["certs", "receiver", "smtp_starttls"]  # the fixtures, used by name

SLACK = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdEFGHijklMNOPqrst1234"
DISCORD = "https://discord.com/api/webhooks/123456789012345678/AbCdEf-0123456789_secretTOKENvalue"


def test_secrets_are_never_shown_back(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    added = cli("notify", "add", "team", SLACK, "--template", "slack")
    assert added.exit_code == 0, added.stderr
    assert "abcdEFGHijklMNOPqrst1234" not in added.stdout and "****" in added.stdout
    assert cli("notify", "add", "chat", DISCORD, "--template", "discord").exit_code == 0
    mail = cli(
        "notify",
        "add",
        "noc",
        "--smtp-host",
        "mail.example.com",
        "--to",
        "noc@example.com",
        "--to",
        "boss@example.com",
        "--user",
        "pbx",
        "--password-stdin",
        input="Very$ecret:1\n",
    )
    assert mail.exit_code == 0, mail.stderr
    listing = cli("notify", "list")
    as_json = cli("notify", "list", "--json")
    for text in (listing.stdout, as_json.stdout, mail.stdout):
        assert "abcdEFGH" not in text and "secretTOKEN" not in text and "Very" not in text
    channels = json.loads(as_json.stdout)
    assert [(c["name"], c["kind"], c["template"], c["url"]) for c in channels] == [
        ("team", "webhook", "slack", "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/****"),
        ("chat", "webhook", "discord", "https://discord.com/api/webhooks/123456789012345678/****"),
        (
            "noc",
            "email",
            "email",
            "smtp://pbx:****@mail.example.com?to=noc@example.com,boss@example.com",
        ),
    ]
    assert channels[0]["last_error"] == "" and channels[0]["dropped"] == 0
    assert cli("notify", "rm", "chat").exit_code == 0
    assert [c["name"] for c in json.loads(cli("notify", "list", "--json").stdout)] == [
        "team",
        "noc",
    ]
    gone = cli("notify", "rm", "chat")
    assert gone.exit_code == 3 and "no notification channel 'chat'" in gone.stderr


def test_bad_input_names_the_field_and_stores_nothing(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    assert cli("notify", "add", "team", "https://example.com/hook").exit_code == 0
    before = cli("notify", "list", "--json").stdout
    refusals = [
        (("notify", "add", "x", "ftp://example.com/"), "url: a webhook is an http://"),
        (("notify", "add", "x", "https://example.com/", "--template", "teams"), "template:"),
        (("notify", "add", "x", "smtp://mail.example.com:587"), "url: name the recipients"),
        (("notify", "add", "x", "smtp://h?to=not-an-address"), "is not an e-mail address"),
        (("notify", "add", "x", "smtp://h?to=a@b.c&port=1"), "unknown option 'port'"),
        (("notify", "add", "x", "smtp://h?to=a@b.c", "--template", "slack"), "template:"),
        (("notify", "add", "a/b", "https://example.com/"), "name: a channel's name"),
        (("notify", "add", "TEAM", "https://example.com/"), "name: a channel named"),
        (("notify", "add", "x"), "url: give the webhook"),
        (("notify", "add", "x", "https://e.com/", "--smtp-host", "h"), "url: give either"),
    ]
    for args, message in refusals:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert cli("notify", "list", "--json").stdout == before


def test_notify_test_through_a_webhook_and_smtp(
    cli: Cli, receiver: Receiver, smtp_starttls: Mailbox, certs: Certs
) -> None:
    assert cli("init").exit_code == 0
    assert cli("notify", "add", "hook", receiver.url + "/in").exit_code == 0
    sent = cli("notify", "test", "hook")
    assert sent.exit_code == 0, sent.stderr
    [body] = receiver.wait(1)
    assert body["event"] == "test" and body["details"] == {"channel": "hook"}

    url = (
        f"smtp://{MAIL_USER}:s3cret%3Apass%2Fword@127.0.0.1:{smtp_starttls.port}"
        f"?to=admin@example.com&from=pbx@example.com&cafile={certs.ca}"
    )
    assert MAIL_PASSWORD == "s3cret:pass/word"
    assert cli("notify", "add", "mail", url).exit_code == 0
    mailed = cli("notify", "test", "mail")
    assert mailed.exit_code == 0, mailed.stderr
    [mail] = smtp_starttls.wait(1)
    assert "Test message for channel mail" in str(mail["Subject"])
    assert smtp_starttls.logins == [MAIL_USER] and smtp_starttls.secure == [True]

    receiver.status = 503
    failed = cli("notify", "test", "hook")
    assert failed.exit_code == 7 and "error: HTTP 503" in failed.stderr
