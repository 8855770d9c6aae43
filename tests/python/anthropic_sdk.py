"""The official Anthropic Python SDK against Switchboard's /v1/messages, with a supplier token.

Usage: anthropic_sdk.py basic|tools|validate FILE...
Exits non-zero on any mismatch. Run by tests/it/anthropic.
"""
import json
import os
import sys

import anthropic
from anthropic.types import Message

mode = sys.argv[1]

if mode == "validate":
    # Hand-written answers checked with the SDK's own types.
    for path in sys.argv[2:]:
        with open(path) as f:
            m = Message.model_validate(json.load(f))
        assert m.type == "message" and m.role == "assistant", m
    print("validate ok")
    sys.exit(0)

base = os.environ["GATEWAY_URL"]
token = os.environ["GATEWAY_TOKEN"]
model = os.environ.get("GATEWAY_MODEL", "claude-haiku-4-5")
client = anthropic.Anthropic(base_url=base, api_key=token, max_retries=0)

if mode == "basic":
    m = client.messages.create(
        model=model,
        max_tokens=60,
        system="You write wedding emails.",
        messages=[{"role": "user", "content": "Thank the guests."}],
    )
    assert isinstance(m, Message), m
    assert m.content and m.content[0].type == "text" and m.content[0].text, m
    assert m.stop_reason in ("end_turn", "max_tokens"), m.stop_reason
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage
    print("plain ok")

    texts = []
    with client.messages.stream(
        model=model, max_tokens=60, messages=[{"role": "user", "content": "Name a wedding flower."}]
    ) as stream:
        for text in stream.text_stream:
            texts.append(text)
        final = stream.get_final_message()
    assert "".join(texts), texts
    assert final.content[0].text == "".join(texts), (final, texts)
    assert final.stop_reason in ("end_turn", "max_tokens"), final.stop_reason
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0, final.usage
    print("stream ok")

    short = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "Hi"}])
    long = client.messages.count_tokens(
        model=model,
        system="You plan weddings.",
        messages=[{"role": "user", "content": "Plan a three-day wedding in Tuscany for 120 guests, with a rehearsal dinner."}],
    )
    assert 0 < short.input_tokens < long.input_tokens, (short, long)
    print("count_tokens ok")

    bad = anthropic.Anthropic(base_url=base, api_key="sbk_wrong", max_retries=0)
    try:
        bad.messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        sys.exit("an unknown token was accepted")
    except anthropic.AuthenticationError as err:
        assert err.status_code == 401
        assert err.body["type"] == "error" and err.body["error"]["type"] == "authentication_error", err.body
    try:
        client.messages.create(model="claude-9", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        sys.exit("an unknown model was accepted")
    except anthropic.NotFoundError as err:
        assert err.body["error"]["type"] == "not_found_error", err.body
    try:
        client.messages.create(model=model, max_tokens=10, messages=[])
        sys.exit("an empty conversation was accepted")
    except anthropic.BadRequestError as err:
        assert err.body["error"]["type"] == "invalid_request_error", err.body
    print("errors ok")

elif mode == "tools":
    tools = [
        {
            "name": "extract_booking",
            "description": "Extracts the booking details from an email.",
            "input_schema": {
                "type": "object",
                "properties": {"couple": {"type": "string"}, "guests": {"type": "integer"}},
                "required": ["couple", "guests"],
            },
        }
    ]
    ask = [{"role": "user", "content": "Ana and Ben booked us for June 12 with 80 guests. Extract the booking."}]
    m = client.messages.create(model=model, max_tokens=200, tools=tools, messages=ask)
    assert m.stop_reason == "tool_use", m
    call = next(b for b in m.content if b.type == "tool_use")
    assert call.name == "extract_booking" and call.input == {"couple": "sample couple", "guests": 1}, call
    print("tool call ok")

    with client.messages.stream(
        model=model, max_tokens=200, tools=tools, tool_choice={"type": "tool", "name": "extract_booking"}, messages=ask
    ) as stream:
        deltas = [e for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    streamed = next(b for b in final.content if b.type == "tool_use")
    assert len(deltas) >= 2, deltas
    assert streamed.input == {"couple": "sample couple", "guests": 1}, streamed
    assert final.stop_reason == "tool_use", final
    print("tool stream ok")

    result = "Ana & Ben, June 12, 80 guests"
    turn2 = ask + [
        {"role": "assistant", "content": m.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": result}]},
    ]
    answer = client.messages.create(model=model, max_tokens=200, tools=tools, messages=turn2)
    assert answer.stop_reason == "end_turn", answer
    assert result in answer.content[0].text, answer
    print("tool result ok")
else:
    sys.exit(f"unknown mode {mode}")
