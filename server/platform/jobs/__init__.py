"""Mini-app jobs: declared schedules and one-shot delayed jobs, claimed under a lease and run in the app's
sandbox pool (service.py: `JobRunner`, and `AppJobs` for the `jobs` capability), and their SQL (repository.py).
No routes of its own."""
