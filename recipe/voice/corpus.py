"""Build ``corpus.tsv``: the sentences the voice model's synthetic speech says.

Open-vocabulary English, rebuilt deterministically from installed packages (Debian ``wordnet-base``,
``fortunes``, ``wamerican``; PyPI ``names``), so the committed file can be checked and regenerated:

- **prose**: WordNet 3.0's usage examples (short, modern, everyday English) and sentences split
  from fortune-mod's quotation files (longer, varied register);
- **numbers**: generated sentences with years, times, dates, phone numbers, prices, counts and
  percentages, written as a person writes them ("at 9:30 a.m.", "$4.99") and given to the TTS
  engines as words ("at nine thirty A.M."), so every engine says what the target means;
- **names**: generated sentences around common US first and last names (1990 census lists,
  spelled as the ``wamerican`` dictionary spells them).

Sentences that TTS reads badly (URLs, code, digits in prose, ALL CAPS, heavy punctuation) are
dropped, and so is every sentence that shares four consecutive words with a real evaluation
recording's transcript (tests/data/audio/transcripts.tsv), so no evaluation text is trained on.

    python -m recipe.voice.corpus          # rewrites recipe/voice/corpus.tsv
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from tinyaudio.bench.wer import read_transcripts

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.tsv"
EVAL_TRANSCRIPTS = HERE.parents[1] / "tests" / "data" / "audio" / "transcripts.tsv"
# Texts of the test clips that have no exact reference, excluded from training all the same.
EXTRA_EXCLUDED = ["It was the best of times, it was the worst of times"]
WORDNET = Path("/usr/share/wordnet")
FORTUNES = Path("/usr/share/games/fortunes")
DICTIONARY = Path("/usr/share/dict/american-english")
# Quotation files with plain prose (not code, ASCII art, chat logs or verse).
FORTUNE_FILES = ["cookie", "education", "food", "fortunes", "humorists", "kids", "law",
                 "literature", "love", "medicine", "miscellaneous", "people", "pets", "platitudes",
                 "politics", "science", "sports", "wisdom", "work"]  # fmt: skip
MIN_WORDS, MAX_WORDS = 3, 25
SEED = 20240601
NUMBER_SENTENCES = 9000
NAME_SENTENCES = 6000
OVERLAP_WORDS = 4  # a training sentence may share no run of this many words with an eval clip

ABBREVIATIONS = ["Mr.", "Mrs.", "Ms.", "Dr.", "St.", "Jr.", "Sr.", "Prof.", "vs.", "etc.",
                 "e.g.", "i.e.", "Mt.", "Gen.", "Col.", "Capt.", "Gov."]  # fmt: skip
ALLOWED = re.compile(r"^[A-Za-z0-9 .,;:!?'\"-]+$")
SHOUTED = re.compile(r"\b[A-Z]{2,}\b")
# Biblical and Shakespearean English ("thy navel ... wanteth not"): not how anyone talks now.
ARCHAIC = re.compile(r"\b(thee|thou|thy|thine|ye|hath|doth|unto|shalt|saith|\w+[^ie\W]eth)\b", re.I)


def normalize_words(text: str) -> list[str]:
    """Words as the WER scorer sees them (lower case, no punctuation)."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


# ---------------------------------------------------------------------------------------------
# prose


