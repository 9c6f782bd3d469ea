"""`--format json:PATH`: every event as one JSON object per line, flushed as it happens."""
from __future__ import annotations

import dataclasses
import json
import os
import time

from medusa.messages import event_name
from medusa.reporters import Reporter


class JsonReporter(Reporter):
    def __init__(self, path: str) -> None:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._file = open(path, "w", encoding="utf-8", errors="backslashreplace")

    def handle(self, event: object) -> None:
        record = {**to_json(event), "time": time.time()}   # when the master got it
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def to_json(event: object) -> dict[str, object]:
    fields = dataclasses.asdict(event)  # type: ignore[call-overload]
    fields.pop("framework_events", None)   # the wire's, for pytest's session in the master
    record: dict[str, object] = {"event": event_name(event), **fields}
    # A runner is named "<worker>/<index>" so that the name is unique in the build.
    if fields.get("runner") is not None and "worker" in fields:
        record["runner"] = f"{fields['worker']}/{fields['runner']}"
        record["runner_index"] = fields["runner"]
    if "counts" in fields:
        record["counts"] = dict(fields["counts"])
    if "sections" in fields:
        record["sections"] = [{"title": t, "text": x} for t, x in fields["sections"]]
    for pairs in ("properties", "xml_attributes", "suite_properties"):
        if pairs in fields:
            record[pairs] = [{"name": n, "value": v} for n, v in fields[pairs]]
    return record
