"""Onboarding: welcome email, wait two days, then tips for those who opened it and a nudge for the rest.

Deploy with ``sojourn deploy workflows/onboarding.py --app <application id>`` after creating the segment
``NEW_SIGNUPS`` (or change it below) and the email templates ``welcome``, ``tips`` and ``nudge``.
"""

from sojourn.dsl import Journey, email, holdout, split_on, wait

SEGMENT_ID = "NEW_SIGNUPS"

onboarding = Journey("onboarding", segment=SEGMENT_ID, start="now").then(
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
