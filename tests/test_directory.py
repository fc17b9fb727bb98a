"""Tests for att_sms.sending.directory: contacts, groups and recipient resolution."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
from att_sms.sending import directory as d
from att_sms.sending import recipients as rcp
from att_sms.sending.directory import DirectoryError
from att_sms.sending.recipients import Recipient
from att_sms.text.numbers import NumberRules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
US = NumberRules()
US_ONLY = NumberRules(allowed_regions={"US"})
GB = NumberRules("GB")

ALICE = "tel:+12125551234"
BOB = "tel:+12125555678"
UK = "tel:+442079460958"
CA = "tel:+14165550123"


@pytest.fixture
def state() -> dict:
    s = d.new_directory()
    d.add_contact(s, "alice", "212 555 1234", US)
    d.add_contact(s, "bob", "+1 (212) 555-5678", US)
    d.add_contact(s, "nigel", "+44 20 7946 0958", US)
    d.add_group(s, "oncall", ["alice", "bob", "+1 416 555 0123"], US)
    return s


# -- state shape -------------------------------------------------------------


def test_new_directory_is_empty_plain_json() -> None:
    s = d.new_directory()
    assert s == {"contacts": {}, "groups": {}}
    assert s is not d.new_directory()


def test_state_stays_plain_json(state: dict) -> None:
    assert json.loads(json.dumps(state)) == state
    assert state == {
        "contacts": {"alice": ALICE, "bob": BOB, "nigel": UK},
        "groups": {"oncall": ["alice", "bob", CA]},
    }


def test_functions_accept_state_missing_keys() -> None:
    assert d.list_contacts({}) == []
    assert d.list_groups({}) == []
    assert rcp.name_of({}, ALICE) is None
    s: dict = {}
    assert d.add_contact(s, "alice", ALICE, US) == ALICE
    assert d.add_group(s, "team", ["alice"], US) == ["alice"]
    assert rcp.resolve(s, ["team"], US) == [Recipient(ALICE, "team:alice")]


# -- contacts ----------------------------------------------------------------


def test_add_contact_returns_normalised_tel_and_lowercases_name() -> None:
    s = d.new_directory()
    assert d.add_contact(s, "  Alice.Smith_2-x ", "(212) 555-1234", US) == ALICE
    assert s["contacts"] == {"alice.smith_2-x": ALICE}


def test_add_contact_national_number_uses_default_region() -> None:
    s = d.new_directory()
    assert d.add_contact(s, "nigel", "020 7946 0958", GB) == UK


def test_readding_contact_replaces_number(state: dict) -> None:
    assert d.add_contact(state, "ALICE", "+1 212 555 0000", US) == "tel:+12125550000"
    assert state["contacts"]["alice"] == "tel:+12125550000"
    assert len(state["contacts"]) == 3


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "contact name is empty"),
        ("   ", "contact name is empty"),
        (
            "a" * 33,
            "contact name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is too long (at most 32 characters)",
        ),
        (
            "_alice",
            "contact name '_alice' is not allowed: use a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit",
        ),
        ("al ice", "contact name 'al ice' is not allowed"),
        ("al:ice", "contact name 'al:ice' is not allowed"),
        ("tel:+12125551234", "contact name 'tel:+12125551234' is not allowed"),
        ("+12125551234", "contact name '+12125551234' is not allowed"),
        ("al\nice", "contact name 'al\\nice' is not allowed"),
        ("élise", "contact name 'élise' is not allowed"),
        (
            "2125551234",
            "contact name '2125551234' looks like a phone number: a name needs a letter",
        ),
        ("212-555-1234", "contact name '212-555-1234' looks like a phone number"),
        ("212.555.1234", "contact name '212.555.1234' looks like a phone number"),
        ("911", "contact name '911' looks like a phone number"),
        (None, "contact name None is not text"),
    ],
)
def test_add_contact_refuses_bad_names(name: object, message: str) -> None:
    s = d.new_directory()
    with pytest.raises(DirectoryError) as info:
        d.add_contact(s, name, ALICE, US)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert s == d.new_directory()


def test_name_limits_are_accepted() -> None:
    s = d.new_directory()
    d.add_contact(s, "a" * 32, ALICE, US)
    d.add_contact(s, "x", ALICE, US)
    d.add_contact(s, "9lives", ALICE, US)
    d.add_contact(s, "24x7", ALICE, US)
    assert sorted(s["contacts"]) == ["24x7", "9lives", "a" * 32, "x"]


def test_add_contact_refuses_group_name(state: dict) -> None:
    with pytest.raises(DirectoryError, match=r"^contact name 'oncall' is already a group$"):
        d.add_contact(state, "OnCall", ALICE, US)


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (
            "+1 900 234 5678",
            "contact 'carol': '+1 900 234 5678' is not allowed: premium-rate number",
        ),
        ("call me", "contact 'carol': 'call me' is not allowed: not a phone number"),
        ("", "contact 'carol': '' is not allowed: empty number"),
    ],
)
def test_add_contact_refuses_bad_numbers(state: dict, number: str, message: str) -> None:
    before = copy.deepcopy(state)
    with pytest.raises(DirectoryError) as info:
        d.add_contact(state, "carol", number, US)
    assert str(info.value) == message
    assert state == before


def test_add_contact_enforces_allowed_regions() -> None:
    with pytest.raises(
        DirectoryError,
        match=r"^contact 'nigel': '\+44 20 7946 0958' is not allowed: region GB is not allowed",
    ):
        d.add_contact(d.new_directory(), "nigel", "+44 20 7946 0958", US_ONLY)


def test_directory_full(monkeypatch: pytest.MonkeyPatch, state: dict) -> None:
    monkeypatch.setattr(d, "MAX_CONTACTS", 3)
    d.add_contact(state, "alice", "+1 212 555 0000", US)  # replacing is still fine
    with pytest.raises(
        DirectoryError, match=r"^cannot add contact 'carol': the directory is full \(3 contacts\)$"
    ):
        d.add_contact(state, "carol", ALICE, US)


def test_remove_contact_removes_from_groups(state: dict) -> None:
    d.add_group(state, "day", ["bob", "alice"], US)
    d.add_group(state, "night", ["bob"], US)
    assert d.remove_contact(state, " Alice ") == ["day", "oncall"]
    assert "alice" not in state["contacts"]
    assert state["groups"] == {"oncall": ["bob", CA], "day": ["bob"], "night": ["bob"]}
    assert d.remove_contact(state, "bob") == ["day", "night", "oncall"]
    # groups left empty are kept
    assert state["groups"] == {"oncall": [CA], "day": [], "night": []}


def test_remove_contact_in_no_group(state: dict) -> None:
    assert d.remove_contact(state, "nigel") == []


def test_remove_unknown_contact(state: dict) -> None:
    before = copy.deepcopy(state)
    with pytest.raises(DirectoryError, match=r"^unknown contact 'carol'$"):
        d.remove_contact(state, "carol")
    with pytest.raises(DirectoryError, match=r"^unknown contact 'oncall'$"):
        d.remove_contact(state, "oncall")
    assert state == before


def test_list_contacts_sorted(state: dict) -> None:
    assert d.list_contacts(state) == [("alice", ALICE), ("bob", BOB), ("nigel", UK)]


# -- groups ------------------------------------------------------------------


def test_add_group_stores_names_and_normalised_numbers() -> None:
    s = d.new_directory()
    d.add_contact(s, "alice", ALICE, US)
    assert d.add_group(s, "Team", ["ALICE", "(416) 555-0123"], US) == ["alice", CA]
    assert s["groups"] == {"team": ["alice", CA]}


def test_add_group_appends_without_duplicates(state: dict) -> None:
    members = d.add_group(state, "oncall", ["nigel", "alice", "tel:+1-416-555-0123", "nigel"], US)
    assert members == ["alice", "bob", CA, "nigel"]
    assert state["groups"]["oncall"] == members
    members.append("x")  # a copy
    assert state["groups"]["oncall"] == ["alice", "bob", CA, "nigel"]


def test_add_empty_group() -> None:
    s = d.new_directory()
    assert d.add_group(s, "later", [], US) == []
    assert s["groups"] == {"later": []}


def test_add_group_refuses_every_bad_member_at_once(state: dict) -> None:
    before = copy.deepcopy(state)
    with pytest.raises(DirectoryError) as info:
        d.add_group(state, "oncall", ["carol", "+1 900 234 5678", "alice", "oncall", "x y"], US)
    assert str(info.value) == (
        "group 'oncall' not changed: 'carol': unknown contact; "
        "'+1 900 234 5678' is not allowed: premium-rate number; "
        "'oncall': a group cannot contain a group; "
        "'x y' is not allowed: not a phone number"
    )
    assert info.value.problems == [
        "'carol': unknown contact",
        "'+1 900 234 5678' is not allowed: premium-rate number",
        "'oncall': a group cannot contain a group",
        "'x y' is not allowed: not a phone number",
    ]
    assert state == before


def test_add_group_refuses_non_text_member(state: dict) -> None:
    with pytest.raises(DirectoryError, match=r"^group 'new' not changed: 42: not text$"):
        d.add_group(state, "new", [42], US)  # type: ignore[list-item]
    assert "new" not in state["groups"]


def test_add_group_enforces_allowed_regions(state: dict) -> None:
    with pytest.raises(DirectoryError, match=r"region CA is not allowed \(allowed: US\)"):
        d.add_group(state, "new", ["+1 416 555 0123"], US_ONLY)


def test_add_group_refuses_contact_name(state: dict) -> None:
    with pytest.raises(DirectoryError, match=r"^group name 'alice' is already a contact$"):
        d.add_group(state, "Alice", ["bob"], US)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "group name is empty"),
        ("on call", "group name 'on call' is not allowed"),
        ("112", "group name '112' looks like a phone number"),
        ("g" * 33, "group name '" + "g" * 33 + "' is too long"),
    ],
)
def test_add_group_refuses_bad_names(name: str, message: str) -> None:
    with pytest.raises(DirectoryError) as info:
        d.add_group(d.new_directory(), name, [ALICE], US)
    assert str(info.value).startswith(message)


def test_group_limits(monkeypatch: pytest.MonkeyPatch, state: dict) -> None:
    monkeypatch.setattr(d, "MAX_GROUPS", 1)
    with pytest.raises(
        DirectoryError, match=r"^cannot add group 'day': there are already 1 groups$"
    ):
        d.add_group(state, "day", ["alice"], US)
    monkeypatch.setattr(d, "MAX_GROUP_MEMBERS", 3)
    before = copy.deepcopy(state)
    with pytest.raises(
        DirectoryError, match=r"^group 'oncall' would have 4 members \(at most 3\)$"
    ):
        d.add_group(state, "oncall", ["nigel"], US)
    assert state == before


def test_remove_group_deletes_it(state: dict) -> None:
    d.remove_group(state, "ONCALL", None)
    assert state["groups"] == {}
    d.add_group(state, "day", ["alice"], US)
    d.remove_group(state, "day", [])
    assert state["groups"] == {}
    assert state["contacts"]["alice"] == ALICE


def test_remove_group_members_by_name_and_number(state: dict) -> None:
    d.remove_group(state, "oncall", ["ALICE", "+1 416-555-0123"])
    assert state["groups"]["oncall"] == ["bob"]
    d.remove_group(state, "oncall", ["bob"])
    assert state["groups"]["oncall"] == []  # kept, empty


def test_remove_group_member_with_rules_region() -> None:
    s = d.new_directory()
    d.add_group(s, "uk", ["020 7946 0958", "+1 212 555 1234"], GB)
    d.remove_group(s, "uk", ["020 7946 0958"], rules=GB)
    # a number the allow-list no longer accepts can still be removed
    d.remove_group(s, "uk", ["tel:+12125551234"], rules=NumberRules("GB", {"GB"}))
    assert s["groups"]["uk"] == []


def test_remove_unknown_group(state: dict) -> None:
    with pytest.raises(DirectoryError, match=r"^unknown group 'night'$"):
        d.remove_group(state, "night", None)


def test_remove_group_refuses_every_non_member_at_once(state: dict) -> None:
    before = copy.deepcopy(state)
    with pytest.raises(DirectoryError) as info:
        d.remove_group(state, "oncall", ["alice", "nigel", "+1 212 555 0000", "???", 7])  # type: ignore[list-item]
    assert str(info.value) == (
        "group 'oncall' not changed: 'nigel': not a member; '+1 212 555 0000': not a member; "
        "'???': not a member; 7: not text"
    )
    assert state == before


def test_list_groups_sorted_copies(state: dict) -> None:
    d.add_group(state, "day", ["bob", "alice"], US)
    listed = d.list_groups(state)
    assert listed == [("day", ["bob", "alice"]), ("oncall", ["alice", "bob", CA])]
    listed[0][1].clear()
    assert state["groups"]["day"] == ["bob", "alice"]


# -- name_of -----------------------------------------------------------------


def test_name_of(state: dict) -> None:
    assert rcp.name_of(state, ALICE) == "alice"
    assert rcp.name_of(state, "+12125551234") == "alice"
    assert rcp.name_of(state, " TEL:+12125555678 ") == "bob"
    assert rcp.name_of(state, CA) is None
    assert rcp.name_of(state, "2125551234") is None
    assert rcp.name_of(state, None) is None  # type: ignore[arg-type]
    d.add_contact(state, "aaron", ALICE, US)
    assert rcp.name_of(state, ALICE) == "aaron"


# -- resolve -----------------------------------------------------------------


def test_resolve_contacts_groups_numbers(state: dict) -> None:
    assert rcp.resolve(state, ["Nigel", "oncall", "212-555-0000"], US) == [
        Recipient(UK, "nigel"),
        Recipient(ALICE, "oncall:alice"),
        Recipient(BOB, "oncall:bob"),
        Recipient(CA, "oncall"),
        Recipient("tel:+12125550000", None),
    ]


def test_resolve_dedups_keeping_first(state: dict) -> None:
    assert rcp.resolve(state, ["+1 212 555 1234", "alice", "oncall", "bob"], US) == [
        Recipient(ALICE, None),
        Recipient(BOB, "oncall:bob"),
        Recipient(CA, "oncall"),
    ]


def test_has_names_tells_when_resolve_needs_the_directory(state: dict) -> None:
    """``!sms send`` skips loading the directory when no token could be a name: numbers
    alone resolve the same with an empty directory."""
    numbers_only = ["+1 212 555 1234", "212-555-0000", "tel:+13125550199", "(212) 555-5678"]
    assert not rcp.has_names(numbers_only)
    assert rcp.resolve({}, numbers_only, US) == rcp.resolve(state, numbers_only, US)
    for tokens in (["oncall"], ["+1 212 555 1234", "Nigel"], ["bob"], ["team-2"]):
        assert rcp.has_names(tokens), tokens
    with pytest.raises(DirectoryError):
        rcp.resolve({}, ["oncall"], US)  # a name needs the directory: it was loaded


def test_recipient_is_frozen() -> None:
    r = Recipient(ALICE, "alice")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.tel = BOB  # type: ignore[misc]
    assert Recipient(ALICE) == Recipient(ALICE, None)


def test_resolve_rechecks_stored_numbers_with_allowed_regions(state: dict) -> None:
    with pytest.raises(DirectoryError) as info:
        rcp.resolve(state, ["nigel", "oncall", "alice"], US_ONLY)
    assert str(info.value) == (
        "bad recipients: contact 'nigel': 'tel:+442079460958' is not allowed: "
        "region GB is not allowed (allowed: US); group 'oncall': 'tel:+14165550123' is not "
        "allowed: region CA is not allowed (allowed: US)"
    )
    assert len(info.value.problems) == 2


def test_resolve_rechecks_group_contacts(state: dict) -> None:
    d.add_group(state, "uk", ["nigel"], US)
    with pytest.raises(
        DirectoryError,
        match=r"^bad recipients: group 'uk' contact 'nigel': 'tel:\+442079460958' is not "
        r"allowed: region GB",
    ):
        rcp.resolve(state, ["uk"], US_ONLY)


def test_resolve_lists_every_bad_token(state: dict) -> None:
    d.add_group(state, "empty", [], US)
    with pytest.raises(DirectoryError) as info:
        rcp.resolve(state, ["carol", "alice", "+1 900 234 5678", "empty", "", "call\nme", 5], US)  # type: ignore[list-item]
    message = str(info.value)
    assert message == (
        "bad recipients: 'carol': unknown contact or group; "
        "'+1 900 234 5678' is not allowed: premium-rate number; "
        "group 'empty' has no members; '': empty recipient; "
        "'call\\nme' is not allowed: not a phone number; 5: not text"
    )
    assert "\n" not in message
    assert len(info.value.problems) == 6


def test_resolve_refuses_no_tokens(state: dict) -> None:
    with pytest.raises(DirectoryError, match=r"^no recipients given$"):
        rcp.resolve(state, [], US)


def test_resolve_reports_dangling_group_member() -> None:
    s = {"contacts": {}, "groups": {"g": ["ghost", "junk"]}}
    with pytest.raises(DirectoryError) as info:
        rcp.resolve(s, ["g"], US)
    assert str(info.value) == (
        "bad recipients: group 'g': unknown contact 'ghost'; group 'g': unknown contact 'junk'"
    )


def test_resolve_does_not_mutate(state: dict) -> None:
    before = copy.deepcopy(state)
    rcp.resolve(state, ["oncall", "nigel"], US)
    assert state == before


def test_long_token_is_shortened_in_message(state: dict) -> None:
    with pytest.raises(DirectoryError) as info:
        rcp.resolve(state, ["x" * 500], US)
    assert len(str(info.value)) < 120


# -- properties --------------------------------------------------------------

US_NUMBERS = [f"tel:+1212555{n:04d}" for n in range(0, 10000, 997)]
OTHER_NUMBERS = ["tel:+442079460958", "tel:+447400123456", "tel:+14165550123"]
ALL_NUMBERS = US_NUMBERS + OTHER_NUMBERS


def _spellings(tel: str) -> list[str]:
    """Ways a user may type ``tel`` (all normalise to it with default region US)."""
    e164 = tel[4:]
    out = [tel, e164, "TEL:" + e164, f"00{e164[1:]}"]
    if e164.startswith("+1"):
        n = e164[2:]
        out += [f"({n[:3]}) {n[3:6]}-{n[6:]}", f"{n[:3]}.{n[3:6]}.{n[6:]}", f"1 {n}"]
    return out


@st.composite
def directories(draw: st.DrawFn) -> dict:
    s = d.new_directory()
    names = draw(st.lists(st.sampled_from(["ann", "ben", "cat", "dan", "eve"]), unique=True))
    for name in names:
        d.add_contact(s, name, draw(st.sampled_from(ALL_NUMBERS)), US)
    for group in draw(st.lists(st.sampled_from(["g1", "g2", "g3"]), unique=True)):
        members = draw(
            st.lists(
                st.sampled_from(names + ALL_NUMBERS) if names else st.sampled_from(ALL_NUMBERS),
                min_size=1,
                max_size=5,
            )
        )
        d.add_group(s, group, members, US)
    return s


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict, list[str]]:
    s = draw(directories())
    choices = list(s["contacts"]) + list(s["groups"])
    token = st.one_of(
        st.sampled_from(ALL_NUMBERS).flatmap(lambda t: st.sampled_from(_spellings(t))),
        *([st.sampled_from(choices).map(str.upper) | st.sampled_from(choices)] if choices else []),
    )
    return s, draw(st.lists(token, min_size=1, max_size=12))


def _expand(s: dict, token: str) -> list[str]:
    key = token.lower()
    if key in s["contacts"]:
        return [s["contacts"][key]]
    if key in s["groups"]:
        return [s["contacts"].get(m, m) for m in s["groups"][key]]
    return [US.normalise(token)]


@FUZZ
@given(scenario())
def test_resolve_dedups_in_first_order(case: tuple[dict, list[str]]) -> None:
    s, tokens = case
    result = rcp.resolve(s, tokens, US)
    expected: list[str] = []
    for token in tokens:
        for tel in _expand(s, token):
            if tel not in expected:
                expected.append(tel)
    assert [r.tel for r in result] == expected
    assert len({r.tel for r in result}) == len(result)
    # repeating every token changes nothing
    assert rcp.resolve(s, tokens + tokens, US) == result


@FUZZ
@given(scenario())
def test_resolve_enforces_allowed_regions_everywhere(case: tuple[dict, list[str]]) -> None:
    s, tokens = case
    wanted = [tel for token in tokens for tel in _expand(s, token)]
    foreign = [t for t in wanted if t in OTHER_NUMBERS]
    if foreign:
        with pytest.raises(DirectoryError) as info:
            rcp.resolve(s, tokens, US_ONLY)
        assert "is not allowed (allowed: US)" in str(info.value)
        for tel in foreign:
            region = "GB" if tel.startswith("tel:+44") else "CA"
            assert f"region {region} is not allowed" in str(info.value)
    else:
        result = rcp.resolve(s, tokens, US_ONLY)
        assert all(r.tel in US_NUMBERS for r in result)
        assert [r.tel for r in result] == [r.tel for r in rcp.resolve(s, tokens, US)]


@FUZZ
@given(scenario())
def test_resolve_labels_name_the_source(case: tuple[dict, list[str]]) -> None:
    s, tokens = case
    for r in rcp.resolve(s, tokens, US):
        if r.label is None:
            continue
        group, _, contact = r.label.partition(":")
        if contact:
            assert contact in s["groups"][group] and s["contacts"][contact] == r.tel
        elif group in s["contacts"]:
            assert s["contacts"][group] == r.tel
        else:
            assert r.tel in s["groups"][group]


@FUZZ
@given(st.text(max_size=40))
def test_add_contact_any_name_refuses_cleanly_or_is_valid(name: str) -> None:
    s = d.new_directory()
    try:
        d.add_contact(s, name, ALICE, US)
    except DirectoryError as exc:
        assert "\n" not in str(exc)
        assert s == d.new_directory()
    else:
        (stored,) = s["contacts"]
        assert stored == name.strip().lower()
        assert rcp.resolve(s, [name], US) == [Recipient(ALICE, stored)]
