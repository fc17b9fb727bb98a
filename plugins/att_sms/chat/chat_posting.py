"""Posting to the chat with the chat's own confirmation: a post counts only when it was taken.

errbot's ``send`` gives no outcome, and some backends swallow their errors: slackv3 0.3.2's
``send_message`` catches every exception and only logs it, so ``send()`` returns normally
when Slack answered ``not_in_channel`` or HTTP 429. On the slackv3 backend this module
therefore calls the Web API's ``chat.postMessage`` itself and reads Slack's answer; on any
other backend it uses ``bot.send`` and trusts that only a raised exception means failure.

The text is posted as given (no Markdown conversion: the backend's converter would turn
an escaped ``\\[label\\](url)`` back into a live link), with Slack's three characters
escaped, link unfurling, ``link_names`` and mrkdwn off, so what the plugin made inert stays
inert.
"""

from __future__ import annotations

from typing import Any

#: Slack error codes whose cause someone has to fix in Slack (the post is kept meanwhile).
_SLACK_HINTS = {
    "not_in_channel": "the bot is not a member of the channel: invite it (/invite @bot)",
    "channel_not_found": "no such channel, or a private channel the bot was not invited to",
    "is_archived": "the channel is archived: unarchive it or route elsewhere",
    "msg_too_long": "the message is too long for Slack",
    "restricted_action": "the workspace does not let the bot post there",
    "not_authed": "the bot token was not accepted",
    "invalid_auth": "the bot token was not accepted",
    "account_inactive": "the bot token was revoked",
    "token_revoked": "the bot token was revoked",
    "missing_scope": "the Slack app lacks the chat:write scope",
    "thread_not_found": "the conversation's thread is gone: the next post starts a new one",
    "message_not_found": "the conversation's thread is gone: the next post starts a new one",
}


class PostFailed(Exception):
    """The chat did not take a post; ``retry_after`` is the seconds the chat asked us to wait."""

    def __init__(self, reason: str, retry_after: float | None = None, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.code = code  # the chat's own error code (Slack: "not_in_channel"...), or ""


def slack_escape(text: str) -> str:
    """``text`` escaped the way Slack's message text requires: ``&``, ``<`` and ``>`` only."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post_size_limit(bot: Any, wanted: int) -> int:
    """``wanted``, or the chat's smaller message size limit (errbot's ``message_size_limit``:
    510 on IRC, 1024 on Telegram), past which errbot cuts a message wherever it falls."""
    limit = getattr(bot, "message_size_limit", None)
    return min(wanted, limit) if isinstance(limit, int) and limit > 0 else wanted


def is_slack(bot: Any) -> bool:
    """True for errbot's slackv3 backend (it has a Web API client with chat_postMessage)."""
    web = getattr(bot, "slack_web", None)
    return web is not None and callable(getattr(web, "chat_postMessage", None))


def post_confirmed(
    bot: Any,
    identifier: Any,
    text: str,
    *,
    thread_ts: str | None = None,
    reply_broadcast: bool = False,
) -> str | None:
    """Post ``text`` to ``identifier`` (what ``bot.build_identifier`` returned).

    Returns only when the chat took the post (on Slack with the post's ``ts``, else None);
    raises ``PostFailed`` otherwise. On Slack a post goes to the thread ``thread_ts`` (or the
    identifier's ``thread_ts`` attribute), shown in the channel too with ``reply_broadcast``.
    """
    if is_slack(bot):
        thread = thread_ts or getattr(identifier, "thread_ts", None)
        return _post_to_slack(bot, identifier, text, thread, reply_broadcast and bool(thread))
    try:
        bot.send(identifier, text)
    except Exception as exc:  # RoomDoesNotExistError, ValueError, the backend's own errors
        raise PostFailed(f"cannot post to {identifier}: {type(exc).__name__}: {exc}") from exc
    return None


