"""CPU per message of the email send path, in process: render, tracking links, list headers, MIME bytes.

    python bench/render_cost.py [--messages 5000]

Renders the campaign blast's template (``tests/support/seed.py``) for N endpoint rows as the campaign sender
does (``EmailBatchSender.prepare`` once per pass, then ``PreparedEmail.render`` per message), as plain mail and as list mail (List-Unsubscribe, one signed one-click link),
and builds each message's RFC 5322 bytes (``OutgoingEmail.to_bytes``, what the SMTP transport sends). Prints
the best of three passes in process CPU time (``time.process_time``), so other load on the machine weighs less.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.seed import PAGE

from sojourn.channels.email import NullTransport
from sojourn.engine.email_batch import EmailBatchSender
from sojourn.settings import Settings

TEMPLATE = {
    "Subject": "bench_welcome",
    "HtmlPart": PAGE.format(title="Welcome", slug="welcome"),
    "TextPart": "welcome for {{User.UserAttributes.FirstName}}",
    "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "there"}',
}
LIST = {"ContactListName": "bench_list", "TopicName": "weekly"}


def rows(n: int) -> list[dict[str, Any]]:
    """Endpoint rows as the audience query returns them, each with its claimed message id."""
    now = datetime.now(UTC)
    return [
        {
            "message_id": f"{i:032x}",
            "app_id": "bench",
            "id": f"ep{i}",
            "channel_type": "EMAIL",
            "address": f"user{i}@bench.test",
            "attributes": {"group": ["bench"]},
            "user_attributes": {"FirstName": [f"User{i}"]},
            "cohort_id": i % 100,
            "endpoint_status": "ACTIVE",
            "opt_out": "NONE",
            "creation_date": now,
            "effective_date": now,
        }
        for i in range(n)
    ]


def best_of_three(work: Callable[[], None], n: int) -> float:
    """Microseconds of CPU per message, the best of three passes (after one warm-up pass)."""
    work()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def main(n: int) -> str:
    sender = EmailBatchSender(None, Settings(smtp_url="null://"), NullTransport())  # type: ignore[arg-type]
    batch = rows(n)
    plain = [sender.render(r, TEMPLATE, "bench@sojourn.test") for r in batch]

    def send(options: dict[str, str] | None) -> None:
        # As EmailBatchSender.send: prepared once per batch, rendered per message.
        prepared = sender.prepare(TEMPLATE, "bench@sojourn.test", options)
        for row in batch:
            prepared.render(row)

    results = {
        "render_us": best_of_three(lambda: send(None), n),
        "list_render_us": best_of_three(lambda: send(LIST), n),
        "mime_us": best_of_three(lambda: [m.to_bytes("sojourn.test") for m in plain] and None, n),
    }
    return " ".join(f"{name}={value:.1f}" for name, value in results.items())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000, help="messages per pass (default 5000)")
    print(main(parser.parse_args().messages))
