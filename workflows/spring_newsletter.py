"""A weekly newsletter with an A/B test of two subject lines and a 10% control group.

Every Monday at 09:00 in each subscriber's own time zone (subscribers without one get it at 09:00 Paris
time), from March to May; nobody is mailed between 21:00 and 08:00 their time, and nobody gets more than one
email from this campaign in a day.

Deploy with ``sojourn deploy workflows/spring_newsletter.py --app <application id>`` after creating the
segment ``NEWSLETTER`` (or change it below) and the email templates ``spring`` and ``spring_b``.
"""

from datetime import datetime

from sojourn.dsl import Campaign

SEGMENT_ID = "NEWSLETTER"

spring = Campaign(
    "spring-newsletter",
    segment=SEGMENT_ID,
    template="spring",
    frequency="WEEKLY",
    start=datetime(2027, 3, 1, 9, 0),
    end=datetime(2027, 5, 31, 23, 0),
    timezone="Europe/Paris",
    local_time=True,
    quiet_time=("21:00", "08:00"),
    holdout=10,
    daily_cap=1,
    treatment_name="A",
).treatment(45, template="spring_b", name="B")
