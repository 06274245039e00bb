"""sojourn: self-hosted, Pinpoint-compatible journeys and campaigns, durable on Temporal."""

__version__ = "0.1.0"
