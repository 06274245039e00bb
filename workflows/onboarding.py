"""Onboarding: welcome email, wait two days, then tips for those who opened it and a nudge for the rest.

Nobody is mailed between 21:00 and 08:00 their time (messages wait for the morning), and no one gets more
than three emails from all journeys together in a week.

Deploy with ``sojourn deploy workflows/onboarding.py --app <application id>`` after creating the segment
``NEW_SIGNUPS`` (or change it below) and the email templates ``welcome``, ``tips`` and ``nudge``.
"""

from sojourn.dsl import Journey, email, holdout, split_on, wait

SEGMENT_ID = "NEW_SIGNUPS"

onboarding = Journey(
    "onboarding",
    segment=SEGMENT_ID,
    start="now",
    quiet_time=("21:00", "08:00"),
    timeframe_cap=(3, 7),
).then(
    email("welcome"),
    wait(days=2),
    split_on(
        "opened",
        of="welcome",
        within=wait(days=3),
        yes=[email("tips")],
        no=[holdout(10), email("nudge")],
    ),
)
