"""The offline analyzer: a profile from the script's own words (pronouns and gendered words near the introduction
and in action mentions, the intro's age note, the intro's describing words and recurring parentheticals)."""

from __future__ import annotations

import re


from ..evidence import Evidence

from .profile import CharacterProfile, FieldEvidence, Gender

HEURISTIC_VERSION = "2"  # 2: a cue naming gender or age wins over weak evidence; role nouns (ART GIRL) are adults


# --------------------------------------------------------------------------------------------- word lists

_MALE_PRONOUNS = {"he", "him", "his", "himself"}
_FEMALE_PRONOUNS = {"she", "her", "hers", "herself"}
_MALE_WORDS = {
    "man", "men", "boy", "guy", "gentleman", "father", "dad", "daddy", "son", "brother", "husband", "uncle",
    "nephew", "grandfather", "grandpa", "granddad", "grandson", "king", "prince", "lord", "sir", "mr", "monsieur",
    "senor", "señor", "herr", "widower", "groom", "bridegroom", "boyfriend", "fiance", "patriarch", "monk",
    "priest", "businessman", "policeman", "fireman", "chairman", "salesman", "fisherman", "cowboy", "waiter",
    "actor", "lad", "bloke", "fella", "fellow", "papa", "pa", "stepfather", "godfather", "duke", "baron", "emperor",
}
_FEMALE_WORDS = {
    "woman", "women", "girl", "gal", "lady", "mother", "mom", "mum", "mommy", "mummy", "daughter", "sister",
    "wife", "aunt", "niece", "grandmother", "grandma", "granny", "granddaughter", "queen", "princess", "madam",
    "madame", "mrs", "ms", "miss", "mademoiselle", "senora", "señora", "widow", "bride", "girlfriend", "fiancee",
    "matriarch", "nun", "businesswoman", "policewoman", "chairwoman", "saleswoman", "waitress", "actress",
    "lass", "mama", "ma", "stepmother", "godmother", "duchess", "baroness", "empress", "housewife", "heiress",
}
_NONBINARY_WORDS = {"nonbinary", "non-binary", "enby", "genderqueer", "genderfluid", "agender"}
# Common given names: a weak signal, used only when the text says nothing.
_FEMALE_NAMES = set(
    "mary margaret maggie elizabeth liz beth anna anne ann annie jane june joan julia julie emma emily sarah sara "
    "rachel rebecca ruth helen ellen elena eleanor alice grace rose lily lucy laura linda susan sue karen nancy "
    "lisa maria marie martha claire clara kate katie kathy catherine amy amanda jessica jennifer jenny diana "
    "dorothy betty barbara patricia carol sophie sophia olivia ava mia chloe zoe hannah nora vera irene iris "
    "judy molly polly sally wendy rita tina eva eve ivy hazel edith ethel agnes mabel gloria ada lena mira".split()
)
_MALE_NAMES = set(
    "john james robert michael william david richard joseph thomas tomas tom charles chris christopher daniel "
    "dan matthew matt anthony tony mark donald paul steven steve andrew andy kenneth george edward ed brian "
    "kevin jason jeff frank peter pete henry harry jack sam samuel ben benjamin arthur walter otto hans karl "
    "carl max leo luke adam alex oliver noah liam ethan jacob lucas owen hugo felix oscar victor vincent "
    "frederick fred albert ernest eric ivan igor pedro carlos juan jose miguel marco luis bob bill jim joe "
    "mike nick rick ray roy ralph stan ted tim vic walt hal gus abe ned zach".split()
)
_AGE_WORDS: dict[str, tuple[int, int]] = {
    "baby": (0, 2), "infant": (0, 1), "toddler": (1, 3), "child": (5, 12), "kid": (6, 12), "boy": (6, 14),
    "girl": (6, 14), "schoolboy": (6, 14), "schoolgirl": (6, 14), "teen": (13, 19), "teenage": (13, 19),
    "teenager": (13, 19), "teenaged": (13, 19), "adolescent": (13, 17), "young": (18, 30), "youthful": (18, 30),
    "middle-aged": (40, 60), "old": (65, 85), "elderly": (65, 85), "aged": (65, 85), "ancient": (80, 95),
    "grey-haired": (60, 80), "gray-haired": (60, 80), "white-haired": (65, 85), "retired": (62, 80),
    "grandmother": (60, 85), "grandfather": (60, 85), "grandma": (60, 85), "grandpa": (60, 85),
}
_NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
}
_DECADE_WORDS = {
    "teens": 10, "twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70,
    "eighties": 80, "nineties": 90,
}
_TENS_WORDS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
               "ninety": 90}
