"""The official OpenAI Python SDK against Switchboard's gateway, with a supplier token.

Exits non-zero on any mismatch. Run by tests/gateway.rs.
"""
import os
import sys

import openai

base = os.environ["GATEWAY_BASE_URL"]
token = os.environ["GATEWAY_TOKEN"]
client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)

r = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "system", "content": "You write wedding emails."}, {"role": "user", "content": "Thank the guests."}],
    max_tokens=40,
)
assert r.object == "chat.completion", r
assert r.choices[0].message.content, r
assert r.usage.total_tokens > 0, r.usage
print("plain ok")

chunks = list(
    client.chat.completions.create(
        model="claude-haiku-4-5",
        messages=[{"role": "user", "content": "Name a wedding flower."}],
        stream=True,
        stream_options={"include_usage": True},
    )
)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text, chunks
usage = [c.usage for c in chunks if c.usage]
assert usage and usage[-1].total_tokens > 0, chunks[-1]
print("stream ok")

e = client.embeddings.create(model="text-embedding-3-small", input="seating chart")
assert len(e.data[0].embedding) > 10
print("embeddings ok")

bad = openai.OpenAI(base_url=base, api_key="sbk_wrong", max_retries=0)
try:
    bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    sys.exit("an unknown token was accepted")
except openai.AuthenticationError as err:
    assert err.status_code == 401
try:
    client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    sys.exit("an unknown model was accepted")
except openai.NotFoundError as err:
    assert err.status_code == 404
print("errors ok")
