"""The engine: Temporal workflows (journeys, cohorts) and their activities, worker and client wiring."""
