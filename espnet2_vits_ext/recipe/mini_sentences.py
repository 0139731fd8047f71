"""The sentences of the built-in mini corpus: written ones plus template ones, deterministic.

Each sentence is a pair ``(text, normalized)`` as in LJSpeech's ``metadata.csv``: ``text`` as a
reader sees it (digits, "Dr.", "$5"), ``normalized`` with numbers, money, dates and abbreviations
spelled out (what is spoken). :func:`sentences` returns them in corpus order.

Used by local/make_mini_corpus.py (stage 1 of --corpus mini).
"""

from __future__ import annotations

import random

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_words(n: int) -> str:
    """Cardinal words of ``0 <= n < 1,000,000`` ("two hundred forty-five")."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_words covers 0..999999, not {n}")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def ordinal_words(n: int) -> str:
    """Ordinal words ("twenty-first", "thirtieth")."""
    words = number_words(n)
    head, sep, last = words.rpartition("-") if "-" in words.split()[-1] else words.rpartition(" ")
    if last in ORDINAL_WORDS:
        last = ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_words(year: int) -> str:
    """A year as read aloud: 1865 "eighteen sixty-five", 1905 "nineteen oh five", 1900 "nineteen hundred"."""
    if not 1100 <= year <= 1999:
        raise ValueError(f"year_words covers 1100..1999, not {year}")
    century, rest = divmod(year, 100)
    if rest == 0:
        return number_words(century) + " hundred"
    if rest < 10:
        return number_words(century) + " oh " + ONES[rest]
    return number_words(century) + " " + number_words(rest)


def money_words(dollars: int, cents: int) -> str:
    dollar_part = f"{number_words(dollars)} dollar{'s' if dollars != 1 else ''}"
    if cents == 0:
        return dollar_part
    return f"{dollar_part} and {number_words(cents)} cent{'s' if cents != 1 else ''}"


PLAIN = [
    "The printer set each line of type by hand before the sheets were pressed.",
    "In the morning the river was covered with a thin grey mist.",
    "She opened the letter slowly, as if she already knew what it said.",
    "The committee met twice a week to discuss the condition of the prisons.",
    "A narrow staircase led from the kitchen to the rooms above.",
    "Nobody in the village could remember a winter as cold as that one.",
    "He wrote his name at the bottom of the page and handed back the pen.",
    "The old clock in the hall had stopped at a quarter past nine.",
    "Every book in the library was catalogued by subject and by author.",
    "The guards were ordered to search every visitor at the gate.",
    "Rain fell steadily on the roof of the station all afternoon.",
    "The witness said that he had seen the carriage turn into the square.",
    "Her voice was calm, but her hands were trembling.",
    "The new building was larger than anything the town had seen before.",
    "They walked along the shore until the lights of the harbor disappeared.",
    "The report described the damp cells and the lack of fresh air.",
    "A small boy stood at the window, watching the soldiers march past.",
    "The ink had faded, yet the handwriting was still easy to read.",
    "Bread, cheese, and a jug of water were placed on the table.",
    "The engine slowed down as the train approached the bridge.",
    "It was the first time the public had been allowed inside the court.",
    "The editor asked for a shorter article with fewer adjectives.",
    "Several families moved to the city in search of regular work.",
    "The lamp flickered, and for a moment the room was completely dark.",
    "A crowd gathered outside the bank long before the doors opened.",
    "The teacher wrote three questions on the blackboard and waited.",
    "His coat was torn at the elbow and stained with mud.",
    "The ship left the port at dawn with a cargo of cotton and wool.",
    "Nothing was said about the matter for several years.",
    "The garden behind the house was full of roses and tall grass.",
    "The prisoners were allowed to walk in the yard for one hour.",
    "She listened carefully, then asked him to repeat the last sentence.",
    "The map showed every road, river, and farm in the county.",
    "Why did the messenger arrive so late that evening?",
    "The bells rang out across the valley to announce the wedding.",
    "Paper was scarce, so the notes were written on the backs of old bills.",
    "The doctor advised complete rest and a simple diet.",
    "Two horses pulled the heavy wagon up the hill.",
    "The judge listened to both sides before giving his decision.",
    "A cold wind blew through the cracks in the wooden walls.",
    "The machines in the factory ran day and night.",
    "He kept a diary in which he recorded the weather and his expenses.",
    "The sound of footsteps echoed along the empty corridor.",
    "Fresh bread was delivered to the inn every morning.",
    "The students copied the diagram carefully into their notebooks.",
    "Was it possible that the key had been lost on purpose?",
    "The mayor thanked the volunteers for their patience and courage.",
    "The storm broke the mast and tore the sails to pieces.",
    "At last the long journey came to an end.",
    "The museum displayed tools, coins, and pottery found near the river.",
    "Her brother worked as a clerk in a shipping office.",
    "The letters were sorted by hand and sent out on the evening mail.",
    "Quiet streets and closed shops gave the town a sleepy look.",
    "The officer wrote down every detail in a small black notebook.",
    "Smoke rose slowly from the chimneys of the cottages.",
    "The speech was short, clear, and well received.",
    "Some of the windows had been boarded up after the fire.",
    "The workers demanded shorter hours and better wages.",
    "A faint light shone under the door of the study.",
    "The children laughed as the puppy chased its own tail.",
]

SPECIAL = [
    ("Dr. Harris examined the patient at 10 o'clock.", "Doctor Harris examined the patient at ten o'clock."),
    ("Mr. and Mrs. Lane lived on Baker St. for 12 years.", "Mister and Missus Lane lived on Baker Street for twelve years."),
    ("The ticket cost $3.50, which seemed expensive.", "The ticket cost three dollars and fifty cents, which seemed expensive."),
    ("Chapter 7 begins on page 142.", "Chapter seven begins on page one hundred forty-two."),
    ("The bridge is 1,200 feet long.", "The bridge is one thousand two hundred feet long."),
    ("Capt. Wells sailed on June 3, 1851.", "Captain Wells sailed on June third, eighteen fifty-one."),
    ("About 40% of the crop was lost.", "About forty percent of the crop was lost."),
    ("Prof. Grant gave 3 lectures; all were full.", "Professor Grant gave three lectures; all were full."),
    ("The train leaves at 6:45 and arrives at 9:15.", "The train leaves at six forty-five and arrives at nine fifteen."),
    ("Room 27 is on the 2nd floor.", "Room twenty-seven is on the second floor."),
    ("Gen. Ward commanded 5,000 men.", "General Ward commanded five thousand men."),
    ("The fee was raised from $2 to $5.", "The fee was raised from two dollars to five dollars."),
    ("Lt. Moore reported at 7 a.m. sharp.", "Lieutenant Moore reported at seven a m sharp."),
    ("The law was passed in 1834, not in 1843.", "The law was passed in eighteen thirty-four, not in eighteen forty-three."),
    ("She bought 2 lbs. of flour and 1 doz. eggs.", "She bought two pounds of flour and one dozen eggs."),
    ("No. 14 was the last house on the left.", "Number fourteen was the last house on the left."),
    ("The well was 60 ft. deep.", "The well was sixty feet deep."),
    ("St. Paul's was finished in 1710.", "Saint Paul's was finished in seventeen ten."),
    ("Mt. Hood is covered with snow, even in May.", "Mount Hood is covered with snow, even in May."),
    ("The list included tea, sugar, salt, etc.", "The list included tea, sugar, salt, et cetera."),
    ("Wait! Did you hear that?", "Wait! Did you hear that?"),
    ("\"Close the door,\" she said, \"and sit down.\"", "\"Close the door,\" she said, \"and sit down.\""),
    ("The answer -- if there was one -- never came.", "The answer, if there was one, never came."),
    ("He paid $1,250 for the horse and cart.", "He paid one thousand two hundred fifty dollars for the horse and cart."),
    ("The 19th century saw great changes in printing.", "The nineteenth century saw great changes in printing."),
    ("Sgt. Baker counted 23 prisoners in the yard.", "Sergeant Baker counted twenty-three prisoners in the yard."),
    ("The meeting ended at 11:30 p.m.", "The meeting ended at eleven thirty p m."),
    ("Vol. 2 of the report ran to 380 pages.", "Volume two of the report ran to three hundred eighty pages."),
    ("Col. Reed's regiment arrived on Oct. 21.", "Colonel Reed's regiment arrived on October twenty-first."),
    ("The temperature fell to 5 degrees below zero.", "The temperature fell to five degrees below zero."),
]

NAMES = ["Mr. Carter", "Mrs. Dean", "Dr. Price", "Miss Hale", "Mr. Foster", "Dr. Bell", "Mrs. Young", "Mr. Shaw"]
NAME_WORDS = {"Mr.": "Mister", "Mrs.": "Missus", "Dr.": "Doctor", "Miss": "Miss"}
PLACES = ["the market", "the station", "the courthouse", "the library", "the mill", "the harbor", "the school"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November"]
THINGS = ["chairs", "lamps", "barrels", "letters", "books", "sacks of grain", "bottles", "blankets"]


def _spoken_name(name: str) -> str:
    title, _, surname = name.partition(" ")
    return f"{NAME_WORDS[title]} {surname}"


def _templated(rng: random.Random) -> tuple[str, str]:
    """One sentence from a randomly chosen template, with a number, a date, money or a time."""
    kind = rng.randrange(6)
    name = rng.choice(NAMES)
    place = rng.choice(PLACES)
    if kind == 0:
        count, thing = rng.randint(2, 99), rng.choice(THINGS)
        return (
            f"{name} counted {count} {thing} at {place}.",
            f"{_spoken_name(name)} counted {number_words(count)} {thing} at {place}.",
        )
    if kind == 1:
        month, day, year = rng.choice(MONTHS), rng.randint(1, 28), rng.randint(1801, 1899)
        return (
            f"On {month} {day}, {year}, {name} left {place}.",
            f"On {month} {ordinal_words(day)}, {year_words(year)}, {_spoken_name(name)} left {place}.",
        )
    if kind == 2:
        dollars, cents = rng.randint(1, 250), rng.choice([0, 5, 10, 25, 50, 75])
        raw = f"${dollars}" if cents == 0 else f"${dollars}.{cents:02d}"
        return (
            f"The bill from {place} came to {raw}.",
            f"The bill from {place} came to {money_words(dollars, cents)}.",
        )
    if kind == 3:
        hour, minute = rng.randint(1, 12), rng.choice([5, 10, 15, 20, 30, 40, 45])
        return (
            f"Was {name} really at {place} at {hour}:{minute:02d}?",
            f"Was {_spoken_name(name)} really at {place} at {number_words(hour)} {_minute_words(minute)}?",
        )
    if kind == 4:
        floor, room = rng.randint(1, 9), rng.randint(100, 999)
        return (
            f"{name} moved to room {room}, on the {floor}{_suffix(floor)} floor.",
            f"{_spoken_name(name)} moved to room {number_words(room)}, on the {ordinal_words(floor)} floor.",
        )
    miles, hours = rng.randint(3, 400), rng.randint(2, 20)
    return (
        f"The road to {place} was {miles} miles long; it took {hours} hours.",
        f"The road to {place} was {number_words(miles)} miles long; it took {number_words(hours)} hours.",
    )


def _minute_words(minute: int) -> str:
    return f"oh {ONES[minute]}" if minute < 10 else number_words(minute)


def _suffix(n: int) -> str:
    return {1: "st", 2: "nd", 3: "rd"}.get(n if n < 20 else n % 10, "th")


def sentences(total: int = 240, seed: int = 1) -> list[tuple[str, str]]:
    """The corpus's ``(text, normalized)`` pairs: the written ones, then templates up to ``total``.

    Written sentences come first in a fixed order; template sentences follow from a seeded
    generator (repeats skipped), so the same ``total`` and ``seed`` give the same list.
    """
    pairs = [(s, s) for s in PLAIN] + list(SPECIAL)
    if total < len(pairs):
        raise ValueError(f"total must be at least {len(pairs)} (the written sentences), not {total}")
    seen = {text for text, _ in pairs}
    rng = random.Random(seed)
    while len(pairs) < total:
        text, normalized = _templated(rng)
        if text not in seen:
            seen.add(text)
            pairs.append((text, normalized))
    return pairs
