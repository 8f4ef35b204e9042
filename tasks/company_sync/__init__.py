"""Logic of the company flows: plain functions over pandas frames (no Prefect); async writers per system.

sync-companies, in the order it runs them (``pipeline.plan_sync`` composes the planning steps):
``extract`` (reads) → ``mapping`` (AFAS rows → wanted TOPdesk records) → ``validate`` (rejects with
reasons) → ``plan`` (match by number, review by name, create/update/archive/unarchive) → ``apply`` (TOPdesk
writes) → ``history`` (the AFAS snapshot in the store) → ``report``. create-missing-debtors: ``debtors``.
``config`` loads ``config/companies.toml``; ``fields`` holds the small value helpers.
"""
