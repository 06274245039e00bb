"""CPU per message of the campaign FILTER hook's answers, in process, against the code of another commit.

    python bench/hook_cost.py [--endpoints 100000] [--rounds 3] [--compare REV]

Measures in process CPU time (``time.process_time``, garbage collector off, the best of five passes after a
warm-up, the passes of the two versions alternating), in µs per message or endpoint, what the hook's answers add
to the campaign send path:

- ``sms_render`` / ``push_render``: ``campaign_channels.render_campaign_message`` for SMS and GCM rows as a
  campaign *without* a hook renders them (no hook key on the rows): the only per-message work the change adds
  there is one ``dict.get``. The EMAIL path has no changed line at all.
- ``sms_render_hooked``: the same SMS rows carrying a hook's BodyOverride (this commit only).
- ``hook_keep``: ``CampaignHook.keep`` over the endpoints, in calls of 50, with an in-process hook function
  that adds ``Attributes.CreditScore`` to each endpoint it is given and returns them (Pinpoint's example);
  this commit also copies each call's event for the function and reads every answered endpoint.
- ``hook_merge``: ``merge_hook_answer`` per kept endpoint (this commit only).

With ``--compare REV`` (default ``e4bab05``, the commit before the hook's answers changed the message) the
modules ``campaign_channels`` and ``campaign_hook`` of REV are loaded from git next to this checkout's, and each
round measures REV's code (``old_``) and this checkout's (``new_``) pass for pass. The last line, the best of the
rounds, is machine-readable.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sojourn.domain.campaigns import ChannelSource
from sojourn.engine import campaign_channels, campaign_hook
from sojourn.engine.campaign_channels import LoadedChannel

ROOT = Path(__file__).resolve().parent.parent

SMS = LoadedChannel(
    ChannelSource("SMS", inline={"Body": "Hi {{User.UserAttributes.FirstName}}: {{Attributes.code}}"}),
    {"Body": "Hi {{User.UserAttributes.FirstName}}: {{Attributes.code}}"},
    {"SenderId": "ACME"},
)
PUSH_CONTENT = {"Default": {"Title": "Sale", "Body": "Now on {{Attributes.code}}"}}
PUSH = LoadedChannel(ChannelSource("PUSH", inline=PUSH_CONTENT), PUSH_CONTENT, {})


def git_module(rev: str, path: str, name: str) -> types.ModuleType:
    """The module at ``path`` as it was at commit ``rev``, loaded under ``name`` (its imports are this checkout's)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(name)
    module.__file__ = f"{rev}:{path}"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def rows(n: int, channel_type: str) -> list[dict[str, Any]]:
    """Claimed endpoint rows as the campaign send loop hands them to the channel senders."""
    now = datetime.now(UTC)
    return [
        {
            "message_id": f"{i:032x}",
            "app_id": "bench",
            "id": f"ep{i:07}",
            "channel_type": channel_type,
            "address": f"+1555{i:07}",
            "attributes": {"plan": ["pro"], "code": [f"C-{i}"]},
            "user_attributes": {"FirstName": [f"User{i}"]},
            "metrics": {},
            "demographic": {},
            "location": {},
            "user_id": f"u{i}",
            "request_id": None,
            "cohort_id": i % 100,
            "endpoint_status": "ACTIVE",
            "opt_out": "NONE",
            "creation_date": now,
            "effective_date": now,
        }
        for i in range(n)
    ]


def cpu_us(work: Callable[[], object], n: int) -> float:
    """Microseconds of CPU per item of one pass (the garbage collector off, as ``timeit`` does)."""
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        work()
        return (time.process_time() - started) / n * 1e6
    finally:
        gc.enable()


def best_interleaved(passes: dict[str, Callable[[], object]], n: int, repeat: int = 5) -> dict[str, float]:
    """The best of ``repeat`` passes of each, after a warm-up pass of each; the passes of the different
    versions alternate, so that a change in the machine's load weighs on each alike."""
    for work in passes.values():
        work()
    best = dict.fromkeys(passes, float("inf"))
    for _ in range(repeat):
        for name, work in passes.items():
            best[name] = min(best[name], cpu_us(work, n))
    return best


def credit_scores(event: dict[str, Any]) -> dict[str, Any]:
    """Pinpoint's example hook: add a CreditScore to every endpoint and return them all."""
    for endpoint in event["Endpoints"].values():
        endpoint.setdefault("Attributes", {})["CreditScore"] = [700]
    return dict(event["Endpoints"])


def render_all(channels: types.ModuleType, loaded: LoadedChannel, batch: list[dict[str, Any]]) -> None:
    render = channels.render_campaign_message
    for row in batch:
        render(loaded, row)


def measure(versions: dict[str, tuple[types.ModuleType, types.ModuleType]], n: int) -> dict[str, float]:
    """One round: each measure for each version (``old``: another commit's modules, ``new``: this checkout's),
    their passes interleaved."""
    sms, push = rows(n, "SMS"), rows(n, "GCM")
    endpoints = {r["id"]: campaign_channels.endpoint_response(r) for r in sms}
    base = {"ApplicationId": "bench", "CampaignId": "c", "TreatmentId": "0"}
    results: dict[str, float] = {}
    for measure_name, make in (
        ("sms_render", lambda ch, _h: lambda: render_all(ch, SMS, sms)),
        ("push_render", lambda ch, _h: lambda: render_all(ch, PUSH, push)),
        (
            "hook_keep",
            lambda _ch, h: (
                lambda: asyncio.run(
                    h.CampaignHook("credit_scores", {"credit_scores": credit_scores}).keep(base, endpoints)
                )
            ),
        ),
    ):
        passes = {f"{v}_{measure_name}": make(ch, h) for v, (ch, h) in versions.items()}
        results.update(best_interleaved(passes, n))
    # What only this checkout does: render rows that carry an override, merge answers into rows.
    answer = campaign_hook.parse_hook_endpoint(
        "ep", {"Attributes": {"plan": ["pro"], "CreditScore": [700]}, "BodyOverride": "Your score: 700"}
    )
    hooked = [campaign_hook.merge_hook_answer(r, answer) for r in sms]
    results.update(
        best_interleaved(
            {
                "new_sms_render_hooked": lambda: render_all(campaign_channels, SMS, hooked),
                "new_hook_merge": lambda: [campaign_hook.merge_hook_answer(r, answer) for r in sms],
            },
            n,
        )
    )
    return results


def main(n: int, rounds: int, rev: str | None) -> str:
    versions = {}
    if rev:
        versions["old"] = (
            git_module(rev, "src/sojourn/engine/campaign_channels.py", "old_campaign_channels"),
            git_module(rev, "src/sojourn/engine/campaign_hook.py", "old_campaign_hook"),
        )
    versions["new"] = (campaign_channels, campaign_hook)
    totals: dict[str, list[float]] = {}
    for round_no in range(rounds):
        results = measure(versions, n)
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        print(f"round {round_no + 1} ({stamp} UTC): " + " ".join(f"{k}={v:.2f}" for k, v in results.items()))
        for key, value in results.items():
            totals.setdefault(key, []).append(value)
    best = {k: min(v) for k, v in totals.items()}
    return " ".join(f"{k}_us={v:.2f}" for k, v in best.items())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", type=int, default=100_000, help="rows per pass (default 100000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, old and new back to back (default 3)")
    parser.add_argument(
        "--compare",
        metavar="REV",
        default="e4bab05",
        help="the commit whose code is measured next to this checkout's ('' to skip; default e4bab05)",
    )
    args = parser.parse_args()
    print(main(args.endpoints, args.rounds, args.compare or None))
