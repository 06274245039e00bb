"""Workflow ids, search attribute keys: the names a person types into the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

APP_ID = SearchAttributeKey.for_keyword("AppId")
JOURNEY_ID = SearchAttributeKey.for_keyword("JourneyId")
CAMPAIGN_ID = SearchAttributeKey.for_keyword("CampaignId")
SOJOURN_KIND = SearchAttributeKey.for_keyword("SojournKind")
ACTIVITY_ID = SearchAttributeKey.for_keyword("ActivityId")


def journey_workflow_id(app_id: str, journey_id: str) -> str:
    """The id of the one JourneyWorkflow of a journey."""
    return f"journey/{app_id}/{journey_id}"


def cohort_workflow_id(app_id: str, journey_id: str, cohort_no: int) -> str:
    """The id of a CohortWorkflow: its journey's id plus the cohort number."""
    return f"journey/{app_id}/{journey_id}/cohort/{cohort_no}"


def campaign_workflow_id(app_id: str, campaign_id: str) -> str:
    """The id of the one CampaignWorkflow of a campaign."""
    return f"campaign/{app_id}/{campaign_id}"
