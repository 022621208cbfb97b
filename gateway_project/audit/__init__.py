"""Who changed what: django-auditlog's entries for keys, teams, users and customers, hash-chained."""
