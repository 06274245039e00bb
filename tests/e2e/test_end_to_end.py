"""End to end: `sojourn up` as a subprocess, a real SMTP server, boto3 over HTTP, the pixel fetched for real."""

from __future__ import annotations

import asyncio
import html
import http.client
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from sojourn.engine import names
from tests.support.seed import on_event, onboarding
from tests.support.smtp import SmtpSink
from tests.support.stack import SojournProcess

HTML = '<html><body><p>Hi {{User.UserAttributes.FirstName}}</p><a href="https://example.com/start">Start</a></body></html>'


@pytest.fixture(scope="module")
def sojourn(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[SojournProcess]:
    process = SojournProcess(tmp_path_factory.mktemp("sojourn"), sink.url)
    process.start()
    yield process
    assert process.stop() == 0
    # Ctrl-C stopped every child: nothing listens on the stack's ports any more.
    for name in (
        "SOJOURN_API_PORT",
        "SOJOURN_POSTGRES_PORT",
        "SOJOURN_TEMPORAL_PORT",
        "SOJOURN_TEMPORAL_UI_PORT",
    ):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(process.env[name]))) != 0, (
                f"something still listens on {name}"
            )


def wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def setup_app(client: Any, members: int) -> tuple[str, str, list[str]]:
    app_id = client.create_app(CreateApplicationRequest={"Name": "e2e"})["ApplicationResponse"]["Id"]
    client.update_email_channel(
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "team@sojourn.test", "Identity": "sojourn.test", "Enabled": True},
    )
    for name in ("e2ewelcome", "e2etips", "e2enudge"):
        try:
            client.create_email_template(
                TemplateName=name,
                EmailTemplateRequest={
                    "Subject": name,
                    "HtmlPart": HTML,
                    "TextPart": "Hi",
                    "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "there"}',
                },
            )
        except client.exceptions.BadRequestException:
            pass
    addresses = [f"e2e{i}-{app_id[:6]}@example.com" for i in range(members)]
    client.update_endpoints_batch(
        ApplicationId=app_id,
        EndpointBatchRequest={
            "Item": [
                {
                    "Id": f"ep{i}",
                    "ChannelType": "EMAIL",
                    "Address": a,
                    "Attributes": {"cohort": ["e2e"]},
                    "User": {"UserId": f"u{i}", "UserAttributes": {"FirstName": [f"P{i}"]}},
                }
                for i, a in enumerate(addresses)
            ]
        },
    )
    segment_id = client.create_segment(
        ApplicationId=app_id,
        WriteSegmentRequest={
            "Name": "e2e",
            "Dimensions": {"Attributes": {"cohort": {"AttributeType": "INCLUSIVE", "Values": ["e2e"]}}},
        },
    )["SegmentResponse"]["Id"]
    return app_id, segment_id, addresses


def short_journey(segment_id: str) -> dict[str, Any]:
    return onboarding(
        segment_id,
        name="e2e-onboarding",
        wait="PT10S",
        evaluation_wait="PT2S",
        templates=("e2ewelcome", "e2etips", "e2enudge"),
    )


