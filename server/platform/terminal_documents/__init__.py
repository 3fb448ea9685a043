"""Versioned documents an app publishes for the terminals of its scenes (service.py:
`TerminalDocuments`) and their SQL (repository.py); terminals fetch them at `GET /v1/terminal/documents`
(the terminals' route)."""
