"""Delivery channels (email over SMTP today) and link tracking."""