# Words that describe a character's temperament or voice (recognised even without an adjective-like ending).
_TRAIT_WORDS = set(
    "stubborn sharp earnest warm cold gruff kind shy bold brash calm cheerful nervous anxious weary tired "
    "weathered wry dry witty bitter sweet gentle soft loud quiet brisk blunt proud smug sly shrewd wise naive "
    "eager keen grim stern strict fierce tough rough meek timid brave fussy prim posh crisp curt terse lazy "
    "sleepy jolly merry glum sullen moody charming clever bright dim slow quick fast frail feeble hearty "
    "robust hoarse husky raspy gravelly deep high shrill booming mellow smooth silky breathy nasal lilting "
    "pompous arrogant humble polite rude impatient patient friendly hostile wary suspicious confident "
    "insecure awkward elegant graceful clumsy fragile steady nervy jittery restless driven ambitious idealistic "
    "cynical sarcastic playful serious solemn somber sombre cheeky feisty spirited lively sunny gloomy tense "
    "harried frazzled disheveled dishevelled scruffy neat tidy stoic haughty cocky brooding intense daft mild "
    "amicable curious handsome weathered bored worried frustrated reserved guarded jaded haunted refined cultured "
    "measured clipped animated excited agitated relaxed composed determined distracted exhausted world-weary "
    "formal casual theatrical jovial genial cordial brutal manic deadpan earthy folksy bubbly chirpy perky "
    "cheery spunky grumpy cranky sweet-natured soft-spoken well-spoken plain-spoken loud-mouthed fast-talking "
    "nerdy goofy dreamy wistful melancholy sad angry happy excitable eccentric quirky kindly motherly fatherly "
    "matronly burly surly friendly lovely grave sincere honest devious menacing sinister icy frosty fiery".split()
)
# Words that introduce what a "with …" phrase is about when it describes a voice or manner.
_VOICE_NOUNS = {"voice", "accent", "drawl", "lisp", "rasp", "stutter", "stammer", "wit", "laugh", "twang",
                "brogue", "manner", "temper", "tongue", "growl", "whisper", "smile", "charm"}
_INTENSIFIERS = {"very", "fairly", "quite", "rather", "extremely", "really", "slightly", "somewhat", "incredibly",
                 "pretty", "too", "so", "most", "more", "less", "always", "often", "ever", "still", "all"}
_ADJ_SUFFIXES = ("ful", "ous", "ive", "ic", "less", "ish", "able", "ible", "ent", "ant", "y")
_NOUN_SUFFIXES = ("ity", "ment", "tion", "sion", "ness", "ship", "ery", "ory", "dent", "gent", "ant")
_STOPWORDS = set(
    "a an the his her their its our my your this that these those and or but of in on at to from by for with "
    "as is are was were be been who which whose into onto over under about around behind beside near".split()
)
# Parentheticals that are stage business or timing, not temperament.
_NON_TRAIT_PARENS = {
    "beat", "pause", "a beat", "continuing", "cont'd", "cont", "v.o.", "o.s.", "o.c.", "then", "off",
    "on the radio", "into phone", "on phone", "reading", "singing", "to himself", "to herself", "aside",
}
_ADVERB_EXCEPTIONS = {"gently": "gentle", "simply": "simple", "humbly": "humble", "idly": "idle", "wholly": "whole",
                      "subtly": "subtle", "nobly": "noble", "dully": "dull", "fully": "full", "shyly": "shy",
                      "slyly": "sly", "drily": "dry", "dryly": "dry", "coyly": "coy"}
