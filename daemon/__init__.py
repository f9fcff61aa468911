"""Runtime: sources, the ingestion pipeline, scheduler, mailer and CLI."""
