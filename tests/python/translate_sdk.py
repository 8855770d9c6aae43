"""The official OpenAI Python SDK with tools and response_format through
Switchboard's gateway to a supplier whose route is Anthropic (the simulator).

Exits non-zero on any mismatch. Run by tests/it/translate.
"""
import json
import os

import openai
from pydantic import BaseModel

base = os.environ["GATEWAY_BASE_URL"]
token = os.environ["GATEWAY_TOKEN"]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)
MODEL = "claude-haiku-4-5"

tools = [
    {
        "type": "function",
        "function": {
            "name": "extract_booking",
            "description": "Extract the booking details from an email",
            "parameters": {
                "type": "object",
                "properties": {"couple": {"type": "string"}, "guests": {"type": "integer"}, "civil": {"type": "boolean"}},
                "required": ["couple", "guests", "civil"],
            },
        },
    }
]
email = {"role": "user", "content": "Hi! We are Sam and Alex, 120 guests, civil ceremony on 14 June 2027."}

r = client.chat.completions.create(model=MODEL, messages=[email], tools=tools, tool_choice="required")
choice = r.choices[0]
assert choice.finish_reason == "tool_calls", r
call = choice.message.tool_calls[0]
assert call.type == "function" and call.function.name == "extract_booking", call
assert json.loads(call.function.arguments) == {"couple": "sample couple", "guests": 1, "civil": True}, call
assert r.model == MODEL and r.usage.completion_tokens > 0, r
print("tools ok")

stream = client.chat.completions.create(model=MODEL, messages=[email], tools=tools, stream=True, stream_options={"include_usage": True})
args, name, call_id, finish, pieces = "", None, None, None, 0
for chunk in stream:
    if not chunk.choices:
        assert chunk.usage.total_tokens > 0
        continue
    delta = chunk.choices[0].delta
    for tc in delta.tool_calls or []:
        call_id = tc.id or call_id
        if tc.function and tc.function.name:
            name = tc.function.name
        if tc.function and tc.function.arguments:
            args += tc.function.arguments
            pieces += 1
    finish = chunk.choices[0].finish_reason or finish
assert finish == "tool_calls" and name == "extract_booking" and pieces >= 2, (finish, name, pieces)
assert json.loads(args)["guests"] == 1 and call_id.startswith("toolu_"), (args, call_id)
print("tool stream ok")

follow = client.chat.completions.create(
    model=MODEL,
    messages=[email, choice.message, {"role": "tool", "tool_call_id": call.id, "content": "saved as booking 42"}],
    tools=tools,
)
assert follow.choices[0].finish_reason == "stop", follow
assert follow.choices[0].message.content.endswith("the tool said: saved as booking 42"), follow
print("tool result ok")

schema = {
    "type": "object",
    "properties": {"couple": {"type": "string"}, "date": {"type": "string"}},
    "required": ["couple", "date"],
    "additionalProperties": False,
}
r = client.chat.completions.create(
    model=MODEL,
    messages=[email],
    response_format={"type": "json_schema", "json_schema": {"name": "booking", "schema": schema, "strict": True}},
)
assert r.choices[0].finish_reason == "stop", r
assert json.loads(r.choices[0].message.content) == {"couple": "sample couple", "date": "sample date"}, r
print("response_format ok")


class Booking(BaseModel):
    couple: str
    guests: int
    civil: bool


parsed = client.chat.completions.parse(model=MODEL, messages=[email], response_format=Booking)
b = parsed.choices[0].message.parsed
assert b == Booking(couple="sample couple", guests=1, civil=True), parsed
print("parse ok")
