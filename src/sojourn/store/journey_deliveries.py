"""What a channel provider answered for the messages of journey steps, so delivery callbacks find them.

Rows go to ``message_deliveries`` (the table direct sends use): a provider's delivery report may name a message
by the provider's own id, which is looked up there (see :func:`sojourn.store.direct_ledger.find_message`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sojourn.channels.providers import ProviderResult


async def record_provider_answers(
    conn: AsyncConnection, channel: str, results: Mapping[str, ProviderResult], context: Mapping[str, str]
) -> None:
    """Upsert one ``message_deliveries`` row per message id with the provider's answer.

    Args:
        conn: A connection inside a transaction.
        channel: SMS, PUSH, VOICE or CUSTOM.
        results: The provider's result per message id.
        context: Copied into the delivery events of later callbacks (journey and activity ids).
    """
    if not results:
        return
    ids = list(results)
    await conn.execute(
        text(
            """
            INSERT INTO message_deliveries (message_id, channel, provider_message_id, delivery_status, status_code,
                                            status_message, context)
            SELECT t.m, :ch, t.pid, t.s, t.code, t.msg, CAST(:ctx AS jsonb)
            FROM unnest(CAST(:ids AS text[]), CAST(:pids AS text[]), CAST(:ss AS text[]), CAST(:codes AS int[]),
                        CAST(:msgs AS text[])) AS t(m, pid, s, code, msg)
            ON CONFLICT (message_id) DO UPDATE
            SET provider_message_id = COALESCE(excluded.provider_message_id, message_deliveries.provider_message_id),
                delivery_status = excluded.delivery_status, status_code = excluded.status_code,
                status_message = excluded.status_message, updated_at = now()
            """
        ),
        {
            "ch": channel,
            "ctx": json.dumps(dict(context)),
            "ids": ids,
            "pids": [results[m].provider_message_id for m in ids],
            "ss": [results[m].delivery_status for m in ids],
            "codes": [results[m].status_code for m in ids],
            "msgs": [results[m].status_message[:500] for m in ids],
        },
    )