def _post_to_slack(
    bot: Any, identifier: Any, text: str, thread_ts: str | None, broadcast: bool
) -> str | None:
    try:
        channel = slack_channel_of(bot, identifier)
        arguments: dict[str, Any] = {
            "channel": channel,
            "text": slack_escape(text),
            "mrkdwn": False,
            "link_names": False,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if thread_ts:
            arguments["thread_ts"] = thread_ts
            if broadcast:
                arguments["reply_broadcast"] = True
        response = bot.slack_web.chat_postMessage(**arguments)
    except PostFailed:
        raise
    except Exception as exc:
        raise _slack_failure(exc, identifier) from exc
    if not response.get("ok", False):  # slack_sdk raises on ok=false; a stub might not
        code = str(response.get("error") or "unknown_error")
        raise PostFailed(_slack_reason(code, identifier), code=code)
    ts = response.get("ts")
    return str(ts) if ts else None


def slack_channel_of(bot: Any, identifier: Any) -> str:
    """The Slack channel id (C…, G… or D…) a slackv3 identifier posts to."""
    userid = _attribute(identifier, "userid")
    if userid and _attribute(identifier, "room") is not None:
        # errbot's rule: a message to a room occupant is a private message to that person.
        return _im_channel(bot, userid, identifier)
    for name in ("channelid", "id") if userid else ("id", "channelid"):
        value = _attribute(identifier, name)
        if isinstance(value, str) and value[:1] in ("C", "G", "D"):
            return value
    if userid:
        return _im_channel(bot, userid, identifier)
    raise PostFailed(f"cannot post to {_describe(identifier)}: Slack does not know this channel")


def _attribute(identifier: Any, name: str) -> Any:
    """An identifier's attribute, None when absent or unusable (slackv3 rooms whose
    conversations.info failed raise TypeError on every attribute)."""
    try:
        return getattr(identifier, name, None)
    except Exception:  # noqa: BLE001
        return None


def _im_channel(bot: Any, userid: str, identifier: Any) -> str:
    channel = bot.get_im_channel(userid)
    if not channel:
        raise PostFailed(f"cannot post to user {userid}: Slack gave no direct-message channel")
    return str(channel)


def _slack_failure(exc: Exception, identifier: Any) -> PostFailed:
    response = getattr(exc, "response", None)
    if response is None:  # network error, timeout: the post may not have reached Slack
        return PostFailed(
            f"cannot reach Slack to post to {_describe(identifier)}: {type(exc).__name__}"
        )
    status = getattr(response, "status_code", None)
    try:
        code = str(response.get("error") or "")
    except Exception:  # noqa: BLE001 - an unparsable body
        code = ""
    if status == 429 or code == "ratelimited":
        retry_after = _retry_after(getattr(response, "headers", None))
        wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
        return PostFailed(
            f"Slack rate limit (ratelimited){wait}", retry_after=retry_after, code="ratelimited"
        )
    code = code or f"http_{status}"
    return PostFailed(_slack_reason(code, identifier), code=code)


def _slack_reason(code: str, identifier: Any) -> str:
    hint = _SLACK_HINTS.get(code)
    where = _describe(identifier)
    return f"Slack refused the post to {where}: {code}" + (f" ({hint})" if hint else "")


def _describe(identifier: Any) -> str:
    """A channel as ``#name (C…)``, a person as their bare id: never a mention that pings."""
    userid = _attribute(identifier, "userid")
    if userid:
        return f"user {userid}"
    name, room_id = _attribute(identifier, "name"), _attribute(identifier, "id")
    if isinstance(room_id, str) and room_id:
        return f"#{name} ({room_id})" if name else room_id
    return "the route's target"


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            try:
                seconds = float(value[0] if isinstance(value, list) else value)
            except (TypeError, ValueError):
                return None
            return max(seconds, 0.0)
    return None


__all__ = ["PostFailed", "is_slack", "post_confirmed", "slack_channel_of", "slack_escape"]
