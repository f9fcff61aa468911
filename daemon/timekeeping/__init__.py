"""Keeping time: SLA policy and working calendar, the scheduler's sweeps,
escalations, status updates, vendors, surveys, follow-ups and the report."""
