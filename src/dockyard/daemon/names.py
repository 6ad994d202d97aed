"""Random container names in docker's "adjective_surname" style, and name validation."""

from __future__ import annotations

import random
import re

from dockyard.errors import InvalidParameter

VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_LEFT = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold boring brave busy "
    "charming clever compassionate competent condescending confident cool cranky crazy dazzling determined "
    "distracted dreamy eager ecstatic elastic elated elegant eloquent epic exciting fervent festive flamboyant "
    "focused friendly frosty funny gallant gifted goofy gracious great happy hardcore heuristic hopeful hungry "
    "infallible inspiring intelligent interesting jolly jovial keen kind laughing loving lucid magical modest "
    "musing mystifying naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive "
    "practical priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp silly sleepy "
    "stoic strange stupefied suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant "
    "vigorous wizardly wonderful xenodochial youthful zealous zen"
).split()
_RIGHT = (
    "agnesi albattani allen archimedes babbage banach bardeen bartik bell benz bhabha blackwell bohr booth "
    "borg bose brahmagupta brattain brown carson cerf chandrasekhar clarke curie darwin davinci dijkstra "
    "einstein elion engelbart euclid euler fermat fermi feynman franklin galileo gates goldberg goodall "
    "hamilton hawking heisenberg hermann hodgkin hopper hypatia jackson jang jennings johnson kalam kapitsa "
    "keller kepler khorana kilby knuth kowalevski lalande lamarr lamport leakey leavitt lovelace lumiere "
    "mayer mccarthy mcclintock meitner mendel merkle minsky mirzakhani montalcini moore morse napier nash "
    "newton nobel noether noyce pare pascal pasteur payne perlman pike poincare ptolemy raman ramanujan "
    "ritchie rosalind sammet shannon shaw shirley shockley sinoussi snyder stonebraker swanson tesla "
    "thompson torvalds turing varahamihira visvesvaraya volhard wescoff wilbur wiles williams wilson wing "
    "wozniak wright yalow yonath"
).split()


def random_name(retry: int = 0) -> str:
    """A fresh name; after collisions docker appends a digit, and so do we."""
    name = f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"
    return f"{name}{random.randint(0, 9)}" if retry else name


def validate_name(name: str) -> str:
    """Return the canonical "/name" form or raise docker's error."""
    if not VALID_NAME.match(name):
        raise InvalidParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return "/" + name.lstrip("/")
