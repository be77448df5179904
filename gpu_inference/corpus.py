"""A pretraining corpus generated in code for the demo model.

Three kinds of documents: short stories, encyclopedia-like paragraphs and chat
dialogues. Dialogues are returned as message lists (the caller renders them with the
model's chat template), so the model learns the exact format it is served with.
Answers are built from the question's own words and from the consistent fact tables
in `vocabulary`, which teaches the model to copy and to follow instructions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from gpu_inference import vocabulary as v

Message = dict[str, str]
Document = str | list[Message]

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a friendly assistant who answers briefly.",
    "You are a patient teacher.",
    "You are a support agent for an online shop.",
    "Answer in one short sentence.",
    "You are a kind and clever assistant.",
)


def _name(rng: random.Random) -> tuple[str, str, str]:
    """A name with matching subject and possessive pronouns."""
    if rng.random() < 0.5:
        return rng.choice(v.FEMALE_NAMES), "she", "her"
    return rng.choice(v.MALE_NAMES), "he", "his"


def story(rng: random.Random) -> str:
    name, pron, poss = _name(rng)
    friend, _, _ = _name(rng)
    country, city = rng.choice(v.CAPITALS)
    animal, habitat, food = rng.choice(v.ANIMALS)
    profession, duty = rng.choice(v.PROFESSIONS)
    obj, obj2 = rng.sample(v.OBJECTS, 2)
    adj, adj2, adj3 = rng.sample(v.ADJECTIVES, 3)
    verb, verb2 = rng.sample(v.VERBS_PAST, 2)
    landmark = rng.choice(v.LANDMARKS)
    emotion = rng.choice(v.EMOTIONS_GOOD + v.EMOTIONS_BAD)
    openings = (
        f"Once upon a time, in a {adj} {rng.choice(v.SETTLEMENTS)} near the {landmark}, "
        f"there lived {v.article(profession)} named {name}.",
        f"{name} was {v.article(adj)} {profession} who lived in {city}, the capital of {country}.",
        f"Long ago, {v.article(adj)} {animal} and {v.article(profession)} named {name} became friends.",
        f"It was a {rng.choice(tuple(w for w, _ in v.WEATHER_ADVICE))} {rng.choice(v.DAYS)} in "
        f"{rng.choice(v.MONTHS)} when {name} decided to visit the {landmark}.",
    )
    middles = [
        f"Every morning, {pron} {verb} to the {landmark} and {verb2} {v.article(adj2)} {obj}.",
        f"One day, {name} found {v.article(adj3)} {obj} under the {obj2}.",
        f"{pron.capitalize()} felt {emotion} because the {animal} had eaten all the {food}.",
        f"{name} asked {friend} for help, and together they {verb} the {obj}.",
        f"They walked along the {landmark} until the sun went down over {city}.",
        f"As {v.article(profession)}, {name} {duty}, and {pron} loved {poss} work.",
        f"{friend} laughed and said that the {obj} was {adj2}.",
        f"In the {rng.choice(v.SEASONS)}, {name} {verb2} a basket of {v.plural(rng.choice(v.FRUITS))}.",
        f"The {animal} lived in the {habitat} and ate {food} every day.",
        f"{name} played the {rng.choice(v.INSTRUMENTS)} while {friend} {verb}.",
        f'"Where is my {obj}?" {name} asked. "It is next to the {obj2}," said {friend}.',
        f"{pron.capitalize()} counted {rng.choice(v.NUMBER_WORDS[2:])} {v.plural(obj2)} on the table.",
    ]
    rng.shuffle(middles)
    endings = (
        f"In the end, {name} learned that {rng.choice(v.MORALS)}.",
        f"From that day on, {name} always carried the {obj} everywhere.",
        f"And so the {adj} {profession} lived happily in {city}.",
    )
    sentences = [rng.choice(openings), *middles[: rng.randint(3, 7)], rng.choice(endings)]
    return " ".join(sentences)


def encyclopedia(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        animal, habitat, food = rng.choice(v.ANIMALS)
        return (
            f"The {animal} lives in the {habitat} and eats {food}. A young {animal} is small, "
            f"but it grows quickly. Many people think the {animal} is {rng.choice(v.ADJECTIVES)}."
        )
    if kind == 1:
        country, city = rng.choice(v.CAPITALS)
        return (
            f"{country} is a country. Its capital is {city}. Many people visit {city} in the "
            f"{rng.choice(v.SEASONS)} to see the {rng.choice(v.LANDMARKS)} and to eat "
            f"{rng.choice(v.DISHES)}."
        )
    if kind == 2:
        profession, duty = rng.choice(v.PROFESSIONS)
        return (
            f"A {profession} {duty}. To become a {profession}, you need practice, "
            f"patience and a {rng.choice(v.ADJECTIVES)} mind."
        )
    if kind == 3:
        dish = rng.choice(v.DISHES)
        first, second, third = rng.sample(v.VEGETABLES + v.FRUITS, 3)
        return (
            f"To make {dish}, you need {first}, {second} and {third}. First, wash and cut "
            f"the {first}. Then cook everything for {rng.randint(5, 40)} minutes and serve it warm."
        )
    name, _, _ = _name(rng)
    clerk, _, _ = _name(rng)
    product = rng.choice(v.PRODUCTS)
    return (
        f"Dear {name}, thank you for your order of a {product}. Your {product} will arrive on "
        f"{rng.choice(v.DAYS)}. Your receipt is attached to this email. Best regards, {clerk}"
    )


def diary(rng: random.Random) -> str:
    """Plain sentences over everyday words, opening with a capital like real text does."""
    name, _, _ = _name(rng)

    def phrase() -> str:
        adjective = rng.choice(v.GENERAL_ADJECTIVES + v.ADJECTIVES)
        return f"{rng.choice(v.DETERMINERS)} {adjective} {rng.choice(v.NOUNS)}"

    def sentence() -> str:
        verb, noun, adverb = rng.choice(v.VERBS), rng.choice(v.NOUNS), rng.choice(v.ADVERBS)
        modal = rng.choice(
            ("will", "should", "can", "could", "might", "must", "want to", "need to")
        )
        return rng.choice(
            (
                f"{rng.choice(('I', 'We', 'They', 'You', name))} {modal} {verb} {phrase()} {adverb}.",
                f"{rng.choice(('I', 'We', 'They'))} {rng.choice(v.VERBS_PAST)} {phrase()} "
                f"{rng.choice(v.PREPOSITIONS)} {phrase()}.",
                f"Did you {verb} the {noun} {rng.choice(v.PREPOSITIONS)} {phrase()}?",
                f"I think that the {noun} is {rng.choice(v.GENERAL_ADJECTIVES)}, but {name} does not agree.",
                f"{adverb.capitalize()}, {name} said it was {rng.choice(v.GENERAL_ADJECTIVES)} to {verb} {phrase()}.",
                f"Please {verb} {phrase()} {rng.choice(('today', 'tomorrow', 'soon', 'now', 'later'))}.",
                f"{rng.choice(('Yes', 'No', 'Maybe', 'Sure', 'Okay', 'Thanks', 'Sorry'))}, the {noun} "
                f"was {rng.choice(v.GENERAL_ADJECTIVES)}.",
            )
        )

    opening = rng.choice(
        (
            f"Dear diary, today was {rng.choice(v.GENERAL_ADJECTIVES)}.",
            f"Notes from {rng.choice(v.DAYS)}:",
            f"{name} wrote:",
            "",
        )
    )
    return " ".join([opening, *(sentence() for _ in range(rng.randint(3, 8)))]).strip()


def _answer_capital(rng: random.Random) -> tuple[str, str]:
    country, city = rng.choice(v.CAPITALS)
    return f"What is the capital of {country}?", f"The capital of {country} is {city}."


def _answer_opposite(rng: random.Random) -> tuple[str, str]:
    word, opposite = rng.choice(v.ANTONYMS)
    if rng.random() < 0.5:
        word, opposite = opposite, word
    return f"What is the opposite of {word}?", f"The opposite of {word} is {opposite}."


def _answer_color(rng: random.Random) -> tuple[str, str]:
    thing, color = rng.choice(v.COLOR_FACTS)
    return f"What color is {thing}?", f"{thing[0].upper() + thing[1:]} is {color}."


def _answer_animal(rng: random.Random) -> tuple[str, str]:
    animal, habitat, food = rng.choice(v.ANIMALS)
    if rng.random() < 0.5:
        return f"Where does the {animal} live?", f"The {animal} lives in the {habitat}."
    return f"What does {v.article(animal)} eat?", f"{v.article(animal).capitalize()} eats {food}."


def _answer_profession(rng: random.Random) -> tuple[str, str]:
    profession, duty = rng.choice(v.PROFESSIONS)
    return f"What does {v.article(profession)} do?", f"{v.article(profession).capitalize()} {duty}."


def _answer_arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 50), rng.randint(0, 50)
    if rng.random() < 0.5:
        return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."
    a, b = max(a, b), min(a, b)
    return f"What is {a} minus {b}?", f"{a} minus {b} is {a - b}."


def _answer_list(rng: random.Random) -> tuple[str, str]:
    category = rng.choice(sorted(v.CATEGORIES))
    first, second, third = rng.sample(v.CATEGORIES[category], 3)
    return f"Name three {category}.", f"Here are three {category}: {first}, {second} and {third}."


def _answer_membership(rng: random.Random) -> tuple[str, str]:
    asked, actual = rng.sample(sorted(v.SINGULAR_CATEGORY), 2)
    if rng.random() < 0.5:
        actual = asked
    item = rng.choice(v.CATEGORIES[actual])
    question = f"Is {v.article(item)} {v.article(v.SINGULAR_CATEGORY[asked])}?"
    if asked == actual:
        return question, f"Yes, {v.article(item)} is {v.article(v.SINGULAR_CATEGORY[asked])}."
    return question, (
        f"No, {v.article(item)} is {v.article(v.SINGULAR_CATEGORY[actual])}, "
        f"not {v.article(v.SINGULAR_CATEGORY[asked])}."
    )


def _answer_repeat(rng: random.Random) -> tuple[str, str]:
    words = rng.sample(v.OBJECTS + v.ADJECTIVES + v.VERBS_PAST + v.TECH_WORDS, rng.randint(2, 6))
    phrase = " ".join(words)
    return f"Repeat after me: {phrase}", phrase


def _answer_greeting(rng: random.Random) -> tuple[str, str]:
    name, _, _ = _name(rng)
    question = rng.choice(
        (f"Hello! My name is {name}.", f"Hi, I'm {name}.", f"Good morning, I am {name}.")
    )
    return question, rng.choice(
        (
            f"Hello, {name}! How can I help you today?",
            f"Nice to meet you, {name}. What can I do for you?",
        )
    )


def _answer_feeling(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        emotion = rng.choice(v.EMOTIONS_GOOD)
        return f"I feel {emotion} today.", f"That is wonderful! I am glad you feel {emotion}."
    emotion = rng.choice(v.EMOTIONS_BAD)
    return (
        f"I feel {emotion} today.",
        f"I am sorry you feel {emotion}. Would you like to talk about it?",
    )


def _answer_support(rng: random.Random) -> tuple[str, str]:
    product = rng.choice(v.PRODUCTS)
    day = rng.choice(v.DAYS)
    return rng.choice(
        (
            (
                f"I want to return my {product}.",
                f"I am sorry the {product} did not work out. You can return it within 30 days for a full refund.",
            ),
            (
                f"Where is my {product}?",
                f"Your {product} is on its way and should arrive on {day}.",
            ),
            (
                "How do I reset my password?",
                "Open the login page, click on forgot password and follow the link in the email we send you.",
            ),
            (
                f"My {product} is broken.",
                f"I am sorry to hear that. Please send us a photo of the {product} and we will replace it.",
            ),
            (
                "Can I change my subscription?",
                "Yes, you can change your subscription at any time in the account settings.",
            ),
        )
    )


def _answer_weather(rng: random.Random) -> tuple[str, str]:
    weather, clothes = rng.choice(v.WEATHER_ADVICE)
    return f"What should I wear when it is {weather}?", f"When it is {weather}, wear {clothes}."


def _answer_sequence(rng: random.Random) -> tuple[str, str]:
    names, unit = rng.choice(((v.DAYS, "day"), (v.MONTHS, "month")))
    index = rng.randrange(len(names))
    following = names[(index + 1) % len(names)]
    return f"What {unit} comes after {names[index]}?", f"{following} comes after {names[index]}."


def _answer_story(rng: random.Random) -> tuple[str, str]:
    name, _, _ = _name(rng)
    animal, habitat, food = rng.choice(v.ANIMALS)
    return f"Tell me a short story about {name} and {v.article(animal)}.", (
        f"Once upon a time, {name} met {v.article(rng.choice(v.ADJECTIVES))} {animal} in the "
        f"{habitat}. The {animal} was hungry, so {name} shared some {food} with it. "
        f"They became friends, and {name} learned that {rng.choice(v.MORALS)}."
    )


def _answer_recommend(rng: random.Random) -> tuple[str, str]:
    dish = rng.choice(v.DISHES)
    return rng.choice(("What should I cook for dinner?", "Can you recommend a dish?")), (
        f"How about {dish}? It is {rng.choice(('simple', 'tasty', 'quick', 'healthy'))} and easy to make."
    )


def _answer_uppercase(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(v.OBJECTS + v.ADJECTIVES)
    return f"Write the word {word} in capital letters.", word.upper()


def _answer_sort(rng: random.Random) -> tuple[str, str]:
    numbers = rng.sample(range(100), rng.randint(3, 5))
    return (
        f"Sort these numbers: {', '.join(map(str, numbers))}",
        ", ".join(map(str, sorted(numbers))),
    )


QUESTION_KINDS: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
    _answer_capital,
    _answer_opposite,
    _answer_color,
    _answer_animal,
    _answer_profession,
    _answer_arithmetic,
    _answer_list,
    _answer_membership,
    _answer_repeat,
    _answer_greeting,
    _answer_feeling,
    _answer_support,
    _answer_weather,
    _answer_sequence,
    _answer_story,
    _answer_recommend,
    _answer_uppercase,
    _answer_sort,
)


def dialogue(rng: random.Random) -> list[Message]:
    messages: list[Message] = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(rng.choice((1, 1, 2, 3))):
        question, answer = rng.choice(QUESTION_KINDS)(rng)
        # Varied wrapping keeps the model answering the question, not the exact phrasing.
        question = rng.choice(v.QUESTION_PREFIXES) + question + rng.choice(v.QUESTION_SUFFIXES)
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    return messages


def documents(*, seed: int, n_characters: int) -> Iterator[Document]:
    """Stories, paragraphs and dialogues until about `n_characters` of text."""
    # A seeded generator makes the corpus, and so the model, reproducible; no secrets here.
    rng = random.Random(seed)  # noqa: S311
    produced = 0
    while produced < n_characters:
        roll = rng.random()
        document: Document
        if roll < 0.3:
            document = story(rng)
            produced += len(document)
        elif roll < 0.4:
            document = encyclopedia(rng)
            produced += len(document)
        elif roll < 0.5:
            document = diary(rng)
            produced += len(document)
        else:
            document = dialogue(rng)
            produced += sum(len(message["content"]) + 16 for message in document)
        yield document
