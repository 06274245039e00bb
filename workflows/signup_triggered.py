"""An API-triggered journey: every PutEvents ``signup`` event starts it for that endpoint."""

from sojourn.dsl import Journey, email, split_on, wait

signup = Journey("signup_followup", event="signup", start="now").then(
    email("welcome"),
    split_on("clicked", of="welcome", within=wait(days=1), yes=[], no=[email("nudge")]),
)
