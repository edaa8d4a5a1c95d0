"""The agent's notifications in-process (dry-run kernel, injected clock, real
receivers): bans batched at most once a minute while the channel hangs (the
bans all land, the ticks do not wait), the failing channel reported; a
rollback, a failing log source, a stale node; the daily digest by e-mail; the
queue bound."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.agent.health import Backoff
from pbxfw.agent.notifier import NotifyOptions, Sender
from pbxfw.domain.nodes import Node
from pbxfw.domain.notifications import Channel, ChannelStatus
from pbxfw.domain.notify_messages import Message, probe_message
from pbxfw.errors import StorageError
from pbxfw.kernel.confirm_state import ROLLBACK_FILE, namespace_dir
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.nodes import NodeService
from pbxfw.usecases.notifications import NotifyService
from tests.agent.test_agent_unit import failure, setup
from tests.notify_servers import (
    Certs,
    Mailbox,
    Receiver,
    certs,
    receiver,
    smtp_starttls,
)

__all__ = ["certs", "receiver", "smtp_starttls"]  # the fixtures, used by name

FAST = NotifyOptions(
    reload_seconds=0.0,
    timeout=0.3,
    attempts=2,
    backoff=Backoff(first=0.05, longest=0.05),
    grace_seconds=30.0,
    nodes_seconds=0.0,
    rollback_seconds=0.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def start(
    svc: ConfigService, tmp_path: Path, clock: Clock, options: NotifyOptions = FAST
) -> tuple[Agent, DryRunBackend]:
    backend = DryRunBackend()
    agent = Agent(
        svc.store,
        AgentOptions(state_dir=str(tmp_path / "state"), node="pbx-a", notify=options),
        backend=backend,
        clock=clock,
    )
    agent.start()
    return agent, backend


def attackers(count: int, offset: int = 0) -> list[str]:
    return [f"10.{(i + offset) // 250 + 100}.{(i + offset) % 250}.9" for i in range(count)]


def test_a_hanging_channel_while_1000_bans_arrive(
    svc: ConfigService, tmp_path: Path, receiver: Receiver
) -> None:
    log = setup(svc, tmp_path)  # maxretry 3
    NotifyService(svc.store).add("hook", receiver.url + "/hook")
    receiver.hang = True  # takes the request, never answers
    clock = Clock()
    agent, backend = start(svc, tmp_path, clock)
    try:
        slowest = 0.0
        for half in (0, 500):
            with log.open("a") as f:
                f.write("".join(failure(a) * 3 for a in attackers(500, half)))
            began = time.monotonic()
            agent.tick()
            slowest = max(slowest, time.monotonic() - began)
            clock.now += 1
        # Every ban is in the kernel and the store; no tick waited for the channel.
        assert len(backend.bans) == 1000
        assert len(BanService(svc.store).active()) == 1000
        assert slowest < 5, slowest
        # One message for the first tick's bans; the second waits for the minute.
        first = receiver.wait(1)
        assert [b["details"]["count"] for b in first] == [500]
        clock.now += 60
        agent.tick()
        bodies = receiver.wait(3)  # the first retried, the second sent
        ids = {b["id"]: b["details"]["count"] for b in bodies}
        assert sorted(ids.values()) == [500, 500]
        top = next(b for b in bodies if b["id"] != first[0]["id"])["details"]["top_sources"]
        assert len(top) == 10 and top[0]["failures"] == 3
        # The channel's failure is reported, with the messages given up.
        sender = agent.notifier.senders["hook"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sender.status().failed < 2:
            time.sleep(0.05)
        agent.tick()
        [view] = NotifyService(svc.store).listing()
        assert view.last_error == "timed out after 0.3 s"
        assert view.as_json()["failed"] == 2 and view.as_json()["sent"] == 0
    finally:
        agent.notifier.close()


def test_rollback_failing_source_and_stale_node(
    svc: ConfigService, tmp_path: Path, receiver: Receiver
) -> None:
    setup(svc, tmp_path)
    svc.update_settings({"log_ssh": str(tmp_path)})  # a folder, not a file: cannot be read
    NotifyService(svc.store).add("hook", receiver.url + "/hook")
    clock = Clock()
    # A node of the site that reported a minute ago, then stopped.
    NodeService(svc.store).report(
        Node("pbx-b", "default", clock.now - 60, clock.now - 60, clock.now - 60, None, 0, "", 0, "")
    )
    agent, _ = start(svc, tmp_path, clock)
    try:
        [stale] = receiver.wait(1)
        assert stale["event"] == "node_stale" and stale["details"]["stale_node"] == "pbx-b"

        # The kernel rolled a change back (kernel.confirm writes this record).
        folder = namespace_dir(str(tmp_path / "state"), None)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ROLLBACK_FILE).write_text(
            f'{{"token": "t1", "time": {clock.now}, "reason": "not confirmed in 30 s"}}'
        )
        clock.now += 1
        agent.tick()
        rollback = receiver.wait(2)[1]
        assert rollback["event"] == "rollback"
        assert rollback["details"]["reason"] == "not confirmed in 30 s"

        # The log source that cannot be read: told once it has failed for 30 s.
        clock.now += 10
        agent.tick()
        assert len(receiver.wait(3, timeout=0.5)) == 2  # not yet: within the grace
        clock.now += 31
        agent.tick()
        told = receiver.wait(3)[2]
        assert told["event"] == "source_failed" and "is a folder" in told["details"]["error"]
        clock.now += 70
        agent.tick()
        assert len(receiver.wait(4, timeout=0.5)) == 3  # once per episode
    finally:
        agent.notifier.close()


def test_daily_digest_by_mail(
    svc: ConfigService, tmp_path: Path, smtp_starttls: Mailbox, certs: Certs, receiver: Receiver
) -> None:
    log = setup(svc, tmp_path)
    url = (
        f"smtp://pbx:s3cret%3Apass%2Fword@127.0.0.1:{smtp_starttls.port}"
        f"?to=admin@example.com&cafile={certs.ca}"
    )
    notify = NotifyService(svc.store)
    notify.add("mail", url)
    notify.add("hook", receiver.url + "/hook")
    clock = Clock()
    agent, _ = start(svc, tmp_path, clock, replace(FAST, digest_seconds=100.0))
    try:
        with log.open("a") as f:
            f.write(failure("203.0.113.50") * 3)
        agent.tick()
        [bans_mail] = smtp_starttls.wait(1)
        assert "1 new ban on pbx-a" in str(bans_mail["Subject"])
        clock.now += 101
        agent.tick()
        mails = smtp_starttls.wait(2)
        digest = mails[1]
        assert str(digest["Subject"]) == "[pbxfw default/pbx-a] Daily digest of default"
        body = digest.get_payload(decode=True)
        assert isinstance(body, bytes)
        assert "Bans made in the last 24 hours: 1 (asterisk 1)." in body.decode()
        # The webhook is not sent the digest.
        assert [b["event"] for b in receiver.wait(1)] == ["bans"]
    finally:
        agent.notifier.close()


def test_messages_beyond_the_queue_bound_are_dropped_and_counted() -> None:
    release = threading.Event()
    taken: list[str] = []

    def send(_channel: Channel, message: Message, _timeout: float) -> None:
        taken.append(message.id)
        release.wait(10)

    options = replace(FAST, queue_size=2)
    sender = Sender(
        Channel("hook", "http://127.0.0.1:9/", "generic"),
        ChannelStatus("hook", "pbx-a"),
        options,
        time.time,
        send,
    )
    try:
        messages = [probe_message("hook", float(i), "default", "pbx-a") for i in range(6)]
        sender.put(messages[0])
        deadline = time.monotonic() + 5
        while not taken and time.monotonic() < deadline:
            time.sleep(0.01)
        results = [sender.put(m) for m in messages[1:]]
        assert results == [True, True, False, False, False]
        assert sender.status().dropped == 3
    finally:
        release.set()
        sender.stop()
        sender.join(5)


def test_bans_are_told_while_the_channels_cannot_be_read_again(
    svc: ConfigService, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = setup(svc, tmp_path)
    NotifyService(svc.store).add("hook", receiver.url + "/hook")
    clock = Clock()
    agent, backend = start(svc, tmp_path, clock)
    try:

        def down() -> list[Channel]:
            raise StorageError("cannot reach the database: connection refused")

        monkeypatch.setattr(agent.notifier.service, "channels", down)
        with log.open("a") as f:
            f.write(failure("203.0.113.60") * 3)
        clock.now += 1
        agent.tick()
        assert ("203.0.113.60/32", "asterisk") in backend.bans
        assert [s.source for s in agent.health.failing()] == ["agent:notify-store"]
        [told] = receiver.wait(1)
        assert told["event"] == "bans" and told["details"]["count"] == 1
    finally:
        agent.notifier.close()
