"""The dashboard: a Starlette app serving a JSON API and one small page over the store (`taskq dashboard`)."""
