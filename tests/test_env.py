"""The typed environment readers behind the settings and the simulator: a bad value fails loudly,
naming the variable; an unset or blank one takes the default."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from noboxweb.env import dev_secret, env_bool, env_float, env_int, env_list
from noboxweb.environ import env_number


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, 5), ({"N": ""}, 5), ({"N": "  "}, 5), ({"N": "7"}, 7), ({"N": " 8 "}, 8)],
)
def test_a_number_is_read_or_defaults_when_unset_or_blank(
    environ: dict[str, str], expected: int
) -> None:
    assert env_number(environ, "N", int, 5) == expected


@pytest.mark.parametrize(
    ("raw", "parse", "message"),
    [
        ("many", int, "N must be a whole number, not 'many'"),
        ("1.5", int, "N must be a whole number, not '1.5'"),
        ("fast", float, "N must be a number, not 'fast'"),
        ("-1", int, "N must be at least 0, not -1"),
        ("-0.5", float, "N must be at least 0.0, not -0.5"),
    ],
)
def test_a_bad_number_names_the_variable(raw: str, parse: type, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        env_number({"N": raw}, "N", parse, parse(0), minimum=parse(0))
    assert str(caught.value) == message


def test_the_settings_readers_turn_a_bad_value_into_improperly_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOBOX_TEST_INT", "12")
    monkeypatch.setenv("NOBOX_TEST_FLOAT", "0.25")
    assert (env_int("NOBOX_TEST_INT", 1), env_float("NOBOX_TEST_FLOAT", 1.0)) == (12, 0.25)

    monkeypatch.setenv("NOBOX_TEST_INT", "3")
    with pytest.raises(ImproperlyConfigured, match="NOBOX_TEST_INT must be at least 5, not 3"):
        env_int("NOBOX_TEST_INT", 10, minimum=5)
    monkeypatch.setenv("NOBOX_TEST_FLOAT", "soon")
    with pytest.raises(ImproperlyConfigured, match="NOBOX_TEST_FLOAT must be a number"):
        env_float("NOBOX_TEST_FLOAT", 1.0)


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("Yes", True), ("off", False)])
def test_a_boolean_takes_the_usual_spellings(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("NOBOX_TEST_BOOL", raw)
    assert env_bool("NOBOX_TEST_BOOL", not expected) is expected


def test_a_boolean_that_is_neither_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOBOX_TEST_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="NOBOX_TEST_BOOL must be a boolean"):
        env_bool("NOBOX_TEST_BOOL", False)


def test_a_list_is_split_on_commas_without_blanks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOBOX_TEST_LIST", " a, b ,,c ")
    assert env_list("NOBOX_TEST_LIST") == ["a", "b", "c"]
    monkeypatch.delenv("NOBOX_TEST_LIST")
    assert env_list("NOBOX_TEST_LIST", ["x"]) == ["x"]


@pytest.mark.parametrize("make", ["urlsafe", "fernet"])
def test_a_dev_secret_is_made_once_private_then_reused(tmp_path: Path, make: str) -> None:
    path = tmp_path / "secrets" / make
    first = dev_secret(path, make)
    assert len(first) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_secret(path, make) == first
