"""Text that reads like what LLM applications send and receive, and the PII planted in it.

Paragraphs are assembled from sentence parts with the caller's random generator, so the
same seed gives the same text; lengths follow what chat and RAG applications send (a
system prompt, a question, a few retrieved passages, an answer).
"""

from __future__ import annotations

import random

SUBJECTS = (
    "The billing service", "Our refund policy", "The mobile app", "The onboarding checklist", "The API gateway",
    "Your subscription", "The nightly export job", "The search index", "The enterprise plan", "The support queue",
    "The password reset flow", "The invoice template", "The data retention setting", "The webhook integration",
    "The shipping estimate", "The analytics dashboard", "The single sign-on setup", "The usage quota",
)
VERBS = (
    "applies to", "was updated for", "does not cover", "is limited to", "can be configured for", "sends a reminder to",
    "is processed within five business days for", "requires administrator approval for", "is available to",
    "was rolled back for", "now supports", "retries three times before failing for",
)
OBJECTS = (
    "annual customers in the European region", "accounts created before March", "orders shipped with express delivery",
    "teams with more than fifty seats", "users on the free tier", "invoices issued in a foreign currency",
    "workspaces migrated from the legacy platform", "requests that exceed the rate limit", "documents larger than 20 MB",
    "customers who paid by bank transfer", "trial accounts that expired last week", "partners in the reseller program",
)
TAILS = (
    "See the help centre article for the exact steps.", "This changed in the last release.",
    "Contact the account team if the dashboard shows a different value.", "The audit log records every change.",
    "Exceptions need a ticket with the order number.", "The limit resets at midnight UTC.",
    "Customers are notified by email when it happens.", "It can take up to an hour to propagate.",
)
QUESTIONS = (
    "Why was I charged twice for my subscription this month, and how do I get the duplicate refunded?",
    "How do I move my team's workspace to the enterprise plan without losing our saved searches?",
    "The export job failed again last night. What does error code E4012 mean and how do I fix it?",
    "Can you summarise the changes to the data retention policy for accounts in Germany?",
    "My webhook stopped receiving events after we rotated the signing secret. What should I check?",
    "Write a short, friendly reply to a customer whose order arrived damaged, offering a replacement.",
    "Which of our plans include single sign-on, and what does the setup require from the customer?",
    "Compare the shipping estimates for express and standard delivery to Canada and explain the difference.",
)
SYSTEM_PROMPTS = (
    "You are a helpful support assistant for an online software company. Answer only from the provided context. "
    "If the context does not contain the answer, say so and offer to open a ticket. Keep answers under 150 words, "
    "use plain language, and never reveal internal notes or other customers' data.",
    "You are an internal knowledge assistant. Cite the document ids you used in square brackets. Prefer the most "
    "recent document when two disagree, and flag the disagreement. Do not speculate about unreleased features.",
    "You are an agent that can call tools to look up orders, invoices and account settings. Think about which tool "
    "answers the question, call it with exact arguments, and then answer the user in two or three sentences.",
)
TOOLS = (
    ("lookup_order", '{{"order_id": "ORD-{n:06d}"}}', '{{"status": "shipped", "carrier": "DHL", "eta_days": {d}}}'),
    ("get_invoice", '{{"invoice_id": "INV-{n:06d}"}}', '{{"amount": {d}9.00, "currency": "EUR", "paid": true}}'),
    ("search_kb", '{{"query": "refund duplicate charge", "top_k": {d}}}', '{{"hits": {d}, "best": "kb-{n:05d}"}}'),
    ("get_account_settings", '{{"account_id": "acct_{n:08d}"}}', '{{"plan": "enterprise", "seats": {d}0}}'),
)

# PII of the kinds redaction looks for; card numbers pass the Luhn check, as real ones do.
PII_SAMPLES = (
    ("email", "Please reply to jane.doe{n}@example.com with the details."),
    ("phone", "You can call me back on +1 415 555 {n:04d} after 5pm."),
    ("credit_card", "I paid with my card 4111 1111 1111 1111, expiry 09/28."),
    ("credit_card", "The charge was on card number 5555555555554444."),
    ("ssn", "My social security number is 123-45-{n:04d} if you need to verify me."),
    ("ip_address", "I was logged in from 203.0.113.{m} when it happened."),
    ("iban", "Refund it to DE89 3704 0044 0532 0130 00 please."),
)


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}. {rng.choice(TAILS)}"


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def pii(rng: random.Random) -> tuple[str, str]:
    """One (kind, sentence) with a planted personal detail."""
    kind, template = rng.choice(PII_SAMPLES)
    return kind, template.format(n=rng.randrange(10_000), m=rng.randrange(1, 255))
