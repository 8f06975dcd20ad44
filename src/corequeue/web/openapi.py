"""The OpenAPI 3.1 description of the dashboard's JSON API, served at /api/openapi.json.

Written by hand beside the handlers in api.py; a test checks that every API route is here.
"""

from __future__ import annotations

from typing import Any

from corequeue.drivers.base import MAX_LIST_LIMIT, Channel

_CHANNELS = [channel.value for channel in Channel]
_ERRORS = {
    "400": "The request asked for something impossible (a bad page, a channel that cannot be "
    "reloaded).",
    "403": "Missing or invalid CSRF token, or a cross-origin request.",
    "404": "No such queue, channel or job (or the job is not in a channel the action needs).",
    "501": "The queue's driver cannot list or inspect jobs.",
    "503": "The queue's store is unavailable.",
}


def openapi_document(server: str = "") -> dict[str, Any]:
    """Return the OpenAPI document; `server` is the dashboard's mount point."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "corequeue dashboard API",
            "version": _version(),
            "description": (
                "Read queues and act on them. GET /info has the shape of `corequeue queue info "
                "--json`; reload and flush answer as `corequeue queue reload|flush --json`. "
                "POST requests need the CSRF token of GET /csrf in the X-CSRF-Token header "
                "(with its cookie), unless they authenticate with a bearer token."
            ),
        },
        "servers": [{"url": f"{server}/api"}],
        "paths": _paths(),
        "components": {"schemas": _schemas(), "securitySchemes": _security_schemes()},
        "security": [{}, {"bearer": []}, {"basic": []}],
    }


def _paths() -> dict[str, Any]:
    queue, channel, job_id = _parameter("queue"), _channel_parameter(), _parameter("job_id")
    return {
        "/info": {
            "get": _operation(
                "Channel counts of every queue, as `corequeue queue info --json` prints them.",
                "Info",
                parameters=[
                    {
                        "name": "queue",
                        "in": "query",
                        "required": False,
                        "description": "Only this queue; repeatable.",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    }
                ],
            )
        },
        "/workers": {
            "get": _operation(
                "The live workers of every queue (those that beat within three renewal periods).",
                "Workers",
            )
        },
        "/queues/{queue}/activity": {
            "get": _operation(
                "Attempts every worker finished (store counters) and backlog, per interval.",
                "Activity",
                parameters=[queue],
            )
        },
        "/queues/{queue}/periodic": {
            "get": _operation(
                "The queue's periodic schedules, and the names only its store knows.",
                "Schedules",
                parameters=[queue],
            )
        },
        "/queues/{queue}/channels/{channel}/jobs": {
            "get": _operation(
                "A page of the jobs of one channel, in channel order.",
                "JobPage",
                parameters=[queue, channel, *_page_parameters()],
            )
        },
        "/queues/{queue}/channels/{channel}/reload": {
            "post": _operation(
                "Move every job of failed or timeout back to waiting; answers the count moved.",
                "Counts",
                parameters=[queue, channel],
            )
        },
        "/queues/{queue}/channels/{channel}/flush": {
            "post": _operation(
                "Delete every job of a channel; answers the count there was.",
                "Counts",
                parameters=[queue, channel],
            )
        },
        "/queues/{queue}/jobs/{job_id}": {
            "get": _operation("One job.", "Job", parameters=[queue, job_id])
        },
        "/queues/{queue}/jobs/{job_id}/retry": {
            "post": _operation(
                "Move one failed or timeout job back to waiting.", "Done", [queue, job_id]
            )
        },
        "/queues/{queue}/jobs/{job_id}/delete": {
            "post": _operation(
                "Delete one waiting, delayed, failed or timeout job.", "Done", [queue, job_id]
            )
        },
        "/queues/{queue}/jobs/{job_id}/cancel": {
            "post": _operation("Cancel one waiting or delayed job.", "Done", [queue, job_id])
        },
        "/csrf": {"get": _operation("A CSRF token for POST requests, with its cookie.", "Csrf")},
        "/openapi.json": {"get": _operation("This document.", None)},
    }


def _schemas() -> dict[str, Any]:
    counts = {
        "type": "object",
        "properties": {name: {"type": "integer", "minimum": 0} for name in _CHANNELS},
        "required": _CHANNELS,
    }
    return {
        "Error": _object({"error": {"type": "string"}}),
        "ChannelCounts": counts,
        "Info": {
            "type": "object",
            "description": "Queue name -> channel -> number of jobs.",
            "additionalProperties": {"$ref": "#/components/schemas/ChannelCounts"},
        },
        "Counts": {
            "type": "object",
            "description": "Queue name -> channel -> jobs moved or deleted.",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
        },
        "Job": _job_schema(),
        "Workers": _object(
            {
                "workers": {
                    "type": "array",
                    "items": _object(
                        {
                            "queue": {"type": "string"},
                            "id": {"type": "string"},
                            "hostname": {"type": "string"},
                            "pid": {"type": "integer"},
                            "started_at": {"type": "string", "format": "date-time"},
                            "last_seen": {"type": "string", "format": "date-time"},
                            "running": {"type": "integer", "minimum": 0},
                        }
                    ),
                }
            }
        ),
        "JobPage": _object(
            {
                "queue": {"type": "string"},
                "channel": {"enum": _CHANNELS},
                "count": {"type": "integer", "description": "Jobs in the channel."},
                "offset": {"type": "integer"},
                "limit": {"type": "integer"},
                "type": {"type": ["string", "null"]},
                "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            }
        ),
        "Activity": _object(
            {
                "queue": {"type": "string"},
                "bucket_seconds": {"type": "integer"},
                "buckets": {"type": "array", "items": _bucket_schema()},
            }
        ),
        "Done": _object(
            {
                "queue": {"type": "string"},
                "id": {"type": "string"},
                "action": {"enum": ["retry", "delete", "cancel"]},
                "done": {"const": True},
            }
        ),
        "Csrf": _object({"csrf_token": {"type": "string"}}),
        "Schedule": _schedule_schema(),
        "Schedules": _object(
            {
                "queue": {"type": "string"},
                "schedules": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}},
            }
        ),
    }


def _job_schema() -> dict[str, Any]:
    return _object(
        {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "queue": {"type": "string"},
            "channel": {"enum": _CHANNELS},
            "attempts": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "due_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When a delayed job falls due, or a reserved job's lease ends.",
            },
            "handle_timeout_seconds": {"type": "number"},
            "backoff_seconds": {"type": "number"},
            "last_error": {"type": ["string", "null"]},
            "payload_encoding": {"enum": ["json", "text", "base64", "hidden"]},
            "payload": {
                "description": "The payload: its JSON value, its text, its bytes in base64, "
                "or null when payloads are hidden.",
            },
            "payload_note": {
                "type": ["string", "null"],
                "description": "Why the payload is shown as it is, when it is not shown whole "
                "as it was stored: JSON nested too deeply for any reader is text, cut short.",
            },
            "progress": {
                "type": ["object", "null"],
                "description": "How far a running job got, as its last renewal stored it.",
                "properties": {
                    "fraction": {"type": "number", "minimum": 0, "maximum": 1},
                    "message": {"type": "string"},
                },
            },
            "result": {
                "description": "A completed job's kept result (like the payload: JSON value, "
                "text or base64), or null.",
            },
        }
    )


def _schedule_schema() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return _object(
        {
            "name": {"type": "string"},
            "declared": {
                "type": "boolean",
                "description": "Whether the dashboard's queue declares it; false for a name only "
                "the store knows (declared by workers elsewhere, or by none any more).",
            },
            "schedule": {"type": ["string", "null"], "description": "The cron expression."},
            "interval_seconds": {
                "type": ["number", "null"],
                "description": "The interval of a schedule declared as a timedelta.",
            },
            "tz": {"type": ["string", "null"]},
            "misfire": {"enum": ["skip", "once", None]},
            "next_run": {**nullable_time, "description": "The next slot, in the schedule's zone."},
            "last_run": {**nullable_time, "description": "The last slot enqueued, in UTC."},
            "last_job_id": {
                "type": ["string", "null"],
                "description": "The last slot's job id, periodic:<name>:<slot in epoch ms>.",
            },
            "last_job_found": {
                "type": "boolean",
                "description": "Whether that job is still in the store (GET /queues/{queue}/jobs/"
                "{job_id} answers it).",
            },
        }
    )


def _bucket_schema() -> dict[str, Any]:
    return _object(
        {
            "start": {"type": "string", "format": "date-time"},
            "processed": {"type": "integer"},
            "retried": {"type": "integer"},
            "failed": {"type": "integer"},
            "backlog": {"type": ["integer", "null"]},
        }
    )


def _security_schemes() -> dict[str, Any]:
    return {
        "bearer": {"type": "http", "scheme": "bearer", "description": "The dashboard token."},
        "basic": {"type": "http", "scheme": "basic", "description": "The dashboard password."},
    }


def _operation(summary: str, schema: str | None, parameters: list[Any] | None = None) -> Any:
    ok: dict[str, Any] = {"description": "OK"}
    if schema is not None:
        ref = {"$ref": f"#/components/schemas/{schema}"}
        ok["content"] = {"application/json": {"schema": ref}}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses = {
        "200": ok,
        **{code: {"description": text, **error} for code, text in _ERRORS.items()},
    }
    return {"summary": summary, "parameters": parameters or [], "responses": responses}


def _parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _channel_parameter() -> dict[str, Any]:
    return {"name": "channel", "in": "path", "required": True, "schema": {"enum": _CHANNELS}}


def _page_parameters() -> list[dict[str, Any]]:
    return [
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": 50},
        },
        {"name": "type", "in": "query", "schema": {"type": "string"}, "description": "Job type."},
    ]


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("corequeue")
    except PackageNotFoundError:
        return "unknown"
