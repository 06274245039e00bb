"""Domain models and pure rules: journeys, segments, templates."""