def wordnet_examples(root: Path = WORDNET) -> Iterable[str]:
    """The quoted usage examples after each synset's gloss, in file order."""
    for part in ("noun", "verb", "adj", "adv"):
        for line in (root / f"data.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            yield from re.findall(r'"([^"]+)"', line.split("|", 1)[1])


def fortune_texts(root: Path = FORTUNES) -> Iterable[str]:
    """Each fortune's text, attribution lines and list markers removed, lines joined."""
    for name in FORTUNE_FILES:
        for entry in (root / name).read_text(encoding="latin-1").split("\n%\n"):
            lines: list[str] = []
            for line in entry.splitlines():
                if re.match(r"^\s*--", line):  # "-- Author": the attribution ends the quote
                    break
                lines.append(re.sub(r"^\s*(\(\d+\)|\d+[.)]|[*-])\s+", "", line))
            yield " ".join(" ".join(lines).split())


def split_sentences(text: str) -> list[str]:
    """Split on ., ! or ? before a capital, keeping abbreviations and initials whole."""
    protected = text
    for abbr in ABBREVIATIONS:
        protected = protected.replace(abbr, abbr.replace(".", "\x00"))
    protected = re.sub(r"\b([A-Z])\.(?=\s*[A-Z])", "\\1\x00", protected)  # initials: R. A. Heinlein
    parts = re.split(r"(?<=[.!?])[\"']?\s+(?=[\"']?[A-Z])", protected)
    return [p.replace("\x00", ".").strip() for p in parts if p.strip()]


def tidy(sentence: str) -> str | None:
    """The sentence as natural written text, or None when a TTS engine would read it badly."""
    s = sentence.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    s = " ".join(s.split())
    if s.startswith(("'", '"')) and s.count(s[0]) == 1:
        s = s[1:]
    if s.endswith(("'", '"')) and s.count(s[-1]) == 1 and not re.search(r"\w'$", s):
        s = s[:-1]
    if not s or not ALLOWED.match(s) or SHOUTED.search(s) or re.search(r"\d", s):
        return None
    if ARCHAIC.search(s) or "--" in s or ".." in s or s.count('"') % 2:
        return None
    if re.search(r"(^|\s)[-'.,;:!?]|[-']{2,}|[.,;:!?][A-Za-z]|\s-|-\s", s):  # stray marks
        return None
    s = s[0].upper() + s[1:]
    if s[-1] not in ".!?\"'":
        s += "."
    if not s[0].isalpha() or not MIN_WORDS <= len(s.split()) <= MAX_WORDS:
        return None
    return s


def prose(texts: Iterable[str]) -> list[str]:
    return [t for text in texts for s in split_sentences(text) if (t := tidy(s))]


# ---------------------------------------------------------------------------------------------
# numbers: written form for the target, words for the TTS

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen"]  # fmt: skip
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                 "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}  # fmt: skip
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]  # fmt: skip
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def words(n: int) -> str:
    """0 <= n < 10**9 in words, American style (no "and")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + words(n % 100))
    for size, name in ((10**6, "million"), (1000, "thousand")):
        if n >= size:
            rest = n % size
            return words(n // size) + f" {name}" + ("" if rest == 0 else " " + words(rest))
    raise ValueError(n)


def ordinal_words(n: int) -> str:
    head, _, last = words(n).rpartition(" ")
    if last in ORDINAL_WORDS:
        last = ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def ordinal_digits(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def year_words(y: int) -> str:
    if 2000 <= y < 2010:
        return words(y)
    high, low = divmod(y, 100)
    if low == 0:
        return words(high) + " hundred"
    return words(high) + " " + (f"oh {ONES[low]}" if low < 10 else words(low))


def digit_words(digits: str, rng: np.random.Generator) -> str:
    zero = "oh" if rng.random() < 0.5 else "zero"
    return " ".join(zero if d == "0" else ONES[int(d)] for d in digits)


Slot = tuple[str, str]  # (written, spoken)


def year(rng: np.random.Generator) -> Slot:
    y = int(rng.choice([rng.integers(1800, 2000), rng.integers(1900, 2030)]))
    return str(y), year_words(y)


def clock(rng: np.random.Generator) -> Slot:
    hour, minute = int(rng.integers(1, 13)), int(rng.choice([0, 15, 30, 45, rng.integers(1, 60)]))
    half = ["", " a.m.", " p.m."][int(rng.integers(3))]
    spoken_half = {"": "", " a.m.": " A.M.", " p.m.": " P.M."}[half]  # espeak: "ay" is "eye"
    if minute == 0:
        if not half and rng.random() < 0.5:
            return f"{hour} o'clock", f"{words(hour)} o'clock"
        return f"{hour}{half or ':00'}", f"{words(hour)}{spoken_half}"
    m = f"oh {ONES[minute]}" if minute < 10 else words(minute)
    return f"{hour}:{minute:02d}{half}", f"{words(hour)} {m}{spoken_half}"


def phone(rng: np.random.Generator) -> Slot:
    groups = [f"{rng.integers(200, 1000)}", f"{rng.integers(0, 10000):04d}"]
    if rng.random() < 0.5:
        groups.insert(0, f"{rng.integers(200, 1000)}")
    return "-".join(groups), ", ".join(digit_words(g, rng) for g in groups)


def money(rng: np.random.Generator) -> Slot:
    kind = rng.integers(3)
    if kind == 0:
        d, c = int(rng.integers(1, 100)), int(rng.integers(1, 100))
        cents = "cent" if c == 1 else "cents"
        spoken = f"{words(d)} {'dollar' if d == 1 else 'dollars'} and {words(c)} {cents}"
        return f"${d}.{c:02d}", spoken
    choices = [rng.integers(1, 1000), rng.integers(1, 100) * 100, rng.integers(1, 50) * 1000]
    d = int(rng.choice(choices))
    return f"${d:,}", f"{words(d)} {'dollar' if d == 1 else 'dollars'}"


def count(rng: np.random.Generator) -> Slot:
    n = int(rng.choice([rng.integers(11, 100), rng.integers(100, 1000), rng.integers(1, 100) * 100,
                        rng.integers(1000, 100000)]))  # fmt: skip
    return f"{n:,}", words(n)


def small(rng: np.random.Generator) -> Slot:
    n = int(rng.integers(2, 11))
    return words(n), words(n)  # small counts are written as words


def percent(rng: np.random.Generator) -> Slot:
    n = int(rng.integers(1, 101))
    return f"{n}%", f"{words(n)} percent"


def date(rng: np.random.Generator) -> Slot:
    month, day = MONTHS[int(rng.integers(12))], int(rng.integers(1, 29))
    if rng.random() < 0.4:
        y = int(rng.integers(1950, 2030))
        return f"{month} {day}, {y}", f"{month} {ordinal_words(day)}, {year_words(y)}"
    return f"{month} {day}", f"{month} {ordinal_words(day)}"


def ordinal(rng: np.random.Generator) -> Slot:
    n = int(rng.integers(2, 60))
    return ordinal_digits(n), ordinal_words(n)


def code(rng: np.random.Generator) -> Slot:
    n = int(rng.integers(10, 1000))
    if rng.random() < 0.5 and n >= 100:
        hi, lo = divmod(n, 100)
        tail = words(lo) if lo >= 10 else ("hundred" if lo == 0 else f"oh {ONES[lo]}")
        return str(n), f"{words(hi)} {tail}"
    return str(n), words(n)


def day(rng: np.random.Generator) -> Slot:
    d = DAYS[int(rng.integers(7))]
    return d, d


SLOTS: dict[str, Callable[[np.random.Generator], Slot]] = {
    "year": year, "time": clock, "phone": phone, "money": money, "count": count, "small": small,
    "percent": percent, "date": date, "ordinal": ordinal, "code": code, "day": day,
}  # fmt: skip

NUMBER_TEMPLATES = [
    "The bridge was finished in {year}.", "She was born in {year} in a small town.",
    "In {year}, the family moved west.", "The company was founded in {year}.",
    "My grandfather bought this house in {year}.", "The song came out in {year}.",
    "The meeting starts at {time}.", "Please call me back before {time}.",
    "The train leaves at {time} on {day}.", "I usually wake up at {time}.",
    "Dinner will be ready at {time}.", "The store closes at {time} tonight.",
    "We should leave by {time} to be on time.", "Her flight lands at {time}.",
    "My number is {phone}.", "You can reach the office at {phone}.",
    "Call {phone} if you have any questions.", "The new number for the clinic is {phone}.",
    "The ticket costs {money}.", "I paid {money} for these shoes.",
    "That comes to {money}, please.", "The repair bill was {money}.",
    "He owes me {money}.", "The rent went up to {money} a month.",
    "There were {count} people at the concert.", "The town has about {count} residents.",
    "We planted {count} trees last spring.", "The book has {count} pages.",
    "The car has {count} miles on it.", "They sold {count} copies in the first week.",
    "I have {small} brothers and one sister.", "Add {small} cups of flour and stir.",
    "We waited {small} hours for the bus.", "The twins are {small} years old.",
    "Prices rose by {percent} this year.", "Only {percent} of the votes have been counted.",
    "The battery is at {percent}.", "About {percent} of the students passed the test.",
    "The party is on {date}.", "Her birthday is {date}.", "The report is due {date}.",
    "We signed the lease on {date}.", "School starts on {date}.",
    "Our office is on the {ordinal} floor.", "This is the {ordinal} time I have asked.",
    "They celebrated their {ordinal} anniversary.", "Turn left at {ordinal} Street.",
    "Flight {code} is now boarding.", "Take bus {code} to the station.",
    "Your room is {code}, down the hall.", "The package is in locker {code}.",
    "On {date}, at {time}, the doors will open.", "Call {phone} before {time} on {day}.",
    "The {year} model sold for {money}.", "About {percent} of the {count} tickets are gone.",
]  # fmt: skip

NAME_TEMPLATES = [
    "{first} called this morning.", "Tell {first} that dinner is ready.",
    "{first} {last} will meet you at the station.", "Have you seen {first} today?",
    "I think {first} left the keys on the table.", "{first} and {first2} are getting married.",
    "Please give this letter to {first} {last}.", "{first} is the new manager.",
    "Ask {first} if the report is finished.", "My neighbor {first} has a new dog.",
    "{first} {last} won the election.", "We are having lunch with {first} on Friday.",
    "Dr. {last} will see you now.", "Mrs. {last} teaches history.", "Mr. {last} is on the phone.",
    "{first} wrote a book about the war.", "Is {first} coming to the party?",
    "The award goes to {first} {last}.", "{first} moved to the city last year.",
    "I borrowed the ladder from {first}.", "{first} said {first2} would be late.",
    "Professor {last} canceled the lecture.", "Send the invoice to {first} {last}.",
    "{first} plays the piano every evening.", "Thanks, {first}, that was a great help.",
    "{first} {last} was born in {year}.", "You can call {first} at {phone}.",
    "{first} paid {money} for the old car.", "{first} gets home at {time}.",
]  # fmt: skip


def census_names(dictionary: Path = DICTIONARY) -> tuple[list[str], list[str]]:
    """(first names, last names): the most common US census names, spelled as the dictionary
    spells them (McDonald, O'Brien); names the dictionary lacks are skipped."""
    import names  # the PyPI package, for its bundled public-domain census lists

    spelled = {w.lower().replace("'", ""): w for w in dictionary.read_text().split() if w.istitle()}
    root = Path(names.__file__).parent

    def read(file: str, top: int) -> list[str]:
        lines = (root / file).read_text().splitlines()[:top]
        keys = [line.split()[0].lower() for line in lines]
        return [spelled[k] for k in keys if k in spelled]

    firsts = read("dist.male.first", 500) + read("dist.female.first", 800)
    return sorted(set(firsts)), read("dist.all.last", 2500)


def fill(template: str, rng: np.random.Generator, extra: dict[str, list[str]]) -> tuple[str, str]:
    """A template with each {slot} drawn: (written text, spoken text)."""
    written, spoken = template, template
    for slot in re.findall(r"\{(\w+)\}", template):
        if slot in extra or slot.rstrip("2") in extra:
            w = s = str(rng.choice(extra[slot.rstrip("2")]))
        else:
            w, s = SLOTS[slot](rng)
        written = written.replace("{" + slot + "}", w, 1)
        spoken = spoken.replace("{" + slot + "}", s, 1)
    return written.replace("..", "."), spoken  # "at 9:15 p.m.." → "at 9:15 p.m."


def generated(
    templates: list[str], n: int, seed: int, extra: dict[str, list[str]]
) -> list[tuple[str, str]]:
    """n distinct (written, spoken) sentences from random templates and slot values."""
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for _ in range(n * 3):
        if len(out) == n:
            break
        written, spoken = fill(templates[int(rng.integers(len(templates)))], rng, extra)
        out.setdefault(written, spoken)
    return list(out.items())


# ---------------------------------------------------------------------------------------------


def eval_ngrams(path: Path = EVAL_TRANSCRIPTS, n: int = OVERLAP_WORDS) -> set[tuple[str, ...]]:
    """Every run of n words in the evaluation transcripts (and the extra excluded texts)."""
    texts = EXTRA_EXCLUDED + [text for _, text in read_transcripts(path)]
    grams: set[tuple[str, ...]] = set()
    for text in texts:
        w = normalize_words(text)
        grams |= {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
    return grams


def overlaps(text: str, grams: set[tuple[str, ...]], n: int = OVERLAP_WORDS) -> bool:
    w = normalize_words(text)
    return any(tuple(w[i : i + n]) in grams for i in range(len(w) - n + 1))


def build() -> list[tuple[str, str, str]]:
    """(source, text, spoken or "") rows, deduplicated on normalized words, evaluation-free."""
    firsts, lasts = census_names()
    extra = {"first": firsts, "last": lasts}
    rows: list[tuple[str, str, str]] = []
    rows += [("wordnet", t, "") for t in prose(wordnet_examples())]
    rows += [("fortunes", t, "") for t in prose(fortune_texts())]
    rows += [("numbers", w, s) for w, s in generated(NUMBER_TEMPLATES, NUMBER_SENTENCES, SEED, {})]
    rows += [("names", w, s) for w, s in generated(NAME_TEMPLATES, NAME_SENTENCES, SEED + 1, extra)]
    grams, seen, out, dropped = eval_ngrams(), set(), [], 0
    for source, text, spoken in rows:
        key = " ".join(normalize_words(text))
        if key in seen:
            continue
        seen.add(key)
        if overlaps(text, grams):
            dropped += 1
            continue
        out.append((source, text, "" if spoken == text else spoken))
    print(f"corpus: {len(out)} sentences ({dropped} dropped for overlapping evaluation text)",
          file=sys.stderr)  # fmt: skip
    return out


def write(rows: list[tuple[str, str, str]], path: Path) -> None:
    header = (
        "# source\ttext (the target, as written)\tspoken (what TTS is given; empty: the text)."
        " Built by recipe/voice/corpus.py; sources and licenses in README.md.\n"
    )
    body = "".join(f"{s}\t{t}\t{sp}\n" for s, t, sp in rows)
    path.write_text(header + body)


def read_corpus(path: Path = CORPUS) -> list[tuple[str, str, str]]:
    """(source, text, spoken) rows of the committed corpus; spoken is the text when empty."""
    rows = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            source, text, spoken = line.split("\t")
            rows.append((source, text, spoken or text))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS)
    args = parser.parse_args()
    write(build(), args.out)


if __name__ == "__main__":
    main()
