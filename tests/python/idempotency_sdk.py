"""The official OpenAI SDK against the gateway with an Idempotency-Key: the
second identical request is a replay (same completion, `idempotent-replayed`
header), the same key with another body is the SDK's UnprocessableEntityError."""
import os

import openai

client = openai.OpenAI(base_url=os.environ["GATEWAY_BASE_URL"], api_key=os.environ["GATEWAY_TOKEN"], max_retries=0)
messages = [{"role": "user", "content": "Write a short toast for the couple."}]
headers = {"Idempotency-Key": "sdk-toast-1"}

first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, max_tokens=30, extra_headers=headers)
second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, max_tokens=30, extra_headers=headers)
a, b = first.parse(), second.parse()
assert first.headers.get("idempotent-replayed") is None, first.headers
assert second.headers.get("idempotent-replayed") == "true", second.headers
assert a.id == b.id and a.choices[0].message.content == b.choices[0].message.content, (a, b)
print("replay ok")

try:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Something else"}], max_tokens=30, extra_headers=headers
    )
    raise SystemExit("the same key with another body was accepted")
except openai.UnprocessableEntityError as e:
    assert e.code == "idempotency_key_reused", e
print("mismatch ok")
