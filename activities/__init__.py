"""Custom activities of this deployment (custom channels, campaign-hook filters).

Every ``temporalio.activity.defn`` function listed in ``ACTIVITIES`` here is registered on the sojourn worker.
Nothing ships here by default.
"""

from typing import Any

ACTIVITIES: list[Any] = []
