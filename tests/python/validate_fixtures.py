"""Validates the Anthropic translation fixtures (tests/fixtures) with the
Anthropic SDK's own types. Exits non-zero on any mismatch. Run by tests/it/translate.
"""
import json
import pathlib
import sys

import anthropic
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

root = pathlib.Path(sys.argv[1])
events = TypeAdapter(RawMessageStreamEvent)


def stream(path):
    out = []
    for line in (root / path).read_text().splitlines():
        if line.startswith("data: "):
            data = json.loads(line[6:])
            if data.get("type") == "ping":
                continue  # the SDK's own stream skips pings; they are not in its event union
            out.append(events.validate_python(data))
    return out


m = Message.model_validate(json.loads((root / "handwritten/thinking_tool_use_message.json").read_text()))
assert [b.type for b in m.content] == ["thinking", "redacted_thinking", "text", "tool_use"], m.content
assert m.stop_reason == "tool_use" and m.usage.output_tokens == 187
print("message ok")

for path, kinds in [
    ("handwritten/thinking_tool_use_stream.txt", {"thinking_delta", "signature_delta", "input_json_delta"}),
    ("anthropic/tool_use_response.txt", {"text_delta", "input_json_delta"}),
]:
    evs = stream(path)
    seen = {e.delta.type for e in evs if e.type == "content_block_delta"}
    assert kinds <= seen, (path, seen)
    assert evs[0].type == "message_start" and evs[-1].type == "message_stop", path
    print(f"{path} ok")
print("anthropic", anthropic.__version__)
