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
Path(BOT_DATA_DIR).mkdir(parents=True, exist_ok=True)
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

# Who may page and who may change contacts: see README, "Access control".
ACCESS_CONTROLS_DEFAULT = {}
ACCESS_CONTROLS = {}
