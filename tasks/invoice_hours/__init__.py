"""Billing logic of the invoice-hours flow: plain functions over pandas frames (no Prefect, HTTP or SQL).

The steps, in the order the flow runs them (``pipeline.bill`` composes them for tests and benchmarks):
``validate.split_valid`` → ``rules.split_excluded`` → ``join.join_masters`` (→ ``rules.split_out_of_scope``
for a one-administration run) → ``rules.price`` → ``plan.plan_lines`` → ``reconcile.reconcile`` →
``plan.build_documents`` → ``payloads.build_payloads``; ``buckets`` accounts for every registration read
(the conservation invariant). Exclusions run before the join on purpose: an ignored branch without a
customer number is *excluded*, not rejected again every run.
"""
