"""Chat-platform webhooks under /bots/<platform>, each mounted only when configured.

``mount_bots(app, settings)`` is the one call ``api.main`` makes. A platform whose secrets
are not set gets no route at all (404), so an unconfigured deployment exposes nothing. The
adapters are thin: verify, deduplicate, ack; the answer comes from :mod:`qa.chat`. See
docs/bots.md for the platform-side setup.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api.bots.common import BotRuntime, secret
from qa.chat import Chat
from qa.config import Settings

log = logging.getLogger("api.bots")


def enabled_platforms(settings: Settings) -> list[str]:
    """Which adapters the settings turn on (each needs what it takes to verify requests)."""
    on = []
    if secret(settings.slack_signing_secret):
        on.append("slack")
    if (
        settings.feishu_app_id and secret(settings.feishu_app_secret)
        and (secret(settings.feishu_verification_token) or secret(settings.feishu_encrypt_key))
    ):
        on.append("feishu")
    if secret(settings.dingtalk_app_secret):
        on.append("dingtalk")
    if (
        settings.wecom_corp_id and secret(settings.wecom_token) and secret(settings.wecom_encoding_aes_key)
        and secret(settings.wecom_secret) and settings.wecom_agent_id is not None
    ):
        on.append("wecom")
    return on


def mount_bots(app: FastAPI, settings: Settings) -> list[str]:
    """Add the routers of the configured platforms; returns their names."""
    platforms = enabled_platforms(settings)
    if not platforms:
        return []
    holder = app.state.holder  # opens the index lazily; a missing index becomes a polite reply
    from qa.questionlog import record_answer

    def on_answer(answer, channel: str) -> None:  # the question log (api.main sets holder.questions)
        record_answer(getattr(holder, "questions", None), holder.loaded, answer, channel)

    chat = Chat(holder.get, max_question_chars=settings.max_question_chars, on_answer=on_answer)
    rt = BotRuntime(settings, chat)
    app.state.bots = rt
    for name in platforms:
        if name == "slack":
            from api.bots import slack as mod
        elif name == "feishu":
            from api.bots import feishu as mod
        elif name == "dingtalk":
            from api.bots import dingtalk as mod
        else:
            from api.bots import wecom as mod
        app.include_router(mod.build_router(rt))

    app.router.on_shutdown.append(rt.close)  # finish in-flight answers, close the HTTP pool

    log.info("chat bots enabled: %s", ", ".join(platforms))
    return platforms


__all__ = ["mount_bots", "enabled_platforms", "BotRuntime"]
