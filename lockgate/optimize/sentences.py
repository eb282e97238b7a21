"""Varied English sentences generated from templates: distillation and calibration data with no download.

The same seed gives the same sentences on any machine; different seeds give different sentences,
so a student can be trained on one seed and judged on another.
"""

from __future__ import annotations

import random

__all__ = ["generate_sentences"]

_SUBJECTS = (
    "the new model",
    "our support team",
    "a small startup",
    "the city council",
    "my neighbour",
    "the research group",
    "an old friend",
    "the delivery driver",
    "the football club",
    "a local bakery",
    "the central bank",
    "the hospital",
    "this laptop",
    "the weather service",
    "a young engineer",
    "the orchestra",
    "the airline",
    "our customers",
    "the school board",
    "a famous chef",
)
_VERBS = (
    "announced",
    "rejected",
    "improved",
    "criticised",
    "celebrated",
    "postponed",
    "explained",
    "reviewed",
    "shipped",
    "cancelled",
    "praised",
    "questioned",
    "repaired",
    "measured",
    "ordered",
)
_OBJECTS = (
    "the quarterly results",
    "a faster checkout",
    "the train schedule",
    "a gluten-free recipe",
    "the security update",
    "a new stadium",
    "the interest rates",
    "the vaccine trial",
    "its battery life",
    "the storm warning",
    "a summer concert",
    "the refund policy",
    "the exam timetable",
    "a tasting menu",
    "the flight delays",
    "the login page",
    "the river clean-up",
    "a cheaper subscription",
)
_REASONS = (
    "after weeks of complaints",
    "because prices kept rising",
    "to everyone's surprise",
    "despite the heavy rain",
    "before the holiday weekend",
    "without any warning",
    "following a long investigation",
    "as demand doubled",
    "for the third time this year",
    "while the servers were down",
    "once the budget was approved",
)
_QUESTIONS = (
    "how do I reset my password",
    "where can I buy tickets for tonight",
    "why is my order late",
    "what time does the museum open",
    "is the pool open on sundays",
    "can I change my seat",
    "which laptop has the best battery",
    "does this recipe work without eggs",
)
_OPINIONS = (
    "I loved the film but the ending felt rushed",
    "the food was cold and the staff were rude",
    "honestly the update made everything slower",
    "great value, I would order again",
    "the hotel was quiet, clean and close to the beach",
    "terrible support, nobody answered for days",
    "the app crashes every time I open the camera",
    "a wonderful book about friendship and loss",
)
_TOPICS = (
    "machine learning",
    "climate policy",
    "public transport",
    "home cooking",
    "stock markets",
    "mental health",
    "space exploration",
    "video games",
    "renewable energy",
    "ancient history",
)


def _sentence(rng: random.Random) -> str:
    form = rng.randrange(6)
    if form == 0:
        return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}."
    if form == 1:
        return (
            f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_REASONS)}, and {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} "
            f"{rng.choice(_OBJECTS)}."
        )
    if form == 2:
        return rng.choice(_QUESTIONS) + "?"
    if form == 3:
        return rng.choice(_OPINIONS) + rng.choice((".", "!", ""))
    if form == 4:
        return (
            f"A short article about {rng.choice(_TOPICS)}: {rng.choice(_SUBJECTS)} "
            f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_REASONS)}."
        )
    parts = [f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}" for _ in range(3)]
    return f"Notes on {rng.choice(_TOPICS)}: " + "; ".join(parts) + f" {rng.choice(_REASONS)}."


def generate_sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` sentences of several forms and lengths (questions, reviews, news, notes)."""
    rng = random.Random(seed)  # noqa: S311 - text for training, not secrets
    return [_sentence(rng) for _ in range(count)]