_MINUTE = re.compile(r"[\w'’-]+")
_FULL_NAME_TAIL = re.compile(r"^(\s+[A-Z][A-Z'’.-]+\b)+")  # the rest of an ALL-CAPS full name: "HALE"
_PREPOSITIONS = re.compile(r"\b(from|of|in|at|on|for|who|whose|which|that|by|near|behind)\b")


def _words(text: str) -> list[str]:
    return [w.lower().strip("'’") for w in _MINUTE.findall(text)]


def snip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_NOT_A_FIRST_NAME = {"mr", "mrs", "ms", "dr", "miss", "sir", "lady", "lord", "old", "young", "little", "big", "the",
                     "officer", "detective", "agent", "captain", "doctor", "nurse", "cyber", "uncle", "aunt"}


def _name_pattern(evidence: Evidence) -> re.Pattern:
    """Matches the character's name, a cue, or the name's first word (`MARGARET` of `MARGARET HALE`, not `THE` of
    `THE DEALER`) as a whole word, in capitals or title case — never in lower case (`june` the month)."""
    names = {evidence.name, *evidence.cues}
    parts = set()
    for n in names:
        ws = n.split()
        if len(ws) > 1 and ws[0].lower().strip(".") not in _NOT_A_FIRST_NAME | _STOPWORDS | set(_AGE_WORDS):
            parts.add(ws[0])
    forms = set()
    for n in names | parts:
        if len(n) > 1:
            forms.update({n.upper(), " ".join(w[:1].upper() + w[1:].lower() for w in n.split())})
    alts = sorted((re.escape(f) for f in forms), key=len, reverse=True)
    return re.compile(r"(?<![\w])(" + "|".join(alts) + r")(?![\w])")


