"""The room posts escalating pages owe: queued in the store with the event that owes them,
made here with the chat's confirmation, in order per room.

A post the chat refused stays queued (with a growing wait) and holds back the later posts
of its room; the page itself is not touched, so no step is sent again because a post
failed. A post is claimed before it is made, so two posters (replicas) do not both make it.
"""

from __future__ import annotations

import logging

from att_sms.chat.chat_posting import PostFailed
from att_sms.store import PagePost, Store

from .inbound import in_room
from .runtime import Runtime
from .threads import ConversationThreads

log = logging.getLogger("errbot.plugins.AttSms")

POST_CLAIM = 60.0  # a post being made is not taken by another poster for this long
POST_RETRY_MAX = 60.0
POST_GIVE_UP = 1500  # attempts (about a day at POST_RETRY_MAX) before a post is dropped


class PagePoster:
    """Makes the queued page posts (built by ``PageDesk``; its poller calls ``post_queued``)."""

    def __init__(self, rt: Runtime, threads: ConversationThreads) -> None:
        self._rt = rt
        self._threads = threads

    def post_queued(self, store: Store) -> None:
        """Make the queued posts, in order per room; a refused post holds back its room."""
        now = store.now()
        held: set[str] = set()
        for post in store.pending_page_posts():
            if not self._rt.current():
                return
            if post.room in held or post.next_at > now:
                held.add(post.room)
                continue
            if not store.claim_page_post(post, now + POST_CLAIM):
                held.add(post.room)
                continue
            problem = self._post_one(post)
            if problem is None:
                store.finish_page_post(post.id)
                continue
            held.add(post.room)
            self._keep_post(store, post, problem, now)

    def _post_one(self, post: PagePost) -> PostFailed | None:
        try:
            identifier = self._rt.build_identifier(post.room)
        except Exception as exc:  # ValueError and backend-specific errors
            return PostFailed(f"cannot post to {post.room!r}: {exc}")
        if not in_room(identifier):
            return PostFailed(f"the bot is not in {post.room} yet (joining)")
        try:
            self._threads.post_page_text(identifier, post)  # in the page's thread
        except PostFailed as exc:
            return exc
        return None

    @staticmethod
    def _keep_post(store: Store, post: PagePost, problem: PostFailed, now: float) -> None:
        attempts = post.attempts + 1
        if attempts >= POST_GIVE_UP:
            log.error("AttSms gave up posting to %s: %s (%s)", post.room, post.text, problem)
            store.finish_page_post(post.id)
            return
        wait = problem.retry_after or min(POST_RETRY_MAX, 2.0**attempts)
        store.retry_page_post(post.id, now + wait, attempts)
        log.warning("AttSms page post to %s kept for retry in %.0f s: %s", post.room, wait, problem)
