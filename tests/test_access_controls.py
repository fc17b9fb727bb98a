"""config_template.py's ACCESS_CONTROLS, checked by errbot's own ACLS core plugin.

The bot is errbot's test backend with the repository's plugins and the access controls,
admins and rooms exactly as config_template.py builds them. Every AttSms command goes
through errbot's command filters (the real ACLS plugin) for an admin, a team member and a
stranger, in the configured room, in another room and in a direct message. Then a
stranger's page hijack is tried for real, and a contact change is shown in the room and
in the audit log.
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botkit import REPO_ROOT, TEST_CLIENT_SECRET, Bot, sandbox_config
from errbot.backends.base import Message
from errbot.backends.test import TestOccupant, TestPerson, TestRoom

ADMIN, MEMBER, STRANGER = "admin", "member", "stranger"
ROOM, OTHER_ROOM = "testroom", "elsewhere"  # the test backend joins "testroom"
#: Who changes who gets paged, and what was sent: bot admins only.
ADMIN_ONLY_FIXED = {
    "sms_contact_add", "sms_contact_remove", "sms_group_add", "sms_group_remove",
    "sms_optouts", "sms_log",
}  # fmt: skip
ADMIN_ONLY_PREFIXES = ("sms_rotation_", "sms_override")
#: What the team does in the room (everyone there).
ROOM_COMMANDS = {"sms_send", "sms_page", "sms_ack", "sms_cancel", "sms_reply", "sms_status"}


def template(backend: str) -> dict[str, Any]:
    """config_template.py as errbot would read it for ``backend``."""
    saved = dict(os.environ)
    os.environ.update(
        ERRBOT_BACKEND=backend, ERRBOT_ADMINS=ADMIN, ERRBOT_ROOMS=ROOM,
        ERRBOT_DATA_DIR=str(REPO_ROOT / ".pytest_cache" / "acl-template"),
    )  # fmt: skip
    os.environ.pop("ERRBOT_SMS_ROOMS", None)
    try:
        return runpy.run_path(str(REPO_ROOT / "config_template.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def acl_config(backend: str) -> dict[str, Any]:
    values = template(backend)
    return {
        key: values[key]
        for key in ("ACCESS_CONTROLS", "ACCESS_CONTROLS_DEFAULT", "BOT_ADMINS", "BOT_PREFIX")
    }


@pytest.fixture(scope="module")
def chat_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    """A bot with the template's controls as on IRC or Slack (DMs are open to anyone)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATT_CLIENT_SECRET", TEST_CLIENT_SECRET)
        bot = Bot(data_dir=tmp_path_factory.mktemp("acl"), **acl_config("IRC"))
        try:
            yield bot
        finally:
            bot.stop()


def attsms_commands(bot: Bot) -> list[str]:
    return sorted(
        name
        for name, f in bot.backend.all_commands.items()
        if getattr(f, "__self__", None) is not None and f.__self__.name == "AttSms"
    )


def message(bot: Bot, user: str, place: str, text: str = "") -> Message:
    """A message from ``user`` in room ``place``, or in a DM when ``place`` is "dm"."""
    backend = bot.backend
    msg = Message(text)
    if place == "dm":
        msg.frm = TestPerson(user)
        msg.to = backend.bot_identifier
    else:
        room = TestRoom(place, bot=backend)
        msg.frm = TestOccupant(user, room)
        msg.to = room
    return msg


def allowed(bot: Bot, user: str, place: str, command: str) -> bool:
    """errbot's own verdict (every command filter, ACLS included), without running it."""
    msg, _, _ = bot.backend._process_command_filters(
        message(bot, user, place), command, "", dry_run=True
    )
    return msg is not None


def admin_only(command: str) -> bool:
    return command in ADMIN_ONLY_FIXED or command.startswith(ADMIN_ONLY_PREFIXES)


def test_every_command_is_covered(chat_bot: Bot) -> None:
    commands = set(attsms_commands(chat_bot))
    assert ADMIN_ONLY_FIXED <= commands
    assert ROOM_COMMANDS <= commands


@pytest.mark.parametrize("user", [ADMIN, MEMBER, STRANGER])
@pytest.mark.parametrize("place", [ROOM, OTHER_ROOM, "dm"])
def test_template_access_controls(chat_bot: Bot, user: str, place: str) -> None:
    wrong: list[str] = []
    for command in attsms_commands(chat_bot):
        if admin_only(command):
            expected = user == ADMIN  # in any room and in a DM
        else:
            expected = place == ROOM  # everyone in the configured room; no DMs
        if allowed(chat_bot, user, place, command) != expected:
            wrong.append(f"{command}: {'denied' if expected else 'allowed'}")
    assert not wrong, f"{user} in {place}: " + "; ".join(wrong)


def test_text_backend_admin_may_do_everything_in_its_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Text backend's one user is the admin, always in a DM: nothing is shut off."""
    monkeypatch.setenv("ATT_CLIENT_SECRET", "unused")
    bot = Bot(data_dir=tmp_path, **acl_config("Text"))
    try:
        commands = attsms_commands(bot)
        assert [c for c in commands if not allowed(bot, ADMIN, "dm", c)] == []
        assert [c for c in commands if admin_only(c) and allowed(bot, STRANGER, "dm", c)] == []
    finally:
        bot.stop()


def say(bot: Bot, user: str, place: str, text: str) -> str:
    """Run ``text`` as ``user`` in ``place`` through errbot; the bot's answer."""
    bot.backend.callback_message(message(bot, user, place, text))
    return bot.pop()


def test_stranger_cannot_hijack_a_page_or_cancel_it(
    chat_bot: Bot, sandbox: Any, client_id: str
) -> None:
    config = sandbox_config(sandbox, client_id, FOLLOW_UP=False, POLL_INTERVAL=0)
    assert say(chat_bot, ADMIN, "dm", f"!plugin config AttSms {config!r}") == (
        "Plugin configuration done."
    )
    assert say(chat_bot, ADMIN, ROOM, "!sms contact add alice +12125550101").startswith(
        "Contact alice is tel:+12125550101"
    )
    for place in (ROOM, "dm"):
        answer = say(chat_bot, STRANGER, place, "!sms contact add alice +12125550666")
        assert answer == "You're not allowed to access this command from this user"
    assert say(chat_bot, STRANGER, "dm", "!sms cancel P1").startswith("You're not allowed")
    assert "tel:+12125550666" not in str(chat_bot.plugin.services.runtime.store.directory())

    changed = say(chat_bot, ADMIN, ROOM, "!sms contact add alice +12125550199")
    assert changed.startswith("Contact alice changed: pages to alice now go to tel:+12125550199")
    assert "no longer to tel:+12125550101" in changed
    log = say(chat_bot, ADMIN, "dm", "!sms log 5")
    assert "contact alice changed from tel:+12125550101 to tel:+12125550199" in log
    assert f" {ADMIN} -> tel:+12125550199" in log
    assert say(chat_bot, ADMIN, ROOM, "!sms contact remove alice") == "Contact alice removed."
    assert "contact alice removed: was tel:+12125550199" in say(chat_bot, ADMIN, "dm", "!sms log 1")
