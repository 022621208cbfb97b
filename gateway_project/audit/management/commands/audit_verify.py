"""manage.py audit_verify: walk the audit log's hash chain; exit status 1 when anything is wrong."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from gateway_project.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = ("Verify the audit log's hash chain from the retention checkpoint to the head, and report every "
            "edited, deleted or reordered record. Exit status 1 when there is any.")

    def handle(self, *args, **options) -> None:
        report = audit_chain_verify()
        for problem in report.problems:
            record = f" (record {problem.record_id})" if problem.record_id else ""
            self.stderr.write(f"position {problem.seq}: {problem.kind}{record}: {problem.message}")
        summary = (f"{report.checked} records checked, from the checkpoint at position {report.start_seq} to the "
                   f"head at position {report.head_seq}; head hash {report.head_hash}")
        if not report.ok:
            raise CommandError(f"audit chain: {len(report.problems)} problem(s). {summary}")
        self.stdout.write(self.style.SUCCESS(f"audit chain OK: {summary}"))