def test_segment_journey_with_open_split_and_restart(sojourn: SojournProcess, sink: SmtpSink) -> None:
    client = sojourn.client()
    app_id, segment_id, addresses = setup_app(client, members=4)
    journey = client.create_journey(ApplicationId=app_id, WriteJourneyRequest=short_journey(segment_id))[
        "JourneyResponse"
    ]
    assert journey["State"] == "ACTIVE"

    wait_for(lambda: all(sink.to(a) for a in addresses), what="welcome emails")
    opener = addresses[0]
    (welcome,) = sink.to(opener)
    pixel = re.search(r'src="([^"]+/t/o/[^"]+)"', welcome.html())
    assert pixel is not None, welcome.html()
    assert pixel.group(1).startswith(sojourn.url)
    with urllib.request.urlopen(pixel.group(1)) as response:
        assert response.headers["Content-Type"] == "image/gif"
    # A tracked link redirects to where it pointed (and records _email.click).
    link = re.search(r'href="([^"]+/t/c/[^"]+)"', welcome.html())
    assert link is not None
    parts = urllib.parse.urlsplit(html.unescape(link.group(1)))
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
    connection.request("GET", parts.path)
    redirect = connection.getresponse()
    assert (redirect.status, redirect.getheader("Location")) == (302, "https://example.com/start")
    connection.close()

    # Stop everything in the middle of the 10-second wait, start again: the journey resumes.
    assert sojourn.stop() == 0
    sojourn.start()

    wait_for(lambda: all(len(sink.to(a)) == 2 for a in addresses), timeout=90, what="follow-up emails")
    time.sleep(2)
    subjects = {a: [m.subject for m in sink.to(a)] for a in addresses}
    assert subjects[opener] == ["e2ewelcome", "e2etips"]
    for other in addresses[1:]:
        assert subjects[other] == ["e2ewelcome", "e2enudge"]

    def completed() -> bool:
        metrics = client.get_journey_execution_metrics(ApplicationId=app_id, JourneyId=journey["Id"])[
            "JourneyExecutionMetricsResponse"
        ]["Metrics"]
        return metrics == {**metrics, "ENDPOINT_ENTERED": "4", "ENDPOINT_LEFT": "4", "ENDPOINT_ACTIVE": "0"}

    wait_for(completed, what="journey metrics")
    split = client.get_journey_execution_activity_metrics(
        ApplicationId=app_id, JourneyId=journey["Id"], JourneyActivityId="opened"
    )
    assert split["JourneyExecutionActivityMetricsResponse"]["ActivityType"] == "CONDITIONAL_SPLIT"
    assert split["JourneyExecutionActivityMetricsResponse"]["Metrics"]["Branch_1"] == "1"
    wait_for(
        lambda: (
            client.get_journey(ApplicationId=app_id, JourneyId=journey["Id"])["JourneyResponse"]["State"]
            == "COMPLETED"
        ),
        what="COMPLETED",
    )
    shown = subprocess.run(
        [sys.executable, "-m", "sojourn", "journeys", "show", "--app", app_id, "--journey", journey["Id"]],
        env={**sojourn.env},
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert "welcome: EMAIL e2ewelcome  [SUCCESS 4]" in shown.stdout
    assert "opened: ConditionalSplit  [Branch_1 1, Branch_2 3, ENTERED 4]" in shown.stdout
    # One participant's path: the opener took the yes branch and got the tips email.
    traced = subprocess.run(
        [sys.executable, "-m", "sojourn", "trace", "--journey", journey["Id"], "--endpoint", "ep0"],
        env={**sojourn.env},
        capture_output=True,
        text=True,
    )
    assert traced.returncode == 0, traced.stderr
    assert "entry 1: entered" in traced.stdout and ": completed, left the journey" in traced.stdout
    assert "opened (ConditionalSplit): branch 1" in traced.stdout
    assert "_email.open at" in traced.stdout and "_email.click at" in traced.stdout
    assert "tips (EMAIL)" in traced.stdout
    # What a person finds in the Temporal UI: the journey and its cohort, by search attributes.
    found = asyncio.run(workflows_of(sojourn, app_id, journey["Id"]))
    assert sorted(found) == [
        f"journey/{app_id}/{journey['Id']}",
        f"journey/{app_id}/{journey['Id']}/cohort/0",
    ]
    assert found[f"journey/{app_id}/{journey['Id']}"] == "journey"


async def workflows_of(sojourn: SojournProcess, app_id: str, journey_id: str) -> dict[str, str]:
    client = await Client.connect(f"127.0.0.1:{sojourn.env['SOJOURN_TEMPORAL_PORT']}")
    found: dict[str, str] = {}
    for _ in range(50):
        found = {}
        async for wf in client.list_workflows(f"AppId = '{app_id}' AND JourneyId = '{journey_id}'"):
            found[wf.id] = str(wf.typed_search_attributes.get(names.SOJOURN_KIND))
        if len(found) == 2:
            break
        await asyncio.sleep(0.2)
    return found


def test_put_events_starts_an_event_triggered_journey(sojourn: SojournProcess, sink: SmtpSink) -> None:
    client = sojourn.client()
    app_id, _, addresses = setup_app(client, members=2)
    request = {
        "Name": "on-signup",
        "State": "ACTIVE",
        "StartActivity": "welcome",
        "StartCondition": on_event("signup"),
        "Schedule": {"StartTime": datetime.now(UTC)},
        "Activities": {"welcome": {"EMAIL": {"TemplateName": "e2ewelcome"}}},
    }
    client.create_journey(ApplicationId=app_id, WriteJourneyRequest=request)
    before = len(sink.to(addresses[1]))
    sent_at = time.monotonic()
    result = client.put_events(
        ApplicationId=app_id,
        EventsRequest={
            "BatchItem": {
                "ep1": {
                    "Endpoint": {},
                    "Events": {"e1": {"EventType": "signup", "Timestamp": datetime.now(UTC).isoformat()}},
                }
            }
        },
    )
    assert result["EventsResponse"]["Results"]["ep1"]["EventsItemResponse"]["e1"]["StatusCode"] == 202
    wait_for(lambda: len(sink.to(addresses[1])) == before + 1, timeout=30, what="the triggered email")
    assert time.monotonic() - sent_at < 10
    assert sink.to(addresses[0]) == []


def test_deploy_a_journey_written_in_python(sojourn: SojournProcess, tmp_path: Path) -> None:
    client = sojourn.client()
    app_id, segment_id, _ = setup_app(client, members=1)
    source = tmp_path / "journey.py"
    source.write_text(
        "from sojourn.dsl import Journey, email, split_on, wait\n"
        f"welcome = Journey('dsl-welcome', segment={segment_id!r}).then(\n"
        "    email('e2ewelcome'), wait(seconds=5),\n"
        "    split_on('opened', of='e2ewelcome', yes=[email('e2etips')], no=[email('e2enudge')]))\n"
    )
    env = {**sojourn.env, "SOJOURN_API_PORT": str(sojourn.api_port)}
    out = subprocess.run(
        [sys.executable, "-m", "sojourn", "deploy", str(source), "--app", app_id],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "created journey dsl-welcome" in out.stdout
    (journey,) = client.list_journeys(ApplicationId=app_id)["JourneysResponse"]["Item"]
    got = client.get_journey(ApplicationId=app_id, JourneyId=journey["Id"])["JourneyResponse"]
    assert got["StartActivity"] == "e2ewelcome"
    review = subprocess.run(
        [sys.executable, "-m", "sojourn", "journeys", "review", "--app", app_id, "--journey", journey["Id"]],
        env=env,
        capture_output=True,
        text=True,
    )
    assert review.returncode == 0 and "journey dsl-welcome: ready" in review.stdout, (
        review.stdout + review.stderr
    )
    assert set(got["Activities"]) == {"e2ewelcome", "wait5s", "openedsplit", "e2etips", "e2enudge"}


def test_boto3_gets_the_modeled_errors(sojourn: SojournProcess) -> None:
    client = sojourn.client()
    app_id, segment_id, _ = setup_app(client, members=1)
    cyclic = {**short_journey(segment_id), "State": "DRAFT"}
    cyclic["Activities"] = {
        "a": {"EMAIL": {"TemplateName": "e2ewelcome", "NextActivity": "b"}},
        "b": {"EMAIL": {"TemplateName": "e2etips", "NextActivity": "a"}},
    }
    cyclic["StartActivity"] = "a"
    with pytest.raises(client.exceptions.BadRequestException, match="form a loop with no Wait"):
        client.create_journey(ApplicationId=app_id, WriteJourneyRequest=cyclic)
    with pytest.raises(client.exceptions.NotFoundException, match="Application nope not found"):
        client.get_journey(ApplicationId="nope", JourneyId="x")
    assert client.list_journeys(ApplicationId=app_id)["JourneysResponse"]["Item"] == []


def test_journeys_test_sends_test_participants_through_a_compressed_copy(
    sojourn: SojournProcess, sink: SmtpSink
) -> None:
    client = sojourn.client()
    app_id, segment_id, addresses = setup_app(client, members=2)
    # A day's wait and a three-day evaluation wait, in a DRAFT nobody enters.
    request = {**short_journey(segment_id), "Name": "e2e-tested", "State": "DRAFT"}
    request["Activities"]["pause"]["Wait"]["WaitTime"] = {"WaitFor": "P1D"}
    request["Activities"]["opened"]["ConditionalSplit"]["EvaluationWaitTime"] = {"WaitFor": "P3D"}
    journey = client.create_journey(ApplicationId=app_id, WriteJourneyRequest=request)["JourneyResponse"]
    started = time.monotonic()
    tested = subprocess.run(
        [
            sys.executable,
            "-m",
            "sojourn",
            "journeys",
            "test",
            "--app",
            app_id,
            "--journey",
            journey["Id"],
            "--endpoint",
            "ep1",
            "--wait",
            "PT1S",
            "--timeout",
            "120",
        ],
        env={**sojourn.env},
        capture_output=True,
        text=True,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert time.monotonic() - started < 120, "four days of waits took seconds"
    assert "endpoint ep1 in journey" in tested.stdout
    assert "opened (ConditionalSplit): branch 2" in tested.stdout and "nudge (EMAIL)" in tested.stdout
    assert [m.subject for m in sink.to(addresses[1])] == ["e2ewelcome", "e2enudge"]
    assert sink.to(addresses[0]) == [], "only the test participant got mail"
    listed = client.list_journeys(ApplicationId=app_id)["JourneysResponse"]["Item"]
    copy = next(j for j in listed if j["Name"] == "Test-e2e-tested")
    assert copy["State"] == "CANCELLED"
