"""discover(): the PBX's ports from fixture configuration trees."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pbxfw.asterisk.conf import AsteriskConfigError
from pbxfw.asterisk.discover import Discovery, discover, split_host_port
from pbxfw.domain.settings import Settings
from pbxfw.errors import ValidationError

FIXTURES = Path(__file__).parent / "fixtures"
BROKEN = sorted((FIXTURES / "broken").iterdir())

ACCEPTANCE = {
    "sip_port": 5070,
    "tls_port": 5071,
    "rtp_port_from": 12000,
    "rtp_port_to": 12999,
    "ajam_port": 8090,
    "ajam_tls_port": 8091,
    "ami_port": 5039,
    "iax_port": 4570,
}


def test_acceptance_tree_gives_exactly_those_settings() -> None:
    found = discover(FIXTURES / "acceptance", sshd_config=None)
    assert found.settings == ACCEPTANCE
    applied = Settings().updated(found.changes(Settings()))
    assert {k: getattr(applied, k) for k in ACCEPTANCE} == ACCEPTANCE


def test_acceptance_notes_name_file_and_line() -> None:
    found = discover(FIXTURES / "acceptance", sshd_config=None)
    assert found.sources["sip_port"] == "pjsip.transports.conf:6"
    assert found.sources["tls_port"] == "pjsip.transports.conf:16"
    assert found.sources["ami_port"] == "manager.conf:5"
    assert any("sip_port = 5070 from pjsip.transports.conf:6" in n for n in found.notes)
    assert any("[transport-wss]" in n and "HTTP server" in n for n in found.notes)
    assert any("[transport-tcp]" in n and "also uses sip_port 5070" in n for n in found.notes)


def test_changes_lists_only_what_differs() -> None:
    found = discover(FIXTURES / "acceptance", sshd_config=None)
    current = Settings().updated({"sip_port": 5070, "ami_port": 5039})
    changes = found.changes(current)
    assert "sip_port" not in changes and "ami_port" not in changes
    assert changes["tls_port"] == 5071
    assert found.changes(Settings().updated(ACCEPTANCE)) == {}
    assert found.describe_changes(current)[0] == "tls_port: 5061 -> 5071 (pjsip.transports.conf:16)"


def test_changes_are_validated_against_the_current_settings() -> None:
    # Only rtp_port_to found, below the current start: refused before storing.
    found = Discovery(settings={"rtp_port_to": 9000})
    with pytest.raises(ValidationError, match="rtp_port_from"):
        found.changes(Settings())


def test_shapes_of_asterisks_sample_configurations() -> None:
    found = discover(FIXTURES / "samples", sshd_config=None)
    assert found.settings == {
        "sip_port": 5060,  # bind=0.0.0.0: no port, Asterisk's default
        "tls_port": 5061,  # the same for TLS
        "rtp_port_from": 10000,
        "rtp_port_to": 20000,
        "ami_port": 5038,
        "iax_port": 4569,
    }
    # http.conf's bindport is commented out in the sample: ajam_port untouched.
    assert "ajam_port" not in found.settings
    assert any("5080" in n and "does not open" in n for n in found.notes)
    assert any("not enabled" in n for n in found.notes)


def test_ipv6_binds_and_several_transports() -> None:
    found = discover(FIXTURES / "ipv6", sshd_config=None)
    assert found.settings == {"sip_port": 5062, "tls_port": 5061}
    notes = "\n".join(found.notes)
    assert "[transport-udp4] (udp) bind=0.0.0.0:5062 also uses sip_port 5062" in notes
    assert "listens on port 5090, which pbxfw does not open" in notes
    assert "[transport-nobind] (udp) has no bind" in notes
    assert "rtp.conf: not present" in notes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0", ("0.0.0.0", None)),
        ("0.0.0.0:5070", ("0.0.0.0", "5070")),
        ("[::]", ("::", None)),
        ("[::]:5060", ("::", "5060")),
        ("::", ("::", None)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("[2001:db8::1]:5061", ("2001:db8::1", "5061")),
        ("pbx.example.com:5060", ("pbx.example.com", "5060")),
        (" 10.0.0.1 ", ("10.0.0.1", None)),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, str | None]) -> None:
    assert split_host_port(text) == expected


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_absent_settings_keep_their_values(tmp_path: Path) -> None:
    write(tmp_path, {"manager.conf": "[general]\nenabled=yes\n", "rtp.conf": "[other]\nx=1\n"})
    found = discover(tmp_path, sshd_config=None)
    assert found.settings == {}
    assert found.changes(Settings()) == {}
    assert any("no [general]" in n for n in found.notes)


def test_empty_folder_finds_nothing(tmp_path: Path) -> None:
    found = discover(tmp_path, sshd_config=tmp_path / "no_sshd_config")
    assert found.settings == {}
    assert len(found.notes) == 6  # five Asterisk files and sshd_config, all absent


def test_one_end_of_the_rtp_range_takes_asterisks_default_for_the_other(tmp_path: Path) -> None:
    write(tmp_path, {"rtp.conf": "[general]\nrtpstart=12000\n"})
    found = discover(tmp_path, sshd_config=None)
    assert found.settings == {"rtp_port_from": 12000, "rtp_port_to": 31000}


def test_only_the_first_general_counts_and_the_last_value_in_it(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"manager.conf": "[general]\nport=5040\nport=5041\n[general]\nport=6000\n"},
    )
    found = discover(tmp_path, sshd_config=None)
    assert found.settings == {"ami_port": 5041}
    assert any("second [general]" in n for n in found.notes)


def test_http_tls_without_a_port_is_8089_and_disabled_tls_is_ignored(tmp_path: Path) -> None:
    write(tmp_path, {"http.conf": "[general]\nenabled=yes\ntlsenable=yes\ntlsbindaddr=0.0.0.0\n"})
    assert discover(tmp_path, sshd_config=None).settings == {"ajam_tls_port": 8089}
    write(tmp_path, {"http.conf": "[general]\ntlsenable=no\ntlsbindaddr=0.0.0.0:9999\n"})
    assert discover(tmp_path, sshd_config=None).settings == {}


def test_ami_over_tls_is_noted(tmp_path: Path) -> None:
    write(tmp_path, {"manager.conf": "[general]\nport=5038\ntlsenable=yes\n"})
    found = discover(tmp_path, sshd_config=None)
    assert any("AMI over TLS listens on 5039" in n for n in found.notes)


def test_iax_bindaddr_with_a_port(tmp_path: Path) -> None:
    write(tmp_path, {"iax.conf": "[general]\nbindaddr=192.168.0.1:4600\nbindaddr=10.0.0.1:4601\n"})
    found = discover(tmp_path, sshd_config=None)
    assert found.settings == {"iax_port": 4600}
    assert any("4601" in n for n in found.notes)


def test_pjsip_transport_protocol_defaults_to_udp_and_templates_are_skipped(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {
            "pjsip.conf": (
                "[tmpl](!)\ntype=transport\nbind=0.0.0.0:9999\n"
                "[t](tmpl)\nbind=0.0.0.0:5090\n"
                "[TLS]\nTYPE=Transport\nPROTOCOL=TLS\nBIND=0.0.0.0:5091\n"
            )
        },
    )
    assert discover(tmp_path, sshd_config=None).settings == {"sip_port": 5090, "tls_port": 5091}


def test_sshd_config_with_include() -> None:
    found = discover(FIXTURES / "samples", sshd_config=FIXTURES / "sshd" / "sshd_config")
    assert found.settings["ssh_port"] == 2222  # from sshd_config.d; Match's 2200 ignored
    assert any("also listens on 2223" in n for n in found.notes)


def test_sshd_config_without_port(tmp_path: Path) -> None:
    (tmp_path / "sshd_config").write_text("#Port 22\nPermitRootLogin no\n")
    found = discover(tmp_path, sshd_config=tmp_path / "sshd_config")
    assert "ssh_port" not in found.settings


@pytest.mark.parametrize("tree", BROKEN, ids=[p.name for p in BROKEN])
def test_broken_trees_raise_the_error_their_first_line_names(tree: Path) -> None:
    expected = None
    for path in sorted(tree.iterdir()):
        first = path.read_text().splitlines()[0]
        if first.startswith("; expect: "):
            expected = first.removeprefix("; expect: ")
    assert expected, f"{tree} has no '; expect:' line"
    with pytest.raises(AsteriskConfigError) as info:
        discover(tree, sshd_config=None)
    assert expected in str(info.value)
    assert info.value.line is not None  # every broken file error names its line


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AsteriskConfigError, match="no such folder"):
        discover(tmp_path / "nope", sshd_config=None)
    (tmp_path / "file").write_text("")
    with pytest.raises(AsteriskConfigError, match="not a folder"):
        discover(tmp_path / "file", sshd_config=None)


def test_unreadable_folder_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulated, because these tests may run as root, who reads any folder.
    def refuse(self: Path) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", refuse)
    with pytest.raises(AsteriskConfigError, match="cannot read the folder: Permission denied"):
        discover(tmp_path, sshd_config=None)


def test_a_broken_file_anywhere_means_no_result_at_all(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "acceptance", tmp_path, dirs_exist_ok=True)
    (tmp_path / "iax.conf").write_text("[general]\nbindport=4570\n[broken\n")
    with pytest.raises(AsteriskConfigError, match=r"iax\.conf:3"):
        discover(tmp_path, sshd_config=None)
