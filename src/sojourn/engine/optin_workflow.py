"""DoubleOptInWorkflow: one per pending sign-up (id ``optin/{app}/{address key}``).

Sends one confirmation email, then waits for the ``confirm`` signal (from ``POST /confirm/{token}``) for up to
``confirm_days``; records the outcome: consent granted (double_opt_in, with the confirmer's ip and user
agent) or expired (the endpoint stays unreachable). Durable: the wait survives restarts of everything.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from sojourn.engine.privacy_inputs import Confirmation, ConfirmationEmail, OptInInput, OptInOutcome

ACTIVITY_TIMEOUT = timedelta(minutes=5)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))


@workflow.defn(name="DoubleOptInWorkflow")
class DoubleOptInWorkflow:
    """Signal: ``confirm(Confirmation)``. Query: ``status``. Result: ``granted`` or ``expired``."""

    def __init__(self) -> None:
        self.confirmation: Confirmation | None = None
        self.state = "sending"

    @workflow.signal
    def confirm(self, confirmation: Confirmation) -> None:
        """The contact clicked the link and confirmed (the first confirmation counts)."""
        if self.confirmation is None:
            self.confirmation = confirmation

    @workflow.query
    def status(self) -> str:
        """sending, awaiting_confirmation, granted or expired."""
        return self.state

    @workflow.run
    async def run(self, inp: OptInInput) -> str:
        """Send the confirmation, wait for it, record the outcome."""
        deadline = workflow.now() + timedelta(days=inp.confirm_days)
        # Deterministic per run: a retried send activity finds its ledger row and never sends twice.
        message_id = hashlib.md5(
            f"{workflow.info().workflow_id}/{workflow.info().run_id}".encode()
        ).hexdigest()
        await workflow.execute_activity(
            "send_optin_confirmation",
            ConfirmationEmail(
                app_id=inp.app_id,
                endpoint_id=inp.endpoint_id,
                address=inp.address,
                consent_text=inp.consent_text,
                message_id=message_id,
                expires_at=int(deadline.timestamp()),
                confirm_days=inp.confirm_days,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        self.state = "awaiting_confirmation"
        workflow.set_current_details(f"waiting for confirmation until {deadline.isoformat()}")
        try:
            await workflow.wait_condition(
                lambda: self.confirmation is not None, timeout=timedelta(days=inp.confirm_days)
            )
        except TimeoutError:
            pass
        self.state = "granted" if self.confirmation is not None else "expired"
        await workflow.execute_activity(
            "finish_optin",
            OptInOutcome(
                app_id=inp.app_id,
                endpoint_id=inp.endpoint_id,
                address=inp.address,
                consent_text=inp.consent_text,
                status=self.state,
                confirm_days=inp.confirm_days,
                confirmation=self.confirmation,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        return self.state
