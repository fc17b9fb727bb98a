"""An errbot ``config.py`` to start from, with the AttSms plugin loaded.

Copy it next to where the bot runs (``cp config_template.py config.py``), adjust, and start
``errbot -c config.py``. Every value can also come from the environment as shown, which is
how ``make demo`` and the end-to-end tests use it. The carrier's client secret is never
written here or in the plugin config: export ATT_CLIENT_SECRET before starting the bot.

The AttSms plugin configures itself from ATT_* variables when no ``!plugin config AttSms``
is stored: ATT_API_BASE_URL, ATT_CLIENT_ID, ATT_INBOX_ROUTES (JSON), ATT_POLL_INTERVAL, and
ATT_<KEY> for every other key of the plugin's configuration (see README, "Configuration").
"""

import logging
import os
from pathlib import Path

_HERE = Path(__file__).resolve().parent

# Backend: 'Text' (a terminal), 'IRC', or 'SlackV3' (pip install errbot-backend-slackv3==0.3.2;
# errbot finds it by its entry point; see README, "Slack").
BACKEND = os.environ.get("ERRBOT_BACKEND", "Text")

# The repository root: it holds plugin.plug. Keep any virtual env OUTSIDE this folder,
# errbot scans it for **/*.plug.
BOT_EXTRA_PLUGIN_DIR = os.environ.get("ATT_SMS_PLUGIN_DIR", str(_HERE))

BOT_DATA_DIR = os.environ.get("ERRBOT_DATA_DIR", str(Path.home() / ".local/share/errbot-att-sms"))
Path(BOT_DATA_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)  # numbers, texts, logs
# errbot's own settings (`!plugin config`, blacklists...) in SQLite, each change committed
# at once: errbot's default Shelf store can be left corrupt by a kill (docs/STORAGE.md).
BOT_EXTRA_STORAGE_PLUGINS_DIR = str(Path(BOT_EXTRA_PLUGIN_DIR) / "errbot_storage/.errbot_plugin")
STORAGE = "SQLite"
BOT_LOG_FILE = os.environ.get("ERRBOT_LOG_FILE", os.path.join(BOT_DATA_DIR, "errbot.log"))
BOT_LOG_LEVEL = getattr(logging, os.environ.get("ERRBOT_LOG_LEVEL", "INFO"))

BOT_IDENTITY = {
    # Text backend
    "username": os.environ.get("ERRBOT_USERNAME", "@errbot"),
    # IRC backend
    "nickname": os.environ.get("ERRBOT_IRC_NICK", "smsbot"),
    "server": os.environ.get("ERRBOT_IRC_SERVER", "127.0.0.1"),
    "port": int(os.environ.get("ERRBOT_IRC_PORT", "6667")),
    # SlackV3 backend
    "token": os.environ.get("SLACK_BOT_TOKEN", ""),
    "signing_secret": os.environ.get("SLACK_SIGNING_SECRET", ""),
    "app_token": os.environ.get("SLACK_APP_TOKEN", ""),
}

BOT_ADMINS = tuple(os.environ.get("ERRBOT_ADMINS", "@ops").split(","))
CHATROOM_PRESENCE = tuple(r for r in os.environ.get("ERRBOT_ROOMS", "").split(",") if r)
BOT_PREFIX = "!"

# errbot runs pip on the plugin's requirements.txt (version ranges only) at start-up; with
# the requirements already installed (make demo does) that is a quick no-op. Setting it to
# False skips pip, but errbot's own check then logs each line as "missing".
AUTOINSTALL_DEPS = True

# Commands run in a thread pool, so a slow carrier never blocks other commands.
BOT_ASYNC = True
BOT_ASYNC_POOLSIZE = 10

# Who may do what (README, "Access control"). errbot takes the FIRST pattern that matches a
# command (shell-style, case-insensitive), so the admin-only rules come before "AttSms:*".
# `allowrooms` is not checked in direct messages: a DM passes it, so the room-only rules
# also say `allowprivate: False`, and the admin-only rules rest on `allowusers`, which holds
# in rooms and DMs alike. The rooms are the ones the bot joins (CHATROOM_PRESENCE) unless
# ERRBOT_SMS_ROOMS names others (on Slack: bare channel ids, C0123ABCD).
SMS_ROOMS = tuple(
    r for r in os.environ.get("ERRBOT_SMS_ROOMS", ",".join(CHATROOM_PRESENCE)).split(",") if r
)
# The Text backend is a terminal: its only user is BOT_ADMINS[0], always in a "DM".
_DIRECT_MESSAGES = BACKEND == "Text"
_ADMINS_ONLY = {"allowusers": BOT_ADMINS}
ACCESS_CONTROLS_DEFAULT = {}
ACCESS_CONTROLS = {
    # Who gets paged, and what was sent: bot admins only, in a room or a DM.
    "AttSms:sms_contact_*": _ADMINS_ONLY,
    "AttSms:sms_group_*": _ADMINS_ONLY,
    "AttSms:sms_rotation_*": _ADMINS_ONLY,
    "AttSms:sms_override*": _ADMINS_ONLY,
    "AttSms:sms_optout*": _ADMINS_ONLY,
    "AttSms:sms_log": _ADMINS_ONLY,
    # Everything else (send, page, reply, ack, cancel, status, pages...): everyone in the
    # configured rooms, where the team sees it; not in a DM (anyone can open one).
    "AttSms:*": {"allowrooms": SMS_ROOMS, "allowprivate": _DIRECT_MESSAGES},
}