_SENTENCE_SPLIT = re.compile(r"(?<!\bDr\.)(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bSt\.)(?<!\bJr\.)(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences, not split after Dr. / Mr. / Mrs. / Ms. / St. / Jr."""
    return [s.strip() for s in _SENTENCE_SPLIT.split(text) if s.strip()]


def _window_after_name(text: str, pattern: re.Pattern, own_caps: set[str], sentences: int = 2) -> str | None:
    """Text from the character's name to the end of the `sentences`-th sentence, cut where another character's
    name (a capitalised word mid-sentence, or an ALL-CAPS introduction) begins: pronouns there belong to them."""
    m = pattern.search(text)
    if not m:
        return None
    rest = _FULL_NAME_TAIL.sub("", text[m.end():])
    out = []
    for sent in split_sentences(rest)[:sentences]:
        cut = len(sent)
        for w in re.finditer(r"(?<![\w'’])([A-Z][\w'’-]*)", sent):
            word = w.group(1)
            if w.start() == 0 and not word.isupper():
                continue  # sentence-initial capital
            if word in ("I", "V.O", "O.S") or word.upper() in own_caps or word.isupper() and len(word) == 1:
                continue
            if word.isupper() or w.start() > 0:
                cut = w.start()
                break
        out.append(sent[:cut])
        if cut < len(sent):
            break
    return " ".join(out)


def _own_caps(evidence: Evidence) -> set[str]:
    words = set()
    for n in (evidence.name, *evidence.cues):
        words.update(w.upper() for w in _MINUTE.findall(n))
    return words


def _intro_appositive(evidence: Evidence) -> str:
    """The describing phrase of the introduction: after the name and age note, up to the end of its sentence.
    `MARGARET HALE (70s), a weathered, stubborn old keeper with a dry wit, polishes…` -> `a weathered, …`."""
    intro = evidence.introduction
    if intro is None:
        return ""
    m = _name_pattern(evidence).search(intro.text)
    if not m:
        return ""
    rest = _FULL_NAME_TAIL.sub("", intro.text[m.end():])
    rest = re.sub(r"^\s*\([^)]*\)", "", rest)  # the age note
    sentence = split_sentences(rest)[0] if split_sentences(rest) else ""
    if not sentence.startswith(","):
        return ""
    parts = [p.strip() for p in sentence[1:].split(",")]
    # The appositive ends before the main verb's clause: keep comma parts until one looks like a clause
    # (a verb after the first word: "polishes the great lens by hand").
    kept: list[str] = []
    for p in parts:
        if not p:
            continue
        if not kept and parse_age_note(p):
            continue  # `CYBER BOB, 40, a white man, …`: the age is not a description
        if not kept and (m := re.match(r"^(\S+)\s+and\s+(.+)$", p)) and parse_age_note(m.group(1)):
            p = m.group(2)  # `40's and handsome`
        if _is_clause(p) or any(w.isupper() and len(w) > 1 for w in re.findall(r"[A-Za-z][\w'’]*", p)):
            break  # a predicate, or another character introduced in capitals (a group introduction)
        p = re.split(r"\s+(?:who|whose|which|that)\s", p)[0]
        kept.append(p.rstrip("."))
        if len(" ".join(kept).split()) >= 20:
            break
    return ", ".join(kept)


_VERB_STARTS = {"is", "are", "was", "were", "has", "had", "who", "whose", "which", "that", "as", "while", "then"}


def _is_clause(phrase: str) -> bool:
    """`polishes the lens`, `is sitting quietly`, `who cross his path`: a predicate, not a description."""
    ws = phrase.strip().split()
    if not ws:
        return False
    first = ws[0].lower().strip(".,;:!?")
    if first in _VERB_STARTS:
        return True
    return (first.endswith("s") and not first.endswith(("ss", "ous", "us", "is", "'s", "’s"))
            and first not in _TRAIT_WORDS and (len(ws) < 2 or ws[1].lower() not in _MALE_WORDS | _FEMALE_WORDS))


# --------------------------------------------------------------------------------------------- fields


def _gender(evidence: Evidence) -> tuple[Gender, FieldEvidence]:
    votes: dict[str, float] = {"male": 0.0, "female": 0.0, "nonbinary": 0.0}
    snippets: list[str] = []
    pattern, own = _name_pattern(evidence), _own_caps(evidence)

    def vote(kind: str, weight: float, why: str) -> None:
        votes[kind] += weight
        snippets.append(why)

    for w in _words(evidence.name):  # the cue names it (MALE VOICE, OLD WOMAN, MAN #2): outweighs pronouns, names
        w = w.rstrip(".")
        for kind, lex in (("male", _MALE_WORDS | _MALE_CUE_WORDS), ("female", _FEMALE_WORDS | _FEMALE_CUE_WORDS),
                          ("nonbinary", _NONBINARY_WORDS)):
            if w in lex:
                vote(kind, CUE_WEIGHT, f"name {evidence.name!r} contains {w!r}")
    note = evidence.introduction.age_note if evidence.introduction else None
    if note:
        for w in _words(note):
            kind = {"m": "male", "male": "male", "f": "female", "female": "female"}.get(w)
            if kind:
                vote(kind, 2.0, f"age note ({note})")
    appositive = _intro_appositive(evidence)
    for w in _words(appositive):
        for kind, lex in (("male", _MALE_WORDS), ("female", _FEMALE_WORDS), ("nonbinary", _NONBINARY_WORDS)):
            if w in lex:
                vote(kind, 2.0, f"introduced as {w!r}: {snip(appositive, 80)!r}")
    texts = ([("introduction", evidence.introduction.text)] if evidence.introduction else []) + [
        ("action", t) for t in evidence.action_mentions
    ]
    for where, text in texts:
        window = _window_after_name(text, pattern, own)
        if not window:
            continue
        for w in _words(window):
            if w in _MALE_PRONOUNS:
                vote("male", 1.0 if where == "introduction" else 0.6, f"{w!r} after the name in {where}: {snip(window)!r}")
                break
            if w in _FEMALE_PRONOUNS:
                vote("female", 1.0 if where == "introduction" else 0.6, f"{w!r} after the name in {where}: {snip(window)!r}")
                break
    if not any(votes.values()):
        first = evidence.name.split()[0].lower() if evidence.name.split() else ""
        if first in _FEMALE_NAMES:
            vote("female", 0.6, f"{evidence.name.split()[0]!r} is a common female given name")
        elif first in _MALE_NAMES:
            vote("male", 0.6, f"{evidence.name.split()[0]!r} is a common male given name")
    total = sum(votes.values())
    if total == 0:
        return "unknown", FieldEvidence(confidence=0.0, evidence=())
    kind = max(votes, key=lambda k: votes[k])
    confidence = round(min(0.95, votes[kind] / (total + 0.5)), 3)
    return kind, FieldEvidence(confidence=confidence, evidence=tuple(snippets[:6]))  # type: ignore[return-value]


def parse_age_note(note: str) -> tuple[int, int] | None:
    """'30s' -> (30, 39); 'early 40s' -> (40, 43); 'mid-thirties' -> (34, 36); '25' -> (23, 27); '20-25' -> (20, 25);
    'late teens' -> (17, 19); 'ten' -> (8, 12). None when it is not an age."""
    s = re.sub(r"\([^)]*\)", " ", note.lower().replace("’", "'")).split(",")[0].split(";")[0]
    s = re.sub(r"\s+(?:m|f|male|female|ish)\.?$|-ish$", "", s.strip())  # `40's M`, `30s-ish`
    s = re.sub(r"\b(age[sd]?|about|around|roughly|approx\.?|years? old|yrs?|y/o|yo)\b", " ", s).strip(" ,.")
    qualifier = None
    m = re.match(r"^(early|mid|late)[\s-]*(.*)$", s)
    if m:
        qualifier, s = m.group(1), m.group(2).strip()
    lo_hi = None
    if m := re.fullmatch(r"(\d{1,3})\s*(?:-|–|to)\s*(\d{1,3})", s):
        lo_hi = (int(m.group(1)), int(m.group(2)))
        return lo_hi if lo_hi[0] <= lo_hi[1] <= 120 else None
    if m := re.fullmatch(r"(\d)0'?s", s):
        decade = int(m.group(1)) * 10
    elif s in _DECADE_WORDS:
        decade = _DECADE_WORDS[s]
    elif s in ("teen", "teens"):
        decade = 10
    else:
        n = None
        if re.fullmatch(r"\d{1,3}", s):
            n = int(s)
        elif s in _NUMBER_WORDS:
            n = _NUMBER_WORDS[s]
        elif s in _TENS_WORDS:
            n = _TENS_WORDS[s]
        elif m := re.fullmatch(r"([a-z]+)[\s-]([a-z]+)", s):
            if m.group(1) in _TENS_WORDS and m.group(2) in _NUMBER_WORDS:
                n = _TENS_WORDS[m.group(1)] + _NUMBER_WORDS[m.group(2)]
        if n is None or n > 120:
            return None
        spread = 2 if n >= 15 else 1 if n >= 5 else 0
        return (max(0, n - spread), n + spread)
    lo, hi = (13, 19) if decade == 10 else (decade, decade + 9)
    if qualifier == "early":
        hi = lo + 3
    elif qualifier == "mid":
        lo, hi = lo + 4 if decade != 10 else 15, lo + 6 if decade != 10 else 16
    elif qualifier == "late":
        lo = hi - 2
    return (lo, hi)


CUE_WEIGHT = 4.0  # a gender word in the cue: more than an appositive (2) plus a few pronouns (0.6–1 each)
_MALE_CUE_WORDS = {"male", "masculine"}
_FEMALE_CUE_WORDS = {"female", "feminine"}
_CHILD_NOUNS = {"boy", "girl", "child", "kid", "schoolboy", "schoolgirl"}
_CHILD_MODIFIERS = {"little", "young", "small", "tiny", "wee", "baby", "school", "younger"}
_ADULT_NOUNS = {"man", "woman", "men", "women", "lady", "gentleman", "guy", "adult", "professional", "mother",
                "father", "wife", "husband", "widow", "widower"}
_ADULT_LOOKS = re.compile(r"\b(?:attractive|sexy|beautiful|handsome|gorgeous|stunning|glamorous|seductive|"
                          r"buxom|sultry|voluptuous)\b", re.IGNORECASE)


def _cue_age(evidence: Evidence) -> tuple[tuple[int, int], FieldEvidence] | None:
    """An age the cue itself names: OLD WOMAN → old; LITTLE GIRL → child; GIRL → child unless the script calls her
    attractive & co. or the noun names a role (ART GIRL, DELIVERY BOY: an adult); YOUNG WOMAN → young adult."""
    ws = [w.rstrip(".") for w in _words(evidence.name)]
    for i, w in enumerate(ws):
        before = ws[i - 1] if i else None
        if w in _CHILD_NOUNS:
            if before and before not in _CHILD_MODIFIERS and before not in _AGE_WORDS and not before.isdigit():
                return (18, 30), FieldEvidence(confidence=0.5, evidence=(
                    f"name {evidence.name!r}: {before!r} {w!r} names a role, so an adult",))
            look = _adult_look(evidence)
            if look and before not in ("little", "tiny", "baby", "wee"):
                return (18, 30), FieldEvidence(confidence=0.5, evidence=(f"{w!r} described as an adult: {look!r}",))
            rng = (6, 12) if before in _CHILD_MODIFIERS else _AGE_WORDS.get(w, (6, 14))
            return rng, FieldEvidence(confidence=0.6, evidence=(f"name {evidence.name!r} contains {w!r}",))
        if w == "young" and i + 1 < len(ws) and ws[i + 1] in _ADULT_NOUNS:
            return (18, 30), FieldEvidence(confidence=0.6, evidence=(f"name: 'young {ws[i + 1]}'",))
        if w in _AGE_WORDS and w != "young":
            return _AGE_WORDS[w], FieldEvidence(confidence=0.6, evidence=(f"name {evidence.name!r} contains {w!r}",))
    return None


def _adult_look(evidence: Evidence) -> str | None:
    """`an attractive young ART GIRL`: an adult-only description within a few words before the name."""
    name = re.escape(evidence.name)
    pattern = re.compile(_ADULT_LOOKS.pattern + r"(?:[\s,]+[\w'’-]+){0,3}?[\s,]+" + name + r"\b", re.IGNORECASE)
    texts = ([evidence.introduction.text] if evidence.introduction else []) + list(evidence.action_mentions)
    for text in texts:
        m = pattern.search(text)
        if m:
            return snip(m.group(0), 80)
    return None


def _age(evidence: Evidence) -> tuple[tuple[int, int] | None, FieldEvidence]:
    intro = evidence.introduction
    if intro is not None and intro.age_note:
        rng = parse_age_note(intro.age_note)
        if rng:
            return rng, FieldEvidence(confidence=0.9, evidence=(f"age note ({intro.age_note})",))
    texts = []
    if intro is not None:
        for d in intro.descriptors:  # `CHARYA, a nice librarian, 30, in a black robe`
            rng = parse_age_note(d)
            if rng:
                return rng, FieldEvidence(confidence=0.8, evidence=(f"age ({d})",))
        appositive = _intro_appositive(evidence)
        texts = [t for t in (appositive, *intro.descriptors) if t]
    for text in texts:
        low = text.lower()
        for pat in (
            r"\b(?:aged?|of)\s+(\w+(?:[\s-]\w+)?)\b(?!\s+(?:the|a|an|his|her)\b)",  # "aged 10", "a boy of ten"
            r"\b(\w+(?:-\w+)?)[\s-]years?[\s-]old\b",  # "ten-year-old", "35 years old"
            r"\bin\s+(?:his|her|their)\s+((?:early|mid|late)[\s-]+)?(\w+)\b",  # "in her forties"
        ):
            for m in re.finditer(pat, low):
                note = "".join(g for g in m.groups() if g)
                rng = parse_age_note(note)
                if rng:
                    return rng, FieldEvidence(confidence=0.75, evidence=(snip(m.group(0)),))
    named = _cue_age(evidence)  # what the cue says beats loose words in the introduction
    if named is not None:
        return named
    word_sources = [("introduction", t) for t in texts]
    for where, text in word_sources:
        ws = _words(text)
        for i, w in enumerate(ws):
            if w == "young" and i + 1 < len(ws) and ws[i + 1] in ("boy", "girl", "child", "kid"):
                return (6, 12), FieldEvidence(confidence=0.5, evidence=(f"{where}: 'young {ws[i + 1]}'",))
            if w in _AGE_WORDS:
                return _AGE_WORDS[w], FieldEvidence(confidence=0.5, evidence=(f"{where}: {w!r} in {snip(text, 80)!r}",))
    return None, FieldEvidence(confidence=0.0, evidence=())


def _adverb_to_adjective(word: str) -> str:
    if word in _ADVERB_EXCEPTIONS:
        return _ADVERB_EXCEPTIONS[word]
    if word.endswith("ically"):
        return word[:-4]
    if word.endswith("ily"):
        return word[:-3] + "y"
    if word.endswith("ly") and len(word) > 4:
        return word[:-2]
    return word


def _looks_like_trait(word: str) -> bool:
    return word in _TRAIT_WORDS or (
        len(word) > 4 and word.endswith(_ADJ_SUFFIXES) and not word.endswith(_NOUN_SUFFIXES) and word not in _STOPWORDS
    )


def _descriptor_ok(phrase: str) -> bool:
    """Describing phrases about *this* character: not a predicate (`sits at the desk`), not about someone else
    (`and YOR`, `and Chalf with a beanie`)."""
    p = phrase.strip()
    if not p or _is_clause(p):
        return False
    return not any(w.isupper() and len(w) > 1 for w in re.findall(r"[A-Za-z][\w'’]*", p))


def _traits(evidence: Evidence) -> tuple[tuple[str, ...], FieldEvidence]:
    traits: list[str] = []
    snippets: list[str] = []
    not_traits = _MALE_WORDS | _FEMALE_WORDS | set(_AGE_WORDS) | _STOPWORDS | _INTENSIFIERS
    intro = evidence.introduction
    phrases = []
    for d in intro.descriptors if intro is not None else ():
        if parse_age_note(d):
            continue
        if d.strip().lower().startswith("and "):
            continue  # `and Chalf with a beanie`: usually someone else
        if not _descriptor_ok(d):
            break  # what follows a predicate or another name describes someone else
        phrases.append(d)
    if not phrases:
        phrases = [p for p in re.split(r",|\band\b", _intro_appositive(evidence)) if _descriptor_ok(p)]
    for phrase in phrases:
        low = phrase.lower().strip(" .")
        head, _, tail = low.partition(" with ")
        for chunk in re.split(r",|\band\b", head):
            # Modifiers precede the head noun: "an earnest young engineer from the coast" -> earnest, young.
            ws = [w for w in _words(_PREPOSITIONS.split(chunk)[0]) if not w.endswith(("'s", "’s"))]
            ws = [w for w in ws if w not in ("a", "an", "the") and w not in _INTENSIFIERS]
            if len(ws) == 1:  # a lone word in a list of descriptions is an adjective: "a mild, goofy, …"
                candidates = ws if ws[0].isalpha() and ws[0] not in not_traits else []
            else:
                candidates = [w for w in ws[:-1] if w not in not_traits and _looks_like_trait(w)]
            for w in candidates:
                if w not in traits:
                    traits.append(w)
        if tail:
            ws = [w for w in _words(_PREPOSITIONS.split(tail)[0]) if w not in ("a", "an", "the")]
            # keep "with a dry wit", "with a thick accent"; not "with black horn"
            if 0 < len(ws) <= 3 and (ws[-1] in _VOICE_NOUNS or any(w in _TRAIT_WORDS for w in ws)):
                if " ".join(ws) not in traits:
                    traits.append(" ".join(ws))
    if traits:
        snippets.append(f"introduction: {snip(', '.join(phrases), 100)!r}")
    # Parentheticals that recur (at least twice and in a tenth of the lines) and name a temperament:
    # "(angrily)" x5 -> angry. Stage business ("closer", "beat") and one-offs are ignored.
    counts: dict[str, int] = {}
    for p in evidence.parentheticals:
        key = p.lower().strip(" ()")
        if key and " " not in key and key not in _NON_TRAIT_PARENS:
            counts[key] = counts.get(key, 0) + 1
    from_parens = 0
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if n < 2 or n < 0.1 * evidence.line_count:
            continue
        word = _adverb_to_adjective(key)
        if not (key.endswith("ly") or word in _TRAIT_WORDS) or word in traits:
            continue
        traits.append(word)
        from_parens += 1
        snippets.append(f"parenthetical ({key}) ×{n}")
    if not traits:
        return (), FieldEvidence(confidence=0.0, evidence=())
    confidence = 0.7 if len(traits) > from_parens else 0.5
    return tuple(traits[:6]), FieldEvidence(confidence=confidence, evidence=tuple(snippets[:6]))


def display_name(evidence: Evidence) -> str:
    """'MARGARET HALE' as introduced (title case), else the canonical name in title case."""
    intro = evidence.introduction
    if intro is not None:
        m = re.search(re.escape(evidence.name) + r"((?:\s+[A-Z][A-Z'’.-]+)*)", intro.text)
        if m:
            return m.group(0).title()
    return evidence.name.title()


def _summary(evidence: Evidence) -> tuple[str, FieldEvidence]:
    appositive = _intro_appositive(evidence)
    n, scenes = evidence.line_count, len(evidence.scenes)
    presence = f"{n} line{'s' if n != 1 else ''} in {scenes} scene{'s' if scenes != 1 else ''}"
    vo = sum(1 for e in evidence.extensions if e and e.upper().replace(" ", "") in ("V.O.", "VO", "V.O"))
    os_ = sum(1 for e in evidence.extensions if e and e.upper().replace(" ", "") in ("O.S.", "O.C.", "OS"))
    if appositive:
        first = appositive[0].upper() + appositive[1:].rstrip(".") + "."
        evid = (f"introduction: {snip(evidence.introduction.text)!r}",)  # type: ignore[union-attr]
        confidence = 0.7
    else:
        first = f"{display_name(evidence)}, a character with {presence}."
        evid = ()
        confidence = 0.3
    second = ""
    if n and vo * 2 >= n:
        second = "Often heard in voice-over."
    elif n and os_ * 2 >= n:
        second = "Often heard off-screen."
    elif appositive:
        second = f"Speaks {presence}."
    return (first + (" " + second if second else "")).strip(), FieldEvidence(confidence=confidence, evidence=evid)


class HeuristicAnalyzer:
    """Offline analysis from the script's own words. Deterministic; confidence reflects how much text supported
    each field (a given-name guess alone gives gender confidence 0.6 / 1.1 ≈ 0.55)."""

    id = f"heuristic-{HEURISTIC_VERSION}"

    def analyze(self, evidence: Evidence) -> CharacterProfile:
        gender, g_ev = _gender(evidence)
        age, a_ev = _age(evidence)
        traits, t_ev = _traits(evidence)
        summary, s_ev = _summary(evidence)
        return CharacterProfile(
            name=evidence.name, gender=gender, age_range=age, traits=traits, summary=summary,
            field_evidence={"gender": g_ev, "age_range": a_ev, "traits": t_ev, "summary": s_ev},
            analyzer=self.id,
        )
