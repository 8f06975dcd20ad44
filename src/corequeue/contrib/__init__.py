"""Integrations with other libraries: each module needs its own optional extra.

`corequeue.contrib.opentelemetry` (`corequeue[otel]`), `corequeue.contrib.sentry`
(`corequeue[sentry]`), `corequeue.contrib.fastapi` (`corequeue[fastapi]`) and
`corequeue.contrib.django` (`corequeue[django]`). `import corequeue` imports none of them.
"""
