"""The PJSIP include is the one file pbxfw writes as root: where and over what it may.

Issue 13: ``pjsip_include_path`` was stored unchecked, and the agent replaced
whatever file it named (``/etc/passwd``). The setting's rule is the domain's
(tests/domain/test_settings.py); these tests show the writer enforces it
again at write time, with what is on disk: never through a symlink, never
over a file pbxfw did not write, never anything but a regular file, only
directly in the Asterisk configuration folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from pbxfw.asterisk.pjsip import (
    HEADER,
    PjsipError,
    render_pjsip,
    write_configured_include,
    write_include,
)
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.networks import permanent_networks
from pbxfw.domain.settings import Settings

TEXT = render_pjsip(Configuration(networks=tuple(permanent_networks()), settings=Settings()))
VICTIM = "root:x:0:0:root:/root:/bin/bash\n"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def asterisk(tmp_path: Path) -> Path:
    """An Asterisk configuration folder (it holds pjsip.conf)."""
    folder = tmp_path / "asterisk"
    folder.mkdir()
    (folder / "pjsip.conf").write_text("[transport-udp]\ntype=transport\n")
    return folder


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the Asterisk folder that must never change."""
    path = tmp_path / "etc-passwd"
    path.write_text(VICTIM)
    return path


def settings(folder: Path, include: str) -> Settings:
    """Settings as an older pbxfw may have stored them: not validated."""
    return Settings.model_construct(asterisk_config_dir=str(folder), pjsip_include_path=include)


def test_the_generated_text_starts_with_the_header() -> None:
    assert TEXT.splitlines()[0] == HEADER


def test_a_new_include_is_created_readable_by_asterisk(asterisk: Path) -> None:
    include = asterisk / "pbxfw_pjsip_nat.conf"
    assert write_configured_include(settings(asterisk, str(include)), TEXT) is True
    assert include.read_text() == TEXT
    assert stat.S_IMODE(include.stat().st_mode) == 0o644
    assert write_configured_include(settings(asterisk, str(include)), TEXT) is False
    assert sorted(p.name for p in asterisk.iterdir()) == ["pbxfw_pjsip_nat.conf", "pjsip.conf"]


def test_a_symlink_is_never_written_through(asterisk: Path, victim: Path) -> None:
    """A less privileged user (Asterisk's own, which often owns /etc/asterisk)
    plants a link to a file root owns."""
    include = asterisk / "pbxfw_pjsip_nat.conf"
    include.symlink_to(victim)
    with pytest.raises(PjsipError, match="symbolic link"):
        write_configured_include(settings(asterisk, str(include)), TEXT)
    assert victim.read_text() == VICTIM
    assert include.is_symlink()  # left as found
    assert sorted(p.name for p in asterisk.iterdir()) == ["pbxfw_pjsip_nat.conf", "pjsip.conf"]


def test_a_dangling_symlink_is_refused_too(asterisk: Path, tmp_path: Path) -> None:
    include = asterisk / "pbxfw_pjsip_nat.conf"
    include.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(PjsipError, match="symbolic link"):
        write_include(include, TEXT)
    assert not (tmp_path / "would-be-created").exists()


@pytest.mark.parametrize("name", ["pjsip.conf", "extensions.conf"])
def test_a_file_pbxfw_did_not_write_is_never_replaced(asterisk: Path, name: str) -> None:
    include = asterisk / name
    if not include.exists():
        include.write_text("[general]\nstatic=yes\n")
    before = digest(include)
    with pytest.raises(PjsipError, match="pbxfw did not write this file"):
        write_configured_include(settings(asterisk, str(include)), TEXT)
    assert digest(include) == before


def test_an_empty_file_is_not_pbxfw_s_either(asterisk: Path) -> None:
    include = asterisk / "nat.conf"
    include.touch()
    with pytest.raises(PjsipError, match="pbxfw did not write"):
        write_include(include, TEXT)
    assert include.read_text() == ""


def test_an_include_pbxfw_wrote_is_replaced(asterisk: Path) -> None:
    include = asterisk / "nat.conf"
    include.write_text(HEADER + "\nlocal_net=10.0.0.0/8\n")  # an older text of pbxfw's
    assert write_include(include, TEXT) is True
    assert include.read_text() == TEXT


def test_only_a_regular_file(asterisk: Path) -> None:
    (asterisk / "dir.conf").mkdir()
    os.mkfifo(asterisk / "fifo.conf")  # opening it must not wait for a writer
    for name in ("dir.conf", "fifo.conf"):
        with pytest.raises(PjsipError, match="not a regular file"):
            write_include(asterisk / name, TEXT)


@pytest.mark.parametrize(
    "include",
    [
        "{victim}",  # the reproduction: a path outside the Asterisk folder
        "{asterisk}/../etc-passwd",
        "{asterisk}/sub/nat.conf",
        "{asterisk}/nat.sh",
        "relative.conf",
    ],
)
def test_a_stored_path_outside_the_folder_is_refused_at_write_time(
    asterisk: Path, victim: Path, include: str
) -> None:
    """The stored setting may predate the rule: the writer checks it again."""
    (asterisk / "sub").mkdir()
    target = include.format(victim=victim, asterisk=asterisk)
    with pytest.raises(PjsipError, match="refusing to write pjsip_include_path"):
        write_configured_include(settings(asterisk, target), TEXT)
    assert victim.read_text() == VICTIM
    assert sorted(p.name for p in asterisk.iterdir()) == ["pjsip.conf", "sub"]


def test_a_folder_without_pjsip_conf_is_not_asterisk_s(tmp_path: Path) -> None:
    """asterisk_config_dir is a setting too: pointing it at /etc does not
    make /etc a place pbxfw writes in."""
    folder = tmp_path / "etc"
    folder.mkdir()
    with pytest.raises(PjsipError, match=r"holds no pjsip\.conf"):
        write_configured_include(settings(folder, str(folder / "ld.so.preload.conf")), TEXT)
    assert list(folder.iterdir()) == []


def test_the_writer_refuses_a_path_outside_the_folder_it_is_given(
    asterisk: Path, victim: Path
) -> None:
    with pytest.raises(PjsipError, match="directly in"):
        write_include(victim, TEXT, folder=asterisk)
    with pytest.raises(PjsipError, match="directly in"):
        write_include(Path(f"{asterisk}/../etc-passwd"), TEXT)
    assert victim.read_text() == VICTIM


def test_text_without_the_header_is_never_written(asterisk: Path) -> None:
    with pytest.raises(PjsipError, match="header"):
        write_include(asterisk / "nat.conf", "local_net=10.0.0.0/8\n")
    assert not (asterisk / "nat.conf").exists()


def test_set_id_bits_of_the_old_file_are_not_kept(asterisk: Path) -> None:
    include = asterisk / "nat.conf"
    include.write_text(HEADER + "\n")
    include.chmod(0o4755)
    write_include(include, TEXT)
    assert stat.S_IMODE(include.stat().st_mode) == 0o755
