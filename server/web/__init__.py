"""The web surfaces the core serves itself: the resident shell (`/app/`), the operator console (`/console/`),
the terminal page (`/terminal/`) and the assets they share (`/static/`). No CDN, no third-party request.

Only plugin.py: static files and their routers. No service, repository, schemas or errors: the pages call the
other domains' routes like any client."""
