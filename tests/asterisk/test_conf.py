"""The Asterisk configuration reader, against config.c's behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxfw.asterisk.conf import (
    MAX_INCLUDE_DEPTH,
    AsteriskConfigError,
    find_section,
    load_config,
    parse_config,
)
from pbxfw.errors import ValidationError

FIXTURES = Path(__file__).parent / "fixtures"


def pairs(text: str, **kwargs: object) -> list[tuple[str, bool, list[tuple[str, str]]]]:
    return [(s.name, s.template, s.pairs) for s in parse_config(text, **kwargs)]  # type: ignore[arg-type]


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


# -- assignments -------------------------------------------------------------


def test_equals_arrow_and_spaces() -> None:
    text = "[s]\na=1\nb = 2\nc=>3\nd => 4\n  e\t=\t5  \nexten => _X.,1,NoOp()\n"
    assert pairs(text) == [
        (
            "s",
            False,
            [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5"), ("exten", "_X.,1,NoOp()")],
        )
    ]


def test_value_may_hold_equals_and_be_empty() -> None:
    assert pairs("[s]\nsetvar=A=B\nempty=\n")[0][2] == [("setvar", "A=B"), ("empty", "")]


def test_plus_equals_appends_to_the_last_of_that_key() -> None:
    text = "[s]\nallow=ulaw\nallow=alaw\nallow+=,g722\nnew+=x\n"
    assert pairs(text)[0][2] == [("allow", "ulaw"), ("allow", "alaw,g722"), ("new", "x")]


def test_leading_backslash_escapes_the_first_character() -> None:
    assert pairs("[s]\n\\[odd]=1\n\\#notdirective = 2\n")[0][2] == [
        ("[odd]", "1"),
        ("#notdirective", "2"),
    ]


def test_entries_remember_file_and_line() -> None:
    section = parse_config("\n[s]\n\nkey=v\n", source="x.conf")[0]
    entry = section.entry("KEY")  # keys match without regard to case
    assert entry is not None
    assert (entry.file, entry.line, entry.where) == (Path("x.conf"), 4, "x.conf:4")
    assert (section.file, section.line) == (Path("x.conf"), 2)


def test_last_value_wins_and_get_all_keeps_every_one() -> None:
    section = parse_config("[t]\nlocal_net=10.0.0.0/8\nlocal_net=192.168.0.0/16\n")[0]
    assert section.get("local_net") == "192.168.0.0/16"
    assert [e.value for e in section.get_all("LOCAL_NET")] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert section.get("missing", "dflt") == "dflt"


# -- comments ----------------------------------------------------------------


def test_line_comments_and_escaped_semicolons() -> None:
    text = "; top\n[s] ; header comment\na = 1 ; trailing\nb = x\\;y ; real\nc=\\;\n"
    assert pairs(text)[0][2] == [("a", "1"), ("b", "x;y"), ("c", ";")]


def test_block_comments_span_lines_and_nest() -> None:
    text = (
        "[s]\n"
        "a=1 ;-- starts here\n"
        "b=2\n"
        ";-- nested --;\n"
        "c=3\n"
        "still comment --; d=4\n"
        "e=5 ;-- inline --; ; and a line comment\n"
        "f=6\n"
    )
    assert pairs(text)[0][2] == [("a", "1"), ("d", "4"), ("e", "5"), ("f", "6")]


def test_dashes_after_a_semicolon_are_a_plain_comment() -> None:
    # ";---" is not ";--": decorative rulers must not open a block comment.
    text = "[s]\n;------------------\na=1\n;=====\nb=2\n"
    assert pairs(text)[0][2] == [("a", "1"), ("b", "2")]


def test_block_comment_hides_a_whole_section() -> None:
    text = "[real]\na=1\n;--\n[hidden]\nb=2\n--;\nc=3\n"
    assert pairs(text) == [("real", False, [("a", "1"), ("c", "3")])]


def test_unterminated_block_comment_is_an_error_at_its_start() -> None:
    with pytest.raises(AsteriskConfigError) as info:
        parse_config("[s]\na=1\n;-- never closed\nb=2\n", source="f.conf")
    assert (info.value.file, info.value.line) == (Path("f.conf"), 3)
    assert "never closed" in str(info.value)


# -- sections, templates, inheritance ---------------------------------------


def test_templates_and_inheritance_resolve_inherited_first() -> None:
    text = (
        "[base](!)\ntype=transport\nprotocol=udp\n"
        "[tls](!)\nprotocol=tls\ncert_file=a.crt\n"
        "[t1](base)\nbind=0.0.0.0\n"
        "[t2](base,tls)\nbind=[::]:5061\n"
        "[t3](!,base)\nextra=1\n"
        "[t4](t3)\n"
    )
    result = pairs(text)
    assert result == [
        ("base", True, [("type", "transport"), ("protocol", "udp")]),
        ("tls", True, [("protocol", "tls"), ("cert_file", "a.crt")]),
        ("t1", False, [("type", "transport"), ("protocol", "udp"), ("bind", "0.0.0.0")]),
        (
            "t2",
            False,
            [
                ("type", "transport"),
                ("protocol", "udp"),
                ("protocol", "tls"),
                ("cert_file", "a.crt"),
                ("bind", "[::]:5061"),
            ],
        ),
        ("t3", True, [("type", "transport"), ("protocol", "udp"), ("extra", "1")]),
        ("t4", False, [("type", "transport"), ("protocol", "udp"), ("extra", "1")]),
    ]
    t2 = parse_config(text)[3]
    assert t2.get("protocol") == "tls"
    assert t2.bases == ("base", "tls")
    assert [e.inherited for e in t2.entries] == [True, True, True, True, False]


def test_inheritance_takes_the_base_as_it_was_when_named() -> None:
    text = "[b](!)\nx=1\n[c](b)\n[b](+)\ny=2\n"
    assert pairs(text)[1] == ("c", False, [("x", "1")])


def test_template_names_match_without_regard_to_case() -> None:
    assert pairs("[Base](!)\nx=1\n[c](BASE)\n")[1][2] == [("x", "1")]


def test_spaces_inside_the_option_list_are_tolerated() -> None:
    assert pairs("[b](!)\nx=1\n[c]( ! , b )\n")[1] == ("c", True, [("x", "1")])


def test_repeated_names_are_separate_sections_in_order() -> None:
    text = "[6001]\ntype=endpoint\n[6001]\ntype=auth\n[6001]\ntype=aor\n"
    assert [s.get("type") for s in parse_config(text)] == ["endpoint", "auth", "aor"]


def test_plus_adds_to_the_first_section_of_that_name() -> None:
    text = "[g]\na=1\n[g]\nb=2\n[g](+)\nc=3\n"
    assert pairs(text) == [("g", False, [("a", "1"), ("c", "3")]), ("g", False, [("b", "2")])]


def test_plus_with_a_filter_picks_the_matching_section() -> None:
    text = "[x]\ntype=endpoint\n[x]\ntype=aor\n[x](+type=aor)\nmax_contacts=1\n"
    assert pairs(text)[1][2] == [("type", "aor"), ("max_contacts", "1")]


def test_find_section_skips_templates_and_takes_the_first() -> None:
    sections = parse_config("[general](!)\na=0\n[General]\na=1\n[general]\na=2\n")
    found = find_section(sections, "GENERAL")
    assert found is not None and found.get("a") == "1"
    assert find_section(sections, "none") is None


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("[s\na=1\n", 1, "no closing ']'"),
        ("[b](!)\n[s](b\n", 2, "no closing ')'"),
        ("\na=1\n", 2, "before any [section]"),
        ("[s](nope)\n", 1, "inherits from [nope]"),
        ("[s](+)\n", 1, "(+) adds to section [s]"),
        ("[s]\nnoequals\n", 2, "no '='"),
        ("[s]\n = value\n", 2, "no key"),
        ("[s]\n\\ x=1\n", 2, "invalid escape"),
        ("[s]\n#exec /bin/true\n", 2, "#exec is not supported"),
        ("[s]\n#frobnicate x\n", 2, "unknown directive"),
        ("[s]\n#include\n", 2, "needs a file name"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, expected: str) -> None:
    with pytest.raises(AsteriskConfigError) as info:
        parse_config(text, source="p.conf")
    assert isinstance(info.value, ValidationError)
    assert info.value.line == line
    assert expected in str(info.value)
    assert str(info.value).startswith(f"p.conf:{line}: ")


# -- includes ----------------------------------------------------------------


def test_included_lines_continue_the_current_section(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.conf": "[transport-udp]\ntype=transport\n#include nat.conf\nbind=0.0.0.0\n",
            "nat.conf": "; bare lines\nlocal_net=10.0.0.0/8\n",
        },
    )
    [section] = load_config("main.conf", tmp_path)
    assert section.pairs == [
        ("type", "transport"),
        ("local_net", "10.0.0.0/8"),
        ("bind", "0.0.0.0"),
    ]
    assert section.entries[1].file == tmp_path / "nat.conf"
    assert section.entries[1].line == 2


def test_after_an_include_the_including_file_keeps_its_own_section(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.conf": "[a]\nx=1\n#include other.conf\ny=2\n",
            "other.conf": "[b]\nz=3\n",
        },
    )
    assert [(s.name, s.pairs) for s in load_config("main.conf", tmp_path)] == [
        ("a", [("x", "1"), ("y", "2")]),
        ("b", [("z", "3")]),
    ]


def test_include_forms_quoted_angled_absolute(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.conf": (
                '[s]\n#include "a b.conf"\n#include <c.conf>\n'
                f"#INCLUDE {tmp_path / 'sub' / 'd.conf'}\n"
            ),
            "a b.conf": "a=1\n",
            "c.conf": "c=3\n",
            "sub/d.conf": "d=4\n",
        },
    )
    assert load_config("main.conf", tmp_path)[0].pairs == [("a", "1"), ("c", "3"), ("d", "4")]


def test_includes_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    # Asterisk resolves "#include x" in its configuration folder, not beside
    # the including file.
    write(
        tmp_path,
        {
            "main.conf": "[s]\n#include sub/one.conf\n",
            "sub/one.conf": "#include two.conf\n",
            "two.conf": "from_top=1\n",
            "sub/two.conf": "from_sub=1\n",
        },
    )
    assert load_config("main.conf", tmp_path)[0].pairs == [("from_top", "1")]


def test_glob_includes_in_sorted_order_and_braces(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.conf": "[s]\n#include conf.d/*.conf\n#include {x,y}.conf\n",
            "conf.d/20-b.conf": "b=2\n",
            "conf.d/10-a.conf": "a=1\n",
            "conf.d/ignored.txt": "no=1\n",
            "y.conf": "y=1\n",
        },
    )
    assert load_config("main.conf", tmp_path)[0].pairs == [("a", "1"), ("b", "2"), ("y", "1")]


def test_glob_files_share_one_current_section(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.conf": "[top]\n#include parts/*.conf\nafter=1\n",
            "parts/1.conf": "[p]\none=1\n",
            "parts/2.conf": "two=2\n",
        },
    )
    assert [(s.name, s.pairs) for s in load_config("main.conf", tmp_path)] == [
        ("top", [("after", "1")]),
        ("p", [("one", "1"), ("two", "2")]),
    ]


def test_tryinclude_of_a_missing_file_is_not_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"main.conf": "[s]\n#tryinclude nope.conf\n#tryinclude none/*.conf\na=1\n"})
    assert load_config("main.conf", tmp_path)[0].pairs == [("a", "1")]


def test_missing_include_is_an_error_at_the_include_line(tmp_path: Path) -> None:
    write(tmp_path, {"main.conf": "[s]\n\n#include nope.conf\n"})
    with pytest.raises(AsteriskConfigError) as info:
        load_config("main.conf", tmp_path)
    assert (info.value.file, info.value.line) == (tmp_path / "main.conf", 3)
    assert "#tryinclude" in str(info.value)


def test_glob_include_matching_nothing_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"main.conf": "[s]\n#include none/*.conf\n"})
    with pytest.raises(AsteriskConfigError, match="no such file"):
        load_config("main.conf", tmp_path)


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, {"a.conf": "[s]\n#include b.conf\n", "b.conf": "#include a.conf\n"})
    with pytest.raises(AsteriskConfigError, match="cycle") as info:
        load_config("a.conf", tmp_path)
    assert (info.value.file, info.value.line) == (tmp_path / "b.conf", 1)


def test_self_include_is_a_cycle(tmp_path: Path) -> None:
    write(tmp_path, {"a.conf": "[s]\n#tryinclude a.conf\n"})
    with pytest.raises(AsteriskConfigError, match="cycle"):
        load_config("a.conf", tmp_path)


def test_the_same_file_may_be_included_twice(tmp_path: Path) -> None:
    write(tmp_path, {"a.conf": "[s]\n#include c.conf\n[t]\n#include c.conf\n", "c.conf": "x=1\n"})
    assert [s.pairs for s in load_config("a.conf", tmp_path)] == [[("x", "1")], [("x", "1")]]


def test_includes_nested_too_deep_are_refused(tmp_path: Path) -> None:
    files = {f"{i}.conf": f"#include {i + 1}.conf\n" for i in range(MAX_INCLUDE_DEPTH + 1)}
    files["0.conf"] = "[s]\n#include 1.conf\n"
    files[f"{MAX_INCLUDE_DEPTH + 1}.conf"] = "x=1\n"
    write(tmp_path, files)
    with pytest.raises(AsteriskConfigError, match="levels deep"):
        load_config("0.conf", tmp_path)
    # one level less is fine
    (tmp_path / f"{MAX_INCLUDE_DEPTH}.conf").write_text("x=1\n")
    assert load_config("0.conf", tmp_path)[0].pairs == [("x", "1")]


def test_include_without_a_folder_is_an_error() -> None:
    with pytest.raises(AsteriskConfigError, match="no configuration folder"):
        parse_config("[s]\n#include x.conf\n")


def test_missing_top_file_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(AsteriskConfigError, match="no such file"):
        load_config("absent.conf", tmp_path)
    (tmp_path / "dir.conf").mkdir()
    with pytest.raises(AsteriskConfigError, match="folder"):
        load_config("dir.conf", tmp_path)

    def refuse(path: Path) -> str:
        raise PermissionError(13, "Permission denied")

    (tmp_path / "x.conf").write_text("[s]\n")
    with pytest.raises(AsteriskConfigError, match="Permission denied"):
        load_config("x.conf", tmp_path, read=refuse)


def test_undecodable_bytes_in_comments_do_not_stop_the_reader(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_bytes(b"; caf\xe9 (Latin-1)\n[s]\na=1\n")
    assert load_config("x.conf", tmp_path)[0].pairs == [("a", "1")]


def test_crlf_line_endings(tmp_path: Path) -> None:
    (tmp_path / "x.conf").write_bytes(b"[s]\r\na = 1\r\n")
    assert load_config("x.conf", tmp_path)[0].pairs == [("a", "1")]


def test_acceptance_fixture_tree_parses_as_expected() -> None:
    tree = FIXTURES / "acceptance"
    sections = load_config("pjsip.conf", tree)
    names = [(s.name, s.template) for s in sections]
    assert ("transport-old", False) not in names  # inside a block comment
    assert ("transport-tls", True) in names
    assert [s.get("type") for s in sections if s.name == "6001"] == ["endpoint", "aor"]
    glob_ = find_section(sections, "global")
    assert glob_ is not None and glob_.get("user_agent") == "PBX ; pbxfw fixture"
