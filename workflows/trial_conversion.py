"""Trial conversion: thank buyers the moment they buy, nudge the rest after three days.

``wait_for_event`` is sojourn's wait-for-event step: each participant goes on as soon as their own
``purchase`` event arrives through PutEvents, not when the three days are up. Deploy with
``sojourn deploy workflows/trial_conversion.py --app <application id>`` after creating the segment ``TRIALS``
and the email templates ``trial_started``, ``thanks`` and ``nudge``.
"""

from sojourn.dsl import Journey, email, wait, wait_for_event

SEGMENT_ID = "TRIALS"

trial_conversion = Journey("trial_conversion", segment=SEGMENT_ID, start="now").then(
    email("trial_started"),
    wait_for_event("purchase", timeout=wait(days=3), then=[email("thanks")], otherwise=[email("nudge")]),
)
