"""Checks that the official OpenAI Python SDK reads the simulator's OpenAI and
Azure OpenAI endpoints, plain and streamed. Exits non-zero on any mismatch.

Run by tests/providers.rs with SIM_BASE_URL, SIM_OPENAI_KEY, SIM_AZURE_KEY and
SIM_AZURE_DEPLOYMENT set."""

import os
import sys

import openai

BASE = os.environ["SIM_BASE_URL"]
PROMPT = "Plan a spring wedding in Kent"
failures = []


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")


def run(client, model, label, expect_model):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}])
    content = r.choices[0].message.content
    check(f"{label} plain content", content == f"Simulated {expect_model} reply: {PROMPT}", repr(content))
    check(f"{label} plain finish", r.choices[0].finish_reason == "stop", r.choices[0].finish_reason)
    check(f"{label} plain usage", r.usage is not None and r.usage.prompt_tokens == 15, repr(r.usage))
    check(f"{label} plain cached details", r.usage.prompt_tokens_details.cached_tokens == 0, repr(r.usage))

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            if ch.delta and ch.delta.content:
                text += ch.delta.content
            if ch.finish_reason:
                finish = ch.finish_reason
    check(f"{label} stream content", text == content, repr(text))
    check(f"{label} stream finish", finish == "stop", repr(finish))
    check(f"{label} stream usage", usage is not None and usage.completion_tokens == r.usage.completion_tokens, repr(usage))

    try:
        bad = client.with_options(max_retries=0)
        bad.api_key = "sk-wrong-key-000000000000000000000000"
        bad.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        check(f"{label} wrong key", False, "no error raised")
    except openai.AuthenticationError as e:
        check(f"{label} wrong key status", e.status_code == 401, repr(e))


oa = openai.OpenAI(base_url=BASE + "/v1", api_key=os.environ["SIM_OPENAI_KEY"])
run(oa, "gpt-4o", "openai", "gpt-4o")
models = [m.id for m in oa.models.list()]
check("openai models", "gpt-4o" in models, repr(models))
emb = oa.embeddings.create(model="text-embedding-3-small", input="first dance")
check("openai embeddings", len(emb.data[0].embedding) == 1536 and emb.usage.prompt_tokens == 3, repr(emb.usage))

az = openai.AzureOpenAI(azure_endpoint=BASE, api_key=os.environ["SIM_AZURE_KEY"], api_version="2024-10-21")
run(az, os.environ["SIM_AZURE_DEPLOYMENT"], "azure", "gpt-4o-2024-08-06")

if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print("ok: OpenAI and Azure OpenAI, plain and streamed")
